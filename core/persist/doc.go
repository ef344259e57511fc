// Package persist is the replicated state machine of the Raft store: the
// persistent instances (Nacos's ephemeral=false), the service definitions
// and the namespaces, as every member holds them after applying the same log.
// core/consensus runs the Raft node and gives it the FSM; the server mirrors
// what changes into the registry (core/naming) and pushes it to subscribers.
//
// # State
//
// Services, each identified by naming.Service (namespace, group, name), with
// an optional ServiceDefinition (protection threshold, metadata, selector),
// persistent Instances keyed by Address (ip, port, cluster), and
// ClusterDefinitions keyed by cluster name (the health checker of the
// cluster's persistent instances — TCP, HTTP or NONE, with the check port —
// and its metadata). A service exists while it is defined or has an
// instance; its cluster definitions stay with it until it is removed, and
// keep its entry (not its existence) while it has neither. Namespaces are
// those an operator created; the public one is built in, never stored, and
// cannot be changed or removed. Services and instances may be in any valid
// namespace, created or not, as in Nacos. Everything is held normalized
// (naming's defaults applied, empty metadata as nil).
//
// # Ops and entries
//
// A log entry is a batch of ops, so a leader can commit many writes in one
// entry: PutInstance, RemoveInstance, SetHealth, PutService, RemoveService,
// PutCluster, PutNamespace, RemoveNamespace (ops.go). Encode writes an entry; it is
// JSON, {"v":1,"ops":[{"op":"put_instance","service":{…},"instance":{…}},…]}
// (codec.go). Apply applies the ops in order, each on the state the ones
// before it left and each on its own, as Nacos applies a batch: a refused op
// leaves the others applied. Its Response has one result per op: nil, or
// why it was refused. Refusals are values, never panics: a
// *naming.InvalidError naming the bad field (and the limit's key when over
// one), or an error wrapping ErrNotFound, ErrExists,
// naming.ErrServiceNotEmpty, ErrNamespaceNotEmpty or ErrPublicNamespace. An
// entry that cannot be read at all (not the JSON of an entry, another
// Version, more than MaxOpsPerEntry ops) is refused whole (Response.Err,
// wrapping ErrBadEntry). The Puts take an Expect, so that a create
// (ExpectAbsent) and an update (ExpectPresent) keep their meaning however
// writers race.
//
// # Determinism
//
// Apply depends only on the state and the entry: no clock, no randomness,
// no I/O, no map order, no hook into other state. Each op is validated again
// in Apply (Validate, with naming's rules and limits), since an entry from
// the log is input as much as a request is: a NaN or infinite number, a bad
// address, a port out of range, oversized metadata is refused, never stored.
// Every member must therefore run with the same Config limits and
// naming.Limits. Only error messages may differ between members (which of
// two bad metadata keys is named); what is applied never does.
//
// The FSM cannot see ephemeral instances (they are not in the log). That a
// persistent instance must not take the address of an ephemeral one ("the
// instance 10.0.0.1:80 exists as ephemeral"), and the other way round, is
// for the writer to check against the registry before it proposes an op;
// the FSM guarantees only its own consistency.
//
// # Snapshots
//
// Snapshot copies the state's top-level maps under the lock; the services
// are shared with the copy and copied on write by the next Apply that
// changes them, so a snapshot costs one map copy, not one of every
// instance. Persist streams it as JSON lines (snapshot.go): a header with
// the format, version and log index; a record per namespace; a record per
// service with its definition, instances and cluster definitions; an end
// record with the counts. Equal states give equal bytes. Version 2 of the
// stream added the cluster definitions; a state without any is written as
// version 1, and Restore reads both.
//
// An op an older member does not know (put_cluster, for a member that
// predates cluster definitions) is refused by it alone, as an unknown op,
// while the others apply it: upgrade every member before using a new op. Restore reads a whole stream into a new
// state, validating every record as Apply validates ops, and only then
// replaces the state: a corrupt or truncated snapshot returns an error and
// leaves the state as it was.
//
// # Limits
//
// Config bounds the persistent instances of a service and in all, the
// services, the namespaces, the cluster definitions of a service and the
// ops of an entry (the Default… constants when 0). A Put that would go over a limit is refused with a
// *naming.InvalidError whose Limit is the key (LimitServices, …); what is
// stored is kept when a limit is lowered. Refusals are counted by reason in
// sextant_persist_refused_ops_total, in the collector Metrics returns.
//
// # Changes
//
// Config.OnChange is called after each Apply or ApplyBatch that changed
// something, and after each Restore, with the services and namespaces
// changed, outside the lock, in log order, one call at a time (see
// Config.OnChange).
package persist
