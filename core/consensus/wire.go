package consensus

import (
	"errors"
	"fmt"
)

// This file encodes the messages of this package that are not raft's RPCs:
// forwarded writes and reads (KindForward) and status probes (KindStatus),
// in the codec of codec.go.

// The cluster message kinds of this package beyond raft's RPCs.
const (
	// KindForward carries writes and read barriers from a follower to the
	// leader, in batches.
	KindForward = "raft.forward"
	// KindStatus asks a member about its raft state (bootstrap and
	// membership changes).
	KindStatus = "raft.status"
)

// maxForwardOps bounds the operations of one forwarded batch.
const maxForwardOps = 1024

// The answer codes of a forwarded operation.
const (
	codeOK       = iota // applied: the result (a write) or the index to reach (a read)
	codeRejected        // the state machine's error text
	codeRetry           // not applied (the receiver is not the leader): try again
	codeNoQuorum        // the reason
	codeError           // another error's text
)

// forwarded is one operation of a forwarded batch.
type forwarded struct {
	read bool
	cmd  []byte
}

func encodeForward(ops []*op) []byte {
	size := 16
	for _, o := range ops {
		size += 8 + len(o.cmd)
	}
	e := newEnc(size)
	e.u(uint64(len(ops)))
	for _, o := range ops {
		e.bool(o.read)
		e.bytes(o.cmd)
	}
	return e.b
}

// decodeForward decodes a batch; the commands alias msg.
func decodeForward(msg []byte) ([]forwarded, error) {
	d := newDec(msg)
	n := d.u()
	if n > maxForwardOps || n > uint64(len(d.b)/2) {
		d.fail("too many operations")
	}
	var ops []forwarded
	if d.err == nil {
		ops = make([]forwarded, n)
		for i := range ops {
			ops[i] = forwarded{read: d.bool(), cmd: d.bytes()}
			if len(ops[i].cmd) > MaxCommandSize {
				d.fail("command too large")
			}
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return ops, nil
}

// encodeOutcomes answers a forwarded batch.
func encodeOutcomes(outs []outcome) []byte {
	size := 16
	for _, o := range outs {
		size += 16 + len(o.result)
	}
	e := newEnc(size)
	e.u(uint64(len(outs)))
	for _, o := range outs {
		code, text := outcomeCode(o.err)
		e.b = append(e.b, code)
		switch code {
		case codeOK:
			e.bytes(o.result)
			e.u(o.index)
		default:
			e.bytes([]byte(text))
		}
	}
	return e.b
}

// outcomeCode is the answer code of an operation's error, and its text.
func outcomeCode(err error) (byte, string) {
	var rejected *rejectedError
	var quorum *quorumError
	switch {
	case err == nil:
		return codeOK, ""
	case errors.As(err, &rejected):
		return codeRejected, rejected.text
	case errors.Is(err, errNotLeader), errors.Is(err, ErrStopped):
		return codeRetry, err.Error()
	case errors.As(err, &quorum):
		return codeNoQuorum, quorum.reason
	default:
		return codeError, err.Error()
	}
}

// decodeOutcomes decodes the answer to a batch of want operations; the
// results alias msg. An operation to retry has errNotLeader.
func decodeOutcomes(msg []byte, want int) ([]outcome, error) {
	d := newDec(msg)
	if n := d.u(); d.err == nil && n != uint64(want) {
		return nil, fmt.Errorf("%w: %d answers to %d operations", errMalformed, n, want)
	}
	outs := make([]outcome, want)
	for i := range outs {
		switch code := d.byte(); code {
		case codeOK:
			outs[i].result = d.bytes()
			outs[i].index = d.u()
		case codeRejected:
			outs[i].err = &rejectedError{text: string(d.bytes())}
		case codeRetry:
			d.bytes()
			outs[i].err = errNotLeader
		case codeNoQuorum:
			outs[i].err = noQuorum(string(d.bytes()))
		case codeError:
			outs[i].err = fmt.Errorf("consensus: the leader: %s", d.bytes())
		default:
			d.fail("unknown answer code")
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return outs, nil
}

// status is what a member says of its raft state.
type status struct {
	hasState  bool   // it has a log, a snapshot or a term: it is or was in a cluster
	lastIndex uint64 // its last log index
	term      uint64
	leader    string // the leader it knows, if any
}

func encodeStatus(s status) []byte {
	e := newEnc(32 + len(s.leader))
	e.bool(s.hasState)
	e.u(s.lastIndex)
	e.u(s.term)
	e.bytes([]byte(s.leader))
	return e.b
}

func decodeStatus(msg []byte) (status, error) {
	d := newDec(msg)
	s := status{hasState: d.bool(), lastIndex: d.u(), term: d.u(), leader: string(d.bytes())}
	return s, d.done()
}
