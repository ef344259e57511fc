// Package cluster keeps the member table of a Sextant cluster: which nodes
// there are (as the membership plugin says) and how each is doing (from the
// health reports the nodes exchange through the transport plugin): UP,
// SUSPICIOUS after a failed report, DOWN after three or a refused connection.
package cluster

import (
	"context"
	"errors"
	"hash/fnv"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

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

// Member is one node of the cluster.
type Member struct {
	Address    string // HTTP address, host:port
	State      State
	Self       bool
	Failures   int       // failed reports in a row
	LastReport time.Time // last successful report, either way
}

// Config configures a Cluster.
type Config struct {
	Self string // this node's HTTP address
	// LocalIPs lists this machine's addresses; net.InterfaceAddrs when nil.
	LocalIPs       func() []string
	Version        string // sent in reports
	ReportInterval time.Duration
	Transport      Caller
	Logger         hclog.Logger
}

// Cluster is the member table.
type Cluster struct {
	cfg Config
	log hclog.Logger

	mu       sync.Mutex
	members  map[string]*Member
	known    chan struct{} // closed once the first member list arrived
	watchers []func()      // told of every change of the table

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a cluster of this node alone until SetMembers says otherwise.
func New(cfg Config) *Cluster {
	return &Cluster{
		cfg:     cfg,
		log:     cfg.Logger,
		members: map[string]*Member{cfg.Self: {Address: cfg.Self, State: Up, Self: true}},
		known:   make(chan struct{}),
	}
}

// Self is this node's HTTP address.
func (c *Cluster) Self() string { return c.cfg.Self }

// OnChange registers fn to be called after every change of the table (a
// member added, removed or changing state). Call it before Start.
func (c *Cluster) OnChange(fn func()) { c.watchers = append(c.watchers, fn) }

// SetMembers replaces the member list (what the membership plugin reports).
// This node stays in the table whatever the list says; an address that is
// this node under another name (its port on one of this machine's
// addresses) is left out, with a warning: cluster.self should name it.
func (c *Cluster) SetMembers(addresses []string) {
	c.mu.Lock()
	next := map[string]*Member{c.cfg.Self: c.members[c.cfg.Self]}
	for _, a := range addresses {
		switch m, ok := c.members[a]; {
		case ok:
			next[a] = m
		case a == c.cfg.Self:
		case c.isSelf(a):
			c.log.Warn("a member is this node under another address; set cluster.self to it", "member", a, "self", c.cfg.Self)
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
	c.mu.Unlock()
	if changed {
		c.log.Info("members", "members", addresses)
		c.notify()
	}
}

// isSelf reports whether address has this node's port and one of this
// machine's addresses.
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

// Owner returns the UP member responsible for key, by rendezvous hashing:
// every node computes the same answer, and a member joining or leaving moves
// only the keys it wins or held (where modulo-N would move almost all).
func (c *Cluster) Owner(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best string
	var bestScore uint64
	for a, m := range c.members {
		if m.State != Up && !m.Self {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(a))
		if score := h.Sum64(); best == "" || score > bestScore || score == bestScore && a < best {
			best, bestScore = a, score
		}
	}
	return best
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
// interval, and keeps their states from the results.
func (c *Cluster) Start(context.Context) error {
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
				c.record(peer, err)
			}
		})
	}
	wg.Wait()
}

// record updates a member's state after a report to it.
func (c *Cluster) record(address string, err error) {
	c.mu.Lock()
	m := c.members[address]
	if m == nil {
		c.mu.Unlock()
		return
	}
	before := m.State
	switch {
	case err == nil:
		m.State, m.Failures, m.LastReport = Up, 0, time.Now()
	case refused(err):
		m.State, m.Failures = Down, m.Failures+1
	default:
		m.Failures++
		m.State = Suspicious
		if m.Failures >= maxFailures {
			m.State = Down
		}
	}
	after := m.State
	c.mu.Unlock()
	if before != after {
		c.log.Info("member state changed", "member", address, "from", before, "to", after, "error", err)
		c.notify()
	}
}

// HandleReport takes a peer's report: hearing from it means it is UP.
func (c *Cluster) HandleReport(from string, payload []byte) ([]byte, error) {
	var r clusterv1.Report
	if err := proto.Unmarshal(payload, &r); err != nil {
		return nil, err
	}
	c.record(from, nil)
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

func (c *Cluster) notify() {
	for _, fn := range c.watchers {
		fn()
	}
}

// refused reports whether a transport error says the peer could not be
// reached at all (the connection was refused, or not made in time): the
// node is not running, so it is DOWN at once.
func refused(err error) bool {
	return errors.Is(err, transport.ErrUnreachable) || strings.Contains(err.Error(), "connection refused")
}
