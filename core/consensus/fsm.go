package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// stateMachine wraps the configured FSM to know how far it has applied the
// log: the index of the last entry it applied (or that its restored
// snapshot held), which ReadBarrier waits for. raft's own AppliedIndex runs
// ahead of the FSM (it counts what it handed over, not what was applied),
// and raft does not tell a restored FSM its snapshot's index, so every
// snapshot starts with a header: snapshotMagic, then that index.
type stateMachine struct {
	inner   raft.FSM
	applied atomic.Uint64

	mu      sync.Mutex
	waiters []indexWaiter
	waiting atomic.Int32
}

// indexWaiter waits until index is applied.
type indexWaiter struct {
	index uint64
	ch    chan struct{}
}

// snapshotMagic starts the snapshots this package writes.
var snapshotMagic = [4]byte{'S', 'X', 'R', 1}

var errSnapshotHeader = errors.New("consensus: the snapshot lacks its header")

// newStateMachine wraps inner; what it returns is a raft.BatchingFSM when
// inner is one.
func newStateMachine(inner raft.FSM) (*stateMachine, raft.FSM) {
	sm := &stateMachine{inner: inner}
	if b, ok := inner.(raft.BatchingFSM); ok {
		return sm, &batchingStateMachine{stateMachine: sm, batching: b}
	}
	return sm, sm
}

// Apply implements raft.FSM.
func (sm *stateMachine) Apply(l *raft.Log) any {
	result := sm.inner.Apply(l)
	sm.advance(l.Index)
	return result
}

// Snapshot implements raft.FSM. raft calls it on the goroutine that
// applies, so the index is the snapshot's.
func (sm *stateMachine) Snapshot() (raft.FSMSnapshot, error) {
	s, err := sm.inner.Snapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{inner: s, index: sm.applied.Load()}, nil
}

// Restore implements raft.FSM.
func (sm *stateMachine) Restore(rc io.ReadCloser) error {
	var head [12]byte
	if _, err := io.ReadFull(rc, head[:]); err != nil {
		rc.Close()
		return fmt.Errorf("%w: %w", errSnapshotHeader, err)
	}
	if [4]byte(head[:4]) != snapshotMagic {
		rc.Close()
		return errSnapshotHeader
	}
	if err := sm.inner.Restore(rc); err != nil {
		return err
	}
	sm.set(binary.BigEndian.Uint64(head[4:]))
	return nil
}

// index is the index of the last entry the FSM applied.
func (sm *stateMachine) index() uint64 { return sm.applied.Load() }

func (sm *stateMachine) advance(index uint64) {
	if index > sm.applied.Load() {
		sm.set(index)
	}
}

func (sm *stateMachine) set(index uint64) {
	sm.applied.Store(index)
	if sm.waiting.Load() == 0 {
		return
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	kept := sm.waiters[:0]
	for _, w := range sm.waiters {
		if w.index <= index {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(sm.waiters[len(kept):])
	sm.waiters = kept
	sm.waiting.Store(int32(len(kept)))
}

// reached returns a channel closed once index is applied, and a function
// to call when no longer waiting.
func (sm *stateMachine) reached(index uint64) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	sm.mu.Lock()
	// Counted before applied is read: set either sees the waiter or has
	// stored what this reads.
	sm.waiting.Add(1)
	if sm.applied.Load() >= index {
		sm.waiting.Add(-1)
		sm.mu.Unlock()
		close(ch)
		return ch, func() {}
	}
	sm.waiters = append(sm.waiters, indexWaiter{index: index, ch: ch})
	sm.mu.Unlock()
	return ch, func() {
		sm.mu.Lock()
		defer sm.mu.Unlock()
		for i, w := range sm.waiters {
			if w.ch == ch {
				sm.waiters = append(sm.waiters[:i], sm.waiters[i+1:]...)
				sm.waiting.Add(-1)
				return
			}
		}
	}
}

// batchingStateMachine passes batches through to an FSM that takes them.
type batchingStateMachine struct {
	*stateMachine
	batching raft.BatchingFSM
}

// ApplyBatch implements raft.BatchingFSM.
func (b *batchingStateMachine) ApplyBatch(logs []*raft.Log) []any {
	results := b.batching.ApplyBatch(logs)
	if len(logs) > 0 {
		b.advance(logs[len(logs)-1].Index)
	}
	return results
}

// snapshot writes the header, then the FSM's snapshot.
type snapshot struct {
	inner raft.FSMSnapshot
	index uint64
}

// Persist implements raft.FSMSnapshot.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	var head [12]byte
	copy(head[:], snapshotMagic[:])
	binary.BigEndian.PutUint64(head[4:], s.index)
	if _, err := sink.Write(head[:]); err != nil {
		sink.Cancel()
		return err
	}
	return s.inner.Persist(sink)
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() { s.inner.Release() }
