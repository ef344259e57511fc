package naming

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/sextantd/sextant/core/notify"
)

// Handing an HTTP client from one node to another. In a cluster one node is
// responsible for each HTTP client (core/forward decides which, and when the
// client moves); these are the registry's steps of a move:
//
//   - ReleaseHTTP: the node giving the client up makes it a replica of the
//     node it goes to, with the same instances (no subscriber sees a change)
//     and nothing published: the new owner replicates it once it has it.
//   - AdoptHTTP: the node taking it makes it a client of its own, from what
//     the former owner released or, that owner being dead, from the replica
//     it holds; its beats go on from where they were (or start now), and it
//     is replicated to every member as any client of this node.
//   - MoveReplica: a third node re-homes its replica to the new owner, so
//     that the new owner's syncs are taken (a replica's owner is otherwise
//     the member that first sent it: see replica.go).
//
// Each swaps the client for a new one under the same id — a client's owner
// and kind never change in place — so that a goroutine holding the former
// one finds it gone and looks again.

// HTTPHandoff is what moves with an HTTP client: its instances, one per
// service, each with how long it has been silent (since its last beat) on
// the node it leaves, and its revision there.
type HTTPHandoff struct {
	Revision  uint64
	Instances []HandoffInstance
}

// HandoffInstance is one instance of a client that moves.
type HandoffInstance struct {
	Service  Service
	Instance Instance
	Silent   time.Duration // since its last beat on the former owner
}

// IsHTTPClientID reports whether id names a client of the HTTP API.
func IsHTTPClientID(id string) bool {
	_, _, ok := ParseHTTPClientID(id)
	return ok
}

// HTTPPublishers returns the ids of this node's HTTP clients that have
// instances: the ones a node is responsible for (a UDP subscriber alone
// lives where it polls).
func (r *Registry) HTTPPublishers() []string {
	var ids []string
	for _, c := range r.allClients() {
		if c.http == nil || !c.local() { // both set at creation
			continue
		}
		c.mu.Lock()
		if c.alive && c.published.services() > 0 {
			ids = append(ids, c.id)
		}
		c.mu.Unlock()
	}
	return ids
}

// ClientOwner reports whether the registry holds the client id, and its
// owner: "" for a client of this node. Unlike Client it copies nothing.
func (r *Registry) ClientOwner(id string) (owner string, held bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.clients[id]
	if c == nil {
		return "", false
	}
	return c.owner, true // owner never changes; a removed client leaves the map first
}

// HTTPReplicas returns the ids of the replicated HTTP clients whose owner
// satisfies owned, and their owners. owned is called with the registry's
// lock held: it must not call the registry.
func (r *Registry) HTTPReplicas(owned func(owner string) bool) map[string]string {
	out := map[string]string{}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for id, c := range r.clients {
		if !c.local() && strings.HasSuffix(id, "#true") && owned(c.owner) { // owner never changes
			out[id] = c.owner
		}
	}
	return out
}

// ReleaseHTTP gives up the HTTP client id of this node to the node to: it
// becomes a replica of to's, verified now, with its instances unchanged, and
// its UDP subscriptions here go. Nothing is published. It returns what the
// client published, with the silence of each instance; false when this node
// has no such client with instances.
func (r *Registry) ReleaseHTTP(id, to string) (HTTPHandoff, bool) {
	c, err := r.lockHTTPClient(id, false)
	if c == nil || err != nil {
		return HTTPHandoff{}, false
	}
	if c.published.services() == 0 || to == "" {
		c.mu.Unlock()
		return HTTPHandoff{}, false
	}
	now := r.now()
	h := HTTPHandoff{Revision: c.revision}
	for _, p := range c.published.list {
		svc := p.e.svc
		for _, in := range p.insts {
			h.Instances = append(h.Instances, HandoffInstance{Service: svc, Instance: in.export(svc), Silent: max(0, now.Sub(c.http.beats[svc]))})
		}
	}
	nc := &client{id: id, owner: to, alive: true, published: c.published, revision: c.revision, verified: now}
	if !r.swap(c, nc) {
		c.mu.Unlock() // being removed: nothing to give
		return HTTPHandoff{}, false
	}
	for svc := range c.subscribed {
		r.update(svc, func(e *entry) bool { return e.setSubscription(id, nil) })
	}
	c.alive, c.published, c.subscribed = false, publications{}, nil
	c.mu.Unlock()
	return h, true
}

// AdoptHTTP makes the HTTP client id a client of this node: with the
// instances of h when given (what its former owner released, validated as a
// registration is: each instance at the client's address, one per service),
// else with those of the replica this node holds. Its beats go on from the
// silences h gives, or start now. The subscribers of what changed are
// pushed, and the client is replicated as any client of this node. It
// reports false, changing nothing, when id is already a client of this node,
// or when there is neither h nor a replica.
func (r *Registry) AdoptHTTP(ctx context.Context, id string, h *HTTPHandoff) (adopted bool, err error) {
	defer r.countRefusal(&err)
	ip, port, ok := ParseHTTPClientID(id)
	if !ok {
		return false, invalid("clientId", "%s is not the id of an HTTP API client", quoteShort(id))
	}
	var want map[Service][]Instance
	beats := map[Service]time.Time{}
	now := r.now()
	if h != nil {
		want = make(map[Service][]Instance, len(h.Instances))
		for _, hi := range h.Instances {
			svc, err := r.limits.NormalizeService(hi.Service)
			if err != nil {
				return false, err
			}
			in, err := r.limits.NormalizeInstance(svc, "instance", hi.Instance)
			if err != nil {
				return false, err
			}
			if in.IP != ip || in.Port != port {
				return false, invalid("instance.ip", "%s:%d is not the address of client %s", quoteShort(in.IP), in.Port, quoteShort(id))
			}
			if _, dup := want[svc]; dup {
				return false, invalid("instance", "two instances of %s: an HTTP client has one per service", quoteShort(svc.String()))
			}
			in.Ephemeral = true
			want[svc] = []Instance{in}
			beats[svc] = now.Add(-max(0, hi.Silent))
		}
		if most := r.limits.MaxServicesPerClient; most > 0 && len(want) > most {
			return false, overLimit("serviceName", LimitServicesPerClient, "the client has instances in %d services, over the limit of %d", len(want), most)
		}
	}
	for {
		r.mu.RLock()
		old := r.clients[id]
		r.mu.RUnlock()
		switch {
		case old != nil && old.local():
			return false, nil
		case old == nil && h == nil:
			return false, nil
		}
		nc := &client{id: id, alive: true, http: &httpState{beats: make(map[Service]time.Time), expires: make(map[Service]time.Time)}}
		nc.mu.Lock()
		var had publications
		var revision uint64
		if old != nil {
			old.mu.Lock()
			if !old.alive || !r.swap(old, nc) {
				old.mu.Unlock()
				nc.mu.Unlock()
				continue // removed meanwhile: look again
			}
			had, revision = old.published, old.revision
			old.alive, old.published, old.subscribed = false, publications{}, nil
			old.mu.Unlock()
		} else if !r.add(nc) {
			nc.mu.Unlock()
			continue // created meanwhile: look again
		}
		var changed []Service
		if h == nil { // the replica's instances, as they are
			nc.published = had
			for _, p := range had.list {
				nc.http.beats[p.e.svc] = now
			}
		} else {
			revision = max(revision, h.Revision)
			changed = r.adoptInstances(nc, had, want)
			nc.http.beats = beats
		}
		// A revision its replicas do not have: they all take it again.
		nc.revision = revision + 1
		idle := nc.published.services() == 0
		if idle {
			nc.alive = false
			r.remove(nc)
		}
		nc.mu.Unlock()
		if err := r.publishChangedBy(ctx, CauseLocal, changed...); err != nil {
			return true, err
		}
		if idle {
			return true, notify.Publish(ctx, r.bus, ClientRemoved{ClientID: id})
		}
		return true, notify.Publish(ctx, r.bus, ClientChanged{ClientID: id})
	}
}

// adoptInstances makes want the instances of nc, an HTTP client whose lock
// is held, in place of had, those of the client it replaces; it returns the
// services whose instances changed.
func (r *Registry) adoptInstances(nc *client, had publications, want map[Service][]Instance) (changed []Service) {
	for _, p := range had.list {
		if _, kept := want[p.e.svc]; !kept {
			r.update(p.e.svc, func(e *entry) bool { return e.setInstances(nc.id, nil) })
			changed = append(changed, p.e.svc)
		}
	}
	for svc, insts := range want {
		stored := r.storer(nil, svc).storeAll(insts)
		i, found := had.find(svc)
		if found && slices.EqualFunc(had.list[i].insts, stored, instance.equal) {
			nc.published.set(had.list[i].e, had.list[i].insts)
			continue
		}
		r.update(svc, func(e *entry) bool {
			nc.published.set(e, stored)
			return e.setInstances(nc.id, stored)
		})
		changed = append(changed, svc)
	}
	return changed
}

// MoveReplica re-homes the replica id held for the node from to the node
// to, which has adopted the client: to's syncs of it are then taken. It
// reports false, changing nothing, when this node holds no replica of id
// owned by from.
func (r *Registry) MoveReplica(id, from, to string) bool {
	if to == "" || from == to {
		return false
	}
	for {
		r.mu.RLock()
		c := r.clients[id]
		r.mu.RUnlock()
		if c == nil || c.local() || c.owner != from {
			return false
		}
		c.mu.Lock()
		if !c.alive {
			c.mu.Unlock()
			continue
		}
		nc := &client{id: id, owner: to, alive: true, published: c.published, subscribed: c.subscribed,
			revision: c.revision, verified: r.now()}
		nc.mu.Lock()
		if !r.swap(c, nc) {
			nc.mu.Unlock()
			c.mu.Unlock()
			return false
		}
		c.alive, c.published, c.subscribed = false, publications{}, nil
		nc.mu.Unlock()
		c.mu.Unlock()
		return true
	}
}

// swap puts nc in old's place, if old is still the registry's client of its
// id; old.mu is held.
func (r *Registry) swap(old, nc *client) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clients[old.id] != old {
		return false
	}
	r.putClient(nc)
	return true
}

// add adds c, if the registry has no client of its id.
func (r *Registry) add(c *client) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.clients[c.id]; ok {
		return false
	}
	r.putClient(c)
	return true
}

// remove removes c, if it is the registry's client of its id.
func (r *Registry) remove(c *client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clients[c.id] == c {
		r.deleteClient(c)
	}
}
