// Package config is the server configuration: its defaults, loading it from a
// file (HCL or YAML), SEXTANT_* environment variables and flags, and checking it.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the whole server configuration. Zero values are never used
// directly: Load starts from Default().
type Config struct {
	Port    int     `koanf:"port"`     // HTTP port; the client gRPC port defaults to Port+1000
	DataDir string  `koanf:"data_dir"` // directory for persistent state
	Log     Log     `koanf:"log"`
	Remote  Remote  `koanf:"remote"`
	Push    Push    `koanf:"push"`
	Naming  Naming  `koanf:"naming"`
	Debug   Debug   `koanf:"debug"`
	Cluster Cluster `koanf:"cluster"`
	// Plugins are the plugins to run, by name: a built-in's name, or any name
	// for a binary given by path.
	Plugins map[string]Plugin `koanf:"plugins"`
}

// Plugin configures one plugin.
type Plugin struct {
	Disabled  bool           `koanf:"disabled"`   // keep a default plugin from running
	Path      string         `koanf:"path"`       // plugin binary; "" runs the built-in of this name
	SHA256    string         `koanf:"sha256"`     // hex SHA-256 the binary at path must have
	InProcess bool           `koanf:"in_process"` // run a built-in inside the server
	Config    map[string]any `koanf:"config"`     // the plugin's own settings, checked against its schema
}

// Log configures the server log.
type Log struct {
	Level string `koanf:"level"` // trace, debug, info, warn or error
	JSON  bool   `koanf:"json"`  // JSON lines instead of text
}

// Remote configures the client gRPC endpoint and its connections.
type Remote struct {
	GRPCPort       int           `koanf:"grpc_port"`        // 0 means Port+1000
	MaxMessageSize int           `koanf:"max_message_size"` // bytes accepted per gRPC message
	IdleTimeout    time.Duration `koanf:"idle_timeout"`     // a connection silent this long is probed (Nacos ClientDetectionRequest)
	DetectInterval time.Duration `koanf:"detect_interval"`  // how often idle connections are looked for
	DetectTimeout  time.Duration `koanf:"detect_timeout"`   // a probe unanswered this long drops the connection
}

// Push configures pushing service changes to subscribers.
type Push struct {
	Delay      time.Duration `koanf:"delay"`       // window in which changes to a service are merged into one push; 0 pushes at once
	Timeout    time.Duration `koanf:"timeout"`     // how long a push waits for its ack
	RetryDelay time.Duration `koanf:"retry_delay"` // wait before a failed push is retried
}

// Naming limits what clients may register.
type Naming struct {
	MaxNameLength    int `koanf:"max_name_length"`    // longest service or group name accepted
	MaxMetadataBytes int `koanf:"max_metadata_bytes"` // largest instance metadata (sum of key and value bytes)
	MaxBatchSize     int `koanf:"max_batch_size"`     // most instances in one batch register
}

// Cluster configures a cluster of nodes: who is in it, how they talk, and
// Distro's timings (Nacos's where Nacos has them).
type Cluster struct {
	// Members is a static member list: HTTP addresses host:port (a bare IP
	// means this node's port). Set, it selects the static membership plugin.
	Members []string `koanf:"members"`
	// Membership names the plugin that says who the members are: standalone,
	// static, file, address-server or one of the plugins section; "" picks
	// static when Members is set, standalone otherwise (no cluster).
	Membership string `koanf:"membership"`
	// Transport names the plugin nodes talk through.
	Transport string `koanf:"transport"`
	// Self is this node's HTTP address as the other members know it; ""
	// finds it: the member with this node's port on one of its interfaces,
	// else its first non-loopback IPv4 address.
	Self string `koanf:"self"`
	// Port is the cluster port the transport listens on; 0 means port+1001
	// (other members reach this node there).
	Port           int           `koanf:"port"`
	ReportInterval time.Duration `koanf:"report_interval"`  // health reports between members
	SyncDelay      time.Duration `koanf:"sync_delay"`       // window merging a member's sync batch
	SyncRetryDelay time.Duration `koanf:"sync_retry_delay"` // wait before a failed sync is sent again
	VerifyInterval time.Duration `koanf:"verify_interval"`  // how often a node vouches for its clients
	// ClientExpiry removes the replicas of a node that has stopped vouching
	// for its clients for this long: short makes a dead node's instances go
	// quickly, too short lets a slow or briefly cut-off node's instances
	// flap on the others.
	ClientExpiry time.Duration `koanf:"client_expiry"`
}

// Standalone names the membership of a node alone.
const Standalone = "standalone"

// MembershipPlugin is the membership plugin that runs (Standalone for none).
func (c Cluster) MembershipPlugin() string {
	switch {
	case c.Membership != "":
		return c.Membership
	case len(c.Members) > 0:
		return "static"
	}
	return Standalone
}

// ClusterPort returns the cluster port: Cluster.Port, or Port+1001.
func (c Config) ClusterPort() int {
	if c.Cluster.Port != 0 {
		return c.Cluster.Port
	}
	return c.Port + clusterPortOffset
}

// Debug configures diagnostics.
type Debug struct {
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP port. Off by
	// default: profiles expose internals and cost CPU while taken.
	Pprof bool `koanf:"pprof"`
}

// grpcPortOffset and clusterPortOffset are how far above the HTTP port the
// client gRPC port and the cluster port are by default, as in Nacos.
const (
	grpcPortOffset    = 1000
	clusterPortOffset = 1001
)

// minMessageSize is the smallest Remote.MaxMessageSize accepted.
const minMessageSize = 64 << 10

// Default returns the built-in configuration, matching Nacos where Nacos has
// the same setting.
func Default() Config {
	return Config{
		Port:    8848,
		DataDir: "data",
		Log:     Log{Level: "info"},
		Remote: Remote{
			MaxMessageSize: 10 << 20,
			IdleTimeout:    20 * time.Second,
			DetectInterval: 3 * time.Second,
			DetectTimeout:  5 * time.Second,
		},
		Push: Push{
			Delay:      500 * time.Millisecond,
			Timeout:    5 * time.Second,
			RetryDelay: time.Second,
		},
		Naming: Naming{
			MaxNameLength:    512,
			MaxMetadataBytes: 16 << 10,
			MaxBatchSize:     1000,
		},
		Cluster: Cluster{
			Transport:      "grpctransport",
			ReportInterval: 2 * time.Second,
			SyncDelay:      time.Second,
			SyncRetryDelay: 3 * time.Second,
			VerifyInterval: 5 * time.Second,
			ClientExpiry:   10 * time.Second,
		},
		Plugins: map[string]Plugin{
			"pushrpc": {}, // pushes to gRPC subscribers, in its own process
		},
	}
}

// GRPCPort returns the client gRPC port: Remote.GRPCPort, or Port+1000 when
// that is 0.
func (c Config) GRPCPort() int {
	if c.Remote.GRPCPort != 0 {
		return c.Remote.GRPCPort
	}
	return c.Port + grpcPortOffset
}

// Validate reports every setting that is out of range, each error naming its key.
func (c Config) Validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if !validPort(c.Port) {
		fail("port", "%d is not a port number (1-65535)", c.Port)
	}
	switch grpc := c.GRPCPort(); {
	case c.Remote.GRPCPort == 0 && !validPort(grpc):
		fail("remote.grpc_port", "port+%d = %d is not a port number; set remote.grpc_port", grpcPortOffset, grpc)
	case !validPort(grpc):
		fail("remote.grpc_port", "%d is not a port number (1-65535)", grpc)
	case grpc == c.Port:
		fail("remote.grpc_port", "%d is also the HTTP port", grpc)
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		fail("log.level", "%q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	if c.Remote.MaxMessageSize < minMessageSize {
		fail("remote.max_message_size", "%d is below the minimum of %d bytes", c.Remote.MaxMessageSize, minMessageSize)
	}
	if c.Push.Delay < 0 {
		fail("push.delay", "%s is negative", c.Push.Delay)
	}

	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"remote.idle_timeout", c.Remote.IdleTimeout},
		{"remote.detect_interval", c.Remote.DetectInterval},
		{"remote.detect_timeout", c.Remote.DetectTimeout},
		{"push.timeout", c.Push.Timeout},
		{"push.retry_delay", c.Push.RetryDelay},
	} {
		if d.val <= 0 {
			fail(d.key, "must be positive, got %s", d.val)
		}
	}
	for _, n := range []struct {
		key string
		val int
	}{
		{"naming.max_name_length", c.Naming.MaxNameLength},
		{"naming.max_metadata_bytes", c.Naming.MaxMetadataBytes},
		{"naming.max_batch_size", c.Naming.MaxBatchSize},
	} {
		if n.val <= 0 {
			fail(n.key, "must be positive, got %d", n.val)
		}
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"cluster.report_interval", c.Cluster.ReportInterval},
		{"cluster.sync_delay", c.Cluster.SyncDelay},
		{"cluster.sync_retry_delay", c.Cluster.SyncRetryDelay},
		{"cluster.verify_interval", c.Cluster.VerifyInterval},
		{"cluster.client_expiry", c.Cluster.ClientExpiry},
	} {
		if d.val <= 0 {
			fail(d.key, "must be positive, got %s", d.val)
		}
	}
	if c.Cluster.ClientExpiry > 0 && c.Cluster.ClientExpiry <= c.Cluster.VerifyInterval {
		fail("cluster.client_expiry", "%s must be longer than cluster.verify_interval (%s), or every replica would expire between verifications",
			c.Cluster.ClientExpiry, c.Cluster.VerifyInterval)
	}
	switch cp := c.ClusterPort(); {
	case c.Cluster.MembershipPlugin() == Standalone: // no cluster port is opened
	case !validPort(cp):
		fail("cluster.port", "%d is not a port number; set cluster.port", cp)
	case cp == c.Port || cp == c.GRPCPort():
		fail("cluster.port", "%d is also the HTTP or client gRPC port", cp)
	}
	for i, m := range c.Cluster.Members {
		if err := checkAddress(m); err != nil {
			fail("cluster.members", "item %d: %v", i, err)
		}
	}
	if c.Cluster.Self != "" {
		if _, _, err := net.SplitHostPort(c.Cluster.Self); err != nil {
			fail("cluster.self", "%q is not host:port", c.Cluster.Self)
		}
	}
	if c.Cluster.Transport == "" {
		fail("cluster.transport", "must name a transport plugin")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Plugins)) {
		p := c.Plugins[name]
		key := "plugins." + name
		if !pluginName.MatchString(name) {
			fail(key, "a plugin name may only contain lower-case letters, digits, '-' and '_'")
		}
		if p.SHA256 != "" && !sha256Hex.MatchString(p.SHA256) {
			fail(key+".sha256", "%q is not 64 hexadecimal digits", p.SHA256)
		}
		if p.SHA256 != "" && p.Path == "" {
			fail(key+".sha256", "is only checked for a binary given by path")
		}
		if p.InProcess && p.Path != "" {
			fail(key+".in_process", "only built-in plugins run in process, and this one has a path")
		}
	}
	return errors.Join(errs...)
}

var (
	pluginName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	sha256Hex  = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

func validPort(p int) bool { return p >= 1 && p <= 65535 }

// checkAddress accepts host:port or a bare host (Nacos's cluster.conf form,
// meaning this node's port).
func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		host, port = a, "1"
	}
	if p, err := strconv.Atoi(port); err != nil || !validPort(p) {
		return fmt.Errorf("%q has no valid port", a)
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has no valid host", a)
	}
	return nil
}
