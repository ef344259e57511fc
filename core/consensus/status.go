package consensus

import (
	"context"
	"time"
)

// localStatus is what this node says of its raft state.
func (n *Node) localStatus() status {
	r := n.raftNode()
	leader, _ := r.LeaderWithID()
	last, term := r.LastIndex(), r.CurrentTerm()
	return status{hasState: n.hadState || last > 0 || term > 0, lastIndex: last, term: term, leader: string(leader)}
}

// handleStatus answers a member's status probe.
func (n *Node) handleStatus(context.Context, string, []byte) ([]byte, error) {
	if !n.running.Load() {
		return nil, ErrStopped
	}
	return encodeStatus(n.localStatus()), nil
}

// maxProbeTimeout bounds a status probe: a member that does not answer
// within it is taken as absent, so that a silent member does not hold up a
// reconciliation pass (the next pass asks again).
const maxProbeTimeout = time.Second

// probe asks the member for its status, within CallTimeout and
// maxProbeTimeout.
func (n *Node) probe(ctx context.Context, member string) (status, error) {
	if n.cfg.Transport == nil {
		return status{}, errNoTransport
	}
	target, err := n.cfg.Target(member)
	if err != nil {
		return status{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, min(n.cfg.CallTimeout, maxProbeTimeout))
	defer cancel()
	answer, err := n.cfg.Transport.Call(ctx, target, KindStatus, nil)
	if err != nil {
		return status{}, err
	}
	return decodeStatus(answer)
}
