package naming

import (
	"context"
	"maps"
	"slices"
	"time"
)

// ClientChanged is published when what a client of this node publishes
// changes, for the nodes that replicate it.
type ClientChanged struct{ ClientID string }

// ClientRemoved is published when a client of this node goes.
type ClientRemoved struct{ ClientID string }

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
	return ClientData{ID: c.id, Owner: c.owner, Revision: c.revision, Services: maps.Clone(c.published)}
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

// Apply records replicated clients — each replacing what the registry held
// for it — as verified now, and tells the subscribers of every service whose
// instances changed. A client of this node is never overwritten, nor is a
// client without an owner taken: their ids are returned, and the rest are
// applied. Apply may keep the clients' Services maps: the caller must not use
// them after.
func (r *Registry) Apply(ctx context.Context, clients []ClientData) (skipped []string, err error) {
	changed := map[Service]struct{}{}
	now := r.now()
	for _, d := range clients {
		if d.Owner == "" {
			skipped = append(skipped, d.ID)
			continue
		}
		c := r.replica(d.ID, d.Owner)
		if c == nil {
			skipped = append(skipped, d.ID)
			continue
		}
		r.applyTo(c, d, now, changed)
		c.mu.Unlock()
	}
	return skipped, r.publishChanged(ctx, slices.Collect(maps.Keys(changed))...)
}

// replica returns the live replicated client id, created for owner if
// needed, with its lock held; nil if id is a client of this node.
func (r *Registry) replica(id, owner string) *client {
	for {
		r.mu.Lock()
		c := r.clients[id]
		if c == nil {
			c = &client{id: id, owner: owner, alive: true, published: make(map[Service][]Instance), subscribed: make(map[Service]Subscription)}
			r.clients[id] = c
		}
		r.mu.Unlock()
		if c.local() {
			return nil
		}
		c.mu.Lock()
		if c.alive {
			return c
		}
		c.mu.Unlock() // removed meanwhile: look again
	}
}

// applyTo makes c publish what d says; c.mu is held. It adds the services
// whose instances changed to changed.
func (r *Registry) applyTo(c *client, d ClientData, now time.Time, changed map[Service]struct{}) {
	if len(c.published) == 0 && d.Services != nil {
		// A new replica adopts the map it was given (Apply owns it): a
		// snapshot load is mostly new replicas of many services each.
		c.published = d.Services
		for svc, insts := range d.Services {
			if len(insts) > 0 {
				changed[svc] = struct{}{}
			}
			r.commitInstances(c, svc, insts)
		}
		c.revision, c.verified = d.Revision, now
		return
	}
	for svc := range c.published {
		if _, kept := d.Services[svc]; !kept {
			r.commitInstances(c, svc, nil)
			changed[svc] = struct{}{}
		}
	}
	for svc, insts := range d.Services {
		if !slices.EqualFunc(c.published[svc], insts, Instance.equal) {
			r.commitInstances(c, svc, insts)
			changed[svc] = struct{}{}
		}
	}
	c.revision, c.verified = d.Revision, now
}

// Verify takes an owner's list of its clients: those this node holds at the
// same revision count as verified now; those it holds at another revision, or
// not at all, are returned, to be sent in full; those of the owner it holds
// that are not on the list are removed.
func (r *Registry) Verify(ctx context.Context, owner string, versions []ClientVersion) ([]string, error) {
	listed := make(map[string]uint64, len(versions))
	for _, v := range versions {
		listed[v.ID] = v.Revision
	}
	var need, gone []string
	now := r.now()
	held := map[string]bool{}
	for _, c := range r.allClients() {
		c.mu.Lock()
		if c.alive && c.owner == owner {
			held[c.id] = true
			switch rev, ok := listed[c.id]; {
			case !ok:
				gone = append(gone, c.id)
			case rev == c.revision:
				c.verified = now
			default:
				need = append(need, c.id)
			}
		}
		c.mu.Unlock()
	}
	for id := range listed {
		if !held[id] {
			need = append(need, id)
		}
	}
	for _, id := range gone {
		if err := r.Disconnect(ctx, id); err != nil {
			return need, err
		}
	}
	return need, nil
}

// Expire removes the replicated clients whose owners have not vouched for
// them since before, and returns their ids.
func (r *Registry) Expire(ctx context.Context, before time.Time) ([]string, error) {
	var stale []string
	for _, c := range r.allClients() {
		c.mu.Lock()
		if c.alive && !c.local() && c.verified.Before(before) {
			stale = append(stale, c.id)
		}
		c.mu.Unlock()
	}
	for _, id := range stale {
		if err := r.Disconnect(ctx, id); err != nil {
			return stale, err
		}
	}
	return stale, nil
}

func (r *Registry) allClients() []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Collect(maps.Values(r.clients))
}

// equal reports whether two instances are the same in every field.
func (i Instance) equal(o Instance) bool {
	return i.ID == o.ID && i.IP == o.IP && i.Port == o.Port && i.Weight == o.Weight && i.Healthy == o.Healthy &&
		i.Enabled == o.Enabled && i.Ephemeral == o.Ephemeral && i.Cluster == o.Cluster && maps.Equal(i.Metadata, o.Metadata)
}
