package naming

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sextantd/sextant/core/notify"
)

// ClientChanged is published when what a client of this node publishes
// changes, for the nodes that replicate it.
type ClientChanged struct{ ClientID string }

// ClientRemoved is published when a client of this node goes.
type ClientRemoved struct{ ClientID string }

// ChangeCause says what changed a service's instances (ServiceChanged.Cause).
type ChangeCause uint8

// The causes of a change.
const (
	// CauseLocal is a change made on this node: by one of its clients
	// (registering, deregistering, disconnecting) or by an operator.
	CauseLocal ChangeCause = iota
	// CauseOwner is a change a client's owner stated: a replicated client
	// applied from its sync, or removed because the owner's sync or
	// verification says it is gone.
	CauseOwner
	// CauseExpiry is a change this node inferred: a replicated client
	// expired because its owner did not vouch for it in time. It is the one
	// cause that can be wrong (the owner may be alive, only unheard), so
	// push holds an empty push it causes (push.protect_empty).
	CauseExpiry
)

func (c ChangeCause) String() string {
	switch c {
	case CauseOwner:
		return "owner"
	case CauseExpiry:
		return "expiry"
	}
	return "local"
}

// ClientData is everything a client publishes, as nodes replicate it.
type ClientData struct {
	ID string
	// Owner is the node responsible for the client (its HTTP address); ""
	// for a client of this node.
	Owner    string
	Revision uint64
	Services map[Service][]Instance
}

// InstanceCount returns how many instances the client publishes.
func (d ClientData) InstanceCount() int {
	n := 0
	for _, insts := range d.Services {
		n += len(insts)
	}
	return n
}

// ClientVersion names a client's state: its revision.
type ClientVersion struct {
	ID       string
	Revision uint64
}

// Client returns what a client publishes.
func (r *Registry) Client(id string) (ClientData, bool) {
	r.mu.RLock()
	c := r.clients[id]
	r.mu.RUnlock()
	if c == nil {
		return ClientData{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.alive {
		return ClientData{}, false
	}
	return c.data(), true
}

func (c *client) data() ClientData {
	return ClientData{ID: c.id, Owner: c.owner, Revision: c.revision, Services: c.exportPublished()}
}

// exportPublished returns c's instances as callers see them, by service.
func (c *client) exportPublished() map[Service][]Instance {
	out := make(map[Service][]Instance, c.published.services())
	for _, p := range c.published.list {
		out[p.e.svc] = exportAll(p.e.svc, p.insts)
	}
	return out
}

// EachClient calls fn with every client's data, this node's and replicated
// ones, until fn returns false.
func (r *Registry) EachClient(fn func(ClientData) bool) {
	for _, c := range r.allClients() {
		c.mu.Lock()
		d, alive := c.data(), c.alive
		c.mu.Unlock()
		if alive && !fn(d) {
			return
		}
	}
}

// LocalVersions returns the revision of every client of this node.
func (r *Registry) LocalVersions() []ClientVersion {
	var out []ClientVersion
	for _, c := range r.allClients() {
		c.mu.Lock()
		if c.alive && c.local() { // read in place: no copy of what it publishes
			out = append(out, ClientVersion{ID: c.id, Revision: c.revision})
		}
		c.mu.Unlock()
	}
	return out
}

// Replicated clients are input from the cluster port, and held to the rules
// client input is (Limits), and to ownership:
//
//   - Validation. A replica's id must be text of at most maxClientIDBytes;
//     each service must be valid and in normal form (NormalizeService
//     changes nothing); each instance must pass NormalizeInstance, be
//     ephemeral, and not repeat an address of the service; a service holds
//     at most MaxBatchSize instances, a client at most MaxServicesPerClient
//     services and MaxInstancesPerClient instances (the services after the
//     first in order that fit are dropped). What breaks a rule is dropped
//     (Dropped) and the rest of the client applied; nothing invalid is
//     stored.
//   - Ownership. A replica belongs to the member that first sent it (its
//     sync, or a snapshot naming it). Another member may not change it: its
//     sync, verification or removal of it is refused (Refused), until the
//     replica is gone — its owner removed it, or it expired (its owner did
//     not vouch for it within the client expiry, as a DOWN owner does not) —
//     or its owner is no longer a member (ReplicaOptions.IsMember): then the
//     member that sends it takes it over. A client of this node is never
//     changed by what a member says.

// maxClientIDBytes bounds a replicated client's id: a connection's
// (unixMillis_ip_port) and an HTTP client's (ip:port#true) are far shorter.
const maxClientIDBytes = 256

// Refusal says why what a member sent about a client was not applied.
type Refusal string

// The refusals.
const (
	// RefusedLocal: the client is a client of this node.
	RefusedLocal Refusal = "local"
	// RefusedOwner: the client is a replica another member owns.
	RefusedOwner Refusal = "owner"
	// RefusedUnknownOwner: the client's stated owner is none, or not a
	// member (a snapshot's client).
	RefusedUnknownOwner Refusal = "unknown_owner"
)

// RefusedClient is a client a member may not change.
type RefusedClient struct {
	ID     string
	Reason Refusal
	Owner  string // its owner, for RefusedOwner
}

// The parts of a replicated client Apply can drop.
const (
	PartClient   = "client"   // the whole client: its id is invalid
	PartService  = "service"  // a service with its instances
	PartInstance = "instance" // one instance
)

// Dropped is a part of a replicated client that Apply did not store, for
// breaking the rules client input is held to.
type Dropped struct {
	ClientID  string
	Part      string  // PartClient, PartService or PartInstance
	Service   Service // zero for PartClient
	Instances int     // how many instances went with it
	Err       error   // an *InvalidError
}

// Reason is the configuration key of the limit the part is over, if it is,
// else its Part: the label of what it is counted under.
func (d Dropped) Reason() string {
	var invalid *InvalidError
	if errors.As(d.Err, &invalid) && invalid.Limit != "" {
		return invalid.Limit
	}
	return d.Part
}

// ReplicaOptions are what Apply and Verify need to know of the cluster.
type ReplicaOptions struct {
	// IsMember reports whether an address is another member of the
	// cluster. A client whose stated owner is not one is refused; a replica
	// whose recorded owner is no longer one is taken over by the member
	// that sends it. nil counts every address a member.
	IsMember func(address string) bool
}

func (o ReplicaOptions) member(address string) bool {
	return address != "" && (o.IsMember == nil || o.IsMember(address))
}

// ApplyResult is what ApplyReplicas did with the clients it was given.
type ApplyResult struct {
	Applied int             // clients applied, whole or without their invalid parts
	Refused []RefusedClient // clients not applied at all
	Invalid []Dropped       // parts of clients not stored
}

// Apply is ApplyReplicas counting every owner a member; it returns the ids
// of the clients it did not apply at all.
func (r *Registry) Apply(ctx context.Context, clients []ClientData) (skipped []string, err error) {
	res, err := r.ApplyReplicas(ctx, clients, ReplicaOptions{})
	for _, c := range res.Refused {
		skipped = append(skipped, c.ID)
	}
	for _, d := range res.Invalid {
		if d.Part == PartClient {
			skipped = append(skipped, d.ClientID)
		}
	}
	return skipped, err
}

// ApplyReplicas records replicated clients — each, once validated,
// replacing what the registry held for it — as verified now, and tells the
// subscribers of every service whose instances changed. Each client's owner
// is its Owner: the member that sent it. A client of this node, a client
// without an owner or with one that is not a member, and another member's
// replica are refused; the invalid parts of the others are dropped (see
// above). ApplyReplicas may keep the clients' Services maps: the caller must
// not use them after.
func (r *Registry) ApplyReplicas(ctx context.Context, clients []ClientData, opts ReplicaOptions) (res ApplyResult, err error) {
	changed := map[Service]struct{}{}
	defer func() {
		if perr := r.publishChangedBy(ctx, CauseOwner, slices.Collect(maps.Keys(changed))...); err == nil {
			err = perr
		}
	}()
	now := r.now()
	for _, d := range clients {
		if !opts.member(d.Owner) {
			res.Refused = append(res.Refused, RefusedClient{ID: d.ID, Reason: RefusedUnknownOwner})
			continue
		}
		valid, dropped, ok := r.limits.checkReplica(d)
		if !ok { // its id is invalid
			res.Invalid = append(res.Invalid, dropped...)
			continue
		}
		c, refused, err := r.replica(ctx, d.ID, d.Owner, opts)
		if err != nil {
			return res, err
		}
		if c == nil {
			res.Refused = append(res.Refused, refused)
			continue
		}
		r.applyTo(c, valid, now, changed)
		c.mu.Unlock()
		res.Applied++
		res.Invalid = append(res.Invalid, dropped...)
	}
	return res, nil
}

// checkReplica returns what of d client input could hold, and what it
// dropped; not ok when d's id is invalid (all of it is dropped). It keeps
// d's map and slices where it can (a snapshot load checks every instance):
// it edits the map, and copies a slice it changes.
func (l Limits) checkReplica(d ClientData) (_ ClientData, _ []Dropped, ok bool) {
	if err := checkClientID(d.ID); err != nil {
		return ClientData{}, []Dropped{{ClientID: d.ID, Part: PartClient, Instances: d.InstanceCount(), Err: err}}, false
	}
	var dropped []Dropped
	for svc, insts := range d.Services {
		if len(insts) == 0 {
			delete(d.Services, svc) // a service without instances is not held
			continue
		}
		if norm, err := l.NormalizeService(svc); err != nil || norm != svc {
			if err == nil {
				err = invalid("serviceName", "%s is not in normal form (namespace and group set)", quoteShort(svc.String()))
			}
			dropped = append(dropped, Dropped{ClientID: d.ID, Part: PartService, Service: svc, Instances: len(insts), Err: err})
			delete(d.Services, svc)
			continue
		}
		if kept := l.checkReplicaInstances(d.ID, svc, insts, &dropped); len(kept) > 0 {
			d.Services[svc] = kept
		} else {
			delete(d.Services, svc)
		}
	}
	dropped = append(dropped, l.checkReplicaTotals(d)...)
	return d, dropped, true
}

// checkReplicaInstances returns the instances of svc client input could
// hold, normalized: insts itself when that is all of them, unchanged.
func (l Limits) checkReplicaInstances(id string, svc Service, insts []Instance, dropped *[]Dropped) []Instance {
	var out []Instance // a copy, once insts had to change
	for i, in := range insts {
		kept := out
		if out == nil {
			kept = insts[:i]
		}
		norm, err := l.checkReplicaInstance(svc, in, kept)
		// NormalizeInstance sets the cluster and id when empty, no more.
		if out == nil && (err != nil || norm.Cluster != in.Cluster || norm.ID != in.ID) {
			out = append(make([]Instance, 0, len(insts)), insts[:i]...)
		}
		if err != nil {
			*dropped = append(*dropped, Dropped{ClientID: id, Part: PartInstance, Service: svc, Instances: 1, Err: err})
			continue
		}
		if out != nil {
			out = append(out, norm)
		}
	}
	if out == nil {
		return insts
	}
	return out
}

// checkReplicaInstance normalizes and validates one instance of a
// replicated service, whose instances kept so far are kept.
func (l Limits) checkReplicaInstance(svc Service, in Instance, kept []Instance) (Instance, error) {
	// No field prefix: building one for each instance of a snapshot costs.
	norm, err := l.NormalizeInstance(svc, "", in)
	switch {
	case err != nil:
		return in, err
	case !norm.Ephemeral:
		return in, invalid("ephemeral", "must be true: only ephemeral instances are held")
	case l.MaxBatchSize > 0 && len(kept) >= l.MaxBatchSize:
		return in, overLimit("instances", LimitBatchSize, "more than %d instances of one service", l.MaxBatchSize)
	case slices.ContainsFunc(kept, norm.sameAddress):
		return in, invalid("ip", "%s:%d in cluster %s is there twice", quoteShort(norm.IP), norm.Port, norm.Cluster)
	}
	return norm, nil
}

func compareServices(a, b Service) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group, b.Group), strings.Compare(a.Name, b.Name))
}

// checkClientID validates a replicated client's id.
func checkClientID(id string) error {
	if id == "" {
		return invalid("clientId", "must not be empty")
	}
	if len(id) > maxClientIDBytes {
		return invalid("clientId", "longer than %d bytes", maxClientIDBytes)
	}
	if p := textProblem(id, false); p != "" {
		return invalid("clientId", "%s %s", quoteShort(id), p)
	}
	return nil
}

// checkReplicaTotals drops from d the services over the per-client limits:
// the same on every node, those after the first in order that fit.
func (l Limits) checkReplicaTotals(d ClientData) []Dropped {
	services, instances := l.MaxServicesPerClient, l.MaxInstancesPerClient
	if (services <= 0 || len(d.Services) <= services) && l.CheckInstancesPerClient("", d.InstanceCount()) == nil {
		return nil
	}
	var dropped []Dropped
	kept, total := 0, 0
	for _, svc := range slices.SortedFunc(maps.Keys(d.Services), compareServices) {
		n := len(d.Services[svc])
		var err error
		switch {
		case services > 0 && kept >= services:
			err = overLimit("serviceName", LimitServicesPerClient, "the client has instances in %d services, over the limit of %d", len(d.Services), services)
		case instances > 0 && total+n > instances:
			err = l.CheckInstancesPerClient("instances", total+n)
		}
		if err != nil {
			dropped = append(dropped, Dropped{ClientID: d.ID, Part: PartService, Service: svc, Instances: n, Err: err})
			delete(d.Services, svc)
			continue
		}
		kept, total = kept+1, total+n
	}
	return dropped
}

// replica returns the live replicated client id of owner, created if
// needed, with its lock held; or nil and why owner may not change it. A
// replica of a former member is removed first, and created again for owner.
func (r *Registry) replica(ctx context.Context, id, owner string, opts ReplicaOptions) (*client, RefusedClient, error) {
	for {
		r.mu.Lock()
		c := r.clients[id]
		if c == nil {
			c = &client{id: id, owner: owner, alive: true}
			r.putClient(c)
		}
		r.mu.Unlock()
		// owner never changes: it is read without the client's lock.
		switch {
		case c.local():
			return nil, RefusedClient{ID: id, Reason: RefusedLocal}, nil
		case c.owner != owner && opts.member(c.owner):
			return nil, RefusedClient{ID: id, Reason: RefusedOwner, Owner: c.owner}, nil
		case c.owner != owner: // its owner left the cluster: owner takes it over
			if err := r.disconnectIf(ctx, id, c, CauseOwner); err != nil {
				return nil, RefusedClient{}, err
			}
			continue
		}
		c.mu.Lock()
		if c.alive {
			return c, RefusedClient{}, nil
		}
		c.mu.Unlock() // removed meanwhile: look again
	}
}

// applyTo makes c, a replica, publish what d (validated) says; c.mu is
// held. It adds the services whose instances changed to changed. Its
// publications are built anew and sorted once: a snapshot load brings
// replicas of a thousand services each.
func (r *Registry) applyTo(c *client, d ClientData, now time.Time, changed map[Service]struct{}) {
	pubs := make([]publication, 0, len(d.Services))
	st := r.storer(c, Service{})
	for svc, insts := range d.Services {
		if len(insts) == 0 {
			continue
		}
		st.svc = svc
		stored := st.storeAll(insts)
		if i, ok := c.published.find(svc); ok && slices.EqualFunc(c.published.list[i].insts, stored, instance.equal) {
			pubs = append(pubs, c.published.list[i])
			continue
		}
		r.update(svc, func(e *entry) bool {
			pubs = append(pubs, publication{e: e, insts: stored})
			return e.setInstances(c.id, stored)
		})
		changed[svc] = struct{}{}
	}
	for _, p := range c.published.list {
		if len(d.Services[p.e.svc]) == 0 {
			r.update(p.e.svc, func(e *entry) bool { return e.setInstances(c.id, nil) })
			changed[p.e.svc] = struct{}{}
		}
	}
	slices.SortFunc(pubs, func(a, b publication) int { return compareServices(a.e.svc, b.e.svc) })
	c.published = newPublications(pubs)
	c.revision, c.verified = d.Revision, now
}

// VerifyResult is what Verify found of an owner's list.
type VerifyResult struct {
	// Need are the listed clients this node holds at another revision, or
	// not at all: the owner is to send them in full.
	Need []string
	// Refused are the listed clients that are not the owner's to verify: a
	// client of this node, or another member's replica.
	Refused []RefusedClient
}

// Verify takes an owner's list of its clients: those of its replicas this
// node holds at the same revision count as verified now; those it holds at
// another revision, or not at all, are needed, to be sent in full; its
// replicas not on the list are removed. A listed client of this node, or
// replica of another member, is refused (a former member's is needed: the
// owner's sync takes it over).
func (r *Registry) Verify(ctx context.Context, owner string, versions []ClientVersion, opts ReplicaOptions) (VerifyResult, error) {
	var res VerifyResult
	listed := make(map[string]uint64, len(versions))
	for _, v := range versions {
		listed[v.ID] = v.Revision
	}
	var gone []*client
	now := r.now()
	seen := make(map[string]bool, len(versions))
	for _, c := range r.ownedBy(owner) {
		c.mu.Lock()
		rev, isListed := listed[c.id]
		switch {
		case !c.alive:
		case !isListed && c.moving:
			seen[c.id] = true
		case !isListed:
			seen[c.id] = true
			gone = append(gone, c)
		case rev == c.revision:
			seen[c.id] = true
			c.verified = now
		default:
			seen[c.id] = true
			res.Need = append(res.Need, c.id)
		}
		c.mu.Unlock()
	}
	// The listed clients owner does not own here: new to this node (needed),
	// or another's.
	for id := range listed {
		if seen[id] {
			continue
		}
		r.mu.RLock()
		c := r.clients[id]
		r.mu.RUnlock()
		if c == nil {
			res.Need = append(res.Need, id)
			continue
		}
		// owner never changes: it is read without the client's lock.
		c.mu.Lock()
		alive := c.alive
		c.mu.Unlock()
		switch {
		case !alive:
			res.Need = append(res.Need, id)
		case c.local():
			res.Refused = append(res.Refused, RefusedClient{ID: id, Reason: RefusedLocal})
		case c.owner != owner && opts.member(c.owner):
			res.Refused = append(res.Refused, RefusedClient{ID: id, Reason: RefusedOwner, Owner: c.owner})
		default: // a former member's, or owner's made since ownedBy: the sync settles it
			res.Need = append(res.Need, id)
		}
	}
	for _, c := range gone {
		if err := r.disconnectIf(ctx, c.id, c, CauseOwner); err != nil {
			return res, err
		}
	}
	return res, nil
}

// HoldForMove keeps the replica id of owner, which owner has moved to a
// node this one does not know yet, from owner's verifications: they no
// longer list it, and would remove it until this node can re-home it
// (MoveReplica). It lasts until then, or until the replica expires (it is
// no longer verified). It reports whether this node holds such a replica.
func (r *Registry) HoldForMove(id, owner string) bool {
	r.mu.RLock()
	c := r.clients[id]
	r.mu.RUnlock()
	if c == nil || c.local() || c.owner != owner {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.moving = c.alive
	return c.alive
}

// RemoveReplica removes the replica id, as its owner's sync saying it is
// gone does, if owner owns it; else it says why not ("" when the registry
// does not hold id).
func (r *Registry) RemoveReplica(ctx context.Context, id, owner string) (Refusal, error) {
	r.mu.RLock()
	c := r.clients[id]
	r.mu.RUnlock()
	switch {
	case c == nil:
		return "", nil
	case c.local():
		return RefusedLocal, nil
	case c.owner != owner:
		return RefusedOwner, nil
	}
	return "", r.disconnectIf(ctx, id, c, CauseOwner)
}

// Expiry is what Expire removed.
type Expiry struct {
	Clients []string // the ids of the clients removed
	// Owners counts the clients removed by the owner that stopped
	// verifying them.
	Owners map[string]int
	// Losses are the services that lost instances, in no order.
	Losses []ServiceLoss
}

// ServiceLoss is what one service lost to an expiry: Lost of the Had
// instances it had just before.
type ServiceLoss struct {
	Service   Service
	Had, Lost int
}

// Expire removes the replicated clients whose owners have not vouched for
// them since cutoff(owner) — a zero time keeps all of the owner's — and
// reports what went. cutoff is called with a client's lock held: it must not
// call the registry.
func (r *Registry) Expire(ctx context.Context, cutoff func(owner string) time.Time) (Expiry, error) {
	var out Expiry
	var expired []*client
	lost := map[Service]int{}
	for _, c := range r.allClients() {
		c.mu.Lock()
		if c.alive && !c.local() && c.verified.Before(cutoff(c.owner)) {
			out.Clients = append(out.Clients, c.id)
			if out.Owners == nil {
				out.Owners = map[string]int{}
			}
			out.Owners[c.owner]++
			expired = append(expired, c)
			for _, p := range c.published.list {
				lost[p.e.svc] += len(p.insts)
			}
		}
		c.mu.Unlock()
	}
	for svc, n := range lost {
		had, _ := r.CountInstances(svc)
		out.Losses = append(out.Losses, ServiceLoss{Service: svc, Had: max(had, n), Lost: n})
	}
	for _, c := range expired {
		if err := r.disconnectIf(ctx, c.id, c, CauseExpiry); err != nil {
			return out, err
		}
	}
	return out, nil
}

// CountInstances returns how many instances svc has, of every cluster,
// enabled or not, and the version of the service they are of: its
// lastRefTime, which every change of the service raises (0 when the registry
// holds nothing of it).
func (r *Registry) CountInstances(svc Service) (instances int, version int64) {
	e := r.lookup(svc)
	if e == nil {
		return 0, 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.instances, e.lastRefTime
}

// publishChangedBy tells the subscribers of svcs that cause changed them.
func (r *Registry) publishChangedBy(ctx context.Context, cause ChangeCause, svcs ...Service) error {
	for _, svc := range svcs {
		if err := notify.Publish(ctx, r.bus, ServiceChanged{Service: svc, Cause: cause}); err != nil {
			return err
		}
	}
	return nil
}

// putClient makes c the client of its id, indexed by its owner; r.mu is
// held for writing.
func (r *Registry) putClient(c *client) {
	if old := r.clients[c.id]; old != nil {
		r.unindex(old)
	}
	r.clients[c.id] = c
	if c.owner == "" {
		return
	}
	m := r.owned[c.owner]
	if m == nil {
		m = make(map[string]*client)
		r.owned[c.owner] = m
	}
	m[c.id] = c
}

// deleteClient removes c, the client of its id; r.mu is held for writing.
func (r *Registry) deleteClient(c *client) {
	r.unindex(c)
	delete(r.clients, c.id)
}

// unindex removes c from its owner's index, and an index left empty.
func (r *Registry) unindex(c *client) {
	if m := r.owned[c.owner]; m[c.id] == c {
		delete(m, c.id)
		if len(m) == 0 {
			delete(r.owned, c.owner)
		}
	}
}

// ownedBy returns the replicas owner owns.
func (r *Registry) ownedBy(owner string) []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Collect(maps.Values(r.owned[owner]))
}

func (r *Registry) allClients() []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Collect(maps.Values(r.clients))
}
