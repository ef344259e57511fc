package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	want := Config{
		Port:    8848,
		DataDir: "data",
		Log:     Log{Level: "info"},
		Remote: Remote{
			MaxMessageSize: 10485760,
			IdleTimeout:    20 * time.Second,
			DetectInterval: 3 * time.Second,
			DetectTimeout:  5 * time.Second,
		},
		Push:   Push{Delay: 500 * time.Millisecond, Timeout: 5 * time.Second, RetryDelay: time.Second},
		Naming: Naming{MaxNameLength: 512, MaxMetadataBytes: 16384, MaxBatchSize: 1000},
		Cluster: Cluster{Transport: "grpctransport", ReportInterval: 2 * time.Second, SyncDelay: time.Second,
			SyncRetryDelay: 3 * time.Second, VerifyInterval: 5 * time.Second, ClientExpiry: 10 * time.Second},
		Plugins: map[string]Plugin{"pushrpc": {}},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	got, err := Load("", nil, nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Load(\"\", nil, nil) = %+v, %v; want %+v", got, err, want)
	}
}

func TestGRPCPort(t *testing.T) {
	tests := []struct {
		port, grpcPort, want int
	}{
		{8848, 0, 9848},
		{9000, 0, 10000},
		{8848, 7000, 7000},
	}
	for _, tt := range tests {
		c := Config{Port: tt.port, Remote: Remote{GRPCPort: tt.grpcPort}}
		if got := c.GRPCPort(); got != tt.want {
			t.Errorf("Config{Port: %d, Remote.GRPCPort: %d}.GRPCPort() = %d, want %d", tt.port, tt.grpcPort, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		key    string // named by the error; "" if valid
	}{
		{"highest ports", func(c *Config) { c.Port, c.Remote.GRPCPort = 65535, 65534 }, ""},
		{"cluster port out of range", func(c *Config) {
			c.Port, c.Remote.GRPCPort, c.Cluster.Members = 65535, 65534, []string{"10.0.0.1:65535"}
		}, "cluster.port"},
		{"cluster port clash", func(c *Config) { c.Cluster.Members, c.Cluster.Port = []string{"a:1"}, 8848 }, "cluster.port"},
		{"bad member", func(c *Config) { c.Cluster.Members = []string{"10.0.0.1:x"} }, "cluster.members"},
		{"bad self", func(c *Config) { c.Cluster.Self = "nohost" }, "cluster.self"},
		{"expiry within verify", func(c *Config) { c.Cluster.ClientExpiry = c.Cluster.VerifyInterval }, "cluster.client_expiry"},
		{"no push delay", func(c *Config) { c.Push.Delay = 0 }, ""},
		{"smallest message size", func(c *Config) { c.Remote.MaxMessageSize = 64 << 10 }, ""},
		{"trace level", func(c *Config) { c.Log.Level = "trace" }, ""},
		{"port 0", func(c *Config) { c.Port = 0 }, "port"},
		{"port too high", func(c *Config) { c.Port = 65536 }, "port"},
		{"implied grpc port too high", func(c *Config) { c.Port = 65000 }, "remote.grpc_port"},
		{"negative grpc port", func(c *Config) { c.Remote.GRPCPort = -1 }, "remote.grpc_port"},
		{"grpc port too high", func(c *Config) { c.Remote.GRPCPort = 70000 }, "remote.grpc_port"},
		{"grpc port is http port", func(c *Config) { c.Remote.GRPCPort = c.Port }, "remote.grpc_port"},
		{"unknown level", func(c *Config) { c.Log.Level = "verbose" }, "log.level"},
		{"upper case level", func(c *Config) { c.Log.Level = "INFO" }, "log.level"},
		{"small messages", func(c *Config) { c.Remote.MaxMessageSize = 64<<10 - 1 }, "remote.max_message_size"},
		{"negative push delay", func(c *Config) { c.Push.Delay = -time.Millisecond }, "push.delay"},
		{"no push timeout", func(c *Config) { c.Push.Timeout = 0 }, "push.timeout"},
		{"no retry delay", func(c *Config) { c.Push.RetryDelay = 0 }, "push.retry_delay"},
		{"no idle timeout", func(c *Config) { c.Remote.IdleTimeout = 0 }, "remote.idle_timeout"},
		{"negative detect interval", func(c *Config) { c.Remote.DetectInterval = -time.Second }, "remote.detect_interval"},
		{"no detect timeout", func(c *Config) { c.Remote.DetectTimeout = 0 }, "remote.detect_timeout"},
		{"no name length", func(c *Config) { c.Naming.MaxNameLength = 0 }, "naming.max_name_length"},
		{"no metadata", func(c *Config) { c.Naming.MaxMetadataBytes = 0 }, "naming.max_metadata_bytes"},
		{"negative batch", func(c *Config) { c.Naming.MaxBatchSize = -1 }, "naming.max_batch_size"},
	}
	keys := keyTypes()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if _, ok := keys[tt.key]; !ok {
				t.Fatalf("test names %q, which is no configuration key", tt.key)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.key+": ") {
				t.Fatalf("Validate() = %v, want an error about %s", err, tt.key)
			}
		})
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	c := Default()
	c.Port = 0
	c.Log.Level = "loud"
	c.Push.Timeout = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, key := range []string{"port", "log.level", "push.timeout"} {
		if !strings.Contains(err.Error(), key+": ") {
			t.Errorf("Validate() = %v, want it to name %s", err, key)
		}
	}
}
