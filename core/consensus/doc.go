// Package consensus is Sextant's Raft node: hashicorp/raft, carried by the
// cluster transport, for what must survive every node's restart —
// persistent instances, service definitions and namespaces (the state
// machine, a raft.FSM, is core/persist's; this package does not know what
// it stores).
//
// # Identity and storage
//
// A server's raft ID and address are both its member address: its HTTP
// address, host:port, as the member table names it (Config.Self). Raft
// keeps its log and stable store (term, vote) in DataDir/raft/raft.db
// (raft-boltdb, bbolt, fsync on every write), its snapshots in
// DataDir/raft/snapshots (two kept), and the snapshots it is receiving in
// DataDir/raft/incoming.
//
// # Transport
//
// There is no second listener: raft's RPCs are cluster messages, sent with
// the transport plugin's Call (Config.Transport) to the member's cluster
// address (Config.Target, cluster.Address by default: the HTTP port +
// 1001), and received through the cluster.Router, which hears only members
// of the member table. The kinds:
//
//	raft.append    AppendEntries and heartbeats
//	raft.vote      RequestVote
//	raft.prevote   RequestPreVote (raft's pre-vote: a server cut off does
//	               not disrupt the others with higher terms when it returns)
//	raft.timeout   TimeoutNow (leadership transfer)
//	raft.install   one chunk of an InstallSnapshot
//	raft.forward   a batch of writes and read barriers, to the leader
//	raft.status    a member's raft state (bootstrap, membership changes)
//
// The RPC structs are encoded in a compact binary form (codec.go): several
// times faster than raft's own msgpack on AppendEntries, the hot path (see
// BenchmarkCodec). A message whose raft header names another server than
// the member that sent it is refused (cluster.ErrNotMember): the router
// vouches for the sender, not for what the message says. An inbound
// message is handed to raft on the transport's own goroutine, which waits
// for raft's answer or the caller's deadline; heartbeats take raft's fast
// path (SetHeartbeatHandler), never queued behind the log's disk writes;
// as that runs raft's code on the transport's goroutine, closing the
// transport (the first step of Stop) waits for the heartbeats in progress
// and refuses later ones, so that none writes to the stores once they
// close.
// Appends are not pipelined (the cluster transport runs concurrent calls
// concurrently, so pipelined appends could arrive out of order): raft
// sends each follower one AppendEntries, of up to 64 entries, at a time.
// One call is bounded by Config.CallTimeout.
//
// InstallSnapshot streams the snapshot in chunks of at most 1 MiB, one
// call each, in order, the first carrying the request; the follower
// appends them to a file of its own, refusing a snapshot larger than
// Config.MaxSnapshotSize (1 GiB) at the first chunk and any byte past the
// announced size, and hands raft the whole file at the last chunk, whose
// call (bounded by Config.InstallTimeout) answers once the state machine
// has restored it. Each member has at most one transfer in progress; one
// idle for a minute is dropped.
//
// # Bootstrap
//
// Once per cluster, by the lowest member address, when it has no state,
// when a majority of the member list answers a status probe and none of
// them has state; it bootstraps a configuration of itself alone and adds
// the others as they answer (see bootstrap.go for the rule and why it is
// not raft's "every server bootstraps with the same list"). A standalone
// node, given the list of itself, bootstraps the same way. A node that has
// state, after a restart, never bootstraps again (raft.HasExistingState).
//
// # Membership
//
// SetMembers gives the node the member list (the server feeds it from the
// member table). The leader alone changes the raft configuration, one
// committed change at a time: a listed member that answers is added as a
// nonvoter, made a voter once caught up, and a server gone from the list
// for Config.RemoveAfter is removed — the leader itself only after handing
// its leadership over (see members.go). A member holding another cluster's
// state (a higher term) is not added. A removed server keeps running as a
// follower without a vote, and is added again if the list has it again.
//
// # Writes and reads
//
// Apply commits a command from any node: on the leader it goes to raft; on
// a follower it is forwarded to the leader (raft.forward) and answered with
// the leader's result. Concurrent writes are committed together: a set of
// workers takes whatever waits (up to 64 commands), the leader gives a
// batch to raft at once and raft merges concurrent batches again (one disk
// write and one AppendEntries for many writes), and a follower forwards a
// batch as one message. What the state machine's Apply returns becomes
// Apply's result on the leader, as bytes (a []byte as it is, anything else
// through Config.EncodeResult), so that every node's Apply returns the
// same; an error it returns makes Apply fail with ErrRejected and its
// text, on the leader as on a follower. A command is at most
// MaxCommandSize.
//
// ReadBarrier, with Config.LeaderReads, makes the next read of the state
// machine linearizable: the leader commits a barrier (one for all the
// reads waiting with it) and names the index its state machine reached,
// and the node waits until its own state machine has applied as much (the
// snapshots this package writes carry that index, so a node restored from
// one knows it). Without LeaderReads, reads see this node's state machine
// as it is.
//
// # Failures
//
// A write or read not done within Config.ApplyTimeout (5 s) fails with
// ErrNoQuorum, which the HTTP and gRPC layers answer with 503: while there
// is no leader the ops wait for one (woken when raft observes a leader);
// a leader that cannot reach a quorum steps down within its lease
// (Config.LeaderLeaseTimeout) and its pending writes fail at once; and a
// node that has had no leader for ApplyTimeout fails writes at once
// instead of making each wait. An op never reached the leader (no leader
// yet, the leader changed, the transport could not connect) is tried again
// within its deadline; one that may have reached raft is not, so a write
// that failed with ErrNoQuorum may still be applied — commands should be
// safe to apply twice. Stop ends everything the node started: Apply and
// ReadBarrier fail with ErrStopped, the writes raft holds are answered
// first, then raft and the stores close.
//
// # Metrics
//
// With Config.Metrics: raft's state (sextant_raft_state, _leader_known,
// _term, _commit_index, _applied_index, _last_index,
// _last_contact_seconds, _servers{suffrage}), read at each scrape, and
// counters of writes (sextant_raft_applies_total{result},
// _apply_duration_seconds, _forwarded_total), received snapshots
// (_snapshot_installs_total{result}), refused messages
// (_refused_messages_total) and configuration changes
// (_configuration_changes_total{change,result}).
package consensus
