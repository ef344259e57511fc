package server

import (
	"reflect"
	"testing"

	"github.com/sextantd/sextant/core/config"
)

// TestPluginSpecsPassClusterSecurityToTheTransport: cluster.tls and
// cluster.secret reach the transport's block as its tls_* and secret keys,
// unless the block sets them itself.
func TestPluginSpecsPassClusterSecurityToTheTransport(t *testing.T) {
	cfg := config.Default()
	cfg.Cluster.Members = []string{"10.0.0.1:8848", "10.0.0.2:8848"}
	cfg.Cluster.TLS = config.ClusterTLS{CAFile: "/etc/ca.pem", CertFile: "/etc/node.pem", KeyFile: "/etc/node-key.pem"}
	cfg.Cluster.Secret = "a secret of the cluster, 32 bytes at least"
	_, _, tr := pluginSpecs(cfg, true)
	want := map[string]any{
		"tls_ca_file": "/etc/ca.pem", "tls_cert_file": "/etc/node.pem", "tls_key_file": "/etc/node-key.pem",
		"secret": "a secret of the cluster, 32 bytes at least",
	}
	if tr == nil || !reflect.DeepEqual(tr.Config, want) {
		t.Fatalf("the transport's config: %v, want %v", tr, want)
	}

	own := map[string]any{"secret": "the block's own secret, which wins over cluster.secret", "dial_timeout": "1s"}
	cfg.Plugins = map[string]config.Plugin{cfg.Cluster.Transport: {Config: own}}
	cfg.Cluster.TLS = config.ClusterTLS{}
	_, _, tr = pluginSpecs(cfg, true)
	if !reflect.DeepEqual(tr.Config, own) {
		t.Errorf("the transport's config: %v, want its own %v", tr.Config, own)
	}
	if len(own) != 2 {
		t.Errorf("pluginSpecs changed the configuration's block: %v", own)
	}

	cfg.Cluster.Secret, cfg.Plugins = "", nil
	if _, _, tr = pluginSpecs(cfg, true); len(tr.Config) != 0 {
		t.Errorf("without cluster.tls and cluster.secret, the transport's config: %v", tr.Config)
	}
}

// TestPluginSpecsLaunch: path and args, and a built-in under another name,
// reach the plugin host; the static built-in under another name gets
// cluster.members too.
func TestPluginSpecsLaunch(t *testing.T) {
	cfg := config.Default()
	cfg.Cluster.Members = []string{"10.0.0.1:8848", "10.0.0.2:8848"}
	cfg.Cluster.Membership, cfg.Cluster.Transport = "members", "wire"
	cfg.Plugins = map[string]config.Plugin{
		"members": {Builtin: "static"},
		"wire":    {Builtin: "grpctransport"},
		"hook":    {Path: "/opt/hook", Args: []string{"-v"}},
	}
	push, m, tr := pluginSpecs(cfg, true)
	if m == nil || m.Name != "members" || m.Builtin != "static" || !reflect.DeepEqual(m.Config, map[string]any{"members": []any{"10.0.0.1:8848", "10.0.0.2:8848"}}) {
		t.Errorf("membership %+v, want the static built-in as members, with cluster.members", m)
	}
	if tr == nil || tr.Name != "wire" || tr.Builtin != "grpctransport" {
		t.Errorf("transport %+v", tr)
	}
	if len(push) != 1 || push[0].Name != "hook" || push[0].Path != "/opt/hook" || !reflect.DeepEqual(push[0].Args, []string{"-v"}) {
		t.Errorf("push %+v", push)
	}
}
