// Package config is the server configuration: its defaults, loading it from a
// file (HCL or YAML), SEXTANT_* environment variables and flags, and checking it.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
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
	HTTP    HTTP    `koanf:"http"`
	Push    Push    `koanf:"push"`
	Naming  Naming  `koanf:"naming"`
	Health  Health  `koanf:"health"`
	Debug   Debug   `koanf:"debug"`
	Cluster Cluster `koanf:"cluster"`
	Raft    Raft    `koanf:"raft"`
	// Auth is token authentication of clients (auth.go).
	Auth Auth `koanf:"auth"`
	// Bind is the IP address the HTTP port listens on, and the client gRPC
	// and cluster ports unless remote.bind or cluster.bind say otherwise:
	// "" listens on every interface.
	Bind string `koanf:"bind"`
	// TLS serves the HTTP and client gRPC ports over TLS.
	TLS TLS `koanf:"tls"`
	// Plugins are the plugins to run, by name: a built-in's name, or any name
	// for a binary given by path.
	Plugins map[string]Plugin `koanf:"plugins"`
	// MemoryLimit is the Go runtime's soft memory limit (memory.go), such
	// as "512MiB": the garbage collector works harder near it instead of
	// letting the heap double between collections. "" leaves Go's default;
	// GOMEMLIMIT in the environment wins over it.
	MemoryLimit string `koanf:"memory_limit"`
}

// Plugin configures one plugin. It runs the binary at Path (with Args), or
// the built-in named Builtin from the server's own binary, or, when neither
// is set, the built-in of the plugin's own name.
type Plugin struct {
	Disabled bool     `koanf:"disabled"` // keep a default plugin from running
	Path     string   `koanf:"path"`     // plugin binary; "" runs a built-in
	Args     []string `koanf:"args"`     // the arguments of the binary at Path
	// Builtin names the built-in to run under this plugin's name: one
	// built-in twice with different settings, or a built-in under another
	// name. "" runs the built-in of the plugin's own name.
	Builtin   string         `koanf:"builtin"`
	SHA256    string         `koanf:"sha256"`     // hex SHA-256 the binary at path must have
	InProcess bool           `koanf:"in_process"` // run a built-in inside the server
	Config    map[string]any `koanf:"config"`     // the plugin's own settings, checked against its schema
}

// BuiltinName is the built-in the plugin called name runs: Builtin, or name
// itself; "" when it runs a binary given by path.
func (p Plugin) BuiltinName(name string) string {
	switch {
	case p.Path != "":
		return ""
	case p.Builtin != "":
		return p.Builtin
	}
	return name
}

// Log configures the server log.
type Log struct {
	Level string `koanf:"level"` // trace, debug, info, warn or error
	JSON  bool   `koanf:"json"`  // JSON lines instead of text
}

// Remote configures the client gRPC endpoint and its connections.
type Remote struct {
	GRPCPort       int           `koanf:"grpc_port"`        // 0 means Port+1000
	Bind           string        `koanf:"bind"`             // IP address to listen on; "" means the top-level bind
	MaxMessageSize int           `koanf:"max_message_size"` // bytes accepted per gRPC message
	IdleTimeout    time.Duration `koanf:"idle_timeout"`     // a connection silent this long is probed (Nacos ClientDetectionRequest)
	DetectInterval time.Duration `koanf:"detect_interval"`  // how often idle connections are looked for
	DetectTimeout  time.Duration `koanf:"detect_timeout"`   // a probe unanswered this long drops the connection
	// MaxOutboundBytes is how many bytes of server requests may wait unsent on
	// one connection; more closes it. One message larger than this is accepted
	// when nothing else waits.
	MaxOutboundBytes int `koanf:"max_outbound_bytes"`
	// WriteTimeout closes a connection whose stream does not take a message in
	// this long (a client that stopped reading).
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// SetupTimeout closes a connection that has not sent ConnectionSetupRequest
	// on its stream this long after it was accepted.
	SetupTimeout time.Duration `koanf:"setup_timeout"`
	// MaxStreamsPerConnection is HTTP/2 MAX_CONCURRENT_STREAMS on the client
	// port: the bi-stream and the concurrent unary calls of one connection.
	MaxStreamsPerConnection int `koanf:"max_streams_per_connection"`
	// MaxConnections is how many TCP connections the client port holds; more
	// are closed as they are accepted. 0 derives it from the open-file limit.
	MaxConnections int `koanf:"max_connections"`
	// Transport is the client port's HTTP/2 server: "grpc" (grpc-go, the
	// default) or "h2" (h2serve, written for the two Nacos methods: no
	// goroutine or buffer of its own per idle connection).
	Transport string `koanf:"transport"`
}

// Push configures pushing service changes to subscribers.
type Push struct {
	Delay      time.Duration `koanf:"delay"`       // window in which changes to a service are merged into one push; 0 pushes at once
	Timeout    time.Duration `koanf:"timeout"`     // how long a push waits for its ack
	RetryDelay time.Duration `koanf:"retry_delay"` // wait before a failed push is retried
	// ProtectEmpty holds, for ProtectEmptyGrace, a push that would tell
	// subscribers a service has no instances left when replication (expiry,
	// an owner's removal), not a client of this node, emptied it; it goes out
	// only if the service is still empty then.
	ProtectEmpty      bool          `koanf:"protect_empty"`
	ProtectEmptyGrace time.Duration `koanf:"protect_empty_grace"`
	// UDP configures the pushes to 1.x clients of the HTTP API (the
	// executor is the plugin serving the udp role, pushudp by default).
	UDP PushUDP `koanf:"udp"`
}

// PushUDP configures the UDP subscribers of the HTTP API.
type PushUDP struct {
	// Expiry is how long a 1.x client that polled instance/list with a
	// udpPort stays subscribed after its last poll (Nacos: 10 s).
	Expiry time.Duration `koanf:"expiry"`
}

// Naming limits what clients may register.
type Naming struct {
	MaxNameLength    int `koanf:"max_name_length"`    // longest service or group name accepted
	MaxMetadataBytes int `koanf:"max_metadata_bytes"` // largest instance metadata (sum of key and value bytes)
	MaxBatchSize     int `koanf:"max_batch_size"`     // most instances in one batch register
	// MaxServicesPerClient bounds the services one client connection has
	// instances in. An application registers one service per exposed
	// interface (Dubbo) or one in all (Spring Cloud): a few hundred at most.
	MaxServicesPerClient int `koanf:"max_services_per_client"`
	// MaxInstancesPerClient bounds the instances one client has in all its
	// services. A Nacos 2.x client registers one instance per service, or
	// a batch per service (several ports, or a sidecar registering its
	// pods); 10000 is ten a service at max_services_per_client, or ten full
	// batches, and bounds one connection's metadata to 10000 × 16 KiB
	// instead of max_services_per_client × max_batch_size × 16 KiB.
	MaxInstancesPerClient int `koanf:"max_instances_per_client"`
	// MaxSubscriptionsPerClient bounds the services one client connection
	// subscribes to: a large Java application consumes a few hundred to a
	// thousand or two interfaces.
	MaxSubscriptionsPerClient int `koanf:"max_subscriptions_per_client"`
	// MaxClustersPerFilter bounds the clusters one subscription or query
	// names; with cluster names of at most 64 bytes it bounds the filter to
	// 65 bytes a cluster.
	MaxClustersPerFilter int `koanf:"max_clusters_per_filter"`
}

// Cluster configures a cluster of nodes: who is in it, how they talk, and
// Distro's timings (Nacos's where Nacos has them).
type Cluster struct {
	// Members is a static member list: HTTP addresses host:port (a bare IP
	// means this node's port). Set, it selects the static membership plugin.
	Members []string `koanf:"members"`
	// Membership names the plugin that says who the members are: standalone,
	// static, file, address-server, dns, gossip or one of the plugins
	// section; "" picks
	// static when Members is set, standalone otherwise (no cluster).
	Membership string `koanf:"membership"`
	// Transport names the plugin nodes talk through: grpctransport,
	// natstransport or one of the plugins section.
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
	// Bind is the IP address the cluster port listens on; "" means the
	// top-level bind.
	Bind string `koanf:"bind"`
	// TLS runs mutual TLS between the members: the server passes it to the
	// transport plugin (grpctransport's tls_* keys).
	TLS ClusterTLS `koanf:"tls"`
	// Secret is shared by the members: a caller on the cluster port must
	// prove it knows it (the transport plugin's secret key). No default.
	Secret string `koanf:"secret"`
}

// ClusterTLS is the members' mutual TLS: PEM files, all three or none.
type ClusterTLS struct {
	CAFile   string `koanf:"ca_file"`   // the CA certificates a member's certificate must chain to
	CertFile string `koanf:"cert_file"` // this node's certificate chain, leaf first; its URI SAN sextant://host:port names the node's address
	KeyFile  string `koanf:"key_file"`  // the certificate's private key
}

// Redacted is c as it may be logged: cluster.secret and the plugins'
// configuration blocks (which may hold their own credentials) are replaced
// by whether they are set; auth prints itself redacted (Auth.String).
func (c Config) Redacted() Config {
	if c.Cluster.Secret != "" {
		c.Cluster.Secret = "set"
	}
	plugins := make(map[string]Plugin, len(c.Plugins))
	for name, p := range c.Plugins {
		if len(p.Config) > 0 {
			p.Config = map[string]any{"(redacted)": len(p.Config)}
		}
		plugins[name] = p
	}
	c.Plugins = plugins
	return c
}

// minClusterSecret is the least length of cluster.secret, in bytes.
const minClusterSecret = 32

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

// HTTP limits the connections of the HTTP port, so that idle, slow or
// oversized clients cannot hold its connections (and their goroutines and
// buffers) forever.
type HTTP struct {
	// IdleTimeout closes a keep-alive connection with no request for this
	// long. 60s keeps the connections of clients that poll (health checks,
	// Prometheus scrapes every 15-30s) and frees abandoned ones in a minute.
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// ReadTimeout is how long a client may take to send a whole request,
	// headers and body; over it the connection is closed. The endpoints
	// take no bodies, so 10s is generous even on a slow network.
	ReadTimeout time.Duration `koanf:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response, so a client that stops reading cannot pin a
	// connection. It must exceed the longest profile asked of
	// /debug/pprof/profile or /trace (?seconds=, 30 by default), which Go
	// refuses when it does not: 60s allows up to 59s.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// MaxHeaderBytes is the largest request line and headers accepted (Go
	// adds 4 KiB of slack); over it the client gets 431. 64 KiB is far above
	// what Nacos clients and browsers send, and a sixteenth of Go's default.
	MaxHeaderBytes int `koanf:"max_header_bytes"`
	// MaxConnections is how many connections the HTTP port holds. At the
	// limit a new connection takes the place of the one that has waited
	// longest between requests (an idle keep-alive connection, or one that
	// has not sent a request yet); if every one is in a request, it is
	// closed. 0 derives it from the open-file limit: half the descriptors
	// remote.max_connections leaves, so that HTTP clients alone cannot take
	// every descriptor and liveness probes keep answering.
	MaxConnections int `koanf:"max_connections"`
}

// minHeaderBytes is the smallest HTTP.MaxHeaderBytes accepted.
const minHeaderBytes = 4 << 10

// Raft configures the store of persistent instances, service definitions and
// namespaces, replicated with Raft over the cluster transport (a single-node
// Raft when standalone), under data_dir/raft.
type Raft struct {
	// ApplyTimeout bounds a write: without a leader (no quorum) for this
	// long, persistent writes fail with 503.
	ApplyTimeout time.Duration `koanf:"apply_timeout"`
	// LeaderReads makes each read of the store wait until this node has
	// applied every write committed before it (a round to the leader);
	// off, reads are served from this node's state at once, as in Nacos.
	LeaderReads bool `koanf:"leader_reads"`
}

// Health configures the beat checker of the HTTP API's instances, which
// live by their clients' beats: one silent past its heartbeat timeout
// (metadata preserved.heart.beat.timeout, 15 s) is marked unhealthy, past
// its delete timeout (preserved.ip.delete.timeout, 30 s) removed.
type Health struct {
	// CheckInterval is how often the checker runs: a silent instance is
	// found at most this late.
	CheckInterval time.Duration `koanf:"check_interval"`
	// MaxChecksPerTick bounds the HTTP clients (one per instance ip:port)
	// one run checks; the rest wait for the next runs.
	MaxChecksPerTick int `koanf:"max_checks_per_tick"`
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

// minStreamsPerConnection is the smallest Remote.MaxStreamsPerConnection
// accepted: a Nacos client holds its bi-stream open and makes unary calls.
const minStreamsPerConnection = 2

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

			MaxOutboundBytes:        4 << 20,
			WriteTimeout:            10 * time.Second,
			SetupTimeout:            10 * time.Second,
			MaxStreamsPerConnection: 100,
			Transport:               "grpc",
		},
		HTTP: HTTP{
			IdleTimeout:    60 * time.Second,
			ReadTimeout:    10 * time.Second,
			WriteTimeout:   60 * time.Second,
			MaxHeaderBytes: 64 << 10,
		},
		Push: Push{
			Delay:      500 * time.Millisecond,
			Timeout:    5 * time.Second,
			RetryDelay: time.Second,

			ProtectEmpty:      true,
			ProtectEmptyGrace: 15 * time.Second,
			UDP:               PushUDP{Expiry: 10 * time.Second},
		},
		Naming: Naming{
			MaxNameLength:    512,
			MaxMetadataBytes: 16 << 10,
			MaxBatchSize:     1000,

			MaxServicesPerClient:      1000,
			MaxInstancesPerClient:     10000,
			MaxSubscriptionsPerClient: 5000,
			MaxClustersPerFilter:      64,
		},
		Health: Health{CheckInterval: time.Second, MaxChecksPerTick: 10000},
		Cluster: Cluster{
			Transport:      "grpctransport",
			ReportInterval: 2 * time.Second,
			SyncDelay:      time.Second,
			SyncRetryDelay: 3 * time.Second,
			VerifyInterval: 5 * time.Second,
			ClientExpiry:   10 * time.Second,
		},
		Raft: Raft{ApplyTimeout: 5 * time.Second},
		Auth: Auth{TokenTTL: defaultTokenTTL}, // off
		Plugins: map[string]Plugin{
			"pushrpc": {}, // pushes to gRPC subscribers, in its own process
			"pushudp": {}, // pushes to 1.x UDP subscribers, in its own process
		},
	}
}

// TLS configures TLS on the HTTP and client gRPC ports (not the cluster
// port: that is the transport plugin's). The files are PEM; they are read
// again when they change, and on SIGHUP.
type TLS struct {
	CertFile string `koanf:"cert_file"` // certificate chain, leaf first; "" serves plaintext
	KeyFile  string `koanf:"key_file"`  // the certificate's private key
	// ClientCAFile holds the CA certificates client certificates must chain
	// to; set, every client must present one (mutual TLS).
	ClientCAFile string `koanf:"client_ca_file"`
}

// Enabled reports whether TLS is on.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// HTTPListen is the HTTP port's listen address: bind and port.
func (c Config) HTTPListen() string { return net.JoinHostPort(c.Bind, strconv.Itoa(c.Port)) }

// GRPCListen is the client gRPC port's listen address: remote.bind, or
// bind, and the port.
func (c Config) GRPCListen() string {
	return net.JoinHostPort(cmp.Or(c.Remote.Bind, c.Bind), strconv.Itoa(c.GRPCPort()))
}

// ClusterListen is the address the transport listens on: cluster.bind, or
// bind, and the cluster port.
func (c Config) ClusterListen() string {
	return net.JoinHostPort(cmp.Or(c.Cluster.Bind, c.Bind), strconv.Itoa(c.ClusterPort()))
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
		errs = append(errs, &keyError{key: key, msg: fmt.Sprintf(format, args...)})
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
	if c.Remote.MaxOutboundBytes <= 0 {
		fail("remote.max_outbound_bytes", "must be positive, got %d", c.Remote.MaxOutboundBytes)
	}
	if c.Remote.MaxStreamsPerConnection < minStreamsPerConnection {
		fail("remote.max_streams_per_connection", "%d is below the minimum of %d (the stream and one unary call)",
			c.Remote.MaxStreamsPerConnection, minStreamsPerConnection)
	}
	if c.Remote.Transport != "grpc" && c.Remote.Transport != "h2" {
		fail("remote.transport", "%q is neither grpc nor h2", c.Remote.Transport)
	}
	if c.Remote.MaxConnections < 0 {
		fail("remote.max_connections", "must be 0 (derived from the open-file limit) or positive, got %d", c.Remote.MaxConnections)
	}
	if c.Push.Delay < 0 {
		fail("push.delay", "%s is negative", c.Push.Delay)
	}
	c.validateMemoryLimit(fail)
	if c.Push.ProtectEmptyGrace < 0 {
		fail("push.protect_empty_grace", "%s is negative", c.Push.ProtectEmptyGrace)
	}
	if c.Raft.ApplyTimeout < 100*time.Millisecond {
		fail("raft.apply_timeout", "%s is below the minimum of 100ms", c.Raft.ApplyTimeout)
	}
	if c.Push.UDP.Expiry < time.Second {
		fail("push.udp.expiry", "%s is below the minimum of 1s (a 1.x client polls every few seconds)", c.Push.UDP.Expiry)
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"http.idle_timeout", c.HTTP.IdleTimeout},
		{"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout},
	} {
		if d.val <= 0 {
			fail(d.key, "must be positive, got %s", d.val)
		}
	}
	if c.HTTP.MaxHeaderBytes < minHeaderBytes {
		fail("http.max_header_bytes", "%d is below the minimum of %d bytes", c.HTTP.MaxHeaderBytes, minHeaderBytes)
	}
	if c.HTTP.MaxConnections < 0 {
		fail("http.max_connections", "must be 0 (derived from the open-file limit) or positive, got %d", c.HTTP.MaxConnections)
	}

	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"remote.idle_timeout", c.Remote.IdleTimeout},
		{"remote.detect_interval", c.Remote.DetectInterval},
		{"remote.detect_timeout", c.Remote.DetectTimeout},
		{"remote.write_timeout", c.Remote.WriteTimeout},
		{"remote.setup_timeout", c.Remote.SetupTimeout},
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
		{"naming.max_services_per_client", c.Naming.MaxServicesPerClient},
		{"naming.max_instances_per_client", c.Naming.MaxInstancesPerClient},
		{"naming.max_subscriptions_per_client", c.Naming.MaxSubscriptionsPerClient},
		{"naming.max_clusters_per_filter", c.Naming.MaxClustersPerFilter},
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
		{"health.check_interval", c.Health.CheckInterval},
	} {
		if d.val <= 0 {
			fail(d.key, "must be positive, got %s", d.val)
		}
	}
	if c.Health.MaxChecksPerTick <= 0 {
		fail("health.max_checks_per_tick", "must be positive, got %d", c.Health.MaxChecksPerTick)
	}
	if c.Cluster.ClientExpiry > 0 && c.Cluster.ClientExpiry <= c.Cluster.VerifyInterval {
		fail("cluster.client_expiry", "%s must be longer than cluster.verify_interval (%s), or every replica would expire between verifications",
			c.Cluster.ClientExpiry, c.Cluster.VerifyInterval)
	}
	if t := c.Cluster.TLS; t != (ClusterTLS{}) {
		for _, f := range []struct{ key, file string }{
			{"cluster.tls.ca_file", t.CAFile}, {"cluster.tls.cert_file", t.CertFile}, {"cluster.tls.key_file", t.KeyFile},
		} {
			if f.file == "" {
				fail(f.key, "is empty: set cluster.tls.ca_file, cert_file and key_file together, or none")
			}
		}
	}
	if n := len(c.Cluster.Secret); n > 0 && n < minClusterSecret {
		fail("cluster.secret", "must be at least %d bytes, got %d", minClusterSecret, n)
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
	for _, b := range []struct{ key, val string }{{"bind", c.Bind}, {"remote.bind", c.Remote.Bind}, {"cluster.bind", c.Cluster.Bind}} {
		if _, err := netip.ParseAddr(b.val); b.val != "" && err != nil {
			fail(b.key, "%q is not an IP address (such as 127.0.0.1 or ::1; \"\" listens on every interface)", b.val)
		}
	}
	switch {
	case c.TLS.CertFile != "" && c.TLS.KeyFile == "":
		fail("tls.key_file", "must be set with tls.cert_file")
	case c.TLS.CertFile == "" && c.TLS.KeyFile != "":
		fail("tls.cert_file", "must be set with tls.key_file")
	case c.TLS.CertFile == "" && c.TLS.ClientCAFile != "":
		fail("tls.client_ca_file", "needs tls.cert_file and tls.key_file: clients are asked for certificates only over TLS")
	}
	if c.Cluster.Transport == "" {
		fail("cluster.transport", "must name a transport plugin")
	}
	c.Auth.validate(fail)
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
		if p.Builtin != "" && p.Path != "" {
			fail(key+".builtin", "runs a built-in from the server's binary, and path a binary of its own: set one of them")
		}
		if p.Builtin != "" && !pluginName.MatchString(p.Builtin) {
			fail(key+".builtin", "%q is no built-in's name (\"sextant help\" lists them)", p.Builtin)
		}
		if len(p.Args) > 0 && p.Path == "" {
			fail(key+".args", "are the arguments of a binary given by path, and this plugin has no path")
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
