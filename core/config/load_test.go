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
		cfg, err := Load(path, nil, nil)
		if err != nil {
			t.Fatalf("Load(%s) = %v", path, err)
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
			got, err := Load(path, tt.env, tt.flags)
			if err != nil {
				t.Fatalf("Load() = %v", err)
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
			name: "unknown variable", env: []string{"SEXTANT_PUSH_RETRY=1s"},
			want: []string{"environment variable SEXTANT_PUSH_RETRY: matches no configuration key"},
		},
		{
			name: "variable for a section", env: []string{"SEXTANT_PUSH=1s"},
			want: []string{"environment variable SEXTANT_PUSH: matches no configuration key"},
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
			name: "invalid once merged", env: []string{"SEXTANT_LOG_LEVEL=loud"},
			want: []string{`log.level: "loud" is not one of`},
		},
		{
			name: "grpc port clash across sources", fileName: "s.yaml", fileBody: "remote:\n  grpc_port: 9000\n",
			flags: map[string]any{"port": 9000},
			want:  []string{"remote.grpc_port: 9000 is also the HTTP port"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			if tt.fileName != "" {
				path = writeFile(t, tt.fileName, tt.fileBody)
			}
			got, err := Load(path, tt.env, tt.flags)
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
		_, err := Load(path, nil, nil)
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
	values, err := envValues(env, keys)
	if err != nil {
		t.Fatal(err)
	}
	for key, typ := range keys {
		if got := reflect.TypeOf(values[key]); got != typ {
			t.Errorf("%s set from %s has type %v, want %s", key, envName(key), got, typ)
		}
	}
}
