// Package cluster keeps the member table of a Sextant cluster: which nodes
// there are (as the membership plugin says) and how each is doing (from the
// health reports the nodes exchange through the transport plugin): UP,
// SUSPICIOUS after a failed report, DOWN after three or when the transport
// says the peer is unreachable. Its Router takes what the other members
// send, and only that: a message from an address that is not another
// member of the table is refused (see Cluster.admit).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/core/notify"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
	"github.com/sextantd/sextant/sdk/transport"
)

// State is how a member is doing.
type State string

// The states of a member, as in Nacos.
const (
	Up         State = "UP"
	Suspicious State = "SUSPICIOUS"
	Down       State = "DOWN"
)

// maxFailures is how many failed reports in a row make a member DOWN.
const maxFailures = 3

// PortOffset is how far above a node's HTTP port its cluster port is.
const PortOffset = 1001

// ReportKind is the transport kind of health reports.
const ReportKind = "report"

// Caller is what the cluster needs of the transport.
type Caller interface {
	Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error)
}

// MembersReported is the event of a member list reported by the membership
// provider: the addresses of the nodes that form the cluster.
type MembersReported struct {
	Addresses []string
}

// Member is one node of the cluster.
type Member struct {
	Address    string // HTTP address, host:port
	State      State
	Self       bool
	Failures   int       // failed reports in a row
	LastReport time.Time // last successful report, either way
	LastError  string    // why the last failed report failed; "" once one succeeds
}

// Config configures a Cluster.
type Config struct {
	Self string // this node's HTTP address
	// LocalIPs lists the addresses this node listens on: its bind address,
	// or when it listens on every interface this machine's addresses
	// (LocalIPs, the default when nil). A member with this node's port on
	// one of them is this node.
	LocalIPs       func() []string
	Version        string // sent in reports
	ReportInterval time.Duration
	Transport      Caller
	// Router takes the reports other members send; New registers ReportKind.
	Router *Router
	// Bus brings the member lists (MembersReported); New subscribes to them.
	Bus    *notify.Bus
	Logger hclog.Logger
}

// Cluster is the member table.
type Cluster struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	members map[string]*Member
	known   chan struct{} // closed once the first member list arrived
	// failed is closed, with err set, once a member list held this node
	// under another address (see SetMembers).
	failed chan struct{}
	err    error

	// The refused senders not logged yet, and when the last line was.
	lastRefusal atomic.Int64 // unix nanoseconds
	refusals    atomic.Int64

	// started is set by Start: until then this node answers no report, so
	// that no member sees it UP (and makes it responsible for clients)
	// while its plugins and Distro are still starting.
	started atomic.Bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a cluster of this node alone until a member list says
// otherwise. It registers the health reports on cfg.Router and subscribes to
// MembersReported on cfg.Bus, which brings them on the bus's shared queue
// (they are rare); call it before the bus starts.
func New(cfg Config) (*Cluster, error) {
	c := &Cluster{
		cfg:     cfg,
		log:     cfg.Logger,
		members: map[string]*Member{cfg.Self: {Address: cfg.Self, State: Up, Self: true}},
		known:   make(chan struct{}),
		failed:  make(chan struct{}),
	}
	err := errors.Join(
		cfg.Router.Register(ReportKind, func(_ context.Context, from string, payload []byte) ([]byte, error) {
			return c.handleReport(from, payload)
		}),
		notify.UseSharedQueue[MembersReported](cfg.Bus),
		notify.Subscribe(cfg.Bus, "cluster", func(e MembersReported) { c.SetMembers(e.Addresses) }),
	)
	if err != nil {
		return nil, err
	}
	cfg.Router.setAdmission(c.admit)
	return c, nil
}

// memberListWait bounds how long a message that arrives before this node's
// first member list waits for it.
const memberListWait = 10 * time.Second

// refusalLogInterval spaces the log lines about refused senders.
const refusalLogInterval = 10 * time.Second

// admit takes a message of kind from another member of the table, and
// refuses one from any other address, this node's own included, with an
// error wrapping ErrNotMember that names the address. A message that
// arrives before the first member list (the membership plugin reports it
// shortly after start) waits for it, within ctx and memberListWait, so that
// a member is not refused for being early.
func (c *Cluster) admit(ctx context.Context, from, kind string) error {
	err := c.awaitFirstList(ctx)
	if err == nil && !c.IsMember(from) {
		err = ErrNotMember
		if from == c.cfg.Self {
			err = fmt.Errorf("%w: it is this node's own address", ErrNotMember)
		}
	}
	if err == nil {
		return nil
	}
	err = fmt.Errorf("cluster: refused a %q message from %s: %w", kind, from, err)
	c.logRefusal(from, kind, err)
	return err
}

// awaitFirstList waits for the first member list, within ctx and
// memberListWait.
func (c *Cluster) awaitFirstList(ctx context.Context) error {
	select {
	case <-c.known:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, memberListWait)
	defer cancel()
	if err := c.AwaitMembers(ctx); err != nil {
		return fmt.Errorf("%w: this node has no member list yet", ErrNotMember)
	}
	return nil
}

// logRefusal logs a refused sender, at most one line every
// refusalLogInterval.
func (c *Cluster) logRefusal(from, kind string, err error) {
	now := time.Now().UnixNano()
	last := c.lastRefusal.Load()
	if now-last >= int64(refusalLogInterval) && c.lastRefusal.CompareAndSwap(last, now) {
		c.log.Warn("refused a message from an address that is not a member", "from", from, "kind", kind, "error", err,
			"refused_since_last_line", c.refusals.Swap(0)+1)
	} else {
		c.refusals.Add(1)
	}
}

// IsMember reports whether address is another member of the table (not this
// node).
func (c *Cluster) IsMember(address string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[address]
	return m != nil && !m.Self
}

// Self is this node's HTTP address.
func (c *Cluster) Self() string { return c.cfg.Self }

// SetMembers replaces the member list with what the membership provider
// reported (each MembersReported event is applied with it).
//
// This node stays in the table whatever the list says, under its own
// address (Config.Self). A listed address that is this node under another
// name — this node's port on one of its listening addresses (LocalIPs) — is
// never a second member: it is left out, and the cluster fails (Failed,
// Err), since the other members know this node by that address while it
// calls itself by its own, which would split their views. The error names
// the address to set as cluster.self.
func (c *Cluster) SetMembers(addresses []string) {
	c.mu.Lock()
	next := map[string]*Member{c.cfg.Self: c.members[c.cfg.Self]}
	var aliases []string
	for _, a := range addresses {
		switch m, ok := c.members[a]; {
		case a == c.cfg.Self:
		case c.isSelf(a):
			aliases = append(aliases, a)
		case ok:
			next[a] = m
		default:
			next[a] = &Member{Address: a, State: Up}
		}
	}
	changed := !slices.Equal(slices.Sorted(maps.Keys(next)), slices.Sorted(maps.Keys(c.members)))
	c.members = next
	select {
	case <-c.known:
	default:
		close(c.known)
	}
	var failed error
	if len(aliases) > 0 && c.err == nil {
		slices.Sort(aliases)
		c.err = fmt.Errorf("cluster: the member list holds this node as %s as well as %s: the members must know each node "+
			"by one address; set cluster.self = %q if the others know it by that, or take %s out of the list",
			strings.Join(aliases, " and "), c.cfg.Self, aliases[0], strings.Join(aliases, " and "))
		failed = c.err
		close(c.failed)
	}
	table := slices.Sorted(maps.Keys(next))
	c.mu.Unlock()
	if failed != nil {
		c.log.Error("this node is in the member list under another address", "error", failed)
	}
	if changed {
		c.log.Info("members", "members", table)
	}
}

// Failed is closed once a member list held this node under an address
// other than its own (see SetMembers): the node cannot go on as a member,
// and Err says why.
func (c *Cluster) Failed() <-chan struct{} { return c.failed }

// Err returns why the cluster failed, once Failed is closed; nil before.
func (c *Cluster) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// isSelf reports whether address has this node's port and one of its
// listening addresses (LocalIPs).
func (c *Cluster) isSelf(address string) bool {
	host, port, err := net.SplitHostPort(address)
	_, selfPort, selfErr := net.SplitHostPort(c.cfg.Self)
	if err != nil || selfErr != nil || port != selfPort {
		return false
	}
	return slices.Contains(c.localIPs(), host)
}

// AwaitMembers waits for the first member list, or ctx.
func (c *Cluster) AwaitMembers(ctx context.Context) error {
	select {
	case <-c.known:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Members returns the table, sorted by address.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// Peers returns the other members, UP ones only when upOnly.
func (c *Cluster) Peers(upOnly bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for a, m := range c.members {
		if !m.Self && (!upOnly || m.State == Up) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// IsUp reports whether the member at address is UP.
func (c *Cluster) IsUp(address string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[address]
	return m != nil && m.State == Up
}

// Owner returns the UP member responsible for key, by rendezvous
// (highest-random-weight) hashing over the UP members, this node always
// among them: every node with the same view computes the same answer, and a
// member joining or leaving moves only the keys it wins or held (where
// modulo-N would move almost all, Nacos issue #7242).
func (c *Cluster) Owner(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best string
	var bestScore uint64
	for a, m := range c.members {
		if m.State != Up && !m.Self {
			continue
		}
		if score := rendezvousScore(key, a); best == "" || score > bestScore || score == bestScore && a < best {
			best, bestScore = a, score
		}
	}
	return best
}

// Rendezvous returns the one of members that rendezvous hashing makes
// responsible for key ("" when there are none): what Owner computes over the
// UP members.
func Rendezvous(key string, members []string) string {
	var best string
	var bestScore uint64
	for _, a := range members {
		if score := rendezvousScore(key, a); best == "" || score > bestScore || score == bestScore && a < best {
			best, bestScore = a, score
		}
	}
	return best
}

// rendezvousScore is member's weight for key: FNV-1a of both, through
// MurmurHash3's 64-bit finalizer. FNV-1a alone mixes its last bytes too
// little: members whose addresses differ only in their last characters (the
// ports of one host) would win very unequal shares.
func rendezvousScore(key, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(member))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Address returns the cluster address (host:port+1001) of a member's HTTP
// address.
func Address(httpAddress string) (string, error) {
	host, port, err := net.SplitHostPort(httpAddress)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p+PortOffset)), nil
}

// Start sends this node's reports to every other member every report
// interval, and keeps their states from the results; from now on it
// answers theirs.
func (c *Cluster) Start(context.Context) error {
	c.started.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ticker := time.NewTicker(c.cfg.ReportInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				c.reportAll(ctx)
			}
		}
	}()
	return nil
}

// Stop ends the reports.
func (c *Cluster) Stop(context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	return nil
}

func (c *Cluster) reportAll(ctx context.Context) {
	payload, err := proto.Marshal(&clusterv1.Report{Version: c.cfg.Version})
	if err != nil {
		c.log.Error("encoding a report", "error", err)
		return
	}
	var wg sync.WaitGroup
	for _, peer := range c.Peers(false) {
		wg.Go(func() {
			target, err := Address(peer)
			if err == nil {
				callCtx, cancel := context.WithTimeout(ctx, c.cfg.ReportInterval)
				_, err = c.cfg.Transport.Call(callCtx, target, ReportKind, payload)
				cancel()
			}
			if ctx.Err() == nil {
				c.record(peer, err, "it answered this node's health report")
			}
		})
	}
	wg.Wait()
}

// record updates a member's state after a report to it or from it; ok says
// what happened when err is nil, for the log line of a state change, which
// says why.
func (c *Cluster) record(address string, err error, ok string) {
	c.mu.Lock()
	m := c.members[address]
	if m == nil {
		c.mu.Unlock()
		return
	}
	before := m.State
	why := ok
	switch {
	case err == nil:
		m.State, m.Failures, m.LastReport, m.LastError = Up, 0, time.Now(), ""
	case errors.Is(err, transport.ErrUnreachable):
		// The peer could not be reached at all (the connection was refused,
		// or not made in time): it is not running, so it is DOWN at once.
		m.State, m.Failures = Down, m.Failures+1
		why = "it cannot be reached: " + err.Error()
	default:
		m.Failures++
		m.State = Suspicious
		if m.Failures >= maxFailures {
			m.State = Down
		}
		why = fmt.Sprintf("%d health reports in a row failed (%d make it DOWN), the last: %v", m.Failures, maxFailures, err)
	}
	if err != nil {
		m.LastError = err.Error()
	}
	after := m.State
	c.mu.Unlock()
	if before != after {
		c.log.Info("member state changed", "member", address, "from", before, "to", after, "reason", why)
	}
}

// errStarting answers a report that comes before Start: the sender counts a
// failed report, and does not see this node UP yet.
var errStarting = errors.New("cluster: this node is still starting")

// handleReport takes a peer's report: hearing from it means it is UP.
func (c *Cluster) handleReport(from string, payload []byte) ([]byte, error) {
	if !c.started.Load() {
		return nil, errStarting
	}
	var r clusterv1.Report
	if err := proto.Unmarshal(payload, &r); err != nil {
		return nil, err
	}
	c.record(from, nil, "it sent this node a health report")
	return proto.Marshal(&clusterv1.ReportAnswer{Version: c.cfg.Version})
}

func (c *Cluster) localIPs() []string {
	if c.cfg.LocalIPs != nil {
		return c.cfg.LocalIPs()
	}
	return LocalIPs()
}

// LocalIPs lists this machine's IP addresses.
func LocalIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP.String())
		}
	}
	return out
}
