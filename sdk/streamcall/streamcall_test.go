package streamcall

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// req and res stand in for the generated messages.
type req struct {
	id       uint64
	cancel   bool
	deadline int64
	payload  string
}

func (r *req) GetId() uint64               { return r.id }
func (r *req) GetCancel() bool             { return r.cancel }
func (r *req) GetDeadlineUnixNano() int64  { return r.deadline }
func (r *res) GetId() uint64               { return r.id }
func (r *res) GetErrors() []string         { return r.errors }
func newRes(id uint64, errs []string) *res { return &res{id: id, errors: errs} }

type res struct {
	id     uint64
	errors []string
}

// end is one end of an in-memory bidirectional stream.
type end[Out, In any] struct {
	out    chan<- Out
	in     <-chan In
	closed <-chan struct{}
}

func (e end[Out, In]) Send(m Out) error {
	select {
	case e.out <- m:
		return nil
	case <-e.closed:
		return io.EOF
	}
}

func (e end[Out, In]) Recv() (In, error) {
	select {
	case m := <-e.in:
		return m, nil
	case <-e.closed:
		var zero In
		return zero, io.EOF
	}
}

// pipe returns both ends of a stream and the function that breaks it.
func pipe() (end[*req, *res], end[*res, *req], func()) {
	requests, results := make(chan *req), make(chan *res)
	closed := make(chan struct{})
	var once sync.Once
	return end[*req, *res]{requests, results, closed}, end[*res, *req]{results, requests, closed}, func() { once.Do(func() { close(closed) }) }
}

func cancelMsg(id uint64) *req { return &req{id: id, cancel: true} }

// serve runs Serve with handle on the server end until the pipe breaks.
func serve(t *testing.T, server end[*res, *req], handle func(context.Context, *req) []string) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := Serve(server, handle, newRes); !errors.Is(err, io.EOF) {
			t.Errorf("Serve ended with %v", err)
		}
	}()
	return func() { <-done }
}

func TestConcurrentCallsGetTheirOwnResults(t *testing.T) {
	client, server, breakPipe := pipe()
	wait := serve(t, server, func(_ context.Context, r *req) []string { return []string{"echo " + r.payload} })
	caller := NewCaller(client, cancelMsg)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			payload := strconv.Itoa(i)
			got, err := caller.Call(context.Background(), func(id uint64, _ int64) *req { return &req{id: id, payload: payload} })
			if err != nil || len(got.errors) != 1 || got.errors[0] != "echo "+payload {
				t.Errorf("call %d got %v, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	breakPipe()
	wait()
	<-caller.Done()
}

func TestDeadlineAndCancellationReachTheHandler(t *testing.T) {
	client, server, breakPipe := pipe()
	deadlines := make(chan time.Time, 1)
	cancelled := make(chan struct{})
	wait := serve(t, server, func(ctx context.Context, r *req) []string {
		d, _ := ctx.Deadline()
		deadlines <- d
		<-ctx.Done() // a handler that only ends when told to
		close(cancelled)
		return []string{"late"}
	})
	defer func() { breakPipe(); wait() }()
	caller := NewCaller(client, cancelMsg)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
	go func() {
		<-deadlines
		cancel()
	}()
	if _, err := caller.Call(ctx, func(id uint64, d int64) *req { return &req{id: id, deadline: d} }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled call returned %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled when the caller withdrew")
	}
}

func TestHandlerSeesTheCallersDeadline(t *testing.T) {
	client, server, breakPipe := pipe()
	got := make(chan time.Time, 1)
	wait := serve(t, server, func(ctx context.Context, _ *req) []string {
		d, _ := ctx.Deadline()
		got <- d
		return nil
	})
	defer func() { breakPipe(); wait() }()
	want := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	ctx, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	if _, err := NewCaller(client, cancelMsg).Call(ctx, func(id uint64, d int64) *req { return &req{id: id, deadline: d} }); err != nil {
		t.Fatal(err)
	}
	if d := <-got; !d.Equal(want) {
		t.Fatalf("handler deadline %v, want %v", d, want)
	}
}

func TestBrokenStreamFailsWaitingAndLaterCalls(t *testing.T) {
	client, server, breakPipe := pipe()
	started := make(chan struct{})
	wait := serve(t, server, func(ctx context.Context, _ *req) []string {
		close(started)
		<-ctx.Done()
		return nil
	})
	caller := NewCaller(client, cancelMsg)
	go func() {
		<-started
		breakPipe()
	}()
	if _, err := caller.Call(context.Background(), func(id uint64, _ int64) *req { return &req{id: id} }); !errors.Is(err, ErrClosed) {
		t.Fatalf("a call in flight when the stream broke returned %v", err)
	}
	if _, err := caller.Call(context.Background(), func(id uint64, _ int64) *req { return &req{id: id} }); !errors.Is(err, ErrClosed) {
		t.Fatalf("a call after the stream broke returned %v", err)
	}
	wait() // Serve returns only after its handler did
}
