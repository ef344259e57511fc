package engine

import (
	"context"
	"hash/maphash"
	"math/bits"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-hclog"
)

const defaultQueueSize = 1024

// Task is a unit of work for an ExecuteEngine. ctx is cancelled when Stop
// gives up waiting for the queued tasks.
type Task func(ctx context.Context)

// ExecuteConfig configures an ExecuteEngine.
type ExecuteConfig struct {
	Name      string       // for logs and metrics
	Workers   int          // rounded up to a power of two; 0 means runtime.GOMAXPROCS(0)
	QueueSize int          // per worker; default 1024 when 0
	Logger    hclog.Logger // default hclog.NewNullLogger()
}

// ExecuteEngine runs tasks on a fixed set of workers, each with a bounded
// FIFO queue. A task goes to the worker chosen by hashing its tag, so the
// tasks of one tag run one at a time, in submission order.
type ExecuteEngine struct {
	name    string
	log     hclog.Logger
	seed    maphash.Seed
	workers []worker
	// stopping is cancelled when Stop begins: it wakes blocked submitters.
	stopping context.Context
	stop     context.CancelFunc

	mu     sync.Mutex
	state  state
	cancel context.CancelFunc // cancels the tasks' context
	done   chan struct{}      // closed when every worker has exited; nil before Start
}

type worker struct {
	// mu is held shared by Submit while it enqueues and exclusively by Stop
	// to close jobs, so jobs is never sent to once closed.
	mu     sync.RWMutex
	closed bool
	jobs   chan job
}

type job struct {
	tag  string
	task Task
}

// NewExecuteEngine returns an ExecuteEngine; tasks may be submitted before
// Start and run once it is started.
func NewExecuteEngine(cfg ExecuteConfig) *ExecuteEngine {
	n := cfg.Workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	n = 1 << bits.Len(uint(n-1))
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = defaultQueueSize
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	e := &ExecuteEngine{
		name:    cfg.Name,
		log:     cfg.Logger,
		seed:    maphash.MakeSeed(),
		workers: make([]worker, n),
	}
	for i := range e.workers {
		e.workers[i].jobs = make(chan job, cfg.QueueSize)
	}
	e.stopping, e.stop = context.WithCancel(context.Background())
	return e
}

// Submit queues task on the worker for tag. While that worker's queue is full
// it waits for room until ctx is done, then returns ctx.Err(). It returns
// ErrStopped once Stop has begun.
func (e *ExecuteEngine) Submit(ctx context.Context, tag string, task Task) error {
	w := &e.workers[e.index(tag)]
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrStopped
	}
	j := job{tag: tag, task: task}
	select {
	case w.jobs <- j:
		return nil
	default:
	}
	select {
	case w.jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stopping.Done():
		return ErrStopped
	}
}

// Workers returns the number of workers.
func (e *ExecuteEngine) Workers() int { return len(e.workers) }

// QueueDepth returns the number of queued tasks, over all workers.
func (e *ExecuteEngine) QueueDepth() int {
	n := 0
	for i := range e.workers {
		n += len(e.workers[i].jobs)
	}
	return n
}

// Start launches the workers. Tasks get a context carrying ctx's values but
// not its cancellation: the workers run until Stop.
func (e *ExecuteEngine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.state.startErr(); err != nil {
		return err
	}
	e.state = running
	ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for i := range e.workers {
		wg.Go(func() { e.work(ctx, e.workers[i].jobs) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	e.done = done
	return nil
}

// Stop stops accepting tasks, lets the workers run the queued tasks until ctx
// is done (the tasks then see a cancelled context), and returns once every
// worker has exited: ctx.Err() if ctx ended first, else nil.
func (e *ExecuteEngine) Stop(ctx context.Context) error {
	e.stop()
	e.mu.Lock()
	if e.state != stopped {
		for i := range e.workers {
			w := &e.workers[i]
			w.mu.Lock()
			w.closed = true
			close(w.jobs)
			w.mu.Unlock()
		}
	}
	e.state = stopped
	done, cancel := e.done, e.cancel
	e.mu.Unlock()
	if done == nil {
		return nil
	}
	return await(ctx, done, cancel)
}

// index returns the worker for tag.
func (e *ExecuteEngine) index(tag string) int {
	return int(maphash.String(e.seed, tag) & uint64(len(e.workers)-1))
}

// work runs the jobs of one worker until its queue is closed and empty.
func (e *ExecuteEngine) work(ctx context.Context, jobs <-chan job) {
	for j := range jobs {
		e.run(ctx, j)
	}
}

// run runs one task, recovering and logging a panic.
func (e *ExecuteEngine) run(ctx context.Context, j job) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("task panicked", "engine", e.name, "tag", j.tag,
				"panic", r, "stack", string(debug.Stack()))
		}
	}()
	j.task(ctx)
}
