package naming

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/core/notify"
)

// ServiceChanged is published when the instances of a service change.
type ServiceChanged struct{ Service Service }

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
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// Registry holds every client, instance and subscription.
//
// Locks are taken in the order client.mu → Registry.mu → entry.mu, never the
// other way round. A client's lock serialises its operations with its
// disconnection, so nothing it registers can outlive it.
type Registry struct {
	limits Limits
	bus    *notify.Bus
	now    func() time.Time

	mu       sync.RWMutex
	clients  map[string]*client
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
}

type client struct {
	id     string
	labels map[string]string
	// owner is the node responsible for a replicated client (its HTTP
	// address); "" for a client of this node.
	owner      string
	mu         sync.Mutex
	alive      bool
	published  map[Service][]Instance
	subscribed map[Service]Subscription
	revision   uint64    // counts changes of what the client publishes
	verified   time.Time // a replicated client: when its owner last vouched for it
}

func (c *client) local() bool { return c.owner == "" }

// entry is one service's publishers, subscribers and cached views.
type entry struct {
	svc         Service
	mu          sync.Mutex
	removed     bool // deleted from Registry.services; look it up again
	publishers  map[string][]Instance
	subscribers map[string]Subscription
	instances   int
	revision    uint64
	lastRefTime int64
	views       map[ViewFilter][]byte // encoded views of this revision
}

// NewRegistry returns an empty registry publishing its events on cfg.Bus.
func NewRegistry(cfg Config) *Registry {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Registry{
		limits:   cfg.Limits,
		bus:      cfg.Bus,
		now:      now,
		clients:  make(map[string]*client),
		services: make(map[Service]*entry),
		meta:     make(map[Service]ServiceMeta),
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
	r.clients[id] = &client{
		id:         id,
		labels:     labels,
		alive:      true,
		published:  make(map[Service][]Instance),
		subscribed: make(map[Service]Subscription),
	}
	return nil
}

// Disconnect removes the client with everything it published and subscribed
// to; its services' subscribers are told. Unknown ids are ignored.
func (r *Registry) Disconnect(ctx context.Context, id string) error {
	r.mu.Lock()
	c := r.clients[id]
	delete(r.clients, id)
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.alive = false
	changed := make([]Service, 0, len(c.published))
	for svc := range c.published {
		r.update(svc, func(e *entry) bool { return e.setInstances(c.id, nil) })
		changed = append(changed, svc)
	}
	for svc := range c.subscribed {
		r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, nil) })
	}
	c.published, c.subscribed = nil, nil
	local := c.local()
	c.mu.Unlock()
	if err := r.publishChanged(ctx, changed...); err != nil || !local {
		return err
	}
	return notify.Publish(ctx, r.bus, ClientRemoved{ClientID: id})
}

// Register makes inst the client's only instance of svc, replacing any it had.
// svc and inst must have been normalized.
func (r *Registry) Register(ctx context.Context, clientID string, svc Service, inst Instance) error {
	return r.setInstances(ctx, clientID, svc, []Instance{inst})
}

// BatchRegister makes insts the client's instances of svc, replacing any it
// had. svc and insts must have been normalized.
func (r *Registry) BatchRegister(ctx context.Context, clientID string, svc Service, insts []Instance) error {
	if len(insts) == 0 {
		return invalid("instances", "must not be empty")
	}
	if len(insts) > r.limits.MaxBatchSize {
		return invalid("instances", "%d instances exceed the batch limit of %d", len(insts), r.limits.MaxBatchSize)
	}
	for i := range insts {
		for j := range i {
			if insts[i].sameAddress(insts[j]) {
				return invalid("instances", "instances[%d] and instances[%d] are both %s:%d in cluster %s",
					j, i, insts[i].IP, insts[i].Port, insts[i].Cluster)
			}
		}
	}
	return r.setInstances(ctx, clientID, svc, slices.Clone(insts))
}

// Deregister removes the client's instance of svc. As in Nacos, a client's one
// instance of a service is removed whatever address the request names; of a
// batch, the instances at inst's ip and port are. Removing what is not
// registered succeeds.
func (r *Registry) Deregister(ctx context.Context, clientID string, svc Service, inst Instance) error {
	c, err := r.lockClient(clientID)
	if err != nil {
		return err
	}
	current := c.published[svc]
	var kept []Instance
	if len(current) > 1 {
		kept = slices.DeleteFunc(slices.Clone(current), func(i Instance) bool {
			return i.IP == inst.IP && i.Port == inst.Port
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

func (r *Registry) setInstances(ctx context.Context, clientID string, svc Service, insts []Instance) error {
	c, err := r.lockClient(clientID)
	if err != nil {
		return err
	}
	r.commitInstances(c, svc, insts)
	c.mu.Unlock()
	return r.publishClientChange(ctx, c, svc)
}

// commitInstances records insts as c's instances of svc; c.mu is held.
func (r *Registry) commitInstances(c *client, svc Service, insts []Instance) {
	if len(insts) == 0 {
		delete(c.published, svc)
	} else {
		c.published[svc] = insts
	}
	if c.local() {
		c.revision++
	}
	r.update(svc, func(e *entry) bool { return e.setInstances(c.id, insts) })
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
// one) and returns the view it asked for.
func (r *Registry) Subscribe(ctx context.Context, clientID string, svc Service, sub Subscription) ([]byte, error) {
	c, err := r.lockClient(clientID)
	if err != nil {
		return nil, err
	}
	sub.Labels = c.labels
	c.subscribed[svc] = sub
	r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, &sub) })
	c.mu.Unlock()
	if err := notify.Publish(ctx, r.bus, ServiceSubscribed{Service: svc, ClientID: clientID}); err != nil {
		return nil, err
	}
	return r.View(svc, ViewFilter{Clusters: sub.Clusters}), nil
}

// Unsubscribe removes the client's subscription to svc, if any.
func (r *Registry) Unsubscribe(clientID string, svc Service) error {
	c, err := r.lockClient(clientID)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	if _, ok := c.subscribed[svc]; !ok {
		return nil
	}
	delete(c.subscribed, svc)
	r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, nil) })
	return nil
}

// Subscribers returns the subscribers of svc; when only is non-nil, just those
// of its client ids that are still subscribed.
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
			subs = append(subs, Subscriber{ClientID: id, Subscription: s})
		}
		return subs
	}
	for id := range only {
		if s, ok := e.subscribers[id]; ok {
			subs = append(subs, Subscriber{ClientID: id, Subscription: s})
		}
	}
	return subs
}

// ListServices returns one page (pageNo from 1) of the sorted names of the
// services in namespace and group that have instances, and how many there are.
func (r *Registry) ListServices(namespace, group string, pageNo, pageSize int) (int, []string) {
	r.mu.RLock()
	var names []string
	for svc, e := range r.services {
		if svc.Namespace == namespace && svc.Group == group && e.hasInstances() {
			names = append(names, svc.Name)
		}
	}
	r.mu.RUnlock()
	slices.Sort(names)
	start := (pageNo - 1) * pageSize
	if pageNo < 1 || pageSize < 1 || start >= len(names) {
		return len(names), []string{}
	}
	return len(names), names[start:min(start+pageSize, len(names))]
}

// SetServiceMeta sets what the registry knows about svc beyond its instances;
// its subscribers are pushed the new view.
func (r *Registry) SetServiceMeta(ctx context.Context, svc Service, m ServiceMeta) error {
	if m.ProtectThreshold < 0 || m.ProtectThreshold > 1 {
		return invalid("protectThreshold", "%v is out of range 0-1", m.ProtectThreshold)
	}
	r.mu.Lock()
	r.meta[svc] = m
	r.mu.Unlock()
	r.update(svc, func(*entry) bool { return true })
	return r.publishChanged(ctx, svc)
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
		publishers:  make(map[string][]Instance),
		subscribers: make(map[string]Subscription),
		lastRefTime: max(r.now().UnixMilli(), r.refFloor),
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
func (e *entry) setInstances(clientID string, insts []Instance) bool {
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
	clear(e.views)
}

func (e *entry) empty() bool {
	return len(e.publishers) == 0 && len(e.subscribers) == 0
}

func (e *entry) hasInstances() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.instances > 0
}
