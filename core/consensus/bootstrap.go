package consensus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// This file bootstraps a cluster: once, by one node. A node whose stores
// hold a cluster's state (a log, a snapshot, a term) never bootstraps; it
// is a member already. A node without state bootstraps only when all of
// these hold:
//
//   - it has a member list (SetMembers) and is in it;
//   - it is the list's lowest address (string order): every node with the
//     same list picks the same one;
//   - no other listed member says, when asked (KindStatus), that it has
//     state: a cluster already runs, and its leader will add this node;
//   - a majority of the list (this node counted) answered, so a node cut
//     off from its peers does not start a cluster of its own.
//
// It then bootstraps a configuration of itself alone, becomes the leader
// at once, and adds the others through the membership reconciliation
// (members.go), as nonvoters that become voters once caught up. A
// standalone node (a list of itself) bootstraps the same way, with nothing
// to ask. Until it bootstraps, or a leader reaches it, the node asks again
// at each list change and every ReconcileInterval.
//
// Why not let every node bootstrap with the same static list, as raft's
// documentation suggests when all initial servers are known? Sextant's
// member lists can change (cluster.conf, an address server) and a node
// joining a running cluster would bootstrap a conflicting configuration
// at the same log index. Here only the first node of a cluster ever
// bootstraps; the lists need only agree on their lowest address while the
// cluster forms.

// bootstrapLoop runs until the node bootstraps, or has state from a
// leader, or stops.
func (n *Node) bootstrapLoop() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.ReconcileInterval)
	defer ticker.Stop()
	waiting := false // logged that a running cluster is to add this node
	for {
		r := n.raftNode()
		if r.LastIndex() > 0 {
			return // a leader reached this node
		}
		switch done, reason := n.tryBootstrap(n.ctx); {
		case done:
			return
		case reason != "" && !waiting:
			n.log.Info("not bootstrapping a cluster", "reason", reason)
			waiting = true
		}
		select {
		case <-n.ctx.Done():
			return
		case <-n.members.changed:
		case <-ticker.C:
		}
	}
}

// tryBootstrap bootstraps the cluster if this node is to; it reports
// whether it is done (bootstrapped, or found the cluster bootstrapped), or
// why it waits (logged once).
func (n *Node) tryBootstrap(ctx context.Context) (bool, string) {
	list, known := n.members.current()
	self := n.cfg.Self
	switch {
	case !known:
		return false, ""
	case !slices.Contains(list, self):
		return false, "this node is not in the member list"
	case list[0] != self:
		return false, "the lowest member address " + list[0] + " bootstraps; its leader adds this node"
	}
	fresh, hasState := 1, false
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range list[1:] {
		wg.Go(func() {
			st, err := n.probe(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
			case st.hasState:
				hasState = true
			default:
				fresh++
			}
		})
	}
	wg.Wait()
	if hasState {
		return false, "a member has raft state: a cluster runs, and its leader adds this node"
	}
	if fresh < len(list)/2+1 {
		n.log.Debug("waiting for a majority of the members to answer before bootstrapping", "answered", fresh, "members", len(list))
		return false, ""
	}
	err := n.raftNode().BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: raft.ServerID(self), Address: raft.ServerAddress(self)},
	}}).Error()
	switch {
	case errors.Is(err, raft.ErrCantBootstrap):
		return true, ""
	case err != nil:
		n.log.Error("bootstrapping the cluster", "error", err)
		return false, ""
	}
	n.bootstrapped.Store(true)
	n.log.Info("bootstrapped the raft cluster; the other members join as the leader adds them", "members", list)
	return true, ""
}
