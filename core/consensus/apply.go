package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/sdk/transport"
)

// This file is the way of a write (and of a read barrier): Apply puts an op
// on the node's queue and waits for its outcome, within its context and
// Config.ApplyTimeout. A fixed set of workers takes the ops in batches
// (whatever waits, up to maxAppendEntries ops): on the leader each batch
// goes to raft at once, where concurrent batches merge again in raft's
// apply channel (group commit: one disk write and one AppendEntries for
// many writes); on a follower each batch is one KindForward call to the
// leader, whose handler puts the ops on its own queue. An op not applied
// (there is no leader yet, the leader changed, the leader could not be
// reached) is tried again when the leader changes, or after retryDelay,
// until its deadline.

// applyWorkers is how many batches a node has in progress at once.
const applyWorkers = 8

// queueSize bounds the ops waiting for a worker; Apply waits for room
// within its deadline.
const queueSize = 4096

// maxBatchBytes bounds the commands of one batch (a forwarded one is one
// message).
const maxBatchBytes = 4 << 20

// retryDelay is how long an op not applied waits before it is tried again,
// unless the leader changes first.
const retryDelay = 50 * time.Millisecond

// errNotLeader answers a forwarded op that reached a node that is not the
// leader (it never forwards further): the sender tries again.
var errNotLeader = errors.New("consensus: this node is not the leader")

// op is one write, or one read barrier, to commit.
type op struct {
	read      bool
	cmd       []byte
	forwarded bool // from a follower: applied here, or answered errNotLeader
	deadline  time.Time
	done      chan outcome // capacity 1: one outcome per op
	gone      atomic.Bool  // the caller stopped waiting
}

// outcome is what became of an op.
type outcome struct {
	result []byte // a write: the state machine's result
	index  uint64 // a read: the index of the leader's state machine to reach
	err    error
}

func (o *op) reply(out outcome) { o.done <- out }

// Apply commits cmd to the replicated log and returns the state machine's
// result (encoded by Config.EncodeResult, if set) once the leader has
// applied it: on the
// leader it goes to raft directly, on a follower it is forwarded to the
// leader (kind KindForward). Concurrent calls are committed in batches.
//
// It fails with an error wrapping ErrNoQuorum when the write is not
// committed within Config.ApplyTimeout (no leader, or no quorum; at once
// when the node has had no leader for that long), ErrRejected when the
// state machine returned an error, ErrTooLarge for a command over
// MaxCommandSize, ErrStopped when the node is not running, or ctx's error.
// An error other than ErrRejected and ErrTooLarge does not prove that the
// write was not applied: commands should be safe to apply twice.
func (n *Node) Apply(ctx context.Context, cmd []byte) ([]byte, error) {
	if len(cmd) > MaxCommandSize {
		return nil, fmt.Errorf("%w: a command of %d bytes (at most %d)", ErrTooLarge, len(cmd), MaxCommandSize)
	}
	start := time.Now()
	out := n.submit(ctx, &op{cmd: cmd})
	n.metrics.applied(time.Since(start), out.err)
	return out.result, out.err
}

// submit queues o and waits for its outcome.
func (n *Node) submit(ctx context.Context, o *op) outcome {
	if !n.running.Load() {
		return outcome{err: ErrStopped}
	}
	if err := n.leaderless(); err != nil {
		return outcome{err: err}
	}
	limit := time.NewTimer(n.cfg.ApplyTimeout)
	defer limit.Stop()
	o.deadline = time.Now().Add(n.cfg.ApplyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(o.deadline) {
		o.deadline = d
	}
	o.done = make(chan outcome, 1)
	select {
	case n.queue <- o:
	case <-ctx.Done():
		return outcome{err: ctx.Err()}
	case <-limit.C:
		return outcome{err: noQuorum(fmt.Sprintf("%d writes waiting for a worker for %s", queueSize, n.cfg.ApplyTimeout))}
	case <-n.stopping:
		return outcome{err: ErrStopped}
	}
	select {
	case out := <-o.done:
		return out
	case <-ctx.Done():
		o.gone.Store(true)
		return outcome{err: ctx.Err()}
	case <-limit.C:
		o.gone.Store(true)
		return outcome{err: n.timedOut()}
	case <-n.stopping:
		o.gone.Store(true)
		return outcome{err: ErrStopped}
	}
}

// leaderless fails at once when the node has had no leader for
// ApplyTimeout: a cluster without a quorum answers at once, rather than
// each request waiting the whole bound.
func (n *Node) leaderless() error {
	if n.Leader() != "" {
		return nil
	}
	since := n.noLeaderSince.Load()
	if since != 0 {
		if d := time.Since(time.Unix(0, since)); d >= n.cfg.ApplyTimeout {
			return noQuorum(fmt.Sprintf("no leader for %s", d.Round(time.Millisecond)))
		}
	}
	return nil
}

// timedOut is the error of an op not done within ApplyTimeout.
func (n *Node) timedOut() error {
	if leader := n.Leader(); leader != "" {
		return noQuorum(fmt.Sprintf("not committed within %s (leader %s)", n.cfg.ApplyTimeout, leader))
	}
	return noQuorum(fmt.Sprintf("no leader within %s", n.cfg.ApplyTimeout))
}

// work takes batches of ops off the queue until the node stops.
func (n *Node) work() {
	defer n.wg.Done()
	batch := make([]*op, 0, maxAppendEntries)
	for {
		select {
		case <-n.stopping:
			return
		case o := <-n.queue:
			batch = append(batch[:0], o)
		}
		size := len(batch[0].cmd)
	fill:
		for len(batch) < maxAppendEntries && size < maxBatchBytes {
			select {
			case o := <-n.queue:
				batch = append(batch, o)
				size += len(o.cmd)
			default:
				break fill
			}
		}
		n.run(batch)
		clear(batch)
	}
}

// run commits a batch: here on the leader, else through the leader, again
// until every op has its outcome or its deadline passed.
func (n *Node) run(batch []*op) {
	for {
		changed := n.leaderChange.wait() // taken before the state is read
		batch = n.live(batch)
		if len(batch) == 0 {
			return
		}
		var retry []*op
		if n.State() == raft.Leader {
			retry = n.here(batch)
		} else {
			retry = n.forward(batch)
		}
		if len(retry) == 0 {
			return
		}
		timer := time.NewTimer(retryDelay)
		select {
		case <-changed:
		case <-timer.C:
		case <-n.stopping:
			timer.Stop()
			for _, o := range retry {
				o.reply(outcome{err: ErrStopped})
			}
			return
		}
		timer.Stop()
		batch = retry
	}
}

// live drops the ops whose caller stopped waiting or whose deadline passed.
func (n *Node) live(batch []*op) []*op {
	now := time.Now()
	kept := batch[:0]
	for _, o := range batch {
		switch {
		case o.gone.Load():
			o.reply(outcome{err: context.Canceled})
		case !now.Before(o.deadline):
			o.reply(outcome{err: n.timedOut()})
		default:
			kept = append(kept, o)
		}
	}
	return kept
}

// here commits a batch on this node, the leader: every write goes to raft
// before the first is waited for, and the reads share one barrier. It
// returns the ops to try again.
func (n *Node) here(batch []*op) (retry []*op) {
	r := n.raftNode()
	futures := make([]raft.Future, len(batch))
	var barrier raft.Future
	for i, o := range batch {
		timeout := time.Until(o.deadline)
		if o.read {
			if barrier == nil {
				barrier = r.Barrier(timeout)
			}
			futures[i] = barrier
		} else {
			futures[i] = r.Apply(o.cmd, timeout)
		}
	}
	for i, o := range batch {
		err := futures[i].Error()
		switch {
		case err == nil && o.read:
			o.reply(outcome{index: n.sm.index()})
		case err == nil:
			o.reply(n.resultOf(futures[i].(raft.ApplyFuture).Response()))
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
			errors.Is(err, raft.ErrEnqueueTimeout):
			// Not in the log: safe to try again, here or on the leader.
			if o.forwarded {
				o.reply(outcome{err: errNotLeader})
			} else {
				retry = append(retry, o)
			}
		case errors.Is(err, raft.ErrRaftShutdown):
			o.reply(outcome{err: ErrStopped})
		default: // leadership lost, or a restore: the write may still be applied
			o.reply(outcome{err: noQuorum(err.Error())})
		}
	}
	return retry
}

// resultOf is the outcome of what the state machine returned: a
// rejection, or the result Config.EncodeResult makes of it.
func (n *Node) resultOf(resp any) outcome {
	if err, ok := resp.(error); ok {
		return outcome{err: &rejectedError{text: err.Error()}}
	}
	if n.cfg.EncodeResult != nil {
		b, err := n.cfg.EncodeResult(resp)
		if err != nil {
			return outcome{err: fmt.Errorf("consensus: encoding the state machine's result: %w", err)}
		}
		return outcome{result: b}
	}
	switch v := resp.(type) {
	case nil:
		return outcome{}
	case []byte:
		return outcome{result: v}
	default:
		return outcome{err: fmt.Errorf("consensus: the state machine returned a %T; it needs a Config.EncodeResult", v)}
	}
}

// forward sends a batch to the leader, as one message. It returns the ops
// to try again.
func (n *Node) forward(batch []*op) (retry []*op) {
	send := make([]*op, 0, len(batch))
	for _, o := range batch {
		if o.forwarded { // this node is not the leader the sender took it for
			o.reply(outcome{err: errNotLeader})
			continue
		}
		send = append(send, o)
	}
	leader := n.Leader()
	if len(send) == 0 || leader == "" || leader == n.cfg.Self || n.cfg.Transport == nil {
		return send // no leader yet: wait for one
	}
	deadline := send[0].deadline
	for _, o := range send[1:] {
		if o.deadline.After(deadline) {
			deadline = o.deadline
		}
	}
	target, err := n.cfg.Target(leader)
	var answer []byte
	if err == nil {
		ctx, cancel := context.WithDeadline(n.ctx, deadline)
		n.metrics.forwarded.Add(float64(len(send)))
		answer, err = n.cfg.Transport.Call(ctx, target, KindForward, encodeForward(send))
		cancel()
	}
	if errors.Is(err, transport.ErrUnreachable) {
		return send // it never reached the leader
	}
	var outs []outcome
	if err == nil {
		outs, err = decodeOutcomes(answer, len(send))
	}
	if err != nil {
		err = noQuorum(fmt.Sprintf("forwarding to the leader %s: %v", leader, err))
		for _, o := range send {
			o.reply(outcome{err: err})
		}
		return nil
	}
	for i, o := range send {
		if errors.Is(outs[i].err, errNotLeader) {
			retry = append(retry, o)
		} else {
			o.reply(outs[i])
		}
	}
	return retry
}

// handleForward takes a batch of ops a follower forwarded, and answers
// with their outcomes once all are done, within ctx.
func (n *Node) handleForward(ctx context.Context, _ string, payload []byte) ([]byte, error) {
	// The commands go into raft's log: they must not alias the transport's
	// buffer.
	fops, err := decodeForward(bytes.Clone(payload))
	if err != nil {
		return nil, err
	}
	if !n.running.Load() {
		outs := make([]outcome, len(fops))
		for i := range outs {
			outs[i].err = errNotLeader
		}
		return encodeOutcomes(outs), nil
	}
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ops := make([]*op, len(fops))
	abandon := func(err error) ([]byte, error) {
		for _, o := range ops {
			if o != nil {
				o.gone.Store(true)
			}
		}
		return nil, err
	}
	for i, f := range fops {
		ops[i] = &op{read: f.read, cmd: f.cmd, forwarded: true, deadline: deadline, done: make(chan outcome, 1)}
		select {
		case n.queue <- ops[i]:
		case <-ctx.Done():
			return abandon(ctx.Err())
		case <-n.stopping:
			return abandon(ErrStopped)
		}
	}
	outs := make([]outcome, len(ops))
	for i, o := range ops {
		select {
		case outs[i] = <-o.done:
		case <-ctx.Done():
			return abandon(ctx.Err())
		case <-n.stopping:
			return abandon(ErrStopped)
		}
	}
	return encodeOutcomes(outs), nil
}

// ReadBarrier prepares a read of the state machine. With
// Config.LeaderReads, it waits until this node's state machine has applied
// every write committed before the call, so that the read that follows is
// linearizable: the leader commits a barrier (one for all the reads that
// wait with it) and names the index its state machine then reached; this
// node, leader or follower, waits until it has applied as much. It fails
// as Apply does (ErrNoQuorum within Config.ApplyTimeout, ErrStopped, ctx's
// error). Without LeaderReads it returns at once: reads then see this
// node's state machine, which may lag the leader's by a replication round.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if !n.running.Load() {
		return ErrStopped
	}
	if !n.cfg.LeaderReads {
		return nil
	}
	start := time.Now()
	out := n.submit(ctx, &op{read: true})
	if out.err != nil {
		return out.err
	}
	reached, cancel := n.sm.reached(out.index)
	defer cancel()
	limit := time.NewTimer(n.cfg.ApplyTimeout - time.Since(start))
	defer limit.Stop()
	select {
	case <-reached:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-limit.C:
		return noQuorum(fmt.Sprintf("this node did not apply the log to index %d within %s", out.index, n.cfg.ApplyTimeout))
	case <-n.stopping:
		return ErrStopped
	}
}
