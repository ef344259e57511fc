package naming

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sextantd/sextant/core/notify"
)

// The clients of the HTTP API (the Nacos 1.x Open API and its v2 twin).
//
// As Nacos 2.x does, the registry models them as it models connections: one
// client per ip:port of the instance (HTTPClientID, "ip:port#true"), with at
// most one instance per service, replicated as any client of this node. No
// connection keeps them: an instance lives by its beats, which the health
// checker (core/health) watches through HTTPClient, SetHealthy and
// ExpireInstance. A subscriber that polls instance/list with a UDP port is the
// client of that address; its subscription lapses Config.UDPSubscriberTTL
// after its last poll (ExpireSubscription). A client left with no instance and no
// subscription is removed at once.

// DefaultUDPSubscriberTTL is how long a UDP subscriber of the HTTP API stays
// subscribed after its last instance/list, as in Nacos.
const DefaultUDPSubscriberTTL = 10 * time.Second

// ErrInstanceNotFound is returned when no instance of this node is at the
// address a request names.
var ErrInstanceNotFound = errors.New("instance not found")

// OwnedElsewhereError refuses a request of an HTTP client that this node
// holds as a replica of another node's client: that node serves it.
type OwnedElsewhereError struct {
	ClientID string
	Owner    string // the owner's HTTP address
}

func (e *OwnedElsewhereError) Error() string {
	return "client " + e.ClientID + " belongs to node " + e.Owner
}

// httpState is what a client of the HTTP API has beyond a connection's.
type httpState struct {
	beats   map[Service]time.Time // when its instance of each service last beat, or was registered
	expires map[Service]time.Time // when its UDP subscription to each service lapses
}

// HTTPClientID returns the id of the HTTP API client of address ip:port:
// Nacos 2.x's "ip:port#true" (an ephemeral IpPortBasedClient).
func HTTPClientID(ip string, port int) string {
	return ip + ":" + strconv.Itoa(port) + "#true"
}

// ParseHTTPClientID returns the address of an HTTP API client's id.
func ParseHTTPClientID(id string) (ip string, port int, ok bool) {
	addr, found := strings.CutSuffix(id, "#true")
	i := strings.LastIndexByte(addr, ':')
	if !found || i < 0 {
		return "", 0, false
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		return "", 0, false
	}
	return addr[:i], port, true
}

// lockHTTPClient returns the live HTTP client id with its lock held, created
// when create is set; nil (and no error) when it does not exist and create
// is not set.
func (r *Registry) lockHTTPClient(id string, create bool) (*client, error) {
	for {
		r.mu.Lock()
		c := r.clients[id]
		if c == nil {
			if !create {
				r.mu.Unlock()
				return nil, nil
			}
			c = &client{id: id, alive: true, http: &httpState{beats: make(map[Service]time.Time), expires: make(map[Service]time.Time)}}
			r.putClient(c)
		}
		r.mu.Unlock()
		if !c.local() { // owner and http never change
			return nil, &OwnedElsewhereError{ClientID: id, Owner: c.owner}
		}
		if c.http == nil {
			return nil, invalid("ip", "client %q is not a client of the HTTP API", id)
		}
		c.mu.Lock()
		if c.alive {
			return c, nil
		}
		c.mu.Unlock() // removed meanwhile: look again
	}
}

// removeIfIdle removes c, an HTTP client whose lock is held, when it has no
// instance and no subscription left, and reports whether it did.
func (r *Registry) removeIfIdle(c *client) bool {
	if c.published.services() > 0 || len(c.subscribed) > 0 {
		return false
	}
	c.alive = false
	r.mu.Lock()
	if r.clients[c.id] == c {
		r.deleteClient(c)
	}
	r.mu.Unlock()
	return true
}

// publishHTTPChange tells the subscribers of svc that a client of this node
// changed it, and whoever replicates the client that it changed or went.
func (r *Registry) publishHTTPChange(ctx context.Context, id string, svc Service, removed bool) error {
	if err := r.publishChanged(ctx, svc); err != nil {
		return err
	}
	if removed {
		return notify.Publish(ctx, r.bus, ClientRemoved{ClientID: id})
	}
	return notify.Publish(ctx, r.bus, ClientChanged{ClientID: id})
}

// RegisterHTTP makes inst the only instance of svc of the HTTP client of its
// address, creating the client if needed; its heartbeat starts now. field
// prefixes errors about the instance ("" for the bare names).
func (r *Registry) RegisterHTTP(ctx context.Context, field string, svc Service, inst Instance) (err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return err
	}
	if inst, err = r.limits.NormalizeInstance(svc, field, inst); err != nil {
		return err
	}
	inst.Ephemeral = true
	if err := r.checkNotPersistent(field, svc, []Instance{inst}); err != nil {
		return err
	}
	id := HTTPClientID(inst.IP, inst.Port)
	c, err := r.lockHTTPClient(id, true)
	if err != nil {
		return err
	}
	if most := r.limits.MaxServicesPerClient; most > 0 && c.published.services() >= most && !c.publishes(svc) { // so not idle: it stays
		c.mu.Unlock()
		return overLimit("serviceName", LimitServicesPerClient,
			"the client already has instances in %d services, the limit", c.published.services())
	}
	// Over the limit, the client has instances: it is not idle and stays.
	if err := r.checkInstancesAdded(c, "serviceName", svc, 1); err != nil {
		c.mu.Unlock()
		return err
	}
	r.commitInstances(c, svc, []instance{r.storer(c, svc).store(inst)})
	c.http.beats[svc] = r.now()
	c.mu.Unlock()
	return r.publishHTTPChange(ctx, id, svc, false)
}

// checkAddress validates an instance's address as a request names it.
func checkAddress(ip string, port int) error {
	if err := checkIP("ip", ip); err != nil {
		return err
	}
	return checkPort("port", port)
}

// DeregisterHTTP removes the instance of svc of the HTTP client of ip:port,
// whatever its cluster, as Nacos does. Removing what is not registered
// succeeds.
func (r *Registry) DeregisterHTTP(ctx context.Context, svc Service, ip string, port int) (err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return err
	}
	if err := checkAddress(ip, port); err != nil {
		return err
	}
	id := HTTPClientID(ip, port)
	c, err := r.lockHTTPClient(id, false)
	if c == nil || err != nil {
		return err
	}
	if !c.publishes(svc) {
		c.mu.Unlock()
		return nil
	}
	r.commitInstances(c, svc, nil)
	delete(c.http.beats, svc)
	removed := r.removeIfIdle(c)
	c.mu.Unlock()
	return r.publishHTTPChange(ctx, id, svc, removed)
}

// BeatHTTP records a beat of the instance of svc of the HTTP client of
// ip:port and returns it; an unhealthy instance becomes healthy. It reports
// false when there is no such instance.
func (r *Registry) BeatHTTP(ctx context.Context, svc Service, ip string, port int) (_ Instance, found bool, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return Instance{}, false, err
	}
	if err := checkAddress(ip, port); err != nil {
		return Instance{}, false, err
	}
	id := HTTPClientID(ip, port)
	c, err := r.lockHTTPClient(id, false)
	if c == nil || err != nil {
		return Instance{}, false, err
	}
	insts := c.instancesOf(svc)
	if len(insts) == 0 {
		c.mu.Unlock()
		return Instance{}, false, nil
	}
	c.http.beats[svc] = r.now()
	inst := insts[0]
	if inst.healthy() {
		c.mu.Unlock()
		return inst.export(svc), true, nil
	}
	inst = inst.withHealthy(true)
	r.commitInstances(c, svc, []instance{inst})
	c.mu.Unlock()
	return inst.export(svc), true, r.publishHTTPChange(ctx, id, svc, false)
}

// SubscribeHTTP records (or renews) the subscription to svc of the UDP
// subscriber at ip:port, the HTTP API's form of a subscription, until
// Config.UDPSubscriberTTL from now. It is not pushed anything now: the caller
// answers it with the view. Errors name ip "clientIP" and port "udpPort".
func (r *Registry) SubscribeHTTP(svc Service, ip string, port int, sub Subscription) (err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return err
	}
	if err := checkUDPTarget(ip); err != nil {
		return err
	}
	if port < 1 || port > 65535 {
		return invalid("udpPort", "%d is out of range 1-65535", port)
	}
	if err := r.limits.CheckClusters("clusters", sub.Clusters); err != nil {
		return err
	}
	if err := r.limits.checkApp("app", sub.App); err != nil {
		return err
	}
	c, err := r.lockHTTPClient(HTTPClientID(ip, port), true)
	if err != nil {
		return err
	}
	if most := r.limits.MaxSubscriptionsPerClient; most > 0 && len(c.subscribed) >= most {
		if _, replaces := c.subscribed[svc]; !replaces { // so not idle: it stays
			c.mu.Unlock()
			return overLimit("serviceName", LimitSubscriptionsPerClient,
				"the client already subscribes to %d services, the limit", len(c.subscribed))
		}
	}
	sub.Labels, sub.Addr = nil, net.JoinHostPort(ip, strconv.Itoa(port))
	if old, ok := c.subscribed[svc]; !ok || old.Clusters != sub.Clusters || old.App != sub.App {
		c.subscribe(svc, sub)
		r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, &sub) })
	}
	c.http.expires[svc] = r.now().Add(r.udpTTL)
	c.mu.Unlock()
	return nil
}

// UDPSubscribers returns the subscribers of svc of the HTTP API, which are
// pushed over UDP at their Addr.
func (r *Registry) UDPSubscribers(svc Service) []Subscriber {
	e := r.lookup(svc)
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var subs []Subscriber
	for id, s := range e.subscribers {
		if s.Addr != "" {
			subs = append(subs, Subscriber{ClientID: id, Subscription: s})
		}
	}
	return subs
}

// Instance returns the instance of svc at ip:port in cluster ("" is the
// default one), of any client; ErrInstanceNotFound if there is none.
func (r *Registry) Instance(svc Service, ip string, port int, cluster string) (_ Instance, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return Instance{}, err
	}
	if cluster == "" {
		cluster = DefaultCluster
	}
	if err := checkCluster("clusterName", cluster); err != nil {
		return Instance{}, err
	}
	if err := checkAddress(ip, port); err != nil {
		return Instance{}, err
	}
	e := r.lookup(svc)
	if e == nil {
		return Instance{}, ErrInstanceNotFound
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Of several clients' instances at the address, the same one each time.
	for _, id := range slices.Sorted(maps.Keys(e.publishers)) {
		for _, in := range e.publishers[id] {
			if in.at(ip, port, cluster) {
				return in.export(e.svc), nil
			}
		}
	}
	return Instance{}, ErrInstanceNotFound
}

// InstanceUpdate is what UpdateInstance changes; nil fields keep their value.
type InstanceUpdate struct {
	Weight  *float64
	Enabled *bool
	// Metadata replaces the instance's metadata when not nil.
	Metadata map[string]string
}

// UpdateInstance changes the instances of svc at ip:port in cluster ("" is
// the default one) that clients of this node publish, as an operator (the
// HTTP API's PUT /instance) does; their subscribers are pushed the change.
// ErrInstanceNotFound if there is none. A client that registers again
// replaces what was changed, and replicas are left to their owner.
func (r *Registry) UpdateInstance(ctx context.Context, svc Service, ip string, port int, cluster string, u InstanceUpdate) (err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return err
	}
	if cluster == "" {
		cluster = DefaultCluster
	}
	// What the update brings is checked as an instance's fields are.
	probe := Instance{IP: ip, Port: port, Cluster: cluster, Weight: 1, Metadata: u.Metadata}
	if u.Weight != nil {
		probe.Weight = *u.Weight
	}
	if _, err := r.limits.NormalizeInstance(svc, "", probe); err != nil {
		return err
	}
	e := r.lookup(svc)
	if e == nil {
		return ErrInstanceNotFound
	}
	at := func(in instance) bool { return in.at(ip, port, cluster) }
	var ids []string
	e.mu.Lock()
	for id, insts := range e.publishers {
		if slices.ContainsFunc(insts, at) {
			ids = append(ids, id)
		}
	}
	e.mu.Unlock()
	updated := 0
	for _, id := range ids {
		c, err := r.lockClient(id)
		if err != nil {
			continue // gone meanwhile
		}
		insts := slices.Clone(c.instancesOf(svc))
		changed := false
		st := r.storer(c, svc)
		for i, stored := range insts {
			if !c.local() || !at(stored) {
				continue
			}
			in := stored.export(svc)
			if u.Weight != nil {
				in.Weight = *u.Weight
			}
			if u.Enabled != nil {
				in.Enabled = *u.Enabled
			}
			if u.Metadata != nil {
				in.Metadata = u.Metadata
			}
			insts[i], changed = st.store(in), true
		}
		if !changed {
			c.mu.Unlock()
			continue
		}
		r.commitInstances(c, svc, insts)
		c.mu.Unlock()
		updated++
		if err := r.publishClientChange(ctx, c, svc); err != nil {
			return err
		}
	}
	if updated == 0 {
		return ErrInstanceNotFound
	}
	return nil
}

// Beat is one instance of an HTTP client and its last beat.
type Beat struct {
	Service  Service
	Instance Instance
	Last     time.Time // its last beat, or its registration
}

// UDPLease is one subscription of an HTTP client and when it lapses.
type UDPLease struct {
	Service Service
	Expires time.Time
}

// HTTPClientState is what the health checker reads of an HTTP client.
type HTTPClientState struct {
	Beats  []Beat
	Leases []UDPLease
}

// HTTPClients returns the ids of this node's clients of the HTTP API.
func (r *Registry) HTTPClients() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var ids []string
	for id, c := range r.clients {
		if c.http != nil && c.local() { // both set at creation
			ids = append(ids, id)
		}
	}
	return ids
}

// HTTPClient returns the instances and subscriptions of an HTTP client of
// this node, with their beats and expiries.
func (r *Registry) HTTPClient(id string) (HTTPClientState, bool) {
	c, err := r.lockHTTPClient(id, false)
	if c == nil || err != nil {
		return HTTPClientState{}, false
	}
	defer c.mu.Unlock()
	var s HTTPClientState
	for _, p := range c.published.list {
		for _, in := range p.insts {
			s.Beats = append(s.Beats, Beat{Service: p.e.svc, Instance: in.export(p.e.svc), Last: c.http.beats[p.e.svc]})
		}
	}
	for svc := range c.subscribed {
		s.Leases = append(s.Leases, UDPLease{Service: svc, Expires: c.http.expires[svc]})
	}
	return s, true
}

// SetHealthy marks the instance of svc of a client of this node healthy or
// not, and pushes the change; for an HTTP client, only if its last beat is
// still lastBeat (the one the caller judged). It reports whether anything
// changed.
func (r *Registry) SetHealthy(ctx context.Context, clientID string, svc Service, healthy bool, lastBeat time.Time) (bool, error) {
	c, err := r.lockClient(clientID)
	if err != nil {
		return false, err
	}
	if !c.local() || c.http != nil && !c.http.beats[svc].Equal(lastBeat) {
		c.mu.Unlock()
		return false, nil
	}
	insts := slices.Clone(c.instancesOf(svc))
	changed := false
	for i := range insts {
		if insts[i].healthy() != healthy {
			insts[i], changed = insts[i].withHealthy(healthy), true
		}
	}
	if !changed {
		c.mu.Unlock()
		return false, nil
	}
	r.commitInstances(c, svc, insts)
	c.mu.Unlock()
	return true, r.publishClientChange(ctx, c, svc)
}

// ExpireInstance removes the instance of svc of an HTTP client of this node
// if its last beat is still lastBeat, and the client if that leaves it
// nothing; subscribers are pushed at once (a local change). It reports
// whether the instance went.
func (r *Registry) ExpireInstance(ctx context.Context, clientID string, svc Service, lastBeat time.Time) (bool, error) {
	c, err := r.lockHTTPClient(clientID, false)
	if c == nil || err != nil {
		return false, err
	}
	if !c.publishes(svc) || !c.http.beats[svc].Equal(lastBeat) {
		c.mu.Unlock()
		return false, nil
	}
	r.commitInstances(c, svc, nil)
	delete(c.http.beats, svc)
	removed := r.removeIfIdle(c)
	c.mu.Unlock()
	return true, r.publishHTTPChange(ctx, clientID, svc, removed)
}

// ExpireSubscription removes the UDP subscription of an HTTP client of this
// node to svc if it was not renewed since it was due at expires, and the
// client if that leaves it nothing. It reports whether the subscription went.
func (r *Registry) ExpireSubscription(ctx context.Context, clientID string, svc Service, expires time.Time) (bool, error) {
	c, err := r.lockHTTPClient(clientID, false)
	if c == nil || err != nil {
		return false, err
	}
	if _, ok := c.subscribed[svc]; !ok || !c.http.expires[svc].Equal(expires) {
		c.mu.Unlock()
		return false, nil
	}
	delete(c.subscribed, svc)
	delete(c.http.expires, svc)
	r.update(svc, func(e *entry) bool { return e.setSubscription(c.id, nil) })
	removed := r.removeIfIdle(c)
	c.mu.Unlock()
	if removed {
		return true, notify.Publish(ctx, r.bus, ClientRemoved{ClientID: clientID})
	}
	return true, nil
}

// checkUDPTarget refuses a clientIP that cannot be pushed to: pushes go to
// an address, so it must be a unicast IP literal, not a host name.
func checkUDPTarget(ip string) error {
	if err := checkIP("clientIP", ip); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return invalid("clientIP", "%q is not an IP address (pushes go to an address, not a host name)", ip)
	}
	if addr.IsUnspecified() || addr.IsMulticast() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return invalid("clientIP", "%s is not a unicast address", ip)
	}
	return nil
}
