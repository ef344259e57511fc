package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestSettingsSayWhereEachCameFrom: the settings that differ from the
// defaults, each with the file, variable or flags that set it last; the
// ones set to their default are left out, and secrets show as "(set)".
func TestSettingsSayWhereEachCameFrom(t *testing.T) {
	secret := strings.Repeat("s", 32)
	path := writeFile(t, "s.hcl", `
port = 9000
data_dir = "data"
push {
  delay = "1s"
}
cluster {
  members = ["10.0.0.1:8848", "10.0.0.2:8848"]
  secret  = "`+secret+`"
  tls {
    ca_file   = "/etc/ca.pem"
    cert_file = "/etc/node.pem"
    key_file  = "/etc/node-key.pem"
  }
}
auth {
  enabled = true
  users = [{ name = "app", password_hash = "`+testHash+`" }]
}
plugins {
  webhook {
    path = "/opt/hook"
    args = ["-v"]
    config {
      url   = "http://hooks.example/x"
      token = "t0ps3cret"
    }
  }
  pushudp {
    disabled = false
  }
  bare {}
}
`)
	env := []string{"SEXTANT_PUSH_DELAY=2s", "SEXTANT_AUTH_TOKEN_SECRET=" + secret, "SEXTANT_LOG_LEVEL=info", "HOME=/root"}
	l, err := LoadWithSources(path, env, map[string]any{"log.json": true})
	if err != nil {
		t.Fatal(err)
	}
	file, flags := "config file "+path, "flags"
	want := []Setting{
		{"auth.enabled", "true", file},
		{"auth.token_secret", "(set)", "environment variable SEXTANT_AUTH_TOKEN_SECRET"},
		{"auth.users", "(1 entries)", file},
		{"cluster.members", "[10.0.0.1:8848 10.0.0.2:8848]", file},
		{"cluster.secret", "(set)", file},
		{"cluster.tls.ca_file", "/etc/ca.pem", file},
		{"cluster.tls.cert_file", "/etc/node.pem", file},
		{"cluster.tls.key_file", "/etc/node-key.pem", file},
		{"log.json", "true", flags},
		{"plugins.bare", "{}", file},
		{"plugins.webhook.args", "[-v]", file},
		{"plugins.webhook.config.token", "(set)", file},
		{"plugins.webhook.config.url", "http://hooks.example/x", file},
		{"plugins.webhook.path", "/opt/hook", file},
		{"port", "9000", file},
		{"push.delay", "2s", "environment variable SEXTANT_PUSH_DELAY"},
	}
	if !reflect.DeepEqual(l.Settings, want) {
		t.Errorf("settings:\n%s\nwant:\n%s", render(l.Settings), render(want))
	}
	for _, s := range l.Settings {
		if strings.Contains(s.Value, secret) || strings.Contains(s.Value, "t0ps3cret") || strings.Contains(s.Value, testHash) {
			t.Errorf("%s shows a secret: %q", s.Key, s.Value)
		}
	}
	if l.Config.Port != 9000 || len(l.Notes) != 0 {
		t.Errorf("config %+v, notes %v", l.Config, l.Notes)
	}
}

func TestNoSettingsByDefault(t *testing.T) {
	l, err := LoadWithSources("", []string{"SEXTANT_PORT=8848"}, nil)
	if err != nil || len(l.Settings) != 0 {
		t.Fatalf("settings %v, error %v: a key set to its default is no setting", l.Settings, err)
	}
}

func TestIsSecret(t *testing.T) {
	for key, want := range map[string]bool{
		"auth.token_secret": true, "cluster.secret": true, "auth.token_ttl": false, "tls.key_file": false,
		"plugins.x.config.password": true, "plugins.x.config.api_key": true, "plugins.x.config.headers.X-Api-Key": true,
		"plugins.x.config.encrypt_key": true, "plugins.x.config.nkey_seed": true, "plugins.x.config.url": false,
		"plugins.x.config.tls_key_file": false, "plugins.x.config.auth_token": true, "plugins.x.config.keys": false,
	} {
		if got := isSecret(key); got != want {
			t.Errorf("isSecret(%s) = %v, want %v", key, got, want)
		}
	}
}

func render(settings []Setting) string {
	var b strings.Builder
	for _, s := range settings {
		b.WriteString("  " + s.Key + " = " + s.Value + " (" + s.Source + ")\n")
	}
	return b.String()
}
