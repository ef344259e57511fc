package consensus

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// This file keeps the raft configuration in step with the member list.
// SetMembers records the list; the leader alone changes the
// configuration, one change at a time, each committed before the next:
//
//  1. A listed member missing from the configuration that answers a status
//     probe is added as a nonvoter: it catches up (from the log, or a
//     snapshot) without counting toward the quorum. A member that says it
//     has a higher term than the leader's holds another cluster's state
//     and is refused.
//  2. A nonvoter that is listed and has caught up (it has the entry that
//     added it, and its log is within promoteLag entries of the leader's)
//     is made a voter.
//  3. A server gone from the list for RemoveAfter is removed; the leader
//     itself first hands its leadership to another voter, whose own
//     reconciliation then removes it.
//
// The pass runs when the list changes, when this node becomes the leader,
// and every ReconcileInterval; after a change the next pass comes
// ReconcileInterval/10 later (changes are spaced, never piled up). A
// follower does nothing; should it become the leader, it does the same
// with the list it has.

// promoteLag is how many entries a nonvoter's log may lack and still be
// made a voter.
const promoteLag = 1024

// members is the member list the configuration follows.
type members struct {
	mu    sync.Mutex
	list  []string             // sorted
	known bool                 // a list was given
	gone  map[string]time.Time // servers absent from the list, since when
	// added are the log indexes of the entries that added servers as
	// nonvoters (on this node, as leader).
	addedIndex map[string]uint64
	// changed wakes the bootstrap, reconcile the reconciliation; each
	// holds at most one wake-up.
	changed, reconcile chan struct{}
}

func (m *members) init() {
	m.gone = make(map[string]time.Time)
	m.addedIndex = make(map[string]uint64)
	m.changed = make(chan struct{}, 1)
	m.reconcile = make(chan struct{}, 1)
}

// SetMembers gives the node the member list: every member's HTTP address,
// this node's included (the member table's addresses). The leader makes
// the raft configuration follow it (see members.go); the first list also
// decides the bootstrap of a node without state (bootstrap.go). Calling
// it again with the same list does nothing; it may be called before
// Start.
func (n *Node) SetMembers(addresses []string) {
	list := slices.Clone(addresses)
	slices.Sort(list)
	list = slices.Compact(list)
	m := &n.members
	m.mu.Lock()
	if m.known && slices.Equal(list, m.list) {
		m.mu.Unlock()
		return
	}
	now := time.Now()
	for _, a := range m.list {
		if _, ok := slices.BinarySearch(list, a); !ok {
			m.gone[a] = now
		}
	}
	for _, a := range list {
		delete(m.gone, a)
	}
	m.list, m.known = list, true
	m.mu.Unlock()
	wake(m.changed)
	wake(m.reconcile)
}

// wake leaves a wake-up in ch unless one is there.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// touch asks for a reconciliation pass.
func (m *members) touch() { wake(m.reconcile) }

// current returns the list, and whether one was given.
func (m *members) current() ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list, m.known
}

// goneFor is how long a server of the configuration has been absent from
// the list (counted from now if it never was in it).
func (m *members) goneFor(id string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	since, ok := m.gone[id]
	if !ok {
		since = time.Now()
		m.gone[id] = since
	}
	return time.Since(since)
}

// added records the index of the entry that added the server id.
func (m *members) added(id string, index uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addedIndex[id] = index
}

// addedAt is the index of the entry that added the server id (0 when this
// node did not add it).
func (m *members) addedAt(id string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addedIndex[id]
}

// reconcileLoop runs the reconciliation passes until the node stops.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.ReconcileInterval)
	defer ticker.Stop()
	spacing := max(n.cfg.ReconcileInterval/10, 10*time.Millisecond)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.members.reconcile:
		case <-ticker.C:
		}
		for n.reconcile(n.ctx) {
			timer := time.NewTimer(spacing)
			select {
			case <-n.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
	}
}

// reconcile makes at most one change to the configuration toward the
// member list, on the leader; it reports whether it made one.
func (n *Node) reconcile(ctx context.Context) bool {
	r := n.raftNode()
	list, known := n.members.current()
	if !known || r.State() != raft.Leader {
		return false
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return false
	}
	servers := f.Configuration().Servers
	in := make(map[string]raft.Server, len(servers))
	voters := 0
	for _, s := range servers {
		in[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, m := range list {
		if _, ok := in[m]; ok {
			continue
		}
		st, err := n.probe(ctx, m)
		if err != nil {
			n.log.Debug("a member to add does not answer", "member", m, "error", err)
			continue
		}
		if st.term > r.CurrentTerm() {
			n.log.Error("refusing to add a member that holds another cluster's raft state (a higher term); empty its data directory's raft folder",
				"member", m, "its_term", st.term, "term", r.CurrentTerm())
			continue
		}
		f := r.AddNonvoter(raft.ServerID(m), raft.ServerAddress(m), 0, n.cfg.ApplyTimeout)
		if !n.change("add", m, f) {
			return false
		}
		n.members.added(m, f.Index())
		return true
	}
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			continue
		}
		if _, ok := slices.BinarySearch(list, string(s.ID)); !ok {
			continue
		}
		// Caught up: it has the entry that added it (or, added by another
		// leader, some entry), and is close to the leader's last.
		st, err := n.probe(ctx, string(s.ID))
		if err != nil || st.lastIndex < max(n.members.addedAt(string(s.ID)), 1) || st.lastIndex+promoteLag < r.LastIndex() {
			continue
		}
		return n.change("promote", string(s.ID), r.AddVoter(s.ID, s.Address, 0, n.cfg.ApplyTimeout))
	}
	for _, s := range servers {
		id := string(s.ID)
		if _, ok := slices.BinarySearch(list, id); ok || n.members.goneFor(id) < n.cfg.RemoveAfter {
			continue
		}
		if id == n.cfg.Self {
			if voters < 2 {
				n.log.Warn("this node is gone from the member list but is the only voter; it stays", "self", id)
				continue
			}
			return n.change("transfer", id, r.LeadershipTransfer())
		}
		return n.change("remove", id, r.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout))
	}
	return false
}

// change waits for a configuration change and reports whether it was made.
func (n *Node) change(kind, server string, f raft.Future) bool {
	if err := f.Error(); err != nil {
		n.log.Warn("raft configuration change failed", "change", kind, "server", server, "error", err)
		n.metrics.changes.WithLabelValues(kind, "failed").Inc()
		return false
	}
	n.log.Info("raft configuration changed", "change", kind, "server", server)
	n.metrics.changes.WithLabelValues(kind, "ok").Inc()
	return true
}
