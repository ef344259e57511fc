package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/sdk/transport"
)

// Errors of a Router.
var (
	// ErrNoHandler is wrapped by the error answering a message of a kind no
	// component registered.
	ErrNoHandler = errors.New("no handler for cluster message kind")
	// ErrNoSnapshot answers a snapshot request when no component serves
	// snapshots: this node replicates nothing (a standalone node has no
	// Distro).
	ErrNoSnapshot = errors.New("no snapshot source: this node does not replicate its registry")
	// ErrNotMember is wrapped by the error refusing a message whose sender
	// is not a member of this node's cluster (or names none).
	ErrNotMember = errors.New("not a member of this node's cluster")
)

// SnapshotKind labels the snapshot requests among the messages the router
// refuses.
const SnapshotKind = "snapshot"

// AdmitFunc decides whether the router takes a message of kind from the
// address from: an error refuses it.
type AdmitFunc func(ctx context.Context, from, kind string) error

// HandlerFunc answers one message of a kind from the member from (its HTTP
// address).
type HandlerFunc func(ctx context.Context, from string, payload []byte) ([]byte, error)

// SnapshotFunc writes this node's snapshot for the member from to fn, chunk
// by chunk (see transport.Inbound).
type SnapshotFunc func(ctx context.Context, from string, fn func(chunk []byte) error) error

// Router is the transport's inbound side: it takes what other members send
// and hands each message to the component that registered its kind, and
// snapshot requests to the one snapshot source. Components register while
// the server is wired, before anything starts — the cluster its health
// reports, Distro its syncs, verifications and snapshot — so the router is
// complete before the transport delivers the first message, and no
// component needs to know of another. Request forwarding and Raft register
// their own kinds the same way.
//
// Registering a kind twice, or a second snapshot source, is a wiring
// mistake and returns an error.
//
// Peer input is input: before a handler sees a message, the router refuses
// one without a sender, and the Cluster (New installs its admission) one
// whose sender is not another member of the table. Refusals are counted by
// kind in the collector Metrics returns.
type Router struct {
	mu       sync.RWMutex
	handlers map[string]HandlerFunc
	snapshot SnapshotFunc
	admit    AdmitFunc
	refused  *prometheus.CounterVec
}

var _ transport.Inbound = (*Router)(nil)

// NewRouter returns a router with nothing registered; it refuses only
// messages without a sender until an admission is set (cluster.New sets the
// member table's).
func NewRouter() *Router {
	return &Router{handlers: make(map[string]HandlerFunc), refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sextant_cluster_refused_messages_total",
		Help: "Messages from the cluster port refused for their sender (none, or not a member), by kind (report, sync, verify, snapshot, other).",
	}, []string{"kind"})}
}

// Metrics returns the router's metrics, for whoever registers them (Distro
// does, as members talk only where it runs).
func (r *Router) Metrics() prometheus.Collector { return r.refused }

// setAdmission makes fn decide which senders are taken.
func (r *Router) setAdmission(fn AdmitFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.admit = fn
}

// check refuses a message of kind (label, in the counter) from an address
// that is none, or that the admission refuses.
func (r *Router) check(ctx context.Context, admit AdmitFunc, from, kind, label string) error {
	var err error
	switch {
	case from == "":
		err = fmt.Errorf("cluster: refused a %q message without its sender's address: %w", kind, ErrNotMember)
	case admit != nil:
		err = admit(ctx, from, kind)
	}
	if err != nil {
		r.refused.WithLabelValues(label).Inc()
	}
	return err
}

// Register registers fn to answer the messages of kind. (Handle, the
// transport's entry point, is the transport.Inbound method.)
func (r *Router) Register(kind string, fn HandlerFunc) error {
	if fn == nil {
		return fmt.Errorf("cluster: nil handler for message kind %q", kind)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, taken := r.handlers[kind]; taken {
		return fmt.Errorf("cluster: message kind %q has a handler already", kind)
	}
	r.handlers[kind] = fn
	return nil
}

// RegisterSnapshot registers fn as the source of this node's snapshots.
func (r *Router) RegisterSnapshot(fn SnapshotFunc) error {
	if fn == nil {
		return errors.New("cluster: nil snapshot source")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snapshot != nil {
		return errors.New("cluster: a snapshot source is registered already")
	}
	r.snapshot = fn
	return nil
}

// Handle hands a message from a member to the handler of its kind; a
// sender that is not a member is refused with an error wrapping
// ErrNotMember, a kind nobody registered with one wrapping ErrNoHandler. It
// implements transport.Inbound.
func (r *Router) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	r.mu.RLock()
	fn, admit := r.handlers[kind], r.admit
	r.mu.RUnlock()
	label := kind
	if fn == nil {
		label = "other" // the label's values stay few whatever callers send
	}
	if err := r.check(ctx, admit, from, kind, label); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w %q", ErrNoHandler, kind)
	}
	return fn(ctx, from, payload)
}

// Snapshot writes this node's snapshot for from to fn; it refuses a sender
// that is not a member as Handle does, and returns ErrNoSnapshot when no
// source is registered. It implements transport.Inbound.
func (r *Router) Snapshot(ctx context.Context, from string, fn func(chunk []byte) error) error {
	r.mu.RLock()
	source, admit := r.snapshot, r.admit
	r.mu.RUnlock()
	if err := r.check(ctx, admit, from, SnapshotKind, SnapshotKind); err != nil {
		return err
	}
	if source == nil {
		return ErrNoSnapshot
	}
	return source(ctx, from, fn)
}
