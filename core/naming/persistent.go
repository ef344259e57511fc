package naming

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Persistent instances (ephemeral=false) are not a client's: the Raft store
// holds them and every node mirrors its store's state here with
// SetPersistent, after each entry it applies. As Nacos 2.x does, the
// registry files them under one client per address, "ip:port#false"
// (PersistentClientID), so that views, queries and instance lookups see them
// beside the ephemeral ones. Those clients live only in the services'
// entries: they have no connection, no lease and no Distro replication
// (Raft replicates them), and they never appear among Clients.

// persistentSuffix ends the id of a persistent instance's client.
const persistentSuffix = "#false"

// PersistentClientID returns the id of the persistent instances at ip:port:
// Nacos 2.x's "ip:port#false".
func PersistentClientID(ip string, port int) string {
	return ip + ":" + strconv.Itoa(port) + persistentSuffix
}

// isPersistentClient reports whether id names persistent instances.
func isPersistentClient(id string) bool { return strings.HasSuffix(id, persistentSuffix) }

// SetPersistent makes insts the persistent instances of svc, replacing
// those it had, and tells the service's subscribers when that changes them
// (a stated change: pushed at once). The store validated insts; they are
// marked persistent here.
func (r *Registry) SetPersistent(ctx context.Context, svc Service, insts []Instance) error {
	byClient := make(map[string][]instance)
	st := r.storer(nil, svc)
	for _, in := range insts {
		in.Ephemeral = false
		id := PersistentClientID(in.IP, in.Port)
		byClient[id] = append(byClient[id], st.store(in))
	}
	for _, group := range byClient { // one order, whatever the store's
		slices.SortFunc(group, compareClusters)
	}
	changed := false
	r.update(svc, func(e *entry) bool {
		for _, id := range slices.Collect(maps.Keys(e.publishers)) {
			if _, kept := byClient[id]; !kept && isPersistentClient(id) {
				changed = e.setInstances(id, nil) || changed
			}
		}
		for id, group := range byClient {
			if !slices.EqualFunc(e.publishers[id], group, instance.equal) {
				changed = e.setInstances(id, group) || changed
			}
		}
		return changed
	})
	if !changed {
		return nil
	}
	return r.publishChanged(ctx, svc)
}

// compareClusters orders instances by cluster.
func compareClusters(a, b instance) int { return strings.Compare(a.shape.cluster, b.shape.cluster) }

// PersistentChange is one persistent instance as the store now holds it:
// Instance at its address (IP, Port, Cluster), or, when Removed, no
// instance there any more.
type PersistentChange struct {
	Instance Instance
	Removed  bool
}

// ChangePersistent applies the store's changes to svc's persistent
// instances, each at its address, leaving the others as they are — what a
// batch of writes changed, at a cost that does not grow with the service
// (SetPersistent compares them all). It tells the service's subscribers
// when that changes them, as SetPersistent does. The store validated the
// instances; they are marked persistent here.
func (r *Registry) ChangePersistent(ctx context.Context, svc Service, changes []PersistentChange) error {
	st := r.storer(nil, svc)
	stored := make([]instance, len(changes))
	for i, c := range changes {
		in := c.Instance
		in.Ephemeral = false
		stored[i] = st.store(in)
	}
	changed := false
	r.update(svc, func(e *entry) bool {
		for i, c := range changes {
			id := PersistentClientID(c.Instance.IP, c.Instance.Port)
			group := withCluster(e.publishers[id], stored[i], c.Removed)
			if !slices.EqualFunc(e.publishers[id], group, instance.equal) {
				changed = e.setInstances(id, group) || changed
			}
		}
		return changed
	})
	if !changed {
		return nil
	}
	return r.publishChanged(ctx, svc)
}

// withCluster returns a new group of one address's instances, one per
// cluster in cluster order: in in place of the one of its cluster, or, when
// removed, without that one.
func withCluster(group []instance, in instance, removed bool) []instance {
	out := make([]instance, 0, len(group)+1)
	for _, g := range group {
		if g.shape.cluster != in.shape.cluster {
			out = append(out, g)
		}
	}
	if !removed {
		out = append(out, in)
		slices.SortFunc(out, compareClusters)
	}
	return out
}

// SetDefinition makes m the definition of svc (nil: none), as the Raft
// store holds it, and pushes the service's view under the new protection
// threshold to its subscribers. The store validated m.
func (r *Registry) SetDefinition(ctx context.Context, svc Service, m *ServiceMeta) error {
	r.mu.Lock()
	old, had := r.meta[svc]
	switch {
	case m == nil && !had:
		r.mu.Unlock()
		return nil
	case m == nil:
		delete(r.meta, svc)
	default:
		if had && old.ProtectThreshold == m.ProtectThreshold && old.Selector == m.Selector && maps.Equal(old.Metadata, m.Metadata) {
			r.mu.Unlock()
			return nil
		}
		r.meta[svc] = *m
	}
	r.mu.Unlock()
	if e := r.lookup(svc); e == nil || !e.hasInstances() {
		return nil // no view to change
	}
	r.update(svc, func(*entry) bool { return true }) // views encoded again
	return r.publishChanged(ctx, svc)
}

// An address of a service holds an ephemeral instance or a persistent one,
// never both: each side refuses the other's address. The check and the
// write are not atomic across the two stores; two writers racing for one
// address within a moment can both succeed, and the views then list both.

// checkNotPersistent refuses ephemeral instances of svc at the address of a
// persistent one; field names insts in the refusal.
func (r *Registry) checkNotPersistent(field string, svc Service, insts []Instance) error {
	e := r.lookup(svc)
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var buf [64]byte
	for _, in := range insts {
		// The id is looked up from a buffer on the stack: no string is built.
		id := strconv.AppendInt(append(append(buf[:0], in.IP...), ':'), int64(in.Port), 10)
		for _, p := range e.publishers[string(append(id, persistentSuffix...))] {
			if p.shape.cluster == in.Cluster {
				return invalid(field, "%s:%d in cluster %s is a persistent instance; an address is ephemeral or persistent, never both",
					in.IP, in.Port, in.Cluster)
			}
		}
	}
	return nil
}

// EphemeralAt reports whether a client has an ephemeral instance of svc at
// ip:port in cluster: a persistent instance may not take that address.
func (r *Registry) EphemeralAt(svc Service, ip string, port int, cluster string) bool {
	e := r.lookup(svc)
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, insts := range e.publishers {
		if isPersistentClient(id) {
			continue
		}
		for _, in := range insts {
			if in.at(ip, port, cluster) {
				return true
			}
		}
	}
	return false
}
