package gossip

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/sextantd/sextant/sdk/membership"
)

// How long a Watch waits, variables only for the package's tests.
var (
	// firstJoinWait bounds the wait for the first attempt to join before
	// the first list: a seed that answers gives the cluster's list at once;
	// one that does not costs no more than this.
	firstJoinWait = 2 * time.Second
	// maxMembers is MaxMembers.
	maxMembers = MaxMembers
)

// When a Watch ends: the join under way has this long to give up, and the
// others this long to hear that this node leaves. Watch must return within
// a second.
const (
	joinStopWait = 200 * time.Millisecond
	leaveTimeout = 400 * time.Millisecond
)

// maxSeedAddresses bounds the addresses one attempt to join dials, host
// names' included.
const maxSeedAddresses = 64

// Watch implements membership.Provider: it starts a memberlist node as self,
// joins through the seeds, and reports the members every change of the
// gossip; when ctx ends, the node leaves the gossip and stops. A second
// Watch waits for the first to end: both would listen on the same port.
func (p *Provider) Watch(ctx context.Context, self string, update func(members []string)) error {
	me, err := membership.ParseAddress(self, membership.DefaultPort)
	if err != nil {
		return fmt.Errorf("this node's address: %w", err)
	}
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.turn }()
	n, err := p.start(me)
	if err != nil {
		return err
	}
	defer n.stop()

	n.tryJoin()
	select {
	case <-n.firstJoin:
	case <-time.After(firstJoinWait):
	case <-ctx.Done():
		return ctx.Err()
	}
	reported := n.list()
	update(reported)
	ticker := time.NewTicker(time.Duration(p.cfg.RetryInterval))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.changed:
		case <-ticker.C:
			n.tryJoin()
		}
		if list := n.list(); ctx.Err() == nil && !slices.Equal(list, reported) {
			reported = list
			update(reported)
		}
	}
}

// node is one Watch's memberlist node, and what it knows of the others. It
// is memberlist's delegate: memberlist calls it, never concurrently, with
// its own lock held, so it must not call memberlist back nor block.
type node struct {
	*Provider
	me     string // this node's member address
	name   string // its name in the gossip
	meta   []byte
	seeds  []string // canonical host:port
	logger hclog.Logger

	ml       *memberlist.Memberlist
	mlLog    *logWriter
	local    string // the gossip address this node advertises
	changed  chan struct{}
	dialCtx  context.Context // ends when the Watch does: no dial outlives it
	stopDial context.CancelFunc

	tcpTimeout time.Duration // memberlist's, which bounds an attempt to join too
	firstJoin  chan struct{} // closed when the first attempt to join has ended

	mu       sync.Mutex
	members  map[string]string   // alive or suspect nodes' member addresses, by gossip name
	full     bool                // refusing peers past maxMembers (logged once while it lasts)
	refusals map[string]struct{} // peers refused and logged, by name and reason
	joining  chan struct{}       // closed when the attempt to join under way ends; nil when none is
	tried    bool                // an attempt to join has started
	alone    bool                // seeds tried with no success (logged once while it lasts)
	noSeeds  bool                // only this node to join through (logged once)
}

// maxLoggedRefusals bounds the refusals remembered so that each is logged
// once; past it, they are forgotten (and may be logged again).
const maxLoggedRefusals = 1024

// metadata is what a node's gossip metadata holds: its member address.
// Unknown fields are allowed, for versions to come.
type metadata struct {
	Member string `json:"member"`
}

// start binds the gossip port and starts the memberlist node of me.
func (p *Provider) start(me string) (*node, error) {
	host, port, _ := net.SplitHostPort(me)
	httpPort, _ := strconv.Atoi(port)
	selfIP, selfIsIP := netip.ParseAddr(host)

	// The gossip port, which a seed without a port has too (with port 0,
	// any free one, the seeds' is the default).
	gossipPort, seedPort := httpPort+PortOffset, httpPort+PortOffset
	if p.cfg.Port != nil {
		gossipPort, seedPort = *p.cfg.Port, cmp.Or(*p.cfg.Port, seedPort)
	} else if gossipPort > 65535 {
		return nil, fmt.Errorf("the gossip port would be this node's port %d + %d, above 65535: set config.port", httpPort, PortOffset)
	}
	bind := p.cfg.Bind
	if bind == "" {
		bind = "0.0.0.0"
		if selfIsIP == nil && selfIP.Is6() {
			bind = "::"
		}
	}
	seeds := make([]string, 0, len(p.cfg.Seeds))
	for _, s := range p.cfg.Seeds {
		addr, err := membership.ParseAddress(s, seedPort)
		if err != nil {
			return nil, fmt.Errorf("config.seeds: %w", err)
		}
		seeds = append(seeds, addr)
	}
	meta, err := json.Marshal(metadata{Member: me})
	if err != nil || len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("this node's address %q does not fit in the gossip's metadata", me)
	}
	n := &node{
		Provider:  p,
		me:        me,
		name:      p.cfg.Name,
		meta:      meta,
		seeds:     slices.Compact(slices.Sorted(slices.Values(seeds))),
		logger:    p.logger.With("self", me),
		changed:   make(chan struct{}, 1),
		members:   map[string]string{},
		refusals:  map[string]struct{}{},
		firstJoin: make(chan struct{}),
	}
	if n.name == "" {
		n.name = me
	}
	// The address the others reach this node at; memberlist picks a private
	// IP address of this machine when it is "" (bind 0.0.0.0 only).
	var advertise string
	switch ip := netip.MustParseAddr(bind); {
	case p.advertise.IsValid():
		advertise = p.advertise.Addr().String()
	case !ip.IsUnspecified():
		advertise = bind
	case selfIsIP == nil && !selfIP.IsUnspecified():
		advertise = selfIP.Unmap().String()
	case ip.Is6():
		return nil, fmt.Errorf("this node's address %s is a host name and bind is %s: set config.advertise", me, bind)
	}
	n.dialCtx, n.stopDial = context.WithCancel(context.Background())
	n.mlLog = newLogWriter(p.logger.Named("memberlist"))
	logger := log.New(n.mlLog, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{bind}, BindPort: gossipPort, Logger: logger})
	if err != nil {
		n.stopDial()
		return nil, fmt.Errorf("the gossip port: %w", err)
	}
	gossipPort = nt.GetAutoBindPort()

	conf := p.profile()
	n.tcpTimeout = conf.TCPTimeout
	conf.Name = n.name
	conf.BindAddr, conf.BindPort = bind, gossipPort
	conf.AdvertiseAddr, conf.AdvertisePort = advertise, cmp.Or(int(p.advertise.Port()), gossipPort)
	conf.Transport = &transport{NetTransport: nt, ctx: n.dialCtx}
	conf.SecretKey = p.key
	conf.Label = label
	conf.Delegate, conf.Events, conf.Alive = n, n, n
	conf.Logger = logger
	if n.ml, err = memberlist.Create(conf); err != nil {
		_ = nt.Shutdown()
		n.stopDial()
		return nil, fmt.Errorf("starting the gossip: %w", err)
	}
	local := n.ml.LocalNode()
	n.local = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	n.logger.Info("gossiping", "name", n.name, "bind", net.JoinHostPort(bind, strconv.Itoa(gossipPort)),
		"advertise", n.local, "seeds", n.seeds, "profile", cmp.Or(p.cfg.Profile, DefaultProfile), "encrypted", p.key != nil)
	if p.key == nil {
		n.logger.Warn("the gossip is not encrypted: anyone who reaches the gossip port can join the member list; set config.encrypt_key")
	}
	return n, nil
}

// stop leaves the gossip and stops the node, within a second.
func (n *node) stop() {
	n.stopDial()
	n.mu.Lock()
	joining := n.joining
	n.mu.Unlock()
	if joining != nil {
		select {
		case <-joining:
		case <-time.After(joinStopWait): // it ends on its own: its dials fail now
		}
	}
	if err := n.ml.Leave(leaveTimeout); err != nil {
		n.logger.Debug("leaving the gossip", "error", err)
	}
	n.mlLog.quiet.Store(true)
	if err := n.ml.Shutdown(); err != nil {
		n.logger.Warn("stopping the gossip", "error", err)
	}
	c := &n.counts
	n.logger.Info("left the gossip", "join_attempts", c.joins.Load(), "refused_peers", c.refused.Load(),
		"refused_over_limit", c.overLimit.Load(), "ignored_messages", c.ignored.Load())
}

// list returns the member list: every node alive or suspect, and self.
func (n *node) list() []string {
	n.mu.Lock()
	members := make([]string, 0, len(n.members)+1)
	for _, m := range n.members {
		members = append(members, m)
	}
	n.mu.Unlock()
	list, _ := membership.WithSelf(members, n.me)
	return list
}

// signal tells the Watch the members changed.
func (n *node) signal() {
	select {
	case n.changed <- struct{}{}:
	default: // one is pending
	}
}

// tryJoin starts an attempt to join through the seeds, unless one is under
// way or this node knows another member already.
func (n *node) tryJoin() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.joining != nil {
		return
	}
	if len(n.members) > 1 {
		if n.alone {
			n.alone = false
			n.logger.Info("in a cluster again", "members", len(n.members))
		}
		return
	}
	done := make(chan struct{})
	n.joining = done
	first := !n.tried
	n.tried = true
	n.counts.joins.Add(1)
	go func() {
		defer close(done)
		joined, err := n.join()
		n.mu.Lock()
		n.joining = nil
		switch {
		case joined > 0:
			n.alone = false
			n.logger.Info("joined the cluster", "seeds_answering", joined, "members", len(n.members))
		case err == nil && !n.noSeeds:
			n.noSeeds = true
			n.logger.Info("no seed but this node: waiting for the others to join through it")
		case err != nil && !n.alone:
			n.alone = true
			n.logger.Warn("cannot join through the seeds; trying again every retry_interval while alone", "error", err,
				"retry_interval", time.Duration(n.cfg.RetryInterval))
		case err != nil:
			n.logger.Debug("still cannot join through the seeds", "error", err)
		}
		n.mu.Unlock()
		if first {
			close(n.firstJoin)
		}
		n.signal()
	}()
}

// join resolves the seeds and joins through them; it returns how many
// answered, and an error when none did (nil when there was none to try:
// only this node).
func (n *node) join() (int, error) {
	ctx, cancel := context.WithTimeout(n.dialCtx, n.tcpTimeout)
	defer cancel()
	var addrs []string
	var errs []error
	for _, s := range n.seeds {
		host, port, _ := net.SplitHostPort(s)
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		for _, ip := range ips {
			if a := net.JoinHostPort(ip.Unmap().String(), port); a != n.local && len(addrs) < maxSeedAddresses {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return 0, errors.Join(errs...)
	}
	joined, err := n.ml.Join(addrs)
	if joined == 0 {
		return 0, errors.Join(append(errs, err)...)
	}
	return joined, nil
}

// transport is memberlist's, whose dials end with the Watch.
type transport struct {
	*memberlist.NetTransport
	ctx context.Context
}

// DialTimeout dials addr, within timeout and the Watch.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout dials a.Addr, within timeout and the Watch.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(t.ctx, "tcp", a.Addr)
}

// member returns the member address a peer's metadata holds, or why it
// holds none.
func member(meta []byte) (string, error) {
	if len(meta) == 0 {
		return "", errors.New("no metadata: not a Sextant node")
	}
	if len(meta) > memberlist.MetaMaxSize {
		return "", fmt.Errorf("metadata of %d bytes, over the %d a node may have", len(meta), memberlist.MetaMaxSize)
	}
	var m metadata
	if err := json.Unmarshal(meta, &m); err != nil {
		return "", fmt.Errorf("metadata is not a Sextant node's: %v", err)
	}
	addr, err := membership.ParseAddress(m.Member, 0)
	switch {
	case err != nil:
		return "", fmt.Errorf("metadata holds no member address: %v", err)
	case addr != m.Member:
		return "", fmt.Errorf("metadata holds the member address %q, not in its canonical form %q", m.Member, addr)
	}
	return addr, nil
}

// NotifyAlive implements memberlist.AliveDelegate: it refuses a peer that
// is not a Sextant node, that claims this node's address, or that is new
// while the gossip holds maxMembers already.
func (n *node) NotifyAlive(peer *memberlist.Node) error {
	if peer.Name == n.name {
		return nil // this node, or someone else's claim to its name, which memberlist refutes
	}
	addr, err := member(peer.Meta)
	switch {
	case err != nil:
	case checkName(peer.Name) != nil || peer.Name == "":
		err = errors.New("its name is empty, too long, or not printable")
	case addr == n.me:
		err = fmt.Errorf("it claims this node's address %s", n.me)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.counts.refused.Add(1)
		key := peer.Name + "\x00" + err.Error()
		if _, logged := n.refusals[key]; !logged {
			if len(n.refusals) >= maxLoggedRefusals {
				clear(n.refusals)
			}
			n.refusals[key] = struct{}{}
			n.logger.Warn("refused a peer of the gossip", "name", truncate(peer.Name), "gossip_address",
				net.JoinHostPort(peer.Addr.String(), strconv.Itoa(int(peer.Port))), "error", err)
		}
		return err
	}
	if _, known := n.members[peer.Name]; !known && len(n.members) >= maxMembers {
		n.counts.overLimit.Add(1)
		if !n.full {
			n.full = true
			n.logger.Warn("the gossip holds the most members there may be; refusing new ones until some leave",
				"limit", maxMembers, "refused", truncate(peer.Name))
		}
		return fmt.Errorf("the gossip holds %d members, the limit", maxMembers)
	}
	return nil
}

// truncate bounds a peer's name in a log line.
func truncate(name string) string {
	if len(name) > 64 {
		return name[:64] + "..."
	}
	return name
}

// NotifyJoin implements memberlist.EventDelegate.
func (n *node) NotifyJoin(peer *memberlist.Node) { n.set(peer) }

// NotifyUpdate implements memberlist.EventDelegate.
func (n *node) NotifyUpdate(peer *memberlist.Node) { n.set(peer) }

// set records a peer NotifyAlive admitted, under the address its metadata
// holds.
func (n *node) set(peer *memberlist.Node) {
	addr := n.me
	if peer.Name != n.name {
		var err error
		if addr, err = member(peer.Meta); err != nil {
			return // NotifyAlive refused it, and logged why
		}
	}
	n.mu.Lock()
	n.members[peer.Name] = addr
	n.mu.Unlock()
	n.signal()
}

// NotifyLeave implements memberlist.EventDelegate: the peer is dead, or
// left.
func (n *node) NotifyLeave(peer *memberlist.Node) {
	n.mu.Lock()
	delete(n.members, peer.Name)
	if n.full && len(n.members) < maxMembers {
		n.full = false
		n.logger.Info("the gossip holds fewer members than the limit again", "limit", maxMembers)
	}
	n.mu.Unlock()
	n.signal()
}

// NodeMeta implements memberlist.Delegate: this node's member address.
func (n *node) NodeMeta(int) []byte { return n.meta }

// NotifyMsg implements memberlist.Delegate: Sextant sends no messages of
// its own through the gossip; a peer's are counted and dropped.
func (n *node) NotifyMsg([]byte) { n.counts.ignored.Add(1) }

// GetBroadcasts implements memberlist.Delegate: there are none.
func (n *node) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate: there is none.
func (n *node) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate: a peer's state is
// counted and dropped.
func (n *node) MergeRemoteState(buf []byte, _ bool) {
	if len(buf) > 0 {
		n.counts.ignored.Add(1)
	}
}
