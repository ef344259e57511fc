package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// startExecute starts e and stops it when the test ends.
func startExecute(t *testing.T, e *ExecuteEngine) {
	t.Helper()
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
}

// blocker returns a task that signals entered, then waits for release.
func blocker(entered, release chan struct{}) Task {
	return func(context.Context) {
		close(entered)
		<-release
	}
}

func TestExecuteRunsEachTagInOrder(t *testing.T) {
	const tags, perTag = 16, 500
	e := NewExecuteEngine(ExecuteConfig{Workers: 4, QueueSize: 8})
	startExecute(t, e)
	got := make([][]int, tags) // got[tag] is appended on that tag's worker only
	running := make([]atomic.Int32, tags)
	var overlapped atomic.Bool
	var submitters sync.WaitGroup
	for tag := range tags {
		submitters.Go(func() {
			name := fmt.Sprint("service-", tag)
			for seq := range perTag {
				err := e.Submit(context.Background(), name, func(context.Context) {
					if running[tag].Add(1) != 1 {
						overlapped.Store(true)
					}
					got[tag] = append(got[tag], seq)
					running[tag].Add(-1)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	submitters.Wait()
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if overlapped.Load() {
		t.Error("two tasks of one tag ran at the same time")
	}
	for tag, seqs := range got {
		if len(seqs) != perTag || !slices.IsSorted(seqs) {
			t.Errorf("tag %d: ran %d tasks, sorted %v; want %d in submission order",
				tag, len(seqs), slices.IsSorted(seqs), perTag)
		}
	}
}

func TestExecuteSpreadsTagsOverWorkers(t *testing.T) {
	const workers, tags = 8, 8000
	e := NewExecuteEngine(ExecuteConfig{Workers: workers})
	counts := make([]int, workers)
	for i := range tags {
		counts[e.index(fmt.Sprintf("public@@DEFAULT_GROUP@@service-%d", i))]++
	}
	for w, n := range counts {
		if mean := tags / workers; n < mean/2 || n > mean*3/2 {
			t.Errorf("worker %d got %d of %d tags; want about %d (all: %v)", w, n, tags, mean, counts)
		}
	}
}

func TestExecuteWorkerCount(t *testing.T) {
	procs := 1
	for procs < runtime.GOMAXPROCS(0) {
		procs *= 2
	}
	tests := []struct{ requested, want int }{
		{1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {1000, 1024},
		{0, procs}, {-1, procs},
	}
	for _, tt := range tests {
		if got := NewExecuteEngine(ExecuteConfig{Workers: tt.requested}).Workers(); got != tt.want {
			t.Errorf("Workers: %d requested, got %d, want %d", tt.requested, got, tt.want)
		}
	}
}

func TestExecuteFullQueueBlocksSubmit(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func(t *testing.T) context.Context
		wantErr error
	}{
		{"deadline", func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
		{"cancel", func(*testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			go cancel()
			return ctx
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewExecuteEngine(ExecuteConfig{Workers: 1, QueueSize: 1})
			startExecute(t, e)
			entered, release := make(chan struct{}), make(chan struct{})
			ctx := context.Background()
			if err := e.Submit(ctx, "t", blocker(entered, release)); err != nil {
				t.Fatal(err)
			}
			recv(t, entered)
			var ran atomic.Int32
			count := func(context.Context) { ran.Add(1) }
			if err := e.Submit(ctx, "t", count); err != nil {
				t.Fatal(err)
			}
			if d := e.QueueDepth(); d != 1 {
				t.Fatalf("QueueDepth() = %d, want 1 (full)", d)
			}
			if err := e.Submit(tt.ctx(t), "t", count); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Submit on a full queue = %v, want %v", err, tt.wantErr)
			}
			close(release)
			if err := e.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if n := ran.Load(); n != 1 {
				t.Fatalf("%d queued tasks ran, want 1", n)
			}
		})
	}
}

func TestExecuteStopUnblocksSubmit(t *testing.T) {
	e := NewExecuteEngine(ExecuteConfig{Workers: 1, QueueSize: 1})
	startExecute(t, e)
	entered, release := make(chan struct{}), make(chan struct{})
	ctx := context.Background()
	if err := e.Submit(ctx, "t", blocker(entered, release)); err != nil {
		t.Fatal(err)
	}
	recv(t, entered)
	if err := e.Submit(ctx, "t", func(context.Context) {}); err != nil { // fills the queue
		t.Fatal(err)
	}
	submitted := make(chan error)
	go func() { submitted <- e.Submit(ctx, "t", func(context.Context) {}) }()
	stopped := make(chan error)
	go func() { stopped <- e.Stop(ctx) }()
	if err := recv(t, submitted); !errors.Is(err, ErrStopped) {
		t.Fatalf("blocked Submit returned %v, want ErrStopped", err)
	}
	close(release)
	if err := recv(t, stopped); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestExecuteStop(t *testing.T) {
	const queued = 5
	tests := []struct {
		name     string
		deadline bool // Stop's ctx ends before the queue is drained
		wantErr  error
	}{
		{"graceful", false, nil},
		{"deadline", true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewExecuteEngine(ExecuteConfig{Workers: 1, QueueSize: queued})
			if err := e.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			entered, release := make(chan struct{}), make(chan struct{})
			var ctxErrs []error // appended on the one worker, read after Stop
			submit := func(task Task) {
				if err := e.Submit(context.Background(), "t", task); err != nil {
					t.Fatal(err)
				}
			}
			submit(func(ctx context.Context) {
				close(entered)
				select {
				case <-release:
				case <-ctx.Done():
				}
			})
			recv(t, entered)
			for range queued {
				submit(func(ctx context.Context) { ctxErrs = append(ctxErrs, ctx.Err()) })
			}
			stopCtx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopped := make(chan error)
			go func() { stopped <- e.Stop(stopCtx) }()
			eventually(t, func() bool {
				return errors.Is(e.Submit(context.Background(), "t", func(context.Context) {}), ErrStopped)
			})
			if tt.deadline {
				cancel()
			} else {
				close(release)
			}
			if err := recv(t, stopped); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Stop = %v, want %v", err, tt.wantErr)
			}
			want := slices.Repeat([]error{tt.wantErr}, queued)
			if !slices.Equal(ctxErrs, want) {
				t.Fatalf("queued tasks saw ctx errors %v, want %v", ctxErrs, want)
			}
			goleak.VerifyNone(t)
		})
	}
}

func TestExecuteRecoversPanic(t *testing.T) {
	log, lines := newLogger()
	e := NewExecuteEngine(ExecuteConfig{Name: "push", Workers: 1, Logger: log})
	startExecute(t, e)
	ran := make(chan struct{})
	ctx := context.Background()
	if err := e.Submit(ctx, "svc-a", func(context.Context) { panic("bad push") }); err != nil {
		t.Fatal(err)
	}
	if err := e.Submit(ctx, "svc-a", func(context.Context) { close(ran) }); err != nil {
		t.Fatal(err)
	}
	recv(t, ran)
	line := lines.waitFor(t, "task panicked")
	for _, want := range []string{"engine=push", "tag=svc-a", "bad push"} {
		if !strings.Contains(line, want) {
			t.Errorf("panic log %q lacks %q", line, want)
		}
	}
}

func TestExecuteLifecycle(t *testing.T) {
	ran := make(chan struct{})
	e := NewExecuteEngine(ExecuteConfig{})
	if err := e.Submit(context.Background(), "early", func(context.Context) { close(ran) }); err != nil {
		t.Fatalf("Submit before Start: %v", err)
	}
	startExecute(t, e)
	recv(t, ran)
	if err := e.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	for range 2 {
		if err := e.Stop(context.Background()); err != nil {
			t.Errorf("Stop = %v, want nil", err)
		}
	}
	if err := e.Start(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop = %v, want ErrStopped", err)
	}
	if err := NewExecuteEngine(ExecuteConfig{}).Stop(context.Background()); err != nil {
		t.Errorf("Stop before Start = %v, want nil", err)
	}
}

// benchTags are the tags benchmarks spread their tasks over.
var benchTags = func() []string {
	tags := make([]string, 1024)
	for i := range tags {
		tags[i] = fmt.Sprintf("public@@DEFAULT_GROUP@@service-%d", i)
	}
	return tags
}()

func BenchmarkExecute(b *testing.B) {
	e := NewExecuteEngine(ExecuteConfig{})
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer e.Stop(context.Background())
	var wg sync.WaitGroup
	wg.Add(b.N)
	task := func(context.Context) { wg.Done() }
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := e.Submit(ctx, benchTags[i%len(benchTags)], task); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}

func BenchmarkExecuteParallel(b *testing.B) {
	e := NewExecuteEngine(ExecuteConfig{})
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer e.Stop(context.Background())
	var wg sync.WaitGroup
	wg.Add(b.N)
	task := func(context.Context) { wg.Done() }
	ctx := context.Background()
	var submitters atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := submitters.Add(1) * 7919; pb.Next(); i++ { // each submitter starts at its own tag
			if err := e.Submit(ctx, benchTags[i%int64(len(benchTags))], task); err != nil {
				b.Error(err)
				wg.Done()
			}
		}
	})
	wg.Wait()
}
