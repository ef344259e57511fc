package config

import (
	"fmt"
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

			MaxOutboundBytes:        4 << 20,
			WriteTimeout:            10 * time.Second,
			SetupTimeout:            10 * time.Second,
			MaxStreamsPerConnection: 100,
			Transport:               "grpc",
		},
		HTTP: HTTP{IdleTimeout: 60 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second, MaxHeaderBytes: 65536},
		Push: Push{Delay: 500 * time.Millisecond, Timeout: 5 * time.Second, RetryDelay: time.Second, ProtectEmpty: true, ProtectEmptyGrace: 15 * time.Second,
			UDP: PushUDP{Expiry: 10 * time.Second}},
		Naming: Naming{MaxNameLength: 512, MaxMetadataBytes: 16384, MaxBatchSize: 1000, MaxServicesPerClient: 1000, MaxInstancesPerClient: 10000, MaxSubscriptionsPerClient: 5000, MaxClustersPerFilter: 64},
		Health: Health{CheckInterval: time.Second, MaxChecksPerTick: 10000},
		Cluster: Cluster{Transport: "grpctransport", ReportInterval: 2 * time.Second, SyncDelay: time.Second,
			SyncRetryDelay: 3 * time.Second, VerifyInterval: 5 * time.Second, ClientExpiry: 10 * time.Second},
		Raft:    Raft{ApplyTimeout: 5 * time.Second},
		Auth:    Auth{TokenTTL: 18000 * time.Second},
		Plugins: map[string]Plugin{"pushrpc": {}, "pushudp": {}},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	got, _, err := Load("", nil, nil)
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

func TestListenAddresses(t *testing.T) {
	c := Default()
	if got := [3]string{c.HTTPListen(), c.GRPCListen(), c.ClusterListen()}; got != [3]string{":8848", ":9848", ":9849"} {
		t.Errorf("default listen addresses %v", got)
	}
	c.Bind = "10.0.0.1"
	if got := [3]string{c.HTTPListen(), c.GRPCListen(), c.ClusterListen()}; got != [3]string{"10.0.0.1:8848", "10.0.0.1:9848", "10.0.0.1:9849"} {
		t.Errorf("with bind: %v", got)
	}
	c.Remote.Bind, c.Cluster.Bind = "127.0.0.1", "::1"
	if got := [3]string{c.HTTPListen(), c.GRPCListen(), c.ClusterListen()}; got != [3]string{"10.0.0.1:8848", "127.0.0.1:9848", "[::1]:9849"} {
		t.Errorf("with remote.bind and cluster.bind: %v", got)
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
		{"cluster tls", func(c *Config) { c.Cluster.TLS = ClusterTLS{CAFile: "ca.pem", CertFile: "n.pem", KeyFile: "n-key.pem"} }, ""},
		{"cluster tls without key", func(c *Config) { c.Cluster.TLS = ClusterTLS{CAFile: "ca.pem", CertFile: "n.pem"} }, "cluster.tls.key_file"},
		{"cluster secret", func(c *Config) { c.Cluster.Secret = strings.Repeat("s", 32) }, ""},
		{"short cluster secret", func(c *Config) { c.Cluster.Secret = "hunter2" }, "cluster.secret"},
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
		{"no empty push grace", func(c *Config) { c.Push.ProtectEmptyGrace = 0 }, ""},
		{"negative empty push grace", func(c *Config) { c.Push.ProtectEmptyGrace = -time.Second }, "push.protect_empty_grace"},
		{"raft apply timeout too short", func(c *Config) { c.Raft.ApplyTimeout = time.Millisecond }, "raft.apply_timeout"},
		{"udp subscriber expiry under a second", func(c *Config) { c.Push.UDP.Expiry = 500 * time.Millisecond }, "push.udp.expiry"},
		{"no idle timeout", func(c *Config) { c.Remote.IdleTimeout = 0 }, "remote.idle_timeout"},
		{"negative detect interval", func(c *Config) { c.Remote.DetectInterval = -time.Second }, "remote.detect_interval"},
		{"no detect timeout", func(c *Config) { c.Remote.DetectTimeout = 0 }, "remote.detect_timeout"},
		{"no outbound bytes", func(c *Config) { c.Remote.MaxOutboundBytes = 0 }, "remote.max_outbound_bytes"},
		{"no write timeout", func(c *Config) { c.Remote.WriteTimeout = 0 }, "remote.write_timeout"},
		{"no setup timeout", func(c *Config) { c.Remote.SetupTimeout = -time.Second }, "remote.setup_timeout"},
		{"fewest streams", func(c *Config) { c.Remote.MaxStreamsPerConnection = 2 }, ""},
		{"one stream", func(c *Config) { c.Remote.MaxStreamsPerConnection = 1 }, "remote.max_streams_per_connection"},
		{"set max connections", func(c *Config) { c.Remote.MaxConnections = 10 }, ""},
		{"negative max connections", func(c *Config) { c.Remote.MaxConnections = -1 }, "remote.max_connections"},
		{"unknown transport", func(c *Config) { c.Remote.Transport = "http3" }, "remote.transport"},
		{"no name length", func(c *Config) { c.Naming.MaxNameLength = 0 }, "naming.max_name_length"},
		{"no metadata", func(c *Config) { c.Naming.MaxMetadataBytes = 0 }, "naming.max_metadata_bytes"},
		{"negative batch", func(c *Config) { c.Naming.MaxBatchSize = -1 }, "naming.max_batch_size"},
		{"no services per client", func(c *Config) { c.Naming.MaxServicesPerClient = 0 }, "naming.max_services_per_client"},
		{"no instances per client", func(c *Config) { c.Naming.MaxInstancesPerClient = 0 }, "naming.max_instances_per_client"},
		{"no subscriptions per client", func(c *Config) { c.Naming.MaxSubscriptionsPerClient = 0 }, "naming.max_subscriptions_per_client"},
		{"negative clusters per filter", func(c *Config) { c.Naming.MaxClustersPerFilter = -1 }, "naming.max_clusters_per_filter"},
		{"no health check interval", func(c *Config) { c.Health.CheckInterval = 0 }, "health.check_interval"},
		{"no health checks per tick", func(c *Config) { c.Health.MaxChecksPerTick = 0 }, "health.max_checks_per_tick"},
		{"no http idle timeout", func(c *Config) { c.HTTP.IdleTimeout = 0 }, "http.idle_timeout"},
		{"negative http read timeout", func(c *Config) { c.HTTP.ReadTimeout = -time.Second }, "http.read_timeout"},
		{"no http write timeout", func(c *Config) { c.HTTP.WriteTimeout = 0 }, "http.write_timeout"},
		{"smallest header limit", func(c *Config) { c.HTTP.MaxHeaderBytes = 4096 }, ""},
		{"small header limit", func(c *Config) { c.HTTP.MaxHeaderBytes = 4095 }, "http.max_header_bytes"},
		{"set http max connections", func(c *Config) { c.HTTP.MaxConnections = 10 }, ""},
		{"negative http max connections", func(c *Config) { c.HTTP.MaxConnections = -1 }, "http.max_connections"},
		{"bind loopback", func(c *Config) { c.Bind, c.Remote.Bind, c.Cluster.Bind = "127.0.0.1", "::1", "10.0.0.1" }, ""},
		{"bind with a port", func(c *Config) { c.Bind = "127.0.0.1:8848" }, "bind"},
		{"bind a host name", func(c *Config) { c.Remote.Bind = "localhost" }, "remote.bind"},
		{"bind garbage", func(c *Config) { c.Cluster.Bind = "10.0.0" }, "cluster.bind"},
		{"tls", func(c *Config) { c.TLS = TLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"} }, ""},
		{"tls without key", func(c *Config) { c.TLS.CertFile = "c" }, "tls.key_file"},
		{"tls without certificate", func(c *Config) { c.TLS.KeyFile = "k" }, "tls.cert_file"},
		{"client CA without tls", func(c *Config) { c.TLS.ClientCAFile = "ca" }, "tls.client_ca_file"},
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

func TestRedactedHidesSecrets(t *testing.T) {
	cfg := Default()
	cfg.Cluster.Secret = "a-cluster-secret-of-at-least-32-bytes!!"
	cfg.Auth.TokenSecret = "a-token-secret-of-at-least-32-bytes-long!"
	cfg.Plugins = map[string]Plugin{"nats": {Path: "/p", Config: map[string]any{"password": "hunter2"}}}
	out := fmt.Sprintf("%+v", cfg.Redacted())
	for _, secret := range []string{cfg.Cluster.Secret, cfg.Auth.TokenSecret, "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("the redacted configuration shows %q: %s", secret, out)
		}
	}
	if cfg.Plugins["nats"].Config["password"] != "hunter2" {
		t.Error("Redacted changed the configuration it was called on")
	}
}
