package engine

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

const defaultRetryDelay = time.Second

// DelayConfig configures a DelayEngine.
type DelayConfig[K comparable, T any] struct {
	Name string // for logs and metrics
	// Merge combines two tasks for one key, the older one first: Add calls
	// Merge(pending, incoming), a retry Merge(failed, pending). It runs with
	// the engine locked, so it must be quick and must not call the engine.
	// Nil means the newer task replaces the older.
	Merge func(pending, incoming T) T
	// Process is called on the engine goroutine when a task is due and
	// should hand off quickly. An error or a panic re-adds the task after
	// RetryDelay. ctx is cancelled when Stop gives up waiting for Process.
	Process    func(ctx context.Context, key K, task T) error
	RetryDelay time.Duration // default 1s when 0
	Logger     hclog.Logger  // default hclog.NewNullLogger()
}

// DelayEngine holds keyed tasks until they are due, then hands them to
// Process one at a time, in due order. A task added for a key that is already
// pending is merged into the pending one, which is due at the earlier of the
// two due times: a burst of changes collapses into one task that is not
// postponed.
type DelayEngine[K comparable, T any] struct {
	cfg   DelayConfig[K, T]
	epoch time.Time     // due times are durations since epoch, on the monotonic clock
	wake  chan struct{} // an added task became the earliest
	quit  chan struct{} // closed by Stop

	mu      sync.Mutex
	state   state
	pending map[K]delayed[T]
	queue   dueHeap[K] // every pending task's due time, plus stale entries (see next)
	cancel  context.CancelFunc
	done    chan struct{} // closed when the engine goroutine exits; nil before Start
}

// delayed is a pending task and its due time.
type delayed[T any] struct {
	task T
	due  time.Duration
}

// NewDelayEngine returns a DelayEngine; tasks may be added before Start. It
// panics if cfg.Process is nil.
func NewDelayEngine[K comparable, T any](cfg DelayConfig[K, T]) *DelayEngine[K, T] {
	if cfg.Process == nil {
		panic("engine: DelayConfig.Process is nil")
	}
	if cfg.Merge == nil {
		cfg.Merge = func(_, incoming T) T { return incoming }
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = defaultRetryDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &DelayEngine[K, T]{
		cfg:     cfg,
		epoch:   time.Now(),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		pending: make(map[K]delayed[T]),
	}
}

// Add schedules task for key after delay, merging it into the task pending
// for key, if any. Add after Stop does nothing.
func (e *DelayEngine[K, T]) Add(key K, task T, delay time.Duration) {
	e.mu.Lock()
	earliest := e.add(key, task, e.now()+delay, false)
	e.mu.Unlock()
	if earliest {
		select {
		case e.wake <- struct{}{}:
		default: // a wake-up is already on its way
		}
	}
}

// Len returns the number of pending tasks.
func (e *DelayEngine[K, T]) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}

// Start launches the engine goroutine. Process gets a context carrying ctx's
// values but not its cancellation: the engine runs until Stop.
func (e *DelayEngine[K, T]) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.state.startErr(); err != nil {
		return err
	}
	e.state = running
	ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.done = make(chan struct{})
	go e.run(ctx, e.done)
	return nil
}

// Stop drops the pending tasks, lets a Process call in progress finish until
// ctx is done (then cancels its context), and returns once the engine
// goroutine has exited: ctx.Err() if ctx ended first, else nil.
func (e *DelayEngine[K, T]) Stop(ctx context.Context) error {
	e.mu.Lock()
	if e.state == running {
		close(e.quit)
	}
	e.state = stopped
	clear(e.pending)
	e.queue = nil
	done, cancel := e.done, e.cancel
	e.mu.Unlock()
	if done == nil {
		return nil
	}
	return await(ctx, done, cancel)
}

func (e *DelayEngine[K, T]) now() time.Duration { return time.Since(e.epoch) }

// add merges task into the one pending for key, if any, keeping the earlier
// due time; retry means task is older than the pending one. It reports
// whether task became the earliest, so that the engine goroutine must
// reschedule. e.mu must be held.
func (e *DelayEngine[K, T]) add(key K, task T, due time.Duration, retry bool) bool {
	if e.state == stopped {
		return false
	}
	if p, ok := e.pending[key]; ok {
		if retry {
			task = e.cfg.Merge(task, p.task)
		} else {
			task = e.cfg.Merge(p.task, task)
		}
		if p.due <= due {
			e.pending[key] = delayed[T]{task: task, due: p.due}
			return false
		}
	}
	e.pending[key] = delayed[T]{task: task, due: due}
	e.queue.push(dueEntry[K]{due: due, key: key})
	return e.queue[0].due == due
}

// run processes tasks as they fall due until Stop.
func (e *DelayEngine[K, T]) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	timer := time.NewTimer(time.Hour) // only read after a Reset
	defer timer.Stop()
	for {
		key, task, wait, ok := e.next()
		if ok {
			e.process(ctx, key, task)
			continue
		}
		var due <-chan time.Time // nil while nothing is pending
		if wait > 0 {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-e.quit:
			return
		case <-e.wake:
		case <-due:
		}
	}
}

// next removes and returns the earliest task if it is due. Otherwise it
// returns how long until the earliest task is due, or 0 if none is pending.
//
// The queue may hold stale entries, for keys processed since or merged into
// an earlier due time; an entry is current only if its key is pending with
// the same due time. Stale entries are discarded as they reach the top.
func (e *DelayEngine[K, T]) next() (key K, task T, wait time.Duration, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for len(e.queue) > 0 {
		top := e.queue[0]
		p, pending := e.pending[top.key]
		switch {
		case !pending || p.due != top.due:
			e.queue.pop()
		case top.due > now:
			return key, task, top.due - now, false
		default:
			e.queue.pop()
			delete(e.pending, top.key)
			return top.key, p.task, 0, true
		}
	}
	return key, task, 0, false
}

// process calls Process and re-adds the task after RetryDelay if it fails.
func (e *DelayEngine[K, T]) process(ctx context.Context, key K, task T) {
	err := e.call(ctx, key, task)
	if err == nil {
		return
	}
	e.cfg.Logger.Debug("task failed; retrying", "engine", e.cfg.Name, "key", key,
		"retry_delay", e.cfg.RetryDelay, "error", err)
	e.mu.Lock()
	e.add(key, task, e.now()+e.cfg.RetryDelay, true)
	e.mu.Unlock()
}

// call runs Process, turning a panic into an error.
func (e *DelayEngine[K, T]) call(ctx context.Context, key K, task T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			e.cfg.Logger.Error("task panicked", "engine", e.cfg.Name, "key", key,
				"panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("engine %s: task panicked: %v", e.cfg.Name, r)
		}
	}()
	return e.cfg.Process(ctx, key, task)
}

// dueEntry says that key is due at due, unless the entry is stale.
type dueEntry[K comparable] struct {
	due time.Duration
	key K
}

// dueHeap is a binary min-heap of due times.
type dueHeap[K comparable] []dueEntry[K]

func (h *dueHeap[K]) push(x dueEntry[K]) {
	q := append(*h, x)
	i := len(q) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if q[parent].due <= x.due {
			break
		}
		q[i] = q[parent]
		i = parent
	}
	q[i] = x
	*h = q
}

// pop removes the earliest entry.
func (h *dueHeap[K]) pop() {
	q := *h
	n := len(q) - 1
	last := q[n]
	q[n] = dueEntry[K]{} // let go of the key
	q = q[:n]
	i := 0
	for {
		child := 2*i + 1
		if child >= n {
			break
		}
		if child+1 < n && q[child+1].due < q[child].due {
			child++
		}
		if last.due <= q[child].due {
			break
		}
		q[i] = q[child]
		i = child
	}
	if n > 0 {
		q[i] = last
	}
	*h = q
}
