// Package gossip is the membership provider whose members find each other by
// gossip, on HashiCorp's memberlist (SWIM, as Consul and Nomad use it): a
// node joins through any one seed address, failures are detected by the
// protocol's probes, indirect probes and suspicion, and the members the
// gossip holds alive or suspect are the member list. Each node's gossip
// metadata carries its HTTP address, the member address the server knows it
// by; a peer whose metadata is not one is refused, and logged once. It is
// written against sdk alone, like any third party's plugin.
package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// The defaults of the configuration.
const (
	// PortOffset puts the gossip port above this node's HTTP port, next to
	// the cluster port (+1001): +1002.
	PortOffset = 1002
	// DefaultRetryInterval is the time between attempts to join the seeds
	// while this node knows no other member.
	DefaultRetryInterval = 5 * time.Second
	// DefaultProfile is memberlist's profile for a LAN.
	DefaultProfile = "lan"
)

// MaxMembers bounds the members the gossip admits, this node included: a
// Sextant cluster has a handful of nodes, and more is a mistake or an
// attack. A peer announced past it is refused, counted, and logged once
// while the limit holds.
const MaxMembers = 256

// maxNameBytes bounds a node's gossip name.
const maxNameBytes = 256

// label tells Sextant's gossip from another memberlist cluster's (Consul's,
// Nomad's) reaching the same port: memberlist drops a packet with another
// label.
const label = "sextant"

// profiles are memberlist's timings by name.
var profiles = map[string]func() *memberlist.Config{
	"lan":   memberlist.DefaultLANConfig,
	"wan":   memberlist.DefaultWANConfig,
	"local": memberlist.DefaultLocalConfig,
}

// Plugin is the provider as a membership plugin, named "gossip".
var Plugin = membership.Plugin{
	Info: sdk.Info{
		Name:    "gossip",
		Version: "1.0.0",
		Config: sdk.Schema{
			{Key: "seeds", Type: sdk.StringList, Description: "gossip addresses (host[:port], the port by default " +
				"this node's gossip port) of nodes to join through; any one reachable is enough, and they are " +
				"tried again every retry_interval while this node knows no other member; none: others join this one"},
			{Key: "bind", Type: sdk.String, Description: "the IP address the gossip port listens on, TCP and UDP " +
				"(default every interface: 0.0.0.0, or :: when this node's address is IPv6)"},
			{Key: "port", Type: sdk.Int, Description: "the gossip port (default this node's HTTP port + 1002; " +
				"0: any free port, for a node that is nobody's seed)"},
			{Key: "advertise", Type: sdk.String, Description: "ip[:port] the other nodes reach this node's gossip " +
				"at (default: bind when it is one address, else this node's IP address, with the gossip port)"},
			{Key: "encrypt_key", Type: sdk.String, Description: "base64 of a 16, 24 or 32-byte AES key that encrypts " +
				"and authenticates the gossip; every node needs the same (default none: the gossip is plaintext)"},
			{Key: "profile", Type: sdk.String, Description: "memberlist's timings: lan (default), wan, or local " +
				"(one machine, tests)"},
			{Key: "name", Type: sdk.String, Description: "this node's name in the gossip, unique in the cluster " +
				"(default this node's HTTP address)"},
			{Key: "retry_interval", Type: sdk.Duration, Description: "the time between attempts to join the seeds " +
				"while this node knows no other member (default 5s)"},
		},
	},
	New: func(raw []byte, host membership.Host) (membership.Provider, error) {
		cfg := Config{RetryInterval: sdk.ConfigDuration(DefaultRetryInterval)}
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
	Seeds         []string           `json:"seeds"`
	Bind          string             `json:"bind"`
	Port          *int               `json:"port"` // nil: the HTTP port + PortOffset
	Advertise     string             `json:"advertise"`
	EncryptKey    string             `json:"encrypt_key"`
	Profile       string             `json:"profile"`
	Name          string             `json:"name"`
	RetryInterval sdk.ConfigDuration `json:"retry_interval"`
}

// Provider gossips with the other nodes. Each Watch runs a memberlist node
// of its own: it joins when the Watch starts, and leaves when it ends.
type Provider struct {
	cfg       Config
	key       []byte // the encryption key, if any
	profile   func() *memberlist.Config
	advertise netip.AddrPort // the port 0 when not given
	logger    hclog.Logger

	turn   chan struct{} // holds a token while a Watch runs: one at a time
	counts counters
}

// counters are what the provider counted since it was made, over all its
// watches; each watch logs them when it ends.
type counters struct {
	joins     atomic.Int64 // attempts to join through the seeds
	refused   atomic.Int64 // peers' announcements refused: no member's metadata
	overLimit atomic.Int64 // peers' announcements refused past MaxMembers
	ignored   atomic.Int64 // messages and states peers sent that Sextant does not use
}

// New returns the provider cfg describes. It does not listen nor gossip yet:
// each Watch does, on the port that the node's own address decides.
func New(cfg Config, logger hclog.Logger) (*Provider, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	p := &Provider{cfg: cfg, logger: logger, turn: make(chan struct{}, 1)}
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for i, s := range cfg.Seeds {
		// The port is checked here, the default one filled in by Watch.
		if _, err := membership.ParseAddress(s, 1); err != nil {
			fail("seeds", "item %d: %v", i, err)
		}
	}
	if cfg.Bind != "" {
		if ip, err := netip.ParseAddr(cfg.Bind); err != nil || ip.Zone() != "" {
			fail("bind", "%q is not an IP address (such as 10.0.0.1, or 0.0.0.0 for every interface)", cfg.Bind)
		}
	}
	if cfg.Port != nil && (*cfg.Port < 0 || *cfg.Port > 65535) {
		fail("port", "%d is not a port number from 0 to 65535", *cfg.Port)
	}
	if cfg.Advertise != "" {
		var err error
		if p.advertise, err = parseAdvertise(cfg.Advertise); err != nil {
			fail("advertise", "%v", err)
		}
	}
	if cfg.EncryptKey != "" {
		var err error
		if p.key, err = parseKey(cfg.EncryptKey); err != nil {
			fail("encrypt_key", "%v", err) // never the key itself
		}
	}
	if p.profile = profiles[cfg.Profile]; cfg.Profile == "" {
		p.profile = profiles[DefaultProfile]
	} else if p.profile == nil {
		fail("profile", "%q is not lan, wan or local", cfg.Profile)
	}
	if cfg.Name != "" {
		if err := checkName(cfg.Name); err != nil {
			fail("name", "%v", err)
		}
	}
	if cfg.RetryInterval <= 0 {
		fail("retry_interval", "%v is not positive", time.Duration(cfg.RetryInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// parseAdvertise reads ip or ip:port ([v6]:port); port 0 means the gossip
// port.
func parseAdvertise(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		ip, ipErr := netip.ParseAddr(strings.Trim(s, "[]"))
		if ipErr != nil {
			return netip.AddrPort{}, fmt.Errorf("%q is not ip[:port] (an IPv6 address with a port goes in brackets: [v6]:port)", s)
		}
		ap = netip.AddrPortFrom(ip, 0)
	} else if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: port 0 is no port the others can reach", s)
	}
	if ip := ap.Addr(); ip.Zone() != "" || ip.IsUnspecified() || ip.IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("%q is no address the others can reach this node at", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// parseKey decodes a base64 AES key, and says what is wrong with it without
// repeating it.
func parseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("is not base64 (standard encoding, with padding)")
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("is %d bytes once decoded, want 16, 24 or 32 (AES-128, -192 or -256)", len(key))
}

// checkName says what makes name no node name.
func checkName(name string) error {
	if len(name) > maxNameBytes {
		return fmt.Errorf("longer than %d bytes", maxNameBytes)
	}
	if strings.TrimSpace(name) != name || strings.ContainsFunc(name, func(r rune) bool {
		return !unicode.IsPrint(r) || r == unicode.ReplacementChar
	}) {
		return fmt.Errorf("%q holds spaces at an end, or characters that are not printable", name)
	}
	return nil
}
