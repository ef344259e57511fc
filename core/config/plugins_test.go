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
		"webhook": {Path: "/opt/hook", SHA256: strings.Repeat("ab", 32), Config: map[string]any{
			"url": "http://hooks.example/x", "timeout": "2s", "retries": 3, "headers": map[string]any{"X-Token": "t"},
		}},
		"bare": {},
	}
	for _, path := range []string{hcl, yaml} {
		cfg, err := Load(path, nil, nil)
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
	cfg, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[string]Plugin{"pushrpc": {}, "webhook": {Path: "/opt/hook"}}); !reflect.DeepEqual(cfg.Plugins, want) {
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
		{"environment", "", []string{"SEXTANT_PLUGINS_WEBHOOK_PATH=/x"}, "SEXTANT_PLUGINS_WEBHOOK_PATH: matches no configuration key"},
	}
	for _, tc := range tests {
		path := ""
		if tc.body != "" {
			path = writeFile(t, "p.yaml", tc.body)
		}
		_, err := Load(path, tc.env, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
