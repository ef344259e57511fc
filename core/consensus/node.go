package consensus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Node is this server's member of the Raft cluster: a raft.Raft over the
// cluster transport, with its log and snapshots in Config.DataDir, that
// bootstraps itself when it must, keeps the raft configuration in step
// with the member list, and commits writes from any member.
type Node struct {
	cfg     Config
	log     hclog.Logger
	metrics *metrics
	sm      *stateMachine
	fsm     raft.FSM // sm, as raft takes it
	trans   *raftTransport

	r            atomic.Pointer[raft.Raft] // set by Start
	running      atomic.Bool               // from Start until Stop
	bootstrapped atomic.Bool               // this run bootstrapped the cluster
	// replayTo is the log's last index at Start, and startedAt when Start
	// ran: set before r, read after it (Replayed).
	replayTo  uint64
	startedAt time.Time

	// The lifecycle, under mu.
	mu       sync.Mutex
	started  bool
	stopped  bool
	store    *raftboltdb.BoltStore
	observer *raft.Observer
	hadState bool // the stores held a cluster's state at Start

	ctx      context.Context // the background work's; Stop cancels it
	cancel   context.CancelFunc
	stopping chan struct{} // closed by Stop
	wg       sync.WaitGroup

	queue         chan *op
	leaderChange  broadcast
	noLeaderSince atomic.Int64 // unix nanoseconds; 0 while there is a leader

	members members // members.go
}

// New returns a node for cfg, registered on cfg.Router for the kinds of
// this package; nothing is opened or started until Start. Call it while
// the server is wired, before the transport delivers messages.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger,
		stopping: make(chan struct{}),
		queue:    make(chan *op, queueSize),
	}
	n.members.init()
	n.sm, n.fsm = newStateMachine(cfg.FSM)
	n.metrics = newMetrics(cfg.Metrics, n)
	n.trans = newTransport(transportConfig{
		self:           cfg.Self,
		caller:         cfg.Transport,
		target:         cfg.Target,
		callTimeout:    cfg.CallTimeout,
		installTimeout: cfg.InstallTimeout,
		maxSnapshot:    cfg.MaxSnapshotSize,
		dir:            incomingDir(cfg.DataDir),
		log:            cfg.Logger,
		metrics:        n.metrics,
	})
	err = errors.Join(
		n.trans.register(cfg.Router),
		cfg.Router.Register(KindForward, n.handleForward),
		cfg.Router.Register(KindStatus, n.handleStatus),
	)
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	return n, nil
}

// Start opens the log, the stable store and the snapshots, and starts raft
// and the node's work: the apply workers, the membership reconciliation
// and, when the stores hold no state, the bootstrap (bootstrap.go). It
// returns once raft runs; the background work keeps ctx's values, not its
// cancellation.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("consensus: the node was started already")
	}
	n.started = true
	dir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("consensus: %w", err)
	}
	if err := n.trans.installs.prepare(); err != nil {
		return fmt.Errorf("consensus: %w", err)
	}
	st, err := openStores(dir, n.log)
	if err != nil {
		return fmt.Errorf("consensus: %w", err)
	}
	n.store = st.bolt
	n.hadState, err = raft.HasExistingState(st.logs, st.bolt, st.snapshots)
	if err != nil {
		st.bolt.Close()
		return fmt.Errorf("consensus: reading the stores: %w", err)
	}
	n.trans.open.Store(true)
	r, err := raft.NewRaft(n.cfg.raftConfig(), n.fsm, st.logs, st.bolt, st.snapshots, n.trans)
	if err != nil {
		n.trans.Close()
		st.bolt.Close()
		return fmt.Errorf("consensus: starting raft: %w", err)
	}
	n.replayTo, n.startedAt = r.LastIndex(), time.Now()
	n.r.Store(r)
	n.noLeaderSince.Store(time.Now().UnixNano())
	observations := make(chan raft.Observation, 64)
	n.observer = raft.NewObserver(observations, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n.running.Store(true)

	n.wg.Add(2 + applyWorkers)
	go n.observe(observations)
	go n.reconcileLoop()
	for range applyWorkers {
		go n.work()
	}
	if !n.hadState {
		n.wg.Add(1)
		go n.bootstrapLoop()
	}
	n.log.Info("raft started", "id", n.cfg.Self, "existing_state", n.hadState)
	return nil
}

// Replayed reports whether the state machine holds what the node's log
// held when it started (a restarted node applies its log once a leader
// commits it), or whether ApplyTimeout has passed since Start without that
// (no quorum: the node serves what it has). A server is not ready before.
func (n *Node) Replayed() bool {
	r := n.r.Load()
	if r == nil {
		return false
	}
	return r.AppliedIndex() >= n.replayTo || time.Since(n.startedAt) >= n.cfg.ApplyTimeout
}

// Stop stops the node, within ctx: Apply and ReadBarrier fail with
// ErrStopped from now on; the workers finish the batches raft has (raft
// answers them: committed, or leadership lost); then the transport
// closes, raft shuts down and the stores close. No goroutine of the node
// outlives a Stop that returns nil.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.stopped || n.r.Load() == nil {
		return nil
	}
	n.stopped = true
	n.running.Store(false)
	close(n.stopping)
	n.cancel()
	r := n.r.Load()
	if err := await(ctx, n.wg.Wait); err != nil {
		return fmt.Errorf("consensus: stopping the node's work: %w", err)
	}
	r.DeregisterObserver(n.observer)
	n.trans.Close()
	if err := await(ctx, func() { _ = r.Shutdown().Error() }); err != nil {
		return fmt.Errorf("consensus: stopping raft: %w", err)
	}
	if err := n.store.Close(); err != nil {
		return fmt.Errorf("consensus: closing the log: %w", err)
	}
	n.log.Info("raft stopped")
	return nil
}

// await runs fn, returning early with ctx's error (fn then finishes
// alone).
func await(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// raftNode is the node's raft, nil before Start.
func (n *Node) raftNode() *raft.Raft { return n.r.Load() }

// observe follows raft's leader and state changes: it wakes the ops
// waiting for a leader, and the reconciliation when this node leads.
func (n *Node) observe(observations <-chan raft.Observation) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-observations:
			if n.Leader() == "" {
				n.noLeaderSince.CompareAndSwap(0, time.Now().UnixNano())
			} else {
				n.noLeaderSince.Store(0)
			}
			n.leaderChange.fire()
			if n.State() == raft.Leader {
				n.members.touch()
			}
		}
	}
}

// State is raft's state on this node (raft.Shutdown when not running).
func (n *Node) State() raft.RaftState {
	if r := n.raftNode(); r != nil {
		return r.State()
	}
	return raft.Shutdown
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.State() == raft.Leader }

// Leader is the leader's address (a member's HTTP address), "" when this
// node knows of none.
func (n *Node) Leader() string {
	if r := n.raftNode(); r != nil {
		addr, _ := r.LeaderWithID()
		return string(addr)
	}
	return ""
}

// Stats is a summary of a node's raft state.
type Stats struct {
	State        raft.RaftState
	Leader       string // "" when none is known
	Term         uint64
	CommitIndex  uint64 // the last entry known committed
	AppliedIndex uint64 // the last entry the state machine applied
	LastIndex    uint64 // the last entry in the log (or snapshot)
	// LastContact is when this node last heard from the leader (now, on
	// the leader; zero if never).
	LastContact time.Time
	// Voters and Nonvoters count the servers of the latest configuration.
	Voters, Nonvoters int
}

// Stats returns the node's raft state.
func (n *Node) Stats() Stats {
	r := n.raftNode()
	if r == nil {
		return Stats{State: raft.Shutdown}
	}
	s := Stats{
		State:        r.State(),
		Leader:       n.Leader(),
		Term:         r.CurrentTerm(),
		CommitIndex:  r.CommitIndex(),
		AppliedIndex: n.sm.index(),
		LastIndex:    r.LastIndex(),
		LastContact:  r.LastContact(),
	}
	if s.State == raft.Leader {
		s.LastContact = time.Now()
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				s.Voters++
			} else {
				s.Nonvoters++
			}
		}
	}
	return s
}

// broadcast wakes every waiter at once, each time it fires.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next fire.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
