package persist

import (
	"context"
	"fmt"
	"sync"

	"github.com/sextantd/sextant/core/naming"
)

// Committer commits a log entry through Raft and returns the encoded
// Response (EncodeResponse) once it is applied: core/consensus.Node.
type Committer interface {
	Apply(ctx context.Context, cmd []byte) ([]byte, error)
}

// Store is what the front ends write through: it validates each op as
// Apply will, refuses a persistent instance at the address of an ephemeral
// one (which the FSM cannot see), commits the ops, and returns each op's
// result. Reads go to the FSM.
//
// Concurrent writes share log entries: a write waits in a list, and up to
// maxCombiners goroutines take what waits — whole writes, up to
// maxMergedOps ops — and commit it as one entry, whose per-op results go
// back to each writer. Nothing waits for company: a write alone is
// committed at once, and the others gather while an entry is in flight.
// Every entry costs the leader and each follower a log write, a place in
// an AppendEntries message and an apply, whatever it holds, so a busy
// store commits far fewer entries than writes. The list holds only writes
// whose callers wait in Write: it is bounded by the front ends' own limits
// on requests in progress.
type Store struct {
	fsm       *FSM
	committer Committer
	registry  *naming.Registry // for the ephemeral instances

	mu         sync.Mutex
	waiting    []*write
	combiners  chan struct{} // one token per combiner at work
	mergedSize int           // encoded bytes above which a merged entry is split
}

// maxCombiners is how many merged entries a store has in flight at once.
const maxCombiners = 4

// maxMergedOps bounds the ops of one merged entry (a single write of more
// is committed alone, as it came).
const maxMergedOps = 256

// maxMergedBytes bounds a merged entry's encoding, well below the
// consensus layer's limit on a command.
const maxMergedBytes = 256 << 10

// write is one Write call's ops waiting to be committed.
type write struct {
	ops  []Op
	done chan writeResult // capacity 1
}

// writeResult is what became of a write: an error for all its ops, or one
// result per op.
type writeResult struct {
	results []error
	err     error
}

// NewStore returns a store writing through c into fsm's log, and checking
// addresses against registry.
func NewStore(fsm *FSM, c Committer, registry *naming.Registry) *Store {
	return &Store{fsm: fsm, committer: c, registry: registry, combiners: make(chan struct{}, maxCombiners), mergedSize: maxMergedBytes}
}

// FSM returns the state the store's entries are applied to, for reads.
func (s *Store) FSM() *FSM { return s.fsm }

// Write commits ops as one entry. It returns an error for the entry (bad
// input caught before committing, no quorum, the node stopping) or one
// result per op.
func (s *Store) Write(ctx context.Context, ops ...Op) ([]error, error) {
	for i, op := range ops {
		checked, err := Validate(s.fsm.Limits(), op)
		if err != nil {
			return nil, err
		}
		if err := s.checkAddress(checked); err != nil {
			return nil, err
		}
		ops[i] = checked
	}
	if len(ops) == 0 {
		return s.commit(ops)
	}
	w := &write{ops: ops, done: make(chan writeResult, 1)}
	s.mu.Lock()
	s.waiting = append(s.waiting, w)
	s.mu.Unlock()
	s.startCombiner()
	select {
	case r := <-w.done:
		return r.results, r.err
	case <-ctx.Done():
		// Its ops may still be committed with the others of their entry,
		// as a write whose caller stops waiting may be anyway.
		return nil, ctx.Err()
	}
}

// startCombiner starts a combiner unless maxCombiners are at work: one of
// them takes what waits before it stops.
func (s *Store) startCombiner() {
	select {
	case s.combiners <- struct{}{}:
		go s.combine()
	default:
	}
}

// combine commits what waits, entry by entry, until nothing does.
func (s *Store) combine() {
	for {
		for batch := s.take(); len(batch) > 0; batch = s.take() {
			s.commitMerged(batch)
		}
		<-s.combiners
		// A write that came after the last take, while every combiner was
		// at work, is this one's to take.
		s.mu.Lock()
		more := len(s.waiting) > 0
		s.mu.Unlock()
		if !more {
			return
		}
		select {
		case s.combiners <- struct{}{}:
		default:
			return // another combiner started, and takes it
		}
	}
}

// take removes the waiting writes of the next entry: the first, and those
// after it while the entry stays within maxMergedOps.
func (s *Store) take() []*write {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ops := 0, 0
	for n < len(s.waiting) && (n == 0 || ops+len(s.waiting[n].ops) <= maxMergedOps) {
		ops += len(s.waiting[n].ops)
		n++
	}
	batch := make([]*write, n)
	copy(batch, s.waiting)
	s.waiting = s.waiting[n:]
	if len(s.waiting) == 0 {
		s.waiting = nil // let the backing array go
	}
	return batch
}

// commitMerged commits the writes of batch as one entry and hands each its
// results; an entry too large is split in two.
func (s *Store) commitMerged(batch []*write) {
	var ops []Op
	for _, w := range batch {
		ops = append(ops, w.ops...)
	}
	cmd, err := Encode(ops...)
	if len(batch) > 1 && (err != nil || len(cmd) > s.mergedSize) {
		s.commitMerged(batch[:len(batch)/2])
		s.commitMerged(batch[len(batch)/2:])
		return
	}
	var results []error
	if err == nil {
		results, err = s.apply(cmd, len(ops))
	}
	for _, w := range batch {
		if err != nil {
			w.done <- writeResult{err: err}
			continue
		}
		w.done <- writeResult{results: results[:len(w.ops):len(w.ops)]}
		results = results[len(w.ops):]
	}
}

// commit commits ops as one entry.
func (s *Store) commit(ops []Op) ([]error, error) {
	cmd, err := Encode(ops...)
	if err != nil {
		return nil, err
	}
	return s.apply(cmd, len(ops))
}

// apply commits one encoded entry of n ops and returns their results. The
// entry is bounded by the committer's own timeout, not by one writer's
// context: it carries other writers' ops.
func (s *Store) apply(cmd []byte, n int) ([]error, error) {
	b, err := s.committer.Apply(context.Background(), cmd)
	if err != nil {
		return nil, err
	}
	resp, err := DecodeResponse(b)
	if err != nil {
		return nil, err
	}
	if resp.Err != nil {
		return nil, resp.Err
	}
	if len(resp.Results) != n {
		return nil, fmt.Errorf("persist: %d results for %d ops", len(resp.Results), n)
	}
	return resp.Results, nil
}

// Do commits one op and returns its result, or the entry's error.
func (s *Store) Do(ctx context.Context, op Op) error {
	results, err := s.Write(ctx, op)
	if err != nil {
		return err
	}
	return results[0]
}

// checkAddress refuses a PutInstance at an ephemeral instance's address.
func (s *Store) checkAddress(op Op) error {
	put, ok := op.(PutInstance)
	if !ok {
		return nil
	}
	in := put.Instance
	if s.registry.EphemeralAt(put.Service, in.IP, in.Port, in.Cluster) {
		return &naming.InvalidError{Field: "ephemeral", Reason: fmt.Sprintf(
			"%s:%d in cluster %s is an ephemeral instance; an address is ephemeral or persistent, never both", in.IP, in.Port, in.Cluster)}
	}
	return nil
}
