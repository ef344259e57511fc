package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// samples is the directory of the sample configurations.
var samples = filepath.Join("..", "..", "examples", "config")

// writeFile writes body to a file called name in a new temporary directory
// and returns its path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSamples(t *testing.T) {
	keys := keyTypes()
	var (
		settings []map[string]any
		configs  []Config
	)
	for _, name := range []string{"standalone.hcl", "standalone.yaml"} {
		path := filepath.Join(samples, name)
		values, err := fileValues(path, keys)
		if err != nil {
			t.Fatal(err)
		}
		for key := range keys {
			if _, ok := values[key]; !ok {
				t.Errorf("%s does not set %s", path, key)
			}
		}
		cfg, notes, err := Load(path, nil, nil)
		if err != nil || len(notes) > 0 {
			t.Fatalf("Load(%s) = %v, notes %v", path, err, notes)
		}
		settings = append(settings, values)
		configs = append(configs, cfg)
	}
	if !reflect.DeepEqual(settings[0], settings[1]) {
		t.Errorf("the samples differ:\nHCL:  %v\nYAML: %v", settings[0], settings[1])
	}
	if !reflect.DeepEqual(configs[0], configs[1]) {
		t.Errorf("the samples load differently:\nHCL:  %+v\nYAML: %+v", configs[0], configs[1])
	}
}

func TestLoad(t *testing.T) {
	const (
		hclFile  = "port = 9001\nlog {\n  level = \"debug\"\n}\npush {\n  delay = \"1s\"\n}\n"
		yamlFile = "port: 9001\nlog:\n  level: debug\npush:\n  delay: 1s\n"
	)
	// fromFile is what both files set; push.timeout and the rest keep their defaults.
	fromFile := func(c *Config) { c.Port, c.Log.Level, c.Push.Delay = 9001, "debug", time.Second }
	env := []string{"HOME=/root", "SEXTANT_PORT=9002", "SEXTANT_PUSH_DELAY=2s", "SEXTANT_DATA_DIR=/var/lib/sextant"}
	fromEnv := func(c *Config) { c.Port, c.Push.Delay, c.DataDir = 9002, 2*time.Second, "/var/lib/sextant" }

	tests := []struct {
		name     string
		fileName string // "" for no file
		fileBody string
		env      []string
		flags    map[string]any
		want     func(*Config) // changes Default() into the wanted configuration
	}{
		{name: "defaults", want: func(*Config) {}},
		{name: "HCL file", fileName: "s.hcl", fileBody: hclFile, want: fromFile},
		{name: "YAML file", fileName: "s.yaml", fileBody: yamlFile, want: fromFile},
		{name: "yml file", fileName: "s.yml", fileBody: yamlFile, want: fromFile},
		{name: "env over default", env: env, want: fromEnv},
		{
			name: "env over file", fileName: "s.hcl", fileBody: hclFile, env: env,
			want: func(c *Config) { fromFile(c); fromEnv(c) },
		},
		{
			name: "flags over env", fileName: "s.yaml", fileBody: yamlFile, env: env,
			flags: map[string]any{"port": 9003, "push.timeout": 9 * time.Second},
			want: func(c *Config) {
				fromFile(c)
				fromEnv(c)
				c.Port, c.Push.Timeout = 9003, 9*time.Second
			},
		},
		{
			name:  "flags as strings",
			flags: map[string]any{"port": "9003", "push.delay": "0s", "log.json": "true"},
			want:  func(c *Config) { c.Port, c.Push.Delay, c.Log.JSON = 9003, 0, true },
		},
		{
			name: "strings in a file", fileName: "s.yaml", fileBody: "port: \"9004\"\nlog:\n  json: \"true\"\n",
			want: func(c *Config) { c.Port, c.Log.JSON = 9004, true },
		},
		{name: "empty HCL block", fileName: "s.hcl", fileBody: "push {}\n", want: func(*Config) {}},
		{name: "empty YAML section", fileName: "s.yaml", fileBody: "push:\n", want: func(*Config) {}},
		{name: "empty file", fileName: "s.yaml", want: func(*Config) {}},
		{
			name: "other variables ignored",
			env:  []string{"PORT=1", "sextant_port=1", "SEXTANT", "SEXTANTPORT=1", "SEXTANT_REMOTE_GRPC_PORT=7000"},
			want: func(c *Config) { c.Remote.GRPCPort = 7000 },
		},
		{
			name: "value containing =", env: []string{"SEXTANT_DATA_DIR=/a=b"},
			want: func(c *Config) { c.DataDir = "/a=b" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			if tt.fileName != "" {
				path = writeFile(t, tt.fileName, tt.fileBody)
			}
			got, notes, err := Load(path, tt.env, tt.flags)
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if len(notes) > 0 {
				t.Errorf("Load() notes = %v, want none", notes)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		fileName string // "" for no file
		fileBody string
		env      []string
		flags    map[string]any
		want     []string // in the error, with $FILE for the file's path
	}{
		{
			name: "unknown key in HCL", fileName: "s.hcl", fileBody: "push {\n  dealy = \"1s\"\n}\n",
			want: []string{"config file $FILE: push.dealy: unknown key"},
		},
		{
			name: "unknown key in YAML", fileName: "s.yaml", fileBody: "colour: red\n",
			want: []string{"config file $FILE: colour: unknown key"},
		},
		{
			name: "key below a setting", fileName: "s.yaml", fileBody: "port:\n  number: 1\n",
			want: []string{"config file $FILE: port.number: unknown key"},
		},
		{
			name: "section set to a value", fileName: "s.hcl", fileBody: "push = \"1s\"\n",
			want: []string{"config file $FILE: push: is a section, not a setting (got 1s (string))"},
		},
		{
			name: "repeated HCL block", fileName: "s.hcl", fileBody: "push {}\npush {}\n",
			want: []string{"config file $FILE: push: is a section, not a setting (got a list)"},
		},
		{
			name: "bad duration in file", fileName: "s.hcl", fileBody: "push {\n  delay = \"fast\"\n}\n",
			want: []string{`config file $FILE: push.delay: invalid duration "fast"`},
		},
		{
			name: "number for a duration", fileName: "s.yaml", fileBody: "push:\n  delay: 500\n",
			want: []string{`config file $FILE: push.delay: want a duration such as "500ms", got 500 (int)`},
		},
		{
			name: "boolean for an integer", fileName: "s.yaml", fileBody: "port: true\n",
			want: []string{"config file $FILE: port: want an integer, got true (bool)"},
		},
		{
			name: "list for an integer", fileName: "s.yaml", fileBody: "port: [1]\n",
			want: []string{"config file $FILE: port: want an integer, got a list"},
		},
		{
			name: "fraction for an integer", fileName: "s.hcl", fileBody: "port = 9000.5\n",
			want: []string{"config file $FILE: port: want an integer, got 9000.5 (float64)"},
		},
		{
			name: "number for a string", fileName: "s.yaml", fileBody: "log:\n  level: 3\n",
			want: []string{"config file $FILE: log.level: want a string, got 3 (int)"},
		},
		{
			name: "HCL syntax", fileName: "s.hcl", fileBody: "port = \nlog {\n",
			want: []string{"config file $FILE: At 2:1:"},
		},
		{
			name: "YAML syntax", fileName: "s.yaml", fileBody: "port: 1\n  log: x\n",
			want: []string{"config file $FILE: yaml: line 2:"},
		},
		{
			name: "unsupported extension", fileName: "s.toml", fileBody: "port = 1\n",
			want: []string{`config file $FILE: unsupported extension ".toml" (want .hcl, .yaml or .yml)`},
		},
		{
			name: "no extension", fileName: "sextant", fileBody: "port = 1\n",
			want: []string{`config file $FILE: unsupported extension ""`},
		},
		{
			name: "bad duration in env", env: []string{"SEXTANT_PUSH_DELAY=fast"},
			want: []string{`environment variable SEXTANT_PUSH_DELAY: push.delay: invalid duration "fast"`},
		},
		{
			name: "bad integer in env", env: []string{"SEXTANT_REMOTE_GRPC_PORT=9848x"},
			want: []string{`environment variable SEXTANT_REMOTE_GRPC_PORT: remote.grpc_port: invalid integer "9848x"`},
		},
		{
			name: "empty integer in env", env: []string{"SEXTANT_PORT="},
			want: []string{`environment variable SEXTANT_PORT: port: invalid integer ""`},
		},
		{
			name: "bad boolean in env", env: []string{"SEXTANT_LOG_JSON=yes"},
			want: []string{`environment variable SEXTANT_LOG_JSON: log.json: invalid boolean "yes"`},
		},
		{
			name: "unknown flag", flags: map[string]any{"push.dealy": "1s"},
			want: []string{"flags: push.dealy: unknown key"},
		},
		{
			name: "flag for a section", flags: map[string]any{"push": map[string]any{"delay": "1s"}},
			want: []string{"flags: push: is a section, not a setting (got a map)"},
		},
		{
			name: "wrong type in flags", flags: map[string]any{"port": true, "push.delay": 500},
			want: []string{
				"flags: port: want an integer, got true (bool)",
				`flags: push.delay: want a duration such as "500ms", got 500 (int)`,
			},
		},
		{
			name: "bad string in flags", flags: map[string]any{"port": "http"},
			want: []string{`flags: port: invalid integer "http"`},
		},
		{
			name: "errors from every source", fileName: "s.hcl", fileBody: "colour = \"red\"\nport = true\n",
			env:   []string{"SEXTANT_PUSH_DELAY=fast"},
			flags: map[string]any{"log.level": 3},
			want: []string{
				"config file $FILE: colour: unknown key",
				"config file $FILE: port: want an integer",
				"environment variable SEXTANT_PUSH_DELAY: push.delay: invalid duration",
				"flags: log.level: want a string",
			},
		},
		{
			name: "invalid level in env", env: []string{"SEXTANT_LOG_LEVEL=loud"},
			want: []string{`environment variable SEXTANT_LOG_LEVEL: log.level: "loud" is not one of`},
		},
		{
			name: "invalid level in file", fileName: "s.hcl", fileBody: "log {\n  level = \"loud\"\n}\n",
			want: []string{`config file $FILE: log.level: "loud" is not one of`},
		},
		{
			name: "invalid level in flags", flags: map[string]any{"log.level": "loud"},
			want: []string{`flags: log.level: "loud" is not one of`},
		},
		{
			name: "negative size in file", fileName: "s.yaml", fileBody: "naming:\n  max_batch_size: -1\n",
			want: []string{"config file $FILE: naming.max_batch_size: must be positive, got -1"},
		},
		{
			name: "small header limit in env", env: []string{"SEXTANT_HTTP_MAX_HEADER_BYTES=100"},
			want: []string{"environment variable SEXTANT_HTTP_MAX_HEADER_BYTES: http.max_header_bytes: 100 is below the minimum"},
		},
		{
			name: "port too high in flags", flags: map[string]any{"port": 70000},
			want: []string{
				"flags: port: 70000 is not a port number (1-65535)",
				"built-in default: remote.grpc_port: port+1000 = 71000 is not a port number; set remote.grpc_port (port from flags)",
			},
		},
		{
			name: "grpc port clash across sources", fileName: "s.yaml", fileBody: "remote:\n  grpc_port: 9000\n",
			flags: map[string]any{"port": 9000},
			want:  []string{"config file $FILE: remote.grpc_port: 9000 is also the HTTP port (port from flags)"},
		},
		{
			name: "dependency set elsewhere", env: []string{"SEXTANT_CLUSTER_VERIFY_INTERVAL=20s"},
			want: []string{"built-in default: cluster.client_expiry: 10s must be longer than cluster.verify_interval (20s)",
				"(cluster.verify_interval from environment variable SEXTANT_CLUSTER_VERIFY_INTERVAL)"},
		},
		{
			name: "bad plugin name in file", fileName: "s.yaml", fileBody: "plugins:\n  Webhook:\n    path: /x\n",
			want: []string{"config file $FILE: plugins.Webhook: a plugin name may only contain"},
		},
		{
			name: "bad plugin setting in file", fileName: "s.yaml", fileBody: "plugins:\n  webhook:\n    path: /x\n    sha256: abc\n",
			want: []string{`config file $FILE: plugins.webhook.sha256: "abc" is not 64 hexadecimal digits`},
		},
		{
			name: "default plugin made invalid in flags", flags: map[string]any{"plugins.pushrpc.sha256": strings.Repeat("0", 64)},
			want: []string{"flags: plugins.pushrpc.sha256: is only checked for a binary given by path"},
		},
		{
			name: "validation errors from every source", fileName: "s.yaml", fileBody: "push:\n  timeout: 0s\n",
			env:   []string{"SEXTANT_HTTP_IDLE_TIMEOUT=-1s"},
			flags: map[string]any{"remote.max_message_size": 1},
			want: []string{
				"config file $FILE: push.timeout: must be positive",
				"environment variable SEXTANT_HTTP_IDLE_TIMEOUT: http.idle_timeout: must be positive",
				"flags: remote.max_message_size: 1 is below the minimum",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			if tt.fileName != "" {
				path = writeFile(t, tt.fileName, tt.fileBody)
			}
			got, _, err := Load(path, tt.env, tt.flags)
			if err == nil {
				t.Fatalf("Load() = %+v, want an error", got)
			}
			if !reflect.DeepEqual(got, Config{}) {
				t.Errorf("Load() returned %+v with its error, want the zero Config", got)
			}
			for _, want := range tt.want {
				want = strings.ReplaceAll(want, "$FILE", path)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load() error\n%v\ndoes not contain\n%s", err, want)
				}
			}
			// Every error names where its value came from.
			for line := range strings.Lines(err.Error()) {
				if !hasSource(line, path) {
					t.Errorf("Load() error line %q names no file, variable, flags or default", line)
				}
			}
		})
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dir.yaml"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		want   string // after "config file PATH: "
		target error  // matched by errors.Is, if not nil
	}{
		{"missing.hcl", "no such file or directory", fs.ErrNotExist},
		{"dir.yaml", "is a directory", nil},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.name)
		_, _, err := Load(path, nil, nil)
		if want := "config file " + path + ": " + tt.want; err == nil || err.Error() != want {
			t.Errorf("Load(%s) = %v, want %q", tt.name, err, want)
		}
		if tt.target != nil && !errors.Is(err, tt.target) {
			t.Errorf("Load(%s) = %v, want an error matching %v", tt.name, err, tt.target)
		}
	}
}

func TestEnvNames(t *testing.T) {
	tests := map[string]string{
		"port":             "SEXTANT_PORT",
		"data_dir":         "SEXTANT_DATA_DIR",
		"log.level":        "SEXTANT_LOG_LEVEL",
		"push.retry_delay": "SEXTANT_PUSH_RETRY_DELAY",
	}
	for key, want := range tests {
		if got := envName(key); got != want {
			t.Errorf("envName(%q) = %q, want %q", key, got, want)
		}
	}

	// Every key has its own variable, which can set it.
	keys := keyTypes()
	text := map[reflect.Type]string{
		reflect.TypeFor[int]():           "7",
		reflect.TypeFor[bool]():          "true",
		reflect.TypeFor[string]():        "x",
		reflect.TypeFor[time.Duration](): "7s",
		reflect.TypeFor[[]string]():      "a:1,b:2",
		reflect.TypeFor[[]AuthUser]():    `[{"name": "a"}]`,
		reflect.TypeFor[[]AuthRole]():    `[{"name": "r"}]`,
	}
	var env []string
	owner := make(map[string]string)
	for key, typ := range keys {
		name := envName(key)
		if other, ok := owner[name]; ok {
			t.Errorf("keys %s and %s both have variable %s", key, other, name)
		}
		owner[name] = key
		if _, ok := text[typ]; !ok {
			t.Errorf("key %s has type %s, which the test cannot set", key, typ)
		}
		env = append(env, name+"="+text[typ])
	}
	values, notes, err := envValues(env, keys)
	if err != nil || len(notes) > 0 {
		t.Fatalf("envValues() = %v, notes %v", err, notes)
	}
	for key, typ := range keys {
		if got := reflect.TypeOf(values[key]); got != typ {
			t.Errorf("%s set from %s has type %v, want %s", key, envName(key), got, typ)
		}
	}
}

// hasSource reports whether an error line begins with the source of the
// value it is about: the file at path, a variable, the flags or the defaults.
func hasSource(line, path string) bool {
	prefixes := []string{"environment variable SEXTANT_", "flags: ", "built-in default: "}
	if path != "" {
		prefixes = append(prefixes, "config file "+path+": ")
	}
	for _, p := range prefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// k8sLinks are the variables Kubernetes puts in every pod of a namespace
// with a Service named sextant whose ports are http 8848 and grpc 9848.
var k8sLinks = []string{
	"SEXTANT_SERVICE_HOST=10.0.0.1",
	"SEXTANT_SERVICE_PORT=8848",
	"SEXTANT_SERVICE_PORT_HTTP=8848",
	"SEXTANT_SERVICE_PORT_GRPC=9848",
	"SEXTANT_PORT=tcp://10.0.0.1:8848",
	"SEXTANT_PORT_8848_TCP=tcp://10.0.0.1:8848",
	"SEXTANT_PORT_8848_TCP_PROTO=tcp",
	"SEXTANT_PORT_8848_TCP_PORT=8848",
	"SEXTANT_PORT_8848_TCP_ADDR=10.0.0.1",
	"SEXTANT_PORT_9848_TCP=tcp://10.0.0.1:9848",
	"SEXTANT_PORT_9848_TCP_PROTO=tcp",
	"SEXTANT_PORT_9848_TCP_PORT=9848",
	"SEXTANT_PORT_9848_TCP_ADDR=10.0.0.1",
}

func TestLoadEnvNotes(t *testing.T) {
	type note struct {
		warning bool
		has     []string // in its text
	}
	names := func(env []string) []string {
		var out []string
		for _, kv := range env {
			name, _, _ := strings.Cut(kv, "=")
			out = append(out, name)
		}
		return out
	}
	linkNote := func(env []string) note {
		return note{has: append([]string{"Kubernetes service-link variables", "enableServiceLinks: false"}, names(env)...)}
	}
	udpLinks := []string{
		"SEXTANT_PORT=udp://[fd00::1]:53", "SEXTANT_PORT_53_UDP=udp://[fd00::1]:53", "SEXTANT_PORT_53_UDP_PROTO=udp",
		"SEXTANT_PORT_53_UDP_PORT=53", "SEXTANT_PORT_53_UDP_ADDR=fd00::1", "SEXTANT_PORT_7_SCTP=sctp://10.0.0.1:7",
	}
	// A Service named sextant-cluster: its SEXTANT_CLUSTER_PORT is also cluster.port's variable.
	clusterLinks := []string{
		"SEXTANT_CLUSTER_SERVICE_HOST=10.0.0.2", "SEXTANT_CLUSTER_SERVICE_PORT=9849",
		"SEXTANT_CLUSTER_PORT=tcp://10.0.0.2:9849", "SEXTANT_CLUSTER_PORT_9849_TCP_ADDR=10.0.0.2",
	}

	tests := []struct {
		name  string
		env   []string
		want  func(*Config) // changes Default() into the wanted configuration
		notes []note
	}{
		{name: "service links", env: k8sLinks, want: func(*Config) {}, notes: []note{linkNote(k8sLinks)}},
		{
			name: "service links and settings", env: append([]string{"SEXTANT_PUSH_DELAY=2s"}, k8sLinks...),
			want: func(c *Config) { c.Push.Delay = 2 * time.Second }, notes: []note{linkNote(k8sLinks)},
		},
		{name: "UDP and SCTP service links", env: udpLinks, want: func(*Config) {}, notes: []note{linkNote(udpLinks)}},
		{name: "link on a key's variable", env: clusterLinks, want: func(*Config) {}, notes: []note{linkNote(clusterLinks)}},
		{name: "port number is the port", env: []string{"SEXTANT_PORT=9000"}, want: func(c *Config) { c.Port = 9000 }},
		{name: "the admin CLI's variables", env: []string{"SEXTANT_ADDR=10.0.0.1:8848", "SEXTANT_TOKEN=t"}, want: func(*Config) {}},
		{
			name: "typo", env: []string{"SEXTANT_PUSH_DELAI=1s"}, want: func(*Config) {},
			notes: []note{{true, []string{"ignoring environment variable SEXTANT_PUSH_DELAI: it matches no configuration key; did you mean SEXTANT_PUSH_DELAY (push.delay)?"}}},
		},
		{
			name: "missing letter", env: []string{"SEXTANT_CLUSTER_MEMBER=10.0.0.1:8848"}, want: func(*Config) {},
			notes: []note{{true, []string{"SEXTANT_CLUSTER_MEMBER:", "did you mean SEXTANT_CLUSTER_MEMBERS (cluster.members)?"}}},
		},
		{
			name: "two edits", env: []string{"SEXTANT_PUSH_RETRY_DELYA=1s"}, want: func(*Config) {},
			notes: []note{{true, []string{"did you mean SEXTANT_PUSH_RETRY_DELAY (push.retry_delay)?"}}},
		},
		{
			name: "lower case", env: []string{"SEXTANT_push_delay=1s"}, want: func(*Config) {},
			notes: []note{{true, []string{"SEXTANT_push_delay:", "did you mean SEXTANT_PUSH_DELAY (push.delay)?"}}},
		},
		{
			name: "nothing near", env: []string{"SEXTANT_COLOUR=red"}, want: func(*Config) {},
			notes: []note{{true, []string{"ignoring environment variable SEXTANT_COLOUR: it matches no configuration key"}}},
		},
		{
			name: "a section", env: []string{"SEXTANT_PUSH=1s"}, want: func(*Config) {},
			notes: []note{{true, []string{"ignoring environment variable SEXTANT_PUSH: it matches no configuration key"}}},
		},
		{
			name: "a plugin's", env: []string{"SEXTANT_PLUGINS_WEBHOOK_PATH=/x"}, want: func(*Config) {},
			notes: []note{{true, []string{"SEXTANT_PLUGINS_WEBHOOK_PATH: it matches no configuration key (plugins are configured in the file only)"}}},
		},
		{
			name: "each once, links first, warnings by name",
			env:  []string{"SEXTANT_ZZZ=1", "SEXTANT_PORT=tcp://10.0.0.1:8848", "SEXTANT_AAA=1", "SEXTANT_ZZZ=2", "SEXTANT_SERVICE_HOST=10.0.0.1"},
			want: func(*Config) {},
			notes: []note{
				{false, []string{"ignoring SEXTANT_PORT, SEXTANT_SERVICE_HOST: Kubernetes"}},
				{true, []string{"SEXTANT_AAA"}},
				{true, []string{"SEXTANT_ZZZ"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, notes, err := Load("", tt.env, nil)
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
			}
			if len(notes) != len(tt.notes) {
				t.Fatalf("Load() notes = %+v, want %d", notes, len(tt.notes))
			}
			for i, n := range notes {
				if n.Warning != tt.notes[i].warning {
					t.Errorf("note %q: Warning = %v, want %v", n.Text, n.Warning, tt.notes[i].warning)
				}
				for _, has := range tt.notes[i].has {
					if !strings.Contains(n.Text, has) {
						t.Errorf("note %q does not contain %q", n.Text, has)
					}
				}
			}
		})
	}
}

// TestLoadNotesWithError checks the notes come with an error too, since a
// typo'd variable may be why the configuration is wrong.
func TestLoadNotesWithError(t *testing.T) {
	for _, env := range [][]string{
		{"SEXTANT_LOG_LEVL=debug", "SEXTANT_PUSH_DELAY=fast"}, // a type error
		{"SEXTANT_LOG_LEVL=debug", "SEXTANT_PORT=70000"},      // a validation error
	} {
		_, notes, err := Load("", env, nil)
		if err == nil {
			t.Fatalf("Load(%q) = nil error", env)
		}
		if len(notes) != 1 || !notes[0].Warning || !strings.Contains(notes[0].Text, "did you mean SEXTANT_LOG_LEVEL") {
			t.Errorf("Load(%q) notes = %+v, want the typo's warning", env, notes)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"kitten", "sitting", 3},
		{"DELAI", "DELAY", 1},
		{"DELYA", "DELAY", 2},
		{"MEMBER", "MEMBERS", 1},
		{"PUSH", "PORT", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestDefaultWriteTimeoutAllowsProfiles checks a default CPU profile or
// trace (30s) fits in the HTTP write timeout, which Go's profiler requires.
func TestDefaultWriteTimeoutAllowsProfiles(t *testing.T) {
	const profile = 30 * time.Second
	if d := Default().HTTP.WriteTimeout; d <= profile {
		t.Errorf("http.write_timeout defaults to %s; /debug/pprof/profile?seconds=30 needs more than %s", d, profile)
	}
}
