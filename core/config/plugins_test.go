package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestPluginsSection(t *testing.T) {
	hcl := writeFile(t, "plugins.hcl", `
plugins {
  pushrpc {
    in_process = true
  }
  webhook {
    path   = "/opt/hook"
    sha256 = "`+strings.Repeat("ab", 32)+`"
    config {
      url     = "http://hooks.example/x"
      timeout = "2s"
      retries = 3
      headers {
        X-Token = "t"
      }
    }
  }
  bare {}
}
`)
	yaml := writeFile(t, "plugins.yaml", `
plugins:
  pushrpc:
    in_process: true
  webhook:
    path: /opt/hook
    sha256: `+strings.Repeat("ab", 32)+`
    config:
      url: http://hooks.example/x
      timeout: 2s
      retries: 3
      headers:
        X-Token: t
  bare: {}
`)
	want := map[string]Plugin{
		"pushrpc": {InProcess: true},
		"pushudp": {},
		"webhook": {Path: "/opt/hook", SHA256: strings.Repeat("ab", 32), Config: map[string]any{
			"url": "http://hooks.example/x", "timeout": "2s", "retries": 3, "headers": map[string]any{"X-Token": "t"},
		}},
		"bare": {},
	}
	for _, path := range []string{hcl, yaml} {
		cfg, _, err := Load(path, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !reflect.DeepEqual(cfg.Plugins, want) {
			t.Errorf("%s: plugins\n got %#v\nwant %#v", path, cfg.Plugins, want)
		}
	}
}

func TestPluginsDefaultAndAdded(t *testing.T) {
	path := writeFile(t, "add.yaml", "plugins:\n  webhook:\n    path: /opt/hook\n")
	cfg, _, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[string]Plugin{"pushrpc": {}, "pushudp": {}, "webhook": {Path: "/opt/hook"}}); !reflect.DeepEqual(cfg.Plugins, want) {
		t.Fatalf("adding a plugin should keep the default one: %#v", cfg.Plugins)
	}
}

func TestPluginsErrors(t *testing.T) {
	tests := []struct {
		name, body string
		env        []string
		want       string
	}{
		{"unknown field", "plugins:\n  webhook:\n    pth: /x\n", nil, "plugins.webhook.pth: unknown key"},
		{"wrong type", "plugins:\n  webhook:\n    path: [1]\n", nil, "plugins.webhook.path: want a string"},
		{"bad name", "plugins:\n  Web.Hook:\n    path: /x\n", nil, "plugins.Web"},
		{"bad sha", "plugins:\n  webhook:\n    path: /x\n    sha256: abc\n", nil, "plugins.webhook.sha256"},
		{"sha without path", "plugins:\n  pushrpc:\n    sha256: \"" + strings.Repeat("0", 64) + "\"\n", nil, "plugins.pushrpc.sha256: is only checked"},
		{"in process with a path", "plugins:\n  webhook:\n    path: /x\n    in_process: true\n", nil, "plugins.webhook.in_process"},
	}
	for _, tc := range tests {
		path := ""
		if tc.body != "" {
			path = writeFile(t, "p.yaml", tc.body)
		}
		_, _, err := Load(path, tc.env, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestPluginsLaunch: a binary by path with its arguments, and a built-in
// under a name of the user's, in HCL and YAML alike.
func TestPluginsLaunch(t *testing.T) {
	hcl := writeFile(t, "launch.hcl", `
plugins {
  hook {
    path = "/opt/hook"
    args = ["--colour", "blue"]
  }
  wire {
    builtin = "grpctransport"
  }
}
`)
	yaml := writeFile(t, "launch.yaml", `
plugins:
  hook:
    path: /opt/hook
    args: [--colour, blue]
  wire:
    builtin: grpctransport
`)
	for _, path := range []string{hcl, yaml} {
		cfg, _, err := Load(path, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		hook, wire := cfg.Plugins["hook"], cfg.Plugins["wire"]
		if !reflect.DeepEqual(hook, Plugin{Path: "/opt/hook", Args: []string{"--colour", "blue"}}) {
			t.Errorf("%s: hook = %#v", path, hook)
		}
		if !reflect.DeepEqual(wire, Plugin{Builtin: "grpctransport"}) {
			t.Errorf("%s: wire = %#v", path, wire)
		}
		for _, c := range []struct{ name, want string }{{"hook", ""}, {"wire", "grpctransport"}, {"pushrpc", "pushrpc"}} {
			if got := cfg.Plugins[c.name].BuiltinName(c.name); got != c.want {
				t.Errorf("%s: %s runs the built-in %q, want %q", path, c.name, got, c.want)
			}
		}
	}
}

func TestPluginsLaunchErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"builtin with a path", "plugins:\n  wire:\n    path: /x\n    builtin: grpctransport\n",
			"plugins.wire.builtin: runs a built-in from the server's binary, and path a binary of its own: set one of them"},
		{"args without a path", "plugins:\n  wire:\n    builtin: grpctransport\n    args: [-v]\n",
			"plugins.wire.args: are the arguments of a binary given by path"},
		{"args of a built-in by name", "plugins:\n  pushrpc:\n    args: [-v]\n", "plugins.pushrpc.args"},
		{"args not a list of strings", "plugins:\n  hook:\n    path: /x\n    args: [1]\n", "plugins.hook.args: item 0: want a string"},
		{"builtin not a name", "plugins:\n  wire:\n    builtin: ../bin/sh\n", `plugins.wire.builtin: "../bin/sh" is no built-in's name`},
		{"sha256 of a built-in", "plugins:\n  wire:\n    builtin: grpctransport\n    sha256: \"" + strings.Repeat("0", 64) + "\"\n",
			"plugins.wire.sha256: is only checked for a binary given by path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "p.yaml", tc.body)
			_, _, err := Load(path, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "config file "+path) {
				t.Errorf("the error %q does not name the file", err)
			}
		})
	}
}
