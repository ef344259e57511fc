// Package dns is the membership provider whose members are what a DNS name
// resolves to: its A and AAAA records (each an IP address, with the members'
// HTTP port), or, with srv, its SRV records (each a host name and a port). It
// resolves the name again every interval and reports the list whenever it
// changes: on Kubernetes the name of a StatefulSet's headless Service, with
// Consul a service's DNS name. Every record is checked — an unusable address,
// a duplicate, records past MaxMembers are dropped, counted and logged — and
// a lookup that fails keeps the last good list. It is written against sdk
// alone, like any third party's plugin.
package dns

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// The defaults of the configuration.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 3 * time.Second
)

// MaxMembers bounds the members one answer gives: a Sextant cluster has a
// handful of nodes, and an answer with more records than this is a mistake
// or an attack. The records past it, in sorted order (so that every node
// keeps the same ones), are dropped and counted.
const MaxMembers = 256

// selfCheckParallel bounds the host names of SRV targets resolved at once
// to find this node among them.
const selfCheckParallel = 8

// maxShown bounds the dropped records a log line names.
const maxShown = 5

// Plugin is the provider as a membership plugin, named "dns".
var Plugin = membership.Plugin{
	Info: sdk.Info{
		Name:    "dns",
		Version: "1.0.0",
		Config: sdk.Schema{
			{Key: "name", Type: sdk.String, Required: true, Description: "the DNS name whose records are the members: " +
				"A/AAAA records (e.g. a Kubernetes headless Service, sextant-headless), or with srv the SRV name " +
				"(_http._tcp.sextant-headless); a name without a final dot goes through the resolver's search domains"},
			{Key: "port", Type: sdk.Int, Description: "the members' HTTP port, for A/AAAA records (default: this " +
				"node's port); not with srv, whose records carry their port"},
			{Key: "srv", Type: sdk.Bool, Description: "the members are the SRV records of name: each target host " +
				"name with the record's port (default false)"},
			{Key: "network", Type: sdk.String, Description: "which address records are members: ip4 (A), ip6 (AAAA) " +
				"or ip (both); default: the family of this node's address, both for a host name; not with srv"},
			{Key: "interval", Type: sdk.Duration, Description: "how often the name is resolved (default 5s)"},
			{Key: "timeout", Type: sdk.Duration, Description: "the longest one resolution may take (default 3s)"},
			{Key: "resolver", Type: sdk.String, Description: "the DNS server to ask, ip[:port] (port 53 by default); " +
				"default: the system's resolver configuration (/etc/resolv.conf)"},
		},
	},
	New: func(raw []byte, host membership.Host) (membership.Provider, error) {
		cfg := Config{Interval: sdk.ConfigDuration(DefaultInterval), Timeout: sdk.ConfigDuration(DefaultTimeout)}
		if len(bytes.TrimSpace(raw)) == 0 {
			raw = []byte("{}")
		}
		if err := sdk.DecodeConfig(raw, &cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return New(cfg, host.Logger)
	},
}

// Config is the plugin's configuration block.
type Config struct {
	Name     string             `json:"name"`
	Port     int                `json:"port"`
	SRV      bool               `json:"srv"`
	Network  string             `json:"network"`
	Interval sdk.ConfigDuration `json:"interval"`
	Timeout  sdk.ConfigDuration `json:"timeout"`
	Resolver string             `json:"resolver"`
}

// Provider resolves a name into the member list.
type Provider struct {
	cfg      Config
	resolver *net.Resolver
	logger   hclog.Logger
	counts   counters
}

// counters are what the provider counted since it was made, over all its
// watches; each watch logs them when it ends.
type counters struct {
	lookups    atomic.Int64 // resolutions of the name
	failures   atomic.Int64 // resolutions that failed, or gave no usable record
	duplicates atomic.Int64 // records dropped as another's duplicate
	unusable   atomic.Int64 // records dropped as no member's address
	overLimit  atomic.Int64 // records dropped past MaxMembers
}

// New returns the provider of the name cfg gives. It does not resolve the
// name yet: the first Watch does, and a name that does not resolve yet (a
// Service whose first pod is starting) is no error.
func New(cfg Config, logger hclog.Logger) (*Provider, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	cfg.Name = strings.TrimSpace(cfg.Name)
	if err := checkName(cfg.Name); err != nil {
		fail("name", "%v", err)
	}
	switch {
	case cfg.Port != 0 && (cfg.Port < 1 || cfg.Port > 65535):
		fail("port", "%d is not a port number from 1 to 65535", cfg.Port)
	case cfg.Port != 0 && cfg.SRV:
		fail("port", "is not for srv: each SRV record gives its member's port")
	}
	switch cfg.Network {
	case "", "ip", "ip4", "ip6":
	default:
		fail("network", "%q is not ip4, ip6 or ip", cfg.Network)
	}
	if cfg.Network != "" && cfg.SRV {
		fail("network", "is not for srv: the members are the SRV records' host names")
	}
	if cfg.Interval <= 0 {
		fail("interval", "%v is not positive", time.Duration(cfg.Interval))
	}
	if cfg.Timeout <= 0 {
		fail("timeout", "%v is not positive", time.Duration(cfg.Timeout))
	}
	var server string
	if cfg.Resolver != "" {
		var err error
		if server, err = resolverAddress(cfg.Resolver); err != nil {
			fail("resolver", "%v", err)
		}
	}
	// PreferGo with a resolver: the system's (cgo) cannot be pointed elsewhere.
	resolver := &net.Resolver{PreferGo: server != "", Dial: dialer(server)}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, resolver: resolver, logger: logger.With("name", cfg.Name)}, nil
}

// dialer returns the resolver's Dial: to server, or where the resolver
// says when server is "". Go's resolver only sets a deadline on the
// connection, so a lookup whose context is cancelled (the watch ending)
// would wait for its answer until the timeout; the connection's deadline
// is moved to now instead. The exchange's context always ends when the
// exchange does, so the AfterFunc always runs, and soon.
func dialer(server string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, cmp.Or(server, address))
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
		return c, nil
	}
}

// checkName says what makes name no DNS name.
func checkName(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return errors.New("required: the DNS name to resolve")
	}
	if len(n) > 253 {
		return fmt.Errorf("%q is longer than a DNS name may be (253 bytes)", name)
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 ||
			strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return fmt.Errorf("%q is not a DNS name (labels of 1 to 63 letters, digits, '-' and '_', separated by dots)", name)
		}
	}
	return nil
}

// resolverAddress returns the ip:port of the DNS server s names.
func resolverAddress(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		return ap.String(), nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && ip.Zone() == "" {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	return "", fmt.Errorf("%q is not ip[:port] (an IPv6 address with a port goes in brackets: [v6]:port)", s)
}

// localIPs returns this machine's addresses: the node's listening addresses
// when it listens on every interface, as it does by default.
func localIPs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out
}

// Watch implements membership.Provider. The first list comes after the
// first resolution (the node alone if it fails), then one whenever the
// answer's list changes. It returns an error other than ctx's when the
// answer holds this node under an address other than self: the other
// members know it by that address, and a list that counted it twice would
// split the cluster's views.
func (p *Provider) Watch(ctx context.Context, self string, update func(members []string)) error {
	me, err := membership.ParseAddress(self, membership.DefaultPort)
	if err != nil {
		return fmt.Errorf("this node's address: %w", err)
	}
	w := &watch{Provider: p, me: me, good: []string{me}}
	host, port, _ := net.SplitHostPort(me)
	w.mePort, _ = strconv.Atoi(port)
	w.port, w.network = cmp.Or(p.cfg.Port, w.mePort), p.cfg.Network
	if w.network == "" { // the family of self's address, both for a host name
		switch ip, err := netip.ParseAddr(host); {
		case err != nil:
			w.network = "ip"
		case ip.Is4():
			w.network = "ip4"
		default:
			w.network = "ip6"
		}
	}
	defer p.logCounts()
	if err := w.refresh(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	reported := w.good
	update(reported)
	ticker := time.NewTicker(time.Duration(p.cfg.Interval))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		if err := w.refresh(ctx); err != nil {
			return err
		}
		if ctx.Err() == nil && !slices.Equal(w.good, reported) {
			reported = w.good
			update(reported)
		}
	}
}

// logCounts logs the counters, as a watch ends.
func (p *Provider) logCounts() {
	c := &p.counts
	p.logger.Info("stopped resolving the member list", "lookups", c.lookups.Load(), "failed_lookups", c.failures.Load(),
		"dropped_duplicates", c.duplicates.Load(), "dropped_unusable", c.unusable.Load(), "dropped_over_limit", c.overLimit.Load())
}

// watch is the state of one Watch.
type watch struct {
	*Provider
	me      string // this node's canonical address
	mePort  int
	port    int    // the members' port, for address records
	network string // ip, ip4 or ip6, for address records

	good     []string // the last good list, self included
	answer   string   // the last answer resolved, to log its problems once
	failures int      // lookups failed in a row
	selfSeen string   // the last list that lacked self, to check and log it once
}

// A record is one member as the answer gives it, before it is checked.
type record struct {
	host string // an IP address, or an SRV target's host name
	port int
}

func (r record) String() string { return net.JoinHostPort(r.host, strconv.Itoa(r.port)) }

// refresh resolves the name and updates the last good list from its
// answer; it returns an error only when the node cannot go on.
func (w *watch) refresh(ctx context.Context) error {
	w.counts.lookups.Add(1)
	lctx, cancel := context.WithTimeout(ctx, time.Duration(w.cfg.Timeout))
	records, partial, err := w.lookup(lctx)
	cancel()
	if ctx.Err() != nil {
		return nil // the watch is ending: whatever happened is no news
	}
	var members []string
	if err == nil {
		var dropped drops
		members, dropped = w.check(records)
		w.report(records, dropped, partial)
		if len(members) == 0 {
			err = fmt.Errorf("none of the %d records is a usable member", len(records))
		}
	}
	if err != nil {
		w.counts.failures.Add(1)
		if w.failures++; w.failures == 1 {
			w.logger.Warn("cannot resolve the member list; keeping the last good one", "error", err, "members", w.good)
		} else {
			w.logger.Debug("still cannot resolve the member list", "error", err, "failed_lookups", w.failures)
		}
		return nil
	}
	if w.failures > 0 {
		w.logger.Info("the member list resolves again", "failed_lookups", w.failures)
		w.failures = 0
	}
	list, added := membership.WithSelf(members, w.me)
	if key := strings.Join(list, ","); added && key != w.selfSeen {
		if err := w.findSelf(ctx, members); err != nil {
			return err
		}
		w.selfSeen = key
		w.logger.Warn("this node is not in the member list; counting it in, as Nacos does", "self", w.me, "members", list)
	}
	w.good = list
	return nil
}

// lookup resolves the name into records, with the error that made the
// resolver leave some out (partial) when it answered with the rest.
func (w *watch) lookup(ctx context.Context) (records []record, partial, err error) {
	if !w.cfg.SRV {
		ips, err := w.resolver.LookupNetIP(ctx, w.network, w.cfg.Name)
		if err != nil {
			return nil, nil, err
		}
		records = make([]record, len(ips))
		for i, ip := range ips {
			records[i] = record{host: ip.Unmap().WithZone("").String(), port: w.port}
		}
		return records, nil, nil
	}
	_, srvs, err := w.resolver.LookupSRV(ctx, "", "", w.cfg.Name)
	if err != nil && len(srvs) == 0 {
		return nil, nil, err
	}
	records = make([]record, len(srvs))
	for i, s := range srvs {
		records[i] = record{host: strings.TrimSuffix(s.Target, "."), port: int(s.Port)}
	}
	return records, err, nil
}

// drops are the records check left out.
type drops struct {
	duplicates, overLimit, unusable int
	shown                           []string // the first unusable records (maxShown), each with why
}

// check returns the members records give — canonical, sorted, without
// duplicates, at most MaxMembers — and what it dropped, which it counts.
func (w *watch) check(records []record) ([]string, drops) {
	var d drops
	seen := make(map[string]bool, len(records))
	members := make([]string, 0, len(records))
	for _, r := range records {
		addr, err := member(r)
		switch {
		case err != nil:
			if d.unusable++; len(d.shown) < maxShown {
				d.shown = append(d.shown, err.Error())
			}
		case seen[addr]:
			d.duplicates++
		default:
			seen[addr] = true
			members = append(members, addr)
		}
	}
	slices.Sort(members)
	if len(members) > MaxMembers {
		d.overLimit, members = len(members)-MaxMembers, members[:MaxMembers]
	}
	w.counts.duplicates.Add(int64(d.duplicates))
	w.counts.unusable.Add(int64(d.unusable))
	w.counts.overLimit.Add(int64(d.overLimit))
	return members, d
}

// member returns the canonical address of r, or why it is no member's.
func member(r record) (string, error) {
	if r.host == "" {
		return "", fmt.Errorf("%s: no host (the SRV target \".\" means no service)", r)
	}
	if r.port < 1 || r.port > 65535 {
		return "", fmt.Errorf("%s: port %d is not from 1 to 65535", r, r.port)
	}
	if ip, err := netip.ParseAddr(r.host); err == nil {
		switch {
		case ip.IsUnspecified():
			return "", fmt.Errorf("%s: the unspecified address is no member's", r)
		case ip.IsMulticast():
			return "", fmt.Errorf("%s: a multicast address is no member's", r)
		case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return "", fmt.Errorf("%s: the broadcast address is no member's", r)
		}
	}
	addr, err := membership.ParseAddress(r.String(), 0)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r, err)
	}
	return addr, nil
}

// report logs what an answer's check dropped, once for each new answer.
func (w *watch) report(records []record, d drops, partial error) {
	answer := make([]string, len(records))
	for i, r := range records {
		answer[i] = r.String()
	}
	slices.Sort(answer)
	key := strings.Join(answer, ",")
	if key == w.answer {
		return
	}
	w.answer = key
	if partial != nil {
		w.logger.Warn("the resolver left out some records of the answer", "error", partial)
	}
	if d.unusable > 0 {
		w.logger.Warn("dropped records that are no member's address", "dropped", d.unusable, "records", d.shown)
	}
	if d.duplicates > 0 {
		w.logger.Warn("dropped duplicate records", "dropped", d.duplicates)
	}
	if d.overLimit > 0 {
		w.logger.Warn("the answer has more members than the limit; dropped the last ones in sorted order",
			"limit", MaxMembers, "dropped", d.overLimit)
	}
}

// findSelf returns an error when members, which lack self, hold this node
// under another address: an IP address of this machine (or, for an SRV
// target, a host name resolving to one) with this node's port.
func (w *watch) findSelf(ctx context.Context, members []string) error {
	own := localIPs()
	var mu sync.Mutex
	var found []string
	var g errgroup.Group
	g.SetLimit(selfCheckParallel)
	lctx, cancel := context.WithTimeout(ctx, time.Duration(w.cfg.Timeout))
	defer cancel()
	for _, m := range members {
		host, port, _ := net.SplitHostPort(m)
		if port != strconv.Itoa(w.mePort) {
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if own[ip] {
				mu.Lock()
				found = append(found, m)
				mu.Unlock()
			}
			continue
		}
		g.Go(func() error {
			ips, err := w.resolver.LookupNetIP(lctx, "ip", host)
			if err != nil {
				return nil // a target that does not resolve is not this node, as far as anyone can tell
			}
			for _, ip := range ips {
				if own[ip.Unmap()] {
					mu.Lock()
					found = append(found, m)
					mu.Unlock()
					return nil
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(found) == 0 || ctx.Err() != nil {
		return nil
	}
	slices.Sort(found)
	return fmt.Errorf("this node is %s in the answer for %s, where its own address %s is missing: "+
		"the other members know it by that address; set cluster.self to it", strings.Join(found, " and "), w.cfg.Name, w.me)
}
