package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

type processed[K comparable, T any] struct {
	key  K
	task T
	at   time.Time
}

// recorder returns a Process function that reports each call on the
// returned channel.
func recorder[K comparable, T any]() (func(context.Context, K, T) error, <-chan processed[K, T]) {
	calls := make(chan processed[K, T], 16)
	return func(_ context.Context, key K, task T) error {
		calls <- processed[K, T]{key: key, task: task, at: time.Now()}
		return nil
	}, calls
}

// union merges sets of push targets, as bits.
func union(pending, incoming uint64) uint64 { return pending | incoming }

// startDelay starts e and stops it when the test ends.
func startDelay[K comparable, T any](t *testing.T, e *DelayEngine[K, T]) {
	t.Helper()
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
}

func TestDelayMergesPendingTask(t *testing.T) {
	type add struct {
		task  uint64
		delay time.Duration
	}
	tests := []struct {
		name      string
		adds      []add
		notBefore time.Duration // the earliest due time
	}{
		{"same delay", []add{{1, 50 * time.Millisecond}, {2, 50 * time.Millisecond}}, 50 * time.Millisecond},
		{"earlier first", []add{{1, 20 * time.Millisecond}, {2, time.Hour}}, 20 * time.Millisecond},
		{"earlier second", []add{{1, time.Hour}, {2, 0}}, 0},
		{"burst", []add{{1, 30 * time.Millisecond}, {2, 40 * time.Millisecond}, {4, 50 * time.Millisecond}}, 30 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			process, calls := recorder[string, uint64]()
			e := NewDelayEngine(DelayConfig[string, uint64]{Merge: union, Process: process})
			start := time.Now()
			var want uint64
			for _, a := range tt.adds {
				e.Add("svc", a.task, a.delay)
				want |= a.task
			}
			if n := e.Len(); n != 1 {
				t.Fatalf("Len() = %d after adds for one key, want 1", n)
			}
			startDelay(t, e)
			got := recv(t, calls)
			if got.task != want {
				t.Errorf("processed task %b, want merged %b", got.task, want)
			}
			if waited := got.at.Sub(start); waited < tt.notBefore {
				t.Errorf("processed after %v, before the earliest due time %v", waited, tt.notBefore)
			}
			if n := e.Len(); n != 0 {
				t.Errorf("Len() = %d after processing, want 0", n)
			}
		})
	}
}

func TestDelayEarlierTaskWakesEngine(t *testing.T) {
	process, calls := recorder[int, int]()
	e := NewDelayEngine(DelayConfig[int, int]{Process: process})
	e.Add(-1, 0, time.Hour)
	startDelay(t, e)
	// Each task is added while the engine waits, or is about to wait, for
	// the task due in an hour: it must be processed at once all the same.
	for key := range 100 {
		e.Add(key, 0, 0)
		if got := recv(t, calls); got.key != key {
			t.Fatalf("processed %d, want %d", got.key, key)
		}
	}
	if n := e.Len(); n != 1 {
		t.Fatalf("Len() = %d, want 1 (the task due in an hour)", n)
	}
}

func TestDelayRetriesFailedTask(t *testing.T) {
	const retryDelay = 30 * time.Millisecond
	tests := []struct {
		name    string
		fail    func() error
		wantLog string
	}{
		{"error", func() error { return errors.New("peer unreachable") }, ""},
		{"panic", func() error { panic("bad task") }, "task panicked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, lines := newLogger()
			calls := make(chan processed[string, int], 2)
			var failedAt time.Time // written by the first call, read after the second
			e := NewDelayEngine(DelayConfig[string, int]{
				Process: func(_ context.Context, key string, task int) error {
					calls <- processed[string, int]{key: key, task: task, at: time.Now()}
					if failedAt.IsZero() {
						failedAt = time.Now()
						return tt.fail()
					}
					return nil
				},
				RetryDelay: retryDelay,
				Logger:     log,
			})
			e.Add("svc", 7, 0)
			startDelay(t, e)
			recv(t, calls)
			retry := recv(t, calls)
			if retry.task != 7 {
				t.Errorf("retried task %d, want 7", retry.task)
			}
			if gap := retry.at.Sub(failedAt); gap < retryDelay {
				t.Errorf("retried %v after the failure, want at least %v", gap, retryDelay)
			}
			if tt.wantLog != "" {
				if line := lines.waitFor(t, tt.wantLog); !strings.Contains(line, "bad task") {
					t.Errorf("panic log %q lacks the panic value", line)
				}
			}
		})
	}
}

func TestDelayRetryMergesWithNewerTask(t *testing.T) {
	calls := make(chan string, 2)
	var e *DelayEngine[string, string]
	e = NewDelayEngine(DelayConfig[string, string]{
		Merge: func(_, incoming string) string { return incoming }, // latest wins
		Process: func(_ context.Context, key, task string) error {
			calls <- task
			if task == "old" {
				e.Add(key, "new", 0) // a newer change arrives while "old" fails
				return errors.New("failed")
			}
			return nil
		},
		RetryDelay: time.Hour, // the retry must not postpone the newer task
	})
	e.Add("client", "old", 0)
	startDelay(t, e)
	if got := recv(t, calls); got != "old" {
		t.Fatalf("first processed %q, want old", got)
	}
	if got := recv(t, calls); got != "new" {
		t.Fatalf("after the failure processed %q, want the newer task", got)
	}
	if n := e.Len(); n != 0 {
		t.Fatalf("Len() = %d, want 0: the failed task merged into the newer one", n)
	}
}

func TestDelayProcessesInDueOrder(t *testing.T) {
	const n = 10000
	done := make(chan struct{})
	var order []int // appended on the engine goroutine, read after done
	e := NewDelayEngine(DelayConfig[int, struct{}]{
		Process: func(_ context.Context, key int, _ struct{}) error {
			if order = append(order, key); len(order) == n {
				close(done)
			}
			return nil
		},
	})
	for key := range n {
		e.Add(key, struct{}{}, rand.N(20*time.Millisecond))
	}
	due := make(map[int]time.Duration, n)
	for key, p := range e.pending {
		due[key] = p.due
	}
	startDelay(t, e)
	recv(t, done)
	for i := 1; i < n; i++ {
		if due[order[i]] < due[order[i-1]] {
			t.Fatalf("key %d (due %v) processed after key %d (due %v)",
				order[i], due[order[i]], order[i-1], due[order[i-1]])
		}
	}
}

func TestDelayStop(t *testing.T) {
	tests := []struct {
		name     string
		deadline bool // Stop's ctx ends before Process returns
		wantErr  error
	}{
		{"graceful", false, nil},
		{"deadline", true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			sawErr := make(chan error, 1)
			var calls int // engine goroutine only, read after Stop
			e := NewDelayEngine(DelayConfig[string, int]{
				Process: func(ctx context.Context, _ string, _ int) error {
					calls++
					close(entered)
					select {
					case <-release:
					case <-ctx.Done():
					}
					sawErr <- ctx.Err()
					return errors.New("fails, so that a retry is attempted")
				},
			})
			if err := e.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.Add("a", 1, 0)
			e.Add("b", 2, time.Hour)
			recv(t, entered)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopped := make(chan error)
			go func() { stopped <- e.Stop(ctx) }()
			eventually(t, func() bool { return e.Len() == 0 }) // pending tasks dropped
			if tt.deadline {
				cancel()
			} else {
				close(release)
			}
			if err := recv(t, stopped); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Stop = %v, want %v", err, tt.wantErr)
			}
			if err := recv(t, sawErr); !errors.Is(err, tt.wantErr) {
				t.Errorf("Process saw ctx error %v, want %v", err, tt.wantErr)
			}
			goleak.VerifyNone(t)
			e.Add("c", 3, 0)
			if n := e.Len(); n != 0 || calls != 1 {
				t.Errorf("after Stop: Len() = %d, %d Process calls; want 0 and 1", n, calls)
			}
			if err := e.Start(context.Background()); !errors.Is(err, ErrStopped) {
				t.Errorf("Start after Stop = %v, want ErrStopped", err)
			}
		})
	}
}

func TestDelayLifecycleErrors(t *testing.T) {
	process, _ := recorder[string, int]()
	e := NewDelayEngine(DelayConfig[string, int]{Process: process})
	startDelay(t, e)
	if err := e.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	if err := NewDelayEngine(DelayConfig[string, int]{Process: process}).Stop(context.Background()); err != nil {
		t.Errorf("Stop before Start = %v, want nil", err)
	}
}

func TestNewDelayEngineWithoutProcessPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewDelayEngine accepted a nil Process")
		}
	}()
	NewDelayEngine(DelayConfig[string, int]{})
}

func BenchmarkDelayAdd(b *testing.B) {
	noop := func(context.Context, int, uint64) error { return nil }
	b.Run("same key", func(b *testing.B) {
		e := NewDelayEngine(DelayConfig[int, uint64]{Merge: union, Process: noop})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			e.Add(1, uint64(i), time.Second)
		}
	})
	b.Run("distinct keys", func(b *testing.B) {
		e := NewDelayEngine(DelayConfig[int, uint64]{Merge: union, Process: noop})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			e.Add(i, uint64(i), time.Second)
		}
	})
}

func BenchmarkDelayAddProcess(b *testing.B) {
	done := make(chan struct{})
	count := 0
	e := NewDelayEngine(DelayConfig[int, uint64]{
		Merge: union,
		Process: func(context.Context, int, uint64) error {
			if count++; count == b.N {
				close(done)
			}
			return nil
		},
	})
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer e.Stop(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.Add(i, 1, 0)
	}
	<-done
}
