// Package forward sends each write of an HTTP API client to the node
// responsible for the client, and moves that responsibility when the
// membership changes.
//
// A client of the HTTP API (the Nacos 1.x Open API; naming.HTTPClientID,
// "ip:port#true") has no connection to live on, so in a cluster one node is
// made responsible for it: the one rendezvous hashing of its id picks among
// the UP members (cluster.Owner). A member joining or leaving moves only the
// clients it wins or held.
//
//   - Writes. A register, deregister, update or beat that reaches a node not
//     responsible for its client is forwarded — its parsed intent, not the
//     HTTP request — over the cluster transport (message kind "forward") to
//     the responsible node, which checks it again as input (the registry
//     validates it as it validates a request, and the node must itself see
//     that it is responsible) and applies it; the client gets that node's
//     answer. When the responsible node cannot be reached, or does not see
//     itself responsible yet (views of the membership converge within a
//     report interval; the write is sent again, to whichever node this one
//     then sees responsible, for up to CallTimeout, in both cases), the
//     write is answered 503 and the client retries.
//     Reads are served by every node from its own registry.
//   - Beats. The responsible node holds the client as its own: it runs the
//     beat checks (Responsible is health.Config.Owns) and replicates it
//     through Distro as any client of its own.
//   - Handoff. A node holds a client as its own only after its former owner
//     gave it up, or when that owner is DOWN or no longer a member. The node
//     now responsible for a client that it holds as a replica of another
//     node's takes it over at the client's next write (a beat, which the
//     client sends to any node): it asks the owner to release it (kind
//     "forward", op release; the owner agrees only if it too sees the asker
//     responsible, and turns its client into a replica of the asker's), and
//     adopts what it is given; the owner being DOWN or gone, it adopts the
//     replica it holds. Without writes, each node hands over itself, every
//     Interval, the clients it has not been responsible for during Grace:
//     it releases them and sends them to the responsible node (op adopt),
//     which adopts them, or keeps its own copy when it already holds the
//     client as its own; what is refused is taken back. And each node adopts
//     at once the replicas it is responsible for whose owner is DOWN or
//     gone: a killed owner's clients stay registered, beat-checked by their
//     new owner, while they beat any node. A released client's beat clock
//     moves with it (each instance's silence); one adopted from a replica
//     starts its clock at the adoption. A node about to create a client it
//     holds nothing of, while its registry loads or within twice Grace of a
//     change of the UP members, first asks the members to release it.
//   - Replicas follow. A replica belongs to the member that sent it (see
//     naming's replica.go): once a client moved, the former owner tells the
//     other members (op moved), which re-home their replica to the new
//     owner, once they know it as a member, so that its syncs are taken
//     (until then they hold the replica against the former owner's
//     verifications, which no longer list it);
//     for a DOWN or gone owner the adopter does, and each member takes its
//     word once its own view sees the adopter responsible (one may see the
//     owner DOWN before another).
//
// A client is thus never its own on two nodes that can reach each other:
// it is released before it is adopted. Two nodes that each see the other
// DOWN (a partition) may both hold one; when they see each other again, the
// one not responsible hands it over and the other keeps its own.
package forward

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
)

// Kind is the cluster message kind of forwarded writes and handoffs.
const Kind = "forward"

// Defaults for what a Config leaves zero.
const (
	DefaultCallTimeout = 3 * time.Second
	DefaultInterval    = time.Second
	DefaultGrace       = 6 * time.Second
)

// maxBatch bounds the clients of one release, adopt or moved message.
const maxBatch = 500

// Members is what forwarding needs of the member table (cluster.Cluster).
type Members interface {
	Self() string
	// Owner returns the UP member responsible for key.
	Owner(key string) string
	Members() []cluster.Member
}

// Config configures a Forwarder.
type Config struct {
	Registry *naming.Registry
	// Members and Transport are the cluster's; a nil Transport makes a
	// standalone forwarder, which applies every write here.
	Members   Members
	Transport cluster.Caller
	// Router takes what the members send; New registers Kind.
	Router *cluster.Router
	// CallTimeout bounds a forwarded write, and a handover.
	CallTimeout time.Duration
	// Interval is how often the node looks for clients to hand over or
	// adopt.
	Interval time.Duration
	// Grace is how long a node keeps a client it is not responsible for
	// before it hands it over itself (the client's own writes move it
	// sooner). Longer than it takes a member's failed reports to make it
	// DOWN, it keeps a member's brief absence from moving its clients.
	Grace time.Duration
	// Ready reports whether this node's registry is loaded (Distro's
	// start-up snapshot); nil means it is. Until then, and for twice Grace
	// after the UP members change, a node that holds nothing of a client it
	// must write asks the members whether one holds it.
	Ready   func() bool
	Now     func() time.Time
	Logger  hclog.Logger
	Metrics prometheus.Registerer // none when nil
}

// Forwarder routes the writes of HTTP clients and moves their
// responsibility.
type Forwarder struct {
	cfg     Config
	reg     *naming.Registry
	log     hclog.Logger
	self    string
	locks   *keyLocks
	metrics *metrics
	notices chan move

	mu      sync.Mutex
	notMine map[string]time.Time // clients of this node it is not responsible for, since when
	// pendingMoves are the moves of replicas this node's view does not
	// agree with yet, by client id.
	pendingMoves map[string]pendingMove
	upSet        string    // the UP members at the last sweep
	changedAt    time.Time // when they last changed

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// move says that a client's owner changed from From to To. Sent by From
// (the owner gives its replicas away) it is taken as is; sent by To (the
// adopter, From being DOWN or gone) once the receiver too sees To
// responsible.
type move struct {
	ID   string `json:"id"`
	From string `json:"from"`
	To   string `json:"to"`
}

// New returns a forwarder registered on cfg.Router (when clustered); call
// Start to run its handoffs.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Registry == nil {
		return nil, errors.New("forward: no registry")
	}
	if cfg.Transport != nil && (cfg.Members == nil || cfg.Router == nil) {
		return nil, errors.New("forward: a clustered forwarder needs the member table and the router")
	}
	cfg.CallTimeout = orDefault(cfg.CallTimeout, DefaultCallTimeout)
	cfg.Interval = orDefault(cfg.Interval, DefaultInterval)
	cfg.Grace = orDefault(cfg.Grace, DefaultGrace)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	f := &Forwarder{cfg: cfg, reg: cfg.Registry, log: cfg.Logger, locks: newKeyLocks(), notices: make(chan move, 4*maxBatch),
		notMine: map[string]time.Time{}, pendingMoves: map[string]pendingMove{}, changedAt: cfg.Now()}
	var err error
	if f.metrics, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	if cfg.Transport != nil {
		f.self = cfg.Members.Self()
		if err := cfg.Router.Register(Kind, f.handle); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Local returns a forwarder of a standalone node: every write is applied to
// reg.
func Local(reg *naming.Registry) *Forwarder {
	f, err := New(Config{Registry: reg})
	if err != nil {
		panic(err) // a registry and no cluster: cannot fail
	}
	return f
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (f *Forwarder) clustered() bool { return f.cfg.Transport != nil }

// Responsible reports whether this node is responsible for the HTTP client
// clientID: health.Config.Owns, so that only the responsible node runs a
// client's beat checks.
func (f *Forwarder) Responsible(clientID string) bool {
	return !f.clustered() || f.cfg.Members.Owner(clientID) == f.self
}

// Start runs the handoffs every Interval until Stop.
func (f *Forwarder) Start(context.Context) error {
	if !f.clustered() {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Go(func() {
		ticker := time.NewTicker(f.cfg.Interval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				f.Sweep(ctx)
			}
		}
	})
	f.wg.Go(func() { f.sendNotices(ctx) })
	return nil
}

// Stop ends the handoffs, waiting for one in progress.
func (f *Forwarder) Stop(context.Context) error {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	return nil
}

// UnavailableError refuses a write that cannot be applied now: the node
// responsible for its client cannot be reached, or responsibility for it is
// moving. The HTTP API answers it 503: the client retries.
type UnavailableError struct {
	ClientID string
	Node     string // the node responsible for the client, as this node sees it
	Reason   string
	// disagreed is set when Node sees another node responsible; resend
	// when the write may be sent again (Node disagreed, or was not reached).
	disagreed, resend bool
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("client %s cannot be served now: its responsible node %s %s; retry", e.ClientID, e.Node, e.Reason)
}

// ErrUnknownOp refuses a Write whose Op is none of the four.
var ErrUnknownOp = errors.New("forward: unknown write")
