package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad loads fuzzed HCL and YAML configuration files. Load never
// panics; a configuration it accepts passes Validate, and it accepts or
// refuses the same file the same way every time; a refusal returns the zero
// Config, and every line of its error begins with the source of the value
// it is about: the file, or the built-in default (one error may span lines:
// a YAML parser's list of errors).
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"standalone.hcl", "standalone.yaml"} {
		b, err := os.ReadFile(filepath.Join(samples, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.HasSuffix(name, ".yaml"), b)
	}
	sha := strings.Repeat("ab", 32)
	for _, s := range []struct {
		yaml bool
		body string
	}{
		// load_test.go
		{false, "port = 9001\nlog {\n  level = \"debug\"\n}\npush {\n  delay = \"1s\"\n}\n"},
		{true, "port: 9001\nlog:\n  level: debug\npush:\n  delay: 1s\n"},
		{true, "port: \"9004\"\nlog:\n  json: \"true\"\n"},
		{false, "push {}\n"},
		{true, "push:\n"},
		{true, ""},
		{false, "push {\n  dealy = \"1s\"\n}\n"},
		{true, "colour: red\n"},
		{true, "port:\n  number: 1\n"},
		{false, "push = \"1s\"\n"},
		{false, "push {}\npush {}\n"},
		{false, "push {\n  delay = \"fast\"\n}\n"},
		{true, "push:\n  delay: 500\n"},
		{true, "port: true\n"},
		{true, "port: [1]\n"},
		{false, "port = 9000.5\n"},
		{true, "log:\n  level: 3\n"},
		{false, "port = \nlog {\n"},
		{true, "port: 1\n  log: x\n"},
		{false, "colour = \"red\"\nport = true\n"},
		{false, "log {\n  level = \"loud\"\n}\n"},
		{true, "naming:\n  max_batch_size: -1\n"},
		{true, "remote:\n  grpc_port: 9000\nport: 9000\n"},
		{true, "cluster:\n  verify_interval: 20s\n  members: [\"10.0.0.1:8848\", \"10.0.0.2\", \"bad host:x\"]\n  self: 10.0.0.1:8848\n"},
		{true, "push:\n  timeout: 0s\nhttp:\n  idle_timeout: -1s\nremote:\n  max_message_size: 1\n"},
		// plugins_test.go
		{true, "plugins:\n  Webhook:\n    path: /x\n"},
		{true, "plugins:\n  webhook:\n    path: /x\n    sha256: abc\n"},
		{true, "plugins:\n  webhook:\n    pth: /x\n"},
		{true, "plugins:\n  webhook:\n    path: [1]\n"},
		{true, "plugins:\n  Web.Hook:\n    path: /x\n"},
		{true, "plugins:\n  pushrpc:\n    sha256: \"" + strings.Repeat("0", 64) + "\"\n"},
		{true, "plugins:\n  webhook:\n    path: /x\n    in_process: true\n"},
		{true, "plugins:\n  webhook:\n    path: /opt/hook\n"},
		{false, "plugins {\n  pushrpc {\n    in_process = true\n  }\n  webhook {\n    path   = \"/opt/hook\"\n    sha256 = \"" + sha +
			"\"\n    config {\n      url     = \"http://hooks.example/x\"\n      timeout = \"2s\"\n      retries = 3\n" +
			"      headers {\n        X-Token = \"t\"\n      }\n    }\n  }\n  bare {}\n}\n"},
		{true, "plugins:\n  pushrpc:\n    in_process: true\n  webhook:\n    path: /opt/hook\n    sha256: " + sha +
			"\n    config:\n      url: http://hooks.example/x\n      timeout: 2s\n      retries: 3\n      headers:\n        X-Token: t\n  bare: {}\n"},
		// Edge cases.
		{true, "port: 0x1F90\n"},
		{true, "port: 99999999999999999999\n"},
		{true, "push:\n  delay: 9999999999h\n"},
		{true, "&a [*a]"},
		{true, "a: &a {b: *a}\n"},
		{true, "? [1, 2]\n: x\n"},
		// Found by fuzzing: a plugin's config that is not a block was an
		// error naming neither the key nor the file.
		{true, "plugins:\n  x:\n    config: !!binary aGVsbG8=\n"},
		{true, "plugins:\n  x:\n    config: hello\n"},
		{true, "plugins:\n  x:\n    config: [1]\n"},
		{true, "plugins:\n  x:\n    config:\n"},
		{true, "plugins:\n  x:\n    config: {}\n"},
		{false, "plugins {\n  x {\n    config = 3\n  }\n}\n"},
		{false, "port = 1e400\n"},
		{false, "\"port\" = 1\nplugins \"x\" {}\n"},
		{false, "plugins {\n  a = [{b = 1}, {c = 2}]\n}\n"},
	} {
		f.Add(s.yaml, []byte(s.body))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml bool, body []byte) {
		path := filepath.Join(dir, "sextant.hcl")
		if yaml {
			path = filepath.Join(dir, "sextant.yaml")
		}
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := Load(path, nil, nil)
		again, _, errAgain := Load(path, nil, nil)
		if (err == nil) != (errAgain == nil) || err != nil && err.Error() != errAgain.Error() || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("Load(%q) = %v; again: %v", body, err, errAgain)
		}
		if err != nil {
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Fatalf("Load(%q) = %+v with its error %v, want the zero Config", body, cfg, err)
			}
			errs := []error{err}
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				errs = joined.Unwrap()
			}
			for _, e := range errs {
				if msg := e.Error(); !strings.HasPrefix(msg, "config file "+path+": ") && !strings.HasPrefix(msg, "built-in default: ") {
					t.Fatalf("Load(%q): error %q names no source; the whole error:\n%v", body, msg, err)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load(%q) accepted a configuration that Validate refuses: %v", body, err)
		}
	})
}
