// Package push turns changes of services into pushes to their subscribers.
//
// A change becomes a delayed task keyed by service; changes inside the merge
// window collapse into one. When due, an execute task (run in order per
// service) reads the service's subscribers once, picks each one's executor
// (an spi plugin whose interest takes it; else rpc for a gRPC connection, udp
// for a 1.x client of the HTTP API that polls with a UDP port), groups them by
// executor and the view they asked for, and hands each group to its executor
// as one batch with data encoded once. UDP subscribers read the view named
// group@@name, as instance/list answers them; with no udp executor they are
// pushed nothing and see changes at their next poll. Targets that fail come back as a task of their own after the
// retry delay, and then get the data current at that time.
//
// Push-empty protection (Config.ProtectEmpty): a push that would take a
// service that had instances in its last push to none is held when an
// expiry emptied it — Distro removed replicas because their owner did not
// vouch for them in time, which a node that only lost sight of the others
// (a pause, a partition) infers wrongly. It goes out if the service is
// still empty when the grace is over, and is dropped if instances come back
// meanwhile (their push goes out as usual). What a client or its owner
// states — a deregistration or disconnection here, an owner's sync or
// verification saying its client is gone — is pushed at once. The cause is
// that of the change that made the service empty, the latest one merged
// into the task, and a stated change releases a hold at once. Queries and
// subscription answers are not held.
package push

import (
	"context"
	"sync"
	"sync/atomic"
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

// Executors are what runs the push executors (the plugin host).
type Executors interface {
	// Routes returns the running executors. The Pusher's Start calls it
	// once: the plugins serving them start first.
	Routes() []Route
}

// Config configures a Pusher.
type Config struct {
	Registry *naming.Registry
	Bus      *notify.Bus
	// Executors are the executors to push through. Exactly one serves the
	// rpc role, at most one the udp role.
	Executors  Executors
	Delay      time.Duration // merge window
	Timeout    time.Duration // how long a batch may wait for acknowledgements
	RetryDelay time.Duration
	// ProtectEmpty holds a push that would take a service that had instances
	// in its last push to none, when replication emptied it rather than a
	// client of this node, for ProtectEmptyGrace; it goes out then if the
	// service is still empty, and is dropped if instances came back.
	ProtectEmpty      bool
	ProtectEmptyGrace time.Duration
	Logger            hclog.Logger
	Metrics           prometheus.Registerer
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

	// changes numbers the changes as they arrive, so that a task merged from
	// several knows the latest one's cause.
	changes atomic.Uint64

	mu sync.Mutex
	// inflight holds, per service, the generation of batches being
	// delivered: the next one waits for it (see generation).
	inflight map[naming.Service]*generation
	// shown holds the services whose last push carried instances, and held
	// those whose empty push is held, until when (push-empty protection).
	shown map[naming.Service]struct{}
	held  map[naming.Service]time.Time
	warns warnLimit // of the protection's warnings
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

// task says whom to push a service to: every subscriber, or some clients;
// and, if changes of the service are merged into it, the latest one's
// number and cause.
type task struct {
	all     bool
	clients map[string]struct{}
	change  uint64 // 0: no change (a subscription, a retry, a recheck)
	cause   naming.ChangeCause
	recheck bool // only the end of a held empty push's grace
}

func mergeTasks(pending, incoming task) task {
	change, cause := pending.change, pending.cause
	if incoming.change > change { // tasks are not always merged in order
		change, cause = incoming.change, incoming.cause
	}
	recheck := pending.recheck && incoming.recheck
	if pending.all || incoming.all {
		return task{all: true, change: change, cause: cause, recheck: recheck}
	}
	for id := range incoming.clients {
		pending.clients[id] = struct{}{}
	}
	pending.change, pending.cause, pending.recheck = change, cause, recheck
	return pending
}

// New returns a Pusher subscribed to the registry's events on cfg.Bus; call it
// before the bus starts.
func New(cfg Config) (*Pusher, error) {
	p := &Pusher{cfg: cfg, log: cfg.Logger, inflight: make(map[naming.Service]*generation),
		shown: make(map[naming.Service]struct{}), held: make(map[naming.Service]time.Time)}
	p.warns.log = func(skipped int) {
		p.log.Warn("more pushes held or released by the push-empty protection than logged", "not_logged", skipped)
	}
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
	p.metrics = newMetrics(cfg.Metrics, p.delay.Len, p.exec.QueueDepth, p.holding)
	if err := notify.Subscribe(cfg.Bus, "push", func(e naming.ServiceChanged) {
		p.delay.Add(e.Service, task{all: true, change: p.changes.Add(1), cause: e.Cause}, cfg.Delay)
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
	if p.routes, err = newRoutes(p.cfg.Executors.Routes()); err != nil {
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
	_, holding := p.held[svc]
	p.mu.Unlock()
	if t.recheck && !holding {
		return // the hold ended before its grace
	}

	// A batch is one executor's targets that read the same view: a UDP
	// subscriber (a 1.x client) reads it named group@@name, as instance/list
	// answers it.
	type batchKey struct {
		route    *Route
		clusters string
		grouped  bool
	}
	batches := make(map[batchKey][]sdkpush.Target)
	subs := p.subscribers(svc, t)
	// Subscribers mostly share one batch: the last one's key is compared
	// before the map is hashed, and the first batch has room for all of
	// them.
	var last batchKey
	var lastTargets []sdkpush.Target
	for _, s := range subs {
		route := p.routes.forSubscriber(svc, s)
		if route == nil {
			continue // a UDP subscriber, and nobody pushes over UDP: it polls
		}
		target := sdkpush.Target{ClientID: s.ClientID, App: s.App}
		if s.Addr != "" {
			target.Address = s.Addr
		} else {
			target.ConnectionID = s.ClientID
		}
		key := batchKey{route, s.Clusters, s.Addr != ""}
		if lastTargets == nil || key != last {
			if lastTargets != nil {
				batches[last] = lastTargets
			}
			last, lastTargets = key, batches[key]
			if lastTargets == nil && len(batches) == 0 {
				lastTargets = make([]sdkpush.Target, 0, len(subs))
			}
		}
		lastTargets = append(lastTargets, target)
	}
	if lastTargets != nil {
		batches[last] = lastTargets
	}
	for _, route := range p.routes.observers(svc, t) {
		key := batchKey{route: route}
		batches[key] = append(batches[key], sdkpush.Target{ClientID: observerID(route.Name)})
	}
	if len(batches) == 0 {
		if t.all {
			p.forget(svc) // nobody to protect
		}
		return
	}
	// The views must be of the state the protection judged: if the service
	// changed while they were read, judge and read again (a change's own
	// task follows anyway).
	views := make(map[batchKey][]byte, len(batches))
	for attempt := 0; ; attempt++ {
		instances, version := p.cfg.Registry.CountInstances(svc)
		if p.holdEmpty(svc, t, instances) {
			return
		}
		for key := range batches {
			views[key] = p.cfg.Registry.View(svc, naming.ViewFilter{Clusters: key.clusters, GroupedName: key.grouped})
		}
		if _, now := p.cfg.Registry.CountInstances(svc); now == version || attempt == 2 {
			p.noteShown(svc, instances > 0)
			break
		}
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
			ServiceInfo: views[key],
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

// subscribers returns the subscribers of svc that t pushes to: on their
// connections and, when an executor may push over UDP, the HTTP API's.
func (p *Pusher) subscribers(svc naming.Service, t task) []naming.Subscriber {
	var only map[string]struct{}
	if !t.all {
		only = t.clients
	}
	subs := p.cfg.Registry.Subscribers(svc, only)
	if !p.routes.pushesUDP() {
		return subs
	}
	for _, s := range p.cfg.Registry.UDPSubscribers(svc) {
		if _, named := only[s.ClientID]; only == nil || named {
			subs = append(subs, s)
		}
	}
	return subs
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
	ok := 0
	for i, t := range b.Targets {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = errMissingResult
		}
		if err == nil {
			ok++
			continue
		}
		p.metrics.failed.Inc()
		p.log.Debug("push failed; will retry", "service", svc.String(), "client", t.ClientID, "executor", route.Name, "error", err)
		if retry == nil {
			retry = make(map[string]struct{})
		}
		retry[t.ClientID] = struct{}{}
	}
	p.metrics.ok.Add(float64(ok))
	if retry != nil && p.ctx.Err() == nil {
		p.delay.Add(svc, task{clients: retry}, p.cfg.RetryDelay)
	}
}

// holdEmpty applies the push-empty protection to a task of svc, which has
// that many instances now: it reports whether the push is held. A held push
// is looked at again when its grace is over.
func (p *Pusher) holdEmpty(svc naming.Service, t task, instances int) bool {
	grace := p.cfg.ProtectEmptyGrace
	if !p.cfg.ProtectEmpty || grace <= 0 {
		return false
	}
	now := time.Now()
	p.mu.Lock()
	until, holding := p.held[svc]
	_, shown := p.shown[svc]
	var recheck time.Duration
	switch {
	case instances > 0:
		if holding {
			delete(p.held, svc)
			p.metrics.emptyDropped.Inc()
			p.log.Info("the service has instances again; the held empty push is dropped",
				"service", svc.String(), "held", grace-until.Sub(now).Round(time.Millisecond))
		}
	case !shown: // empty already, or never pushed
	case t.change != 0 && t.cause != naming.CauseExpiry:
		if holding {
			delete(p.held, svc)
			p.metrics.emptyReleased.Inc()
			p.log.Info("a client, or its owner, emptied the service too; the held empty push goes out", "service", svc.String())
		}
	case holding && !now.Before(until):
		delete(p.held, svc)
		p.metrics.emptyReleased.Inc()
		if p.warns.allow(now) {
			p.log.Warn("the service is still empty after the grace; its subscribers are pushed no instances",
				"service", svc.String(), "grace", grace)
		}
	case holding:
		recheck = until.Sub(now)
	default:
		// An expiry, or no change seen yet: the change that emptied the
		// service is on its way, and a stated one releases this.
		p.held[svc] = now.Add(grace)
		p.metrics.emptyHeld.Inc()
		recheck = grace
		if p.warns.allow(now) {
			p.log.Warn("expiry removed every instance of the service; holding the empty push to its subscribers",
				"service", svc.String(), "grace", grace)
		}
	}
	p.mu.Unlock()
	if recheck > 0 {
		p.delay.Add(svc, task{all: true, recheck: true}, recheck)
		return true
	}
	return false
}

// noteShown records whether the push of svc going out carries instances.
func (p *Pusher) noteShown(svc naming.Service, instances bool) {
	if !p.cfg.ProtectEmpty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if instances {
		p.shown[svc] = struct{}{}
	} else {
		delete(p.shown, svc)
	}
}

// forget drops what the protection knows of svc, which nobody is pushed.
func (p *Pusher) forget(svc naming.Service) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.shown, svc)
	delete(p.held, svc)
}

// holding returns how many services' empty pushes are held.
func (p *Pusher) holding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

// warnLimit lets through at most warnsPerSecond warnings a second, and says
// how many it held back: a dead node can empty hundreds of services at once.
type warnLimit struct {
	second     time.Time
	n, skipped int
	log        func(skipped int)
}

const warnsPerSecond = 10

// allow reports whether a warning may be logged now.
func (w *warnLimit) allow(now time.Time) bool {
	if now.Sub(w.second) >= time.Second {
		if w.skipped > 0 && w.log != nil {
			w.log(w.skipped)
		}
		w.second, w.n, w.skipped = now, 0, 0
	}
	if w.n < warnsPerSecond {
		w.n++
		return true
	}
	w.skipped++
	return false
}
