// Package config is the server configuration: its defaults, loading it from a
// file (HCL or YAML), SEXTANT_* environment variables and flags, and checking it.
package config

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"
)

// Config is the whole server configuration. Zero values are never used
// directly: Load starts from Default().
type Config struct {
	Port    int    `koanf:"port"`     // HTTP port; the client gRPC port defaults to Port+1000
	DataDir string `koanf:"data_dir"` // directory for persistent state
	Log     Log    `koanf:"log"`
	Remote  Remote `koanf:"remote"`
	Push    Push   `koanf:"push"`
	Naming  Naming `koanf:"naming"`
	Debug   Debug  `koanf:"debug"`
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

// Debug configures diagnostics.
type Debug struct {
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP port. Off by
	// default: profiles expose internals and cost CPU while taken.
	Pprof bool `koanf:"pprof"`
}

// grpcPortOffset is how far above the HTTP port the client gRPC port is by
// default, as in Nacos.
const grpcPortOffset = 1000

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
