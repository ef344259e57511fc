// Package push turns changes of services into pushes to their subscribers.
//
// A change becomes a delayed task keyed by service; changes inside the merge
// window collapse into one. When due, an execute task (run in order per
// service) reads the service's subscribers once, groups them by the view they
// asked for, and hands each group to the executor as one batch with data
// encoded once. Targets that fail come back as a task of their own after the
// retry delay, and then get the data current at that time.
package push

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/engine"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

// Route is an executor with the role and interest it serves.
type Route struct {
	Name     string
	Role     sdkpush.Role
	Interest sdkpush.Interest
	sdkpush.Executor
}

// Config configures a Pusher.
type Config struct {
	Registry *naming.Registry
	Bus      *notify.Bus
	// Routes returns the executors to push through; called by Start (the
	// plugins serving them start first). Exactly one serves the rpc role.
	Routes     func() []Route
	Delay      time.Duration // merge window
	Timeout    time.Duration // how long a batch may wait for acknowledgements
	RetryDelay time.Duration
	Logger     hclog.Logger
	Metrics    prometheus.Registerer
}

// Pusher pushes service changes to subscribers.
type Pusher struct {
	cfg     Config
	log     hclog.Logger
	routes  routes
	delay   *engine.DelayEngine[naming.Service, task]
	exec    *engine.ExecuteEngine
	metrics *metrics

	// deliveries are the batches waiting for their acknowledgements.
	deliveries sync.WaitGroup
	ctx        context.Context
	cancel     context.CancelFunc

	mu sync.Mutex
	// inflight holds, per service, the generation of batches being
	// delivered: the next one waits for it (see generation).
	inflight map[naming.Service]*generation
}

// orderWindow is how long a service's next push waits for the previous one's
// acknowledgements. Waiting keeps a subscriber from being sent newer data
// before older data (which it would then drop as stale) and merges the
// changes made meanwhile into one push; not waiting longer keeps one silent
// subscriber from slowing every push of its service down.
const orderWindow = 100 * time.Millisecond

// generation is one execution's batches of a service. It ends when all of
// them are acknowledged or when orderWindow has passed; then the task that
// arrived meanwhile, if any, is run.
type generation struct {
	batches int   // not yet acknowledged
	pending *task // arrived meanwhile
}

// task says whom to push a service to: every subscriber, or some clients.
type task struct {
	all     bool
	clients map[string]struct{}
}

func mergeTasks(pending, incoming task) task {
	if pending.all || incoming.all {
		return task{all: true}
	}
	for id := range incoming.clients {
		pending.clients[id] = struct{}{}
	}
	return pending
}

// New returns a Pusher subscribed to the registry's events on cfg.Bus; call it
// before the bus starts.
func New(cfg Config) (*Pusher, error) {
	p := &Pusher{cfg: cfg, log: cfg.Logger, inflight: make(map[naming.Service]*generation)}
	p.delay = engine.NewDelayEngine(engine.DelayConfig[naming.Service, task]{
		Name:       "push",
		Merge:      mergeTasks,
		Process:    p.dispatch,
		RetryDelay: cfg.RetryDelay,
		Logger:     cfg.Logger.Named("delay"),
	})
	p.exec = engine.NewExecuteEngine(engine.ExecuteConfig{
		Name:   "push",
		Logger: cfg.Logger.Named("execute"),
	})
	p.metrics = newMetrics(cfg.Metrics, p.delay.Len, p.exec.QueueDepth)
	if err := notify.Subscribe(cfg.Bus, "push", func(e naming.ServiceChanged) {
		p.delay.Add(e.Service, task{all: true}, cfg.Delay)
	}); err != nil {
		return nil, err
	}
	if err := notify.Subscribe(cfg.Bus, "push", func(e naming.ServiceSubscribed) {
		p.delay.Add(e.Service, task{clients: map[string]struct{}{e.ClientID: {}}}, cfg.Delay)
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// Start takes the routes and starts the engines.
func (p *Pusher) Start(ctx context.Context) error {
	var err error
	if p.routes, err = newRoutes(p.cfg.Routes()); err != nil {
		return err
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if err := p.exec.Start(ctx); err != nil {
		return err
	}
	return p.delay.Start(ctx)
}

// Stop stops taking new work, abandons the pushes in flight and waits for
// every goroutine to end.
func (p *Pusher) Stop(ctx context.Context) error {
	err := p.delay.Stop(ctx)
	p.cancel()
	if e := p.exec.Stop(ctx); err == nil {
		err = e
	}
	p.deliveries.Wait()
	return err
}

// dispatch hands a due task to the execute engine, in order per service.
func (p *Pusher) dispatch(ctx context.Context, svc naming.Service, t task) error {
	return p.exec.Submit(ctx, svc.String(), func(context.Context) { p.execute(svc, t) })
}

// execute reads the service's subscribers once, sorts them into batches by
// executor and view, and starts each batch.
func (p *Pusher) execute(svc naming.Service, t task) {
	p.mu.Lock()
	if g := p.inflight[svc]; g != nil {
		if g.pending == nil {
			g.pending = &t
		} else {
			*g.pending = mergeTasks(*g.pending, t)
		}
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()

	var only map[string]struct{}
	if !t.all {
		only = t.clients
	}
	type batchKey struct {
		route    *Route
		clusters string
	}
	batches := make(map[batchKey][]sdkpush.Target)
	for _, s := range p.cfg.Registry.Subscribers(svc, only) {
		route := p.routes.forSubscriber(svc, s)
		key := batchKey{route, s.Clusters}
		batches[key] = append(batches[key], sdkpush.Target{ClientID: s.ClientID, ConnectionID: s.ClientID, App: s.App})
	}
	for _, route := range p.routes.observers(svc, t) {
		key := batchKey{route, ""}
		batches[key] = append(batches[key], sdkpush.Target{ClientID: observerID(route.Name)})
	}
	if len(batches) == 0 {
		return
	}
	g := &generation{batches: len(batches)}
	p.mu.Lock()
	p.inflight[svc] = g
	p.mu.Unlock()
	window := time.AfterFunc(orderWindow, func() { p.endGeneration(svc, g) })
	for key, targets := range batches {
		b := sdkpush.Batch{
			Service:     sdkpush.Service{Namespace: svc.Namespace, Group: svc.Group, Name: svc.Name},
			Clusters:    key.clusters,
			ServiceInfo: p.cfg.Registry.View(svc, naming.ViewFilter{Clusters: key.clusters}),
			Targets:     targets,
		}
		p.deliveries.Add(1)
		go func() {
			defer p.deliveries.Done()
			p.deliver(key.route, svc, b)
			p.mu.Lock()
			g.batches--
			last := g.batches == 0
			p.mu.Unlock()
			if last {
				window.Stop()
				p.endGeneration(svc, g)
			}
		}()
	}
}

// endGeneration ends g, if it is still the service's current generation, and
// runs what arrived meanwhile.
func (p *Pusher) endGeneration(svc naming.Service, g *generation) {
	p.mu.Lock()
	if p.inflight[svc] != g {
		p.mu.Unlock()
		return
	}
	delete(p.inflight, svc)
	pending := g.pending
	p.mu.Unlock()
	if pending != nil {
		p.delay.Add(svc, *pending, 0)
	}
}

// deliver pushes one batch and schedules a retry for the targets that failed.
func (p *Pusher) deliver(route *Route, svc naming.Service, b sdkpush.Batch) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
	defer cancel()
	start := time.Now()
	errs := route.Push(ctx, b)
	p.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	var retry map[string]struct{}
	for i, t := range b.Targets {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = errMissingResult
		}
		if err == nil {
			p.metrics.ok.Inc()
			continue
		}
		p.metrics.failed.Inc()
		p.log.Debug("push failed; will retry", "service", svc.String(), "client", t.ClientID, "executor", route.Name, "error", err)
		if retry == nil {
			retry = make(map[string]struct{})
		}
		retry[t.ClientID] = struct{}{}
	}
	if retry != nil && p.ctx.Err() == nil {
		p.delay.Add(svc, task{clients: retry}, p.cfg.RetryDelay)
	}
}
