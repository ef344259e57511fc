package naming

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/notify"
)

// ServiceChanged is published when the instances of a service change.
type ServiceChanged struct {
	Service Service
	Cause   ChangeCause // what changed them
}

// ServiceSubscribed is published when a client subscribes to a service (or
// changes its subscription), so that it alone is pushed the current data.
type ServiceSubscribed struct {
	Service  Service
	ClientID string
}

// Subscriber is one client's subscription to a service.
type Subscriber struct {
	ClientID string
	Subscription
}

// Stats counts what the registry holds.
type Stats struct {
	Clients     int64
	Services    int64 // services with at least one instance
	Instances   int64
	Subscribers int64 // (client, service) subscriptions
}

// Config configures a Registry.
type Config struct {
	Limits Limits
	Bus    *notify.Bus
	// UDPSubscriberTTL is how long a UDP subscriber of the HTTP API stays
	// subscribed after its last instance/list (push.udp.expiry);
	// DefaultUDPSubscriberTTL when 0.
	UDPSubscriberTTL time.Duration
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// Metrics registers the registry's metrics; none when nil.
	Metrics prometheus.Registerer
}

// Registry holds every client, instance and subscription.
//
// Locks are taken in the order client.mu → Registry.mu → entry.mu, never the
// other way round; the interners' and the view cache's locks come last, and
// no other lock is taken while one of them is held. A client's lock
// serialises its operations with its disconnection, so nothing it registers
// can outlive it.
type Registry struct {
	limits   Limits
	bus      *notify.Bus
	now      func() time.Time
	udpTTL   time.Duration          // of a UDP subscriber of the HTTP API
	refusals *prometheus.CounterVec // requests refused for being over a limit, by limit
	shapes   *interner[shape]       // of the instances (stored.go)
	// recentShape is the shape interned last: the first a storer tries.
	recentShape atomic.Pointer[shape]
	labelSets   *interner[labelSet] // of the connections
	views       *viewCache          // accounts for the entries' encoded views

	mu      sync.RWMutex
	clients map[string]*client
	// owned indexes the replicas in clients by owner, so that an owner's
	// verification reads only its own (a map per member, none empty).
	owned    map[string]map[string]*client
	services map[Service]*entry
	meta     map[Service]ServiceMeta
	// refFloor is the highest lastRefTime any entry has issued, so that an
	// entry created again for a service keeps its lastRefTime increasing.
	refFloor int64

	nServices    atomic.Int64
	nInstances   atomic.Int64
	nSubscribers atomic.Int64
}

// ServiceMeta is what the registry knows about a service beyond its instances.
type ServiceMeta struct {
	// ProtectThreshold: when healthy/total instances ≤ this ratio, readers get
	// every instance marked healthy (Nacos's protection threshold). 0..1.
	ProtectThreshold float64
	// Metadata and Selector are an operator's definition of the service
	// (catalog.go): stored and answered, never read by views.
	Metadata map[string]string
	Selector Selector
}

type client struct {
	id     string
	labels *labelSet // nil for none
	// owner is the node responsible for a replicated client (its HTTP
	// address); "" for a client of this node.
	owner      string
	mu         sync.Mutex
	alive      bool
	published  publications             // the client's instances, by service
	subscribed map[Service]Subscription // nil until the client subscribes
	revision   uint64                   // counts changes of what the client publishes
	verified   time.Time                // a replicated client: when its owner last vouched for it
	// moving marks a replica its owner has moved to a node this one does
	// not know yet (HoldForMove): the owner's verifications no longer list
	// it, and do not remove it. It expires as any replica.
	moving bool
	// http is set, at creation, for a client of the HTTP API (httpclient.go).
	http *httpState
}

func (c *client) local() bool { return c.owner == "" }

// publication is a client's instances of one service.
type publication struct {
	e     *entry // the service's: the client is among its publishers while it has instances
	insts []instance
}

// labelSet is a connection's labels, interned: the connections of one
// application declare the same ones.
type labelSet struct{ m map[string]string }

// labelMap returns the client's labels (nil for none). They are shared: they
// must not be modified.
func (c *client) labelMap() map[string]string {
	if c.labels == nil {
		return nil
	}
	return c.labels.m
}

// instancesOf returns c's instances of svc.
func (c *client) instancesOf(svc Service) []instance { return c.published.of(svc) }

// publishes reports whether c has instances of svc.
func (c *client) publishes(svc Service) bool {
	_, ok := c.published.find(svc)
	return ok
}

// subscribe records c's subscription to svc.
func (c *client) subscribe(svc Service, sub Subscription) {
	if c.subscribed == nil {
		c.subscribed = make(map[Service]Subscription)
	}
	c.subscribed[svc] = sub
}

// storer returns a storer of c's instances of svc (c nil: of no client).
func (r *Registry) storer(c *client, svc Service) *storer {
	s := &storer{shapes: r.shapes, recent: &r.recentShape, svc: svc, last: r.recentShape.Load()}
	if c != nil && c.published.services() > 0 {
		s.ip = c.published.list[0].insts[0].ip
	}
	return s
}

// entry is one service's publishers, subscribers and cached views.
type entry struct {
	svc         Service
	mu          sync.Mutex
	removed     bool                  // deleted from Registry.services; look it up again
	publishers  map[string][]instance // by client id
	subscribers map[string]Subscription
	instances   int
	revision    uint64
	lastRefTime int64
	views       map[ViewFilter][]byte // encoded views of this revision
	viewBytes   int64                 // their bytes
	cache       *viewCache            // the registry's, accounting for views
}

// NewRegistry returns an empty registry publishing its events on cfg.Bus.
func NewRegistry(cfg Config) *Registry {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sextant_naming_limit_refusals_total",
		Help: "Requests the registry refused for being over a limit, by the limit's configuration key.",
	}, []string{"limit"})
	for _, key := range limitKeys {
		refusals.WithLabelValues(key) // every limit's series, at 0
	}
	lookups := newInternLookups()
	r := &Registry{
		limits:    cfg.Limits,
		bus:       cfg.Bus,
		now:       now,
		udpTTL:    cmp.Or(cfg.UDPSubscriberTTL, DefaultUDPSubscriberTTL),
		refusals:  refusals,
		shapes:    newInterner[shape]("shape", maxInternedShapes, lookups),
		labelSets: newInterner[labelSet]("labels", maxInternedLabels, lookups),
		views:     newViewCache(maxViewBytes),
		clients:   make(map[string]*client),
		owned:     make(map[string]map[string]*client),
		services:  make(map[Service]*entry),
		meta:      make(map[Service]ServiceMeta),
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(append(r.views.collectors(), refusals, lookups, r.shapes.gauge(), r.labelSets.gauge())...)
	}
	return r
}

// countRefusal counts *err if it refuses a request for being over a limit.
// The entry points defer it on their error result.
func (r *Registry) countRefusal(err *error) {
	if *err != nil {
		r.countRefused(*err)
	}
}

// countRefused is countRefusal's work, apart so that a request that
// succeeds allocates no errors.As target.
func (r *Registry) countRefused(err error) {
	var invalid *InvalidError
	if errors.As(err, &invalid) && invalid.Limit != "" {
		r.refusals.WithLabelValues(invalid.Limit).Inc()
	}
}

// Limits returns the limits the registry validates input against.
func (r *Registry) Limits() Limits { return r.limits }

// Stats returns current counts.
func (r *Registry) Stats() Stats {
	r.mu.RLock()
	clients := len(r.clients)
	r.mu.RUnlock()
	return Stats{
		Clients:     int64(clients),
		Services:    r.nServices.Load(),
		Instances:   r.nInstances.Load(),
		Subscribers: r.nSubscribers.Load(),
	}
}

// Connect creates the client with the given id (a connection id) and the
// labels its connection declared.
func (r *Registry) Connect(id string, labels map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.clients[id]; ok {
		return invalid("connectionId", "client %q is already connected", id)
	}
	r.putClient(&client{id: id, labels: r.internLabels(labels), alive: true})
	return nil
}

// internLabels returns labels interned (nil for none).
func (r *Registry) internLabels(labels map[string]string) *labelSet {
	if len(labels) == 0 {
		return nil
	}
	return r.labelSets.intern(appendMapKey(nil, labels), func() *labelSet { return &labelSet{m: maps.Clone(labels)} })
}

// Disconnect removes the client with everything it published and subscribed
// to; its services' subscribers are told. Unknown ids are ignored. For a
// replica, Disconnect is its owner's word (a sync or verification saying it
// is gone).
func (r *Registry) Disconnect(ctx context.Context, id string) error {
	return r.disconnect(ctx, id, CauseOwner)
}

// disconnect is Disconnect, with the cause a replica's removal is published
// under.
func (r *Registry) disconnect(ctx context.Context, id string, replicaCause ChangeCause) error {
	return r.disconnectIf(ctx, id, nil, replicaCause)
}

// disconnectIf is disconnect of the client id only if it is want (any when
// nil), not one created for id since.
func (r *Registry) disconnectIf(ctx context.Context, id string, want *client, replicaCause ChangeCause) error {
	r.mu.Lock()
	c := r.clients[id]
	if c == nil || want != nil && c != want {
		r.mu.Unlock()
		return nil
	}
	r.deleteClient(c)
	r.mu.Unlock()
	c.mu.Lock()
	c.alive = false
	changed := make([]Service, 0, c.published.services())
	for _, p := range c.published.list {
		r.update(p.e.svc, func(e *entry) bool { return e.setInstances(c.id, nil) })
		changed = append(changed, p.e.svc)
	}
	for svc := range c.subscribed {
		r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, nil) })
	}
	c.published, c.subscribed = publications{}, nil
	local := c.local()
	c.mu.Unlock()
	cause := CauseLocal
	if !local {
		cause = replicaCause
	}
	if err := r.publishChangedBy(ctx, cause, changed...); err != nil || !local {
		return err
	}
	return notify.Publish(ctx, r.bus, ClientRemoved{ClientID: id})
}

// The entry points below that take what a client sent normalize and
// validate it first (Limits), and change nothing when they refuse it: an
// *InvalidError naming the field as Nacos 2.x gRPC requests do.

// Register makes inst the client's only instance of svc, replacing any it had.
func (r *Registry) Register(ctx context.Context, clientID string, svc Service, inst Instance) (err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return err
	}
	if inst, err = r.limits.NormalizeInstance(svc, "instance", inst); err != nil {
		return err
	}
	if err := r.checkNotPersistent("instance", svc, []Instance{inst}); err != nil {
		return err
	}
	return r.setInstances(ctx, clientID, "instance", svc, []Instance{inst})
}

// BatchRegister makes insts the client's instances of svc, replacing any it
// had. insts is not modified.
func (r *Registry) BatchRegister(ctx context.Context, clientID string, svc Service, insts []Instance) (err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return err
	}
	if len(insts) == 0 {
		return invalid("instances", "must not be empty")
	}
	if len(insts) > r.limits.MaxBatchSize {
		return overLimit("instances", LimitBatchSize, "%d instances exceed the batch limit of %d", len(insts), r.limits.MaxBatchSize)
	}
	insts = slices.Clone(insts)
	for i := range insts {
		if insts[i], err = r.limits.NormalizeInstance(svc, "instances["+strconv.Itoa(i)+"]", insts[i]); err != nil {
			return err
		}
	}
	for i := range insts {
		for j := range i {
			if insts[i].sameAddress(insts[j]) {
				return invalid("instances", "instances[%d] and instances[%d] are both %s:%d in cluster %s",
					j, i, insts[i].IP, insts[i].Port, insts[i].Cluster)
			}
		}
	}
	if err := r.checkNotPersistent("instances", svc, insts); err != nil {
		return err
	}
	return r.setInstances(ctx, clientID, "instances", svc, insts)
}

// Deregister removes the client's instance of svc. As in Nacos, a client's one
// instance of a service is removed whatever address the request names; of a
// batch, the instances at inst's ip and port are. Removing what is not
// registered succeeds.
func (r *Registry) Deregister(ctx context.Context, clientID string, svc Service, inst Instance) (err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return err
	}
	if inst, err = r.limits.NormalizeInstance(svc, "instance", inst); err != nil {
		return err
	}
	c, err := r.lockClient(clientID)
	if err != nil {
		return err
	}
	current := c.instancesOf(svc)
	var kept []instance
	if len(current) > 1 {
		kept = slices.DeleteFunc(slices.Clone(current), func(i instance) bool {
			return i.ip == inst.IP && int(i.port) == inst.Port
		})
	}
	if len(current) == 0 || len(kept) == len(current) {
		c.mu.Unlock()
		return nil
	}
	r.commitInstances(c, svc, kept)
	c.mu.Unlock()
	return r.publishClientChange(ctx, c, svc)
}

// setInstances makes insts (normalized, not empty) c's instances of svc;
// field names insts in a refusal.
func (r *Registry) setInstances(ctx context.Context, clientID, field string, svc Service, insts []Instance) error {
	c, err := r.lockClient(clientID)
	if err != nil {
		return err
	}
	if most := r.limits.MaxServicesPerClient; most > 0 && c.published.services() >= most && !c.publishes(svc) {
		c.mu.Unlock()
		return overLimit("serviceName", LimitServicesPerClient,
			"the client already has instances in %d services, the limit", c.published.services())
	}
	if err := r.checkInstancesAdded(c, field, svc, len(insts)); err != nil {
		c.mu.Unlock()
		return err
	}
	r.commitInstances(c, svc, r.storer(c, svc).storeAll(insts))
	c.mu.Unlock()
	return r.publishClientChange(ctx, c, svc)
}

// checkInstancesAdded checks MaxInstancesPerClient before n instances
// replace c's instances of svc: only the net change counts, so a replacement
// by as many instances or fewer is never refused. c.mu is held.
func (r *Registry) checkInstancesAdded(c *client, field string, svc Service, n int) error {
	added := n - len(c.instancesOf(svc))
	if added <= 0 || r.limits.MaxInstancesPerClient <= 0 {
		return nil
	}
	return r.limits.CheckInstancesPerClient(field, c.published.count+added) // of at most MaxServicesPerClient services
}

// commitInstances records insts as c's instances of svc, in c and in the
// service's entry (one slice for both); c.mu is held.
func (r *Registry) commitInstances(c *client, svc Service, insts []instance) {
	if c.local() {
		c.revision++
	}
	r.update(svc, func(e *entry) bool {
		c.published.set(e, insts)
		return e.setInstances(c.id, insts)
	})
}

// publishClientChange tells the service's subscribers, and, for a client of
// this node, whoever replicates it.
func (r *Registry) publishClientChange(ctx context.Context, c *client, svc Service) error {
	if err := r.publishChanged(ctx, svc); err != nil || !c.local() {
		return err
	}
	return notify.Publish(ctx, r.bus, ClientChanged{ClientID: c.id})
}

// Subscribe records the client's subscription to svc (replacing an earlier
// one) and returns the view it asked for. Its Labels are set here.
func (r *Registry) Subscribe(ctx context.Context, clientID string, svc Service, sub Subscription) (view []byte, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return nil, err
	}
	if err := r.limits.CheckClusters("clusters", sub.Clusters); err != nil {
		return nil, err
	}
	if err := r.limits.checkApp("app", sub.App); err != nil {
		return nil, err
	}
	c, err := r.lockClient(clientID)
	if err != nil {
		return nil, err
	}
	if most := r.limits.MaxSubscriptionsPerClient; most > 0 && len(c.subscribed) >= most {
		if _, replaces := c.subscribed[svc]; !replaces {
			c.mu.Unlock()
			return nil, overLimit("serviceName", LimitSubscriptionsPerClient,
				"the client already subscribes to %d services, the limit", len(c.subscribed))
		}
	}
	sub.Labels, sub.Addr = c.labelMap(), ""
	c.subscribe(svc, sub)
	r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, &sub) })
	c.mu.Unlock()
	if err := notify.Publish(ctx, r.bus, ServiceSubscribed{Service: svc, ClientID: clientID}); err != nil {
		return nil, err
	}
	return r.View(svc, ViewFilter{Clusters: sub.Clusters}), nil
}

// Unsubscribe removes the client's subscription to svc, if any, and returns
// the view of the clusters it names, as Nacos answers an unsubscribe.
func (r *Registry) Unsubscribe(clientID string, svc Service, clusters string) (view []byte, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return nil, err
	}
	if err := r.limits.CheckClusters("clusters", clusters); err != nil {
		return nil, err
	}
	c, err := r.lockClient(clientID)
	if err != nil {
		return nil, err
	}
	if _, ok := c.subscribed[svc]; ok {
		delete(c.subscribed, svc)
		r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, nil) })
	}
	c.mu.Unlock()
	return r.View(svc, ViewFilter{Clusters: clusters}), nil
}

// Query returns the view of svc a reader asked for; the filter's clusters
// are named "cluster", as in Nacos's ServiceQueryRequest.
func (r *Registry) Query(svc Service, f ViewFilter) (view []byte, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return nil, err
	}
	if err := r.limits.CheckClusters("cluster", f.Clusters); err != nil {
		return nil, err
	}
	return r.View(svc, f), nil
}

// Subscribers returns the subscribers of svc that push reaches over their
// connection (those of the HTTP API, with an Addr, are UDPSubscribers'); when
// only is non-nil, just those of its client ids that are still subscribed.
func (r *Registry) Subscribers(svc Service, only map[string]struct{}) []Subscriber {
	e := r.lookup(svc)
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var subs []Subscriber
	if only == nil {
		subs = make([]Subscriber, 0, len(e.subscribers))
		for id, s := range e.subscribers {
			if s.Addr == "" {
				subs = append(subs, Subscriber{ClientID: id, Subscription: s})
			}
		}
		return subs
	}
	for id := range only {
		if s, ok := e.subscribers[id]; ok && s.Addr == "" {
			subs = append(subs, Subscriber{ClientID: id, Subscription: s})
		}
	}
	return subs
}

// ListServices returns one page (pageNo from 1) of the sorted names of the
// services in namespace and group that have instances or are defined
// (SetDefinition), and how many there are.
//
// pageNo below 1 and pageSize outside 1..MaxPageSize are refused, not
// clamped: a client that asked for more than a page holds would otherwise
// take what it got for everything. A page past the end is empty, as Nacos
// clients paging from 1 until a short page expect; no page number, however
// large, can overflow the arithmetic.
func (r *Registry) ListServices(namespace, group string, pageNo, pageSize int) (count int, page []string, err error) {
	defer r.countRefusal(&err)
	if namespace, group, err = r.limits.NormalizeScope(namespace, group); err != nil {
		return 0, nil, err
	}
	if pageNo < 1 {
		return 0, nil, invalid("pageNo", "%d must be at least 1", pageNo)
	}
	if pageSize < 1 || pageSize > MaxPageSize {
		return 0, nil, invalid("pageSize", "%d is out of range 1-%d", pageSize, MaxPageSize)
	}
	names := r.serviceNames(namespace, group) // sorted; catalog.go
	// pageNo-1 is compared with the number of pages, never multiplied: only
	// a start inside names is computed.
	if pages := (len(names) + pageSize - 1) / pageSize; pageNo-1 >= pages {
		return len(names), []string{}, nil
	}
	start := (pageNo - 1) * pageSize
	return len(names), names[start:min(start+pageSize, len(names))], nil
}

func (r *Registry) serviceMeta(svc Service) ServiceMeta {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.meta[svc]
}

// lockClient returns the live client with its lock held.
func (r *Registry) lockClient(id string) (*client, error) {
	r.mu.RLock()
	c := r.clients[id]
	r.mu.RUnlock()
	if c == nil {
		return nil, ErrClientNotFound
	}
	c.mu.Lock()
	if !c.alive {
		c.mu.Unlock()
		return nil, ErrClientNotFound
	}
	return c, nil
}

func (r *Registry) lookup(svc Service) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.services[svc]
}

// update runs fn on svc's entry (created if needed) under the entry's lock,
// keeps the counters in step, and deletes the entry once it holds nothing.
// fn reports whether the service's instances changed.
func (r *Registry) update(svc Service, fn func(*entry) bool) {
	for {
		e := r.lookup(svc)
		if e == nil {
			e = r.create(svc)
		}
		e.mu.Lock()
		if e.removed {
			e.mu.Unlock()
			continue
		}
		had, subs := e.instances, len(e.subscribers)
		if fn(e) {
			e.touch(r.now())
		}
		// Counters shared by every goroutine: touched only when they move.
		if d := e.instances - had; d != 0 {
			r.nInstances.Add(int64(d))
		}
		if d := len(e.subscribers) - subs; d != 0 {
			r.nSubscribers.Add(int64(d))
		}
		switch {
		case had == 0 && e.instances > 0:
			r.nServices.Add(1)
		case had > 0 && e.instances == 0:
			r.nServices.Add(-1)
		}
		empty := e.empty()
		e.mu.Unlock()
		if empty {
			r.removeIfEmpty(e)
		}
		return
	}
}

func (r *Registry) create(svc Service) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.services[svc]; e != nil {
		return e
	}
	e := &entry{
		svc:         svc,
		publishers:  make(map[string][]instance),
		subscribers: make(map[string]Subscription),
		lastRefTime: max(r.now().UnixMilli(), r.refFloor),
		cache:       r.views,
	}
	r.services[svc] = e
	return e
}

func (r *Registry) removeIfEmpty(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed || !e.empty() {
		return
	}
	e.removed = true
	e.dropViews()
	r.refFloor = max(r.refFloor, e.lastRefTime)
	delete(r.services, e.svc)
}

func (r *Registry) publishChanged(ctx context.Context, svcs ...Service) error {
	for _, svc := range svcs {
		if err := notify.Publish(ctx, r.bus, ServiceChanged{Service: svc}); err != nil {
			return err
		}
	}
	return nil
}

// setInstances replaces a client's instances; reports whether anything changed.
func (e *entry) setInstances(clientID string, insts []instance) bool {
	old, had := e.publishers[clientID]
	if !had && len(insts) == 0 {
		return false
	}
	e.instances += len(insts) - len(old)
	if len(insts) == 0 {
		delete(e.publishers, clientID)
	} else {
		e.publishers[clientID] = insts
	}
	return true
}

// setSubscription records (sub != nil) or removes a client's subscription.
func (e *entry) setSubscription(clientID string, sub *Subscription) bool {
	if sub == nil {
		delete(e.subscribers, clientID)
	} else {
		e.subscribers[clientID] = *sub
	}
	return false
}

// touch starts a new revision: a new, strictly greater lastRefTime, and no
// cached views.
func (e *entry) touch(now time.Time) {
	e.revision++
	e.lastRefTime = max(now.UnixMilli(), e.lastRefTime+1)
	e.dropViews()
}

func (e *entry) empty() bool {
	return len(e.publishers) == 0 && len(e.subscribers) == 0
}

func (e *entry) hasInstances() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.instances > 0
}
