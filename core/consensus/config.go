package consensus

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/cluster"
)

// Defaults for what a Config leaves zero, for nodes on one LAN.
const (
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultCommitTimeout      = 50 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 2 * time.Minute
	DefaultTrailingLogs       = 10240
	DefaultApplyTimeout       = 5 * time.Second
	DefaultCallTimeout        = 5 * time.Second
	DefaultInstallTimeout     = 5 * time.Minute
	DefaultMaxSnapshotSize    = 1 << 30 // 1 GiB
	DefaultReconcileInterval  = time.Second
	DefaultRemoveAfter        = 10 * time.Second
)

// MaxCommandSize bounds a command given to Apply: 1 MiB. An AppendEntries
// message carries at most 64 entries, so at most 64 MiB, well within what
// the transport carries (sdk.MaxMessageSize).
const MaxCommandSize = 1 << 20

// Config configures a Node.
type Config struct {
	// DataDir is the server's data directory; the node keeps its files in
	// DataDir/raft: the log and stable store raft.db, the snapshots, and
	// the snapshots being received.
	DataDir string
	// Self is this node's HTTP address (host:port), as the member table
	// names it: its raft ServerID and ServerAddress.
	Self string
	// FSM is the state machine the log drives. What its Apply returns is
	// Node.Apply's result: an error is a rejection (ErrRejected, with its
	// text); anything else goes through EncodeResult.
	FSM raft.FSM
	// EncodeResult encodes what FSM.Apply returned (but an error) into
	// Node.Apply's result, on the leader, for the writes given on any node:
	// a result crosses the cluster as bytes, so every node's Apply returns
	// the same. Nil means the FSM returns nil or a []byte.
	EncodeResult func(result any) ([]byte, error)
	// Transport carries this node's calls to the other members (the
	// transport plugin). Nil for a standalone node, which calls no one.
	Transport cluster.Caller
	// Router takes what the members send; New registers the kinds of this
	// package on it.
	Router *cluster.Router
	// Target maps a member's HTTP address to the cluster address its
	// transport listens on; cluster.Address (port + cluster.PortOffset)
	// when nil.
	Target func(member string) (string, error)
	// Logger is the node's logger (raft's own under "raft");
	// hclog.NewNullLogger when nil.
	Logger hclog.Logger
	// Metrics registers the node's metrics; none when nil.
	Metrics prometheus.Registerer

	// Raft's timing (zero: the Default constants). LeaderLeaseTimeout must
	// not exceed HeartbeatTimeout, nor HeartbeatTimeout ElectionTimeout.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many new log entries make a snapshot,
	// checked every SnapshotInterval; TrailingLogs how many entries stay in
	// the log after one (a follower further behind gets the snapshot).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// ApplyTimeout bounds Apply and ReadBarrier: a write or read not done
	// by then fails with ErrNoQuorum. Once the node has had no leader for
	// that long, they fail at once.
	ApplyTimeout time.Duration
	// CallTimeout bounds one call to another member (one raft RPC, one
	// snapshot chunk, a membership probe).
	CallTimeout time.Duration
	// InstallTimeout bounds the last call of a snapshot sent to a
	// follower: the follower restores its state machine before it answers.
	InstallTimeout time.Duration
	// MaxSnapshotSize is the largest snapshot this node accepts from a
	// leader; a larger one is refused (ErrTooLarge).
	MaxSnapshotSize int64

	// ReconcileInterval is how often the leader checks the raft
	// configuration against the member list when it does not match (a
	// change to the list or a new leader checks at once).
	ReconcileInterval time.Duration
	// RemoveAfter is how long a server must be gone from the member list
	// before the leader removes it from the configuration, so that a list
	// briefly incomplete (a cluster.conf being rewritten) does not remove
	// voters.
	RemoveAfter time.Duration

	// LeaderReads makes ReadBarrier wait until this node has applied every
	// write committed before it was called (a linearizable read); without
	// it ReadBarrier returns at once and reads see this node's state
	// machine, which may lag the leader by a replication round.
	LeaderReads bool
}

// withDefaults fills what cfg leaves zero and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&cfg.HeartbeatTimeout, DefaultHeartbeatTimeout)
	set(&cfg.ElectionTimeout, DefaultElectionTimeout)
	set(&cfg.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	set(&cfg.CommitTimeout, DefaultCommitTimeout)
	set(&cfg.SnapshotInterval, DefaultSnapshotInterval)
	set(&cfg.ApplyTimeout, DefaultApplyTimeout)
	set(&cfg.CallTimeout, DefaultCallTimeout)
	set(&cfg.InstallTimeout, DefaultInstallTimeout)
	set(&cfg.ReconcileInterval, DefaultReconcileInterval)
	set(&cfg.RemoveAfter, DefaultRemoveAfter)
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = DefaultTrailingLogs
	}
	if cfg.MaxSnapshotSize == 0 {
		cfg.MaxSnapshotSize = DefaultMaxSnapshotSize
	}
	if cfg.Target == nil {
		cfg.Target = cluster.Address
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	var errs []error
	if cfg.DataDir == "" {
		errs = append(errs, errors.New("no data directory"))
	}
	if _, _, err := net.SplitHostPort(cfg.Self); err != nil {
		errs = append(errs, fmt.Errorf("this node's address %q: %w", cfg.Self, err))
	}
	if cfg.FSM == nil {
		errs = append(errs, errors.New("no state machine"))
	}
	if cfg.Router == nil {
		errs = append(errs, errors.New("no router"))
	}
	if cfg.MaxSnapshotSize < 0 {
		errs = append(errs, errors.New("negative MaxSnapshotSize"))
	}
	rc := cfg.raftConfig()
	if err := raft.ValidateConfig(rc); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("consensus: %w", err)
	}
	return cfg, nil
}

// raftConfig is raft's configuration for this node.
func (cfg Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Self)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = maxAppendEntries
	// Concurrent writes wait together in the apply channel and go to the
	// log, and to the followers, as one batch.
	rc.BatchApplyCh = true
	// A server removed from the configuration stays up, a follower without
	// a vote, so that it can be added again when the member list has it
	// again (the server stops it when it leaves the list for good).
	rc.ShutdownOnRemove = false
	rc.NoLegacyTelemetry = true
	if cfg.Logger != nil {
		rc.Logger = cfg.Logger.Named("raft")
	}
	return rc
}

// maxAppendEntries is how many entries go in one AppendEntries message,
// and how many waiting writes make one batch.
const maxAppendEntries = 64
