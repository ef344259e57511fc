package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen promptly.
const waitTimeout = 5 * time.Second

type evA struct{ n int }
type evB struct{ n int }

// recv returns the next value of ch, failing the test if none comes in time.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %T", *new(T))
		panic("unreachable")
	}
}

// eventually polls cond until it holds, failing the test if it does not in time.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		runtime.Gosched()
	}
}

// startBus returns a started bus that is stopped when the test ends.
func startBus(t *testing.T, b *Bus) *Bus {
	t.Helper()
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	return b
}

// logLines is a log output that hands each line to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}

func newLogger() (hclog.Logger, logLines) {
	lines := make(logLines, 64)
	return hclog.New(&hclog.LoggerOptions{Output: lines, Level: hclog.Debug}), lines
}

// waitFor returns the first line containing substr.
func (l logLines) waitFor(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case line := <-l:
			if strings.Contains(line, substr) {
				return line
			}
		case <-timeout:
			t.Fatalf("no log line containing %q", substr)
		}
	}
}

func TestPublishDeliversInOrderToEachHandler(t *testing.T) {
	const n = 1000
	b := New(Config{QueueSize: 8})
	var calls []string // appended on evA's goroutine only
	done := make(chan struct{})
	for _, name := range []string{"first", "second"} {
		err := Subscribe(b, name, func(e evA) {
			calls = append(calls, fmt.Sprint(name, e.n))
			if name == "second" && e.n == n-1 {
				close(done)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	startBus(t, b)
	for i := range n {
		if err := Publish(context.Background(), b, evA{i}); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, done)
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint("first", i), fmt.Sprint("second", i))
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("handler calls out of order: got %v…", calls[:min(len(calls), 10)])
	}
}

func TestSlowTypeDoesNotDelayOthers(t *testing.T) {
	b := New(Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	gotB := make(chan evB, 1)
	if err := Subscribe(b, "slow", func(evA) { close(entered); <-release }); err != nil {
		t.Fatal(err)
	}
	if err := Subscribe(b, "fast", func(e evB) { gotB <- e }); err != nil {
		t.Fatal(err)
	}
	startBus(t, b)
	defer close(release)
	ctx := context.Background()
	if err := Publish(ctx, b, evA{1}); err != nil {
		t.Fatal(err)
	}
	recv(t, entered)
	if err := Publish(ctx, b, evB{2}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, gotB); got.n != 2 {
		t.Fatalf("got %v, want evB{2}", got)
	}
}

func TestSharedQueue(t *testing.T) {
	b := New(Config{QueueSize: 1})
	var got []string // appended on the shared queue's goroutine only
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	for _, err := range []error{
		UseSharedQueue[evA](b),
		UseSharedQueue[evB](b),
		Subscribe(b, "a", func(e evA) {
			if e.n == 0 {
				close(entered)
				<-release
			}
			got = append(got, fmt.Sprint("a", e.n))
		}),
		Subscribe(b, "b", func(e evB) {
			got = append(got, fmt.Sprint("b", e.n))
			if e.n == 3 {
				close(done)
			}
		}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	startBus(t, b)
	ctx := context.Background()
	if err := Publish(ctx, b, evA{0}); err != nil {
		t.Fatal(err)
	}
	recv(t, entered)
	// More events than QueueSize: the shared queue has its own size.
	for _, err := range []error{
		Publish(ctx, b, evB{1}), Publish(ctx, b, evA{2}), Publish(ctx, b, evB{3}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	depths := b.QueueDepths()
	if want := map[string]int{"shared": 3}; !maps.Equal(depths, want) {
		t.Errorf("QueueDepths() = %v, want %v", depths, want)
	}
	close(release)
	recv(t, done)
	if want := []string{"a0", "b1", "a2", "b3"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func TestFullQueueBlocksPublish(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() context.Context
		wantErr error
	}{
		{"deadline", func() context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
		{"cancel", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			go cancel()
			return ctx
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(Config{QueueSize: 1})
			entered, release := make(chan struct{}), make(chan struct{})
			got := make(chan int, 3)
			err := Subscribe(b, "h", func(e evA) {
				if e.n == 1 {
					close(entered)
					<-release
				}
				got <- e.n
			})
			if err != nil {
				t.Fatal(err)
			}
			startBus(t, b)
			ctx := context.Background()
			if err := Publish(ctx, b, evA{1}); err != nil {
				t.Fatal(err)
			}
			recv(t, entered)
			if err := Publish(ctx, b, evA{2}); err != nil {
				t.Fatal(err)
			}
			if d := b.QueueDepths()["notify.evA"]; d != 1 {
				t.Fatalf("queue depth %d, want 1 (full)", d)
			}
			if err := Publish(tt.ctx(), b, evA{3}); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Publish on a full queue = %v, want %v", err, tt.wantErr)
			}
			close(release)
			if err := b.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			close(got)
			var delivered []int
			for n := range got {
				delivered = append(delivered, n)
			}
			if !slices.Equal(delivered, []int{1, 2}) {
				t.Fatalf("delivered %v, want [1 2]", delivered)
			}
		})
	}
}

func TestStopUnblocksPublisher(t *testing.T) {
	b := New(Config{QueueSize: 1})
	entered, release := make(chan struct{}), make(chan struct{})
	if err := Subscribe(b, "h", func(e evA) {
		if e.n == 1 {
			close(entered)
			<-release
		}
	}); err != nil {
		t.Fatal(err)
	}
	startBus(t, b)
	ctx := context.Background()
	for i := range 2 {
		if err := Publish(ctx, b, evA{i + 1}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			recv(t, entered)
		}
	}
	published := make(chan error)
	go func() { published <- Publish(ctx, b, evA{3}) }()
	stopped := make(chan error)
	go func() { stopped <- b.Stop(ctx) }()
	if err := recv(t, published); !errors.Is(err, ErrStopped) {
		t.Fatalf("blocked Publish returned %v, want ErrStopped", err)
	}
	close(release)
	if err := recv(t, stopped); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestPublishResult(t *testing.T) {
	subscribed := func(b *Bus) {
		if err := Subscribe(b, "h", func(evA) {}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(b *Bus)
		start bool
		stop  bool
		want  error
	}{
		{name: "no subscriber", start: true},
		{name: "no subscriber, not started"},
		{name: "shared queue, no subscriber", setup: func(b *Bus) { _ = UseSharedQueue[evA](b) }, start: true},
		{name: "subscriber", setup: subscribed, start: true},
		{name: "subscriber, not started", setup: subscribed, want: ErrNotStarted},
		{name: "stopped", setup: subscribed, start: true, stop: true, want: ErrStopped},
		{name: "no subscriber, stopped", start: true, stop: true, want: ErrStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(Config{})
			if tt.setup != nil {
				tt.setup(b)
			}
			if tt.start {
				startBus(t, b)
			}
			if tt.stop {
				if err := b.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if err := Publish(context.Background(), b, evA{}); !errors.Is(err, tt.want) {
				t.Fatalf("Publish = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWiringAfterStart(t *testing.T) {
	b := New(Config{})
	ctx := context.Background()
	wire := map[string]func() error{
		"Start":          func() error { return b.Start(ctx) },
		"Subscribe":      func() error { return Subscribe(b, "late", func(evA) {}) },
		"UseSharedQueue": func() error { return UseSharedQueue[evB](b) },
	}
	startBus(t, b)
	for name, f := range wire {
		if err := f(); !errors.Is(err, ErrStarted) {
			t.Errorf("%s after Start = %v, want ErrStarted", name, err)
		}
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for name, f := range wire {
		if err := f(); !errors.Is(err, ErrStopped) {
			t.Errorf("%s after Stop = %v, want ErrStopped", name, err)
		}
	}
}

func TestStopDeliversQueuedEvents(t *testing.T) {
	const n = 50
	b := New(Config{QueueSize: n})
	entered, release := make(chan struct{}), make(chan struct{})
	var got []int // appended on evA's goroutine, read after Stop
	if err := Subscribe(b, "h", func(e evA) {
		if e.n == 0 {
			close(entered)
			<-release
		}
		got = append(got, e.n)
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		if err := Publish(ctx, b, evA{i}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			recv(t, entered)
		}
	}
	stopped := make(chan error)
	go func() { stopped <- b.Stop(ctx) }()
	// Once Stop has begun, nothing more is accepted.
	eventually(t, func() bool { return errors.Is(Publish(ctx, b, evB{}), ErrStopped) })
	select {
	case <-stopped:
		t.Fatal("Stop returned while a handler was running")
	default:
	}
	close(release)
	if err := recv(t, stopped); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var want []int
	for i := range n {
		want = append(want, i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want every queued event", got)
	}
	goleak.VerifyNone(t)
}

func TestStopDeadlineDropsQueuedEvents(t *testing.T) {
	log, lines := newLogger()
	b := New(Config{Logger: log})
	entered, release := make(chan struct{}), make(chan struct{})
	var got []int // appended on evA's goroutine, read after Stop
	if err := Subscribe(b, "h", func(e evA) {
		if e.n == 0 {
			close(entered)
			<-release
		}
		got = append(got, e.n)
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := Publish(context.Background(), b, evA{i}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			recv(t, entered)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- b.Stop(ctx) }()
	cancel()
	lines.waitFor(t, "stop deadline passed")
	close(release)
	if err := recv(t, stopped); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want context.Canceled", err)
	}
	if line := lines.waitFor(t, "dropping queued events"); !strings.Contains(line, "dropped=2") {
		t.Errorf("drop not logged with its count: %q", line)
	}
	if !slices.Equal(got, []int{0}) {
		t.Fatalf("delivered %v, want only the event in progress [0]", got)
	}
}

func TestHandlerPanicIsRecovered(t *testing.T) {
	log, lines := newLogger()
	b := New(Config{Logger: log})
	got := make(chan int, 2)
	if err := Subscribe(b, "boom", func(e evA) {
		if e.n == 1 {
			panic("kaboom")
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := Subscribe(b, "after", func(e evA) { got <- e.n }); err != nil {
		t.Fatal(err)
	}
	startBus(t, b)
	for i := range 2 {
		if err := Publish(context.Background(), b, evA{i + 1}); err != nil {
			t.Fatal(err)
		}
	}
	if x, y := recv(t, got), recv(t, got); x != 1 || y != 2 {
		t.Fatalf("next handler got %d, %d; want 1, 2", x, y)
	}
	line := lines.waitFor(t, "event handler panicked")
	for _, want := range []string{"subscriber=boom", "kaboom"} {
		if !strings.Contains(line, want) {
			t.Errorf("panic log %q lacks %q", line, want)
		}
	}
}

func TestNilHandler(t *testing.T) {
	if err := Subscribe[evA](New(Config{}), "nil", nil); err == nil {
		t.Fatal("Subscribe accepted a nil handler")
	}
}

// benchBus returns a started bus whose evA handler closes the returned
// channel after n events.
func benchBus(b *testing.B, n int) (*Bus, <-chan struct{}) {
	bus := New(Config{})
	done := make(chan struct{})
	var count int
	if err := Subscribe(bus, "count", func(evA) {
		if count++; count == n {
			close(done)
		}
	}); err != nil {
		b.Fatal(err)
	}
	if err := bus.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Stop(context.Background()) })
	return bus, done
}

func BenchmarkPublish(b *testing.B) {
	bus, done := benchBus(b, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := Publish(ctx, bus, evA{i}); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

func BenchmarkPublishParallel(b *testing.B) {
	bus, done := benchBus(b, b.N)
	ctx := context.Background()
	var failed atomic.Bool
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if Publish(ctx, bus, evA{}) != nil {
				failed.Store(true)
			}
		}
	})
	if failed.Load() {
		b.Fatal("Publish failed")
	}
	<-done
}
