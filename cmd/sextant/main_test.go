package main_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

func TestMain(m *testing.M) { servertest.Main(m) }

func TestVersion(t *testing.T) {
	code, out := servertest.Run(t, nil, "version")
	if code != 0 || !regexp.MustCompile(`^sextant \S+ go\S+ \w+/\w+\n$`).MatchString(out) {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// builtinPlugins is the line naming the plugins this binary carries.
const builtinPlugins = "built-in plugins: push: pushrpc, pushudp; membership: address-server, dns, file, gossip, standalone, static; transport: grpctransport, natstransport"

func TestHelpListsCommandsAndBuiltinPlugins(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		code, out := servertest.Run(t, nil, arg)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s", arg, code, out)
		}
		for _, want := range []string{"sextant server", "sextant plugin NAME", "sextant hash-password", "sextant version", builtinPlugins} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output does not contain %q:\n%s", arg, want, out)
			}
		}
	}
}

func TestHashPassword(t *testing.T) {
	run := func(stdin string, args ...string) (int, string, string) {
		cmd := exec.Command(servertest.Binary(t), append([]string{"hash-password"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	for _, stdin := range []string{"s3cret pw\n", "s3cret pw\r\n", "s3cret pw", "s3cret pw\nignored\n"} {
		code, out, errOut := run(stdin)
		hash := strings.TrimSuffix(out, "\n")
		if code != 0 || errOut != "" || bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret pw")) != nil {
			t.Errorf("stdin %q: exit %d, stdout %q, stderr %q", stdin, code, out, errOut)
		}
	}
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", nil, "no password on stdin"},
		{"\n", nil, "no password on stdin"},
		{strings.Repeat("x", 73) + "\n", nil, "at most 72"},
		{"pw\n", []string{"pw"}, "the password is read from stdin"},
	} {
		if code, out, errOut := run(c.stdin, c.args...); code != 2 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("stdin %q, args %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.stdin, c.args, code, out, errOut, c.want)
		}
	}
}

func TestUnknownPluginListsTheBuiltinOnes(t *testing.T) {
	code, out := servertest.Run(t, nil, "plugin", "nope")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{`no built-in plugin called "nope"`, builtinPlugins} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q:\n%s", want, out)
		}
	}
}

// TestBadConfigurationStopsStartup checks each configuration error exits
// non-zero, names the key and where it came from, and opens no port.
func TestBadConfigurationStopsStartup(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	unknownKey := write("unknown.hcl", "push {\n  dealy = \"1s\"\n}\n")
	badDuration := write("duration.yaml", "push:\n  delay: soon\n")
	wrongType := write("type.yaml", "port: [1]\n")
	syntax := write("syntax.hcl", "push {\n")
	port := servertest.FreePorts(t, 1)[0]
	portFlag := []string{"--port", strconv.Itoa(port)}

	tests := []struct {
		name string
		env  []string
		args []string
		want []string // in the error output
	}{
		{"unknown key in a file", nil, []string{"--config", unknownKey}, []string{unknownKey, "push.dealy"}},
		{"bad duration in a file", nil, []string{"--config", badDuration}, []string{badDuration, "push.delay", "soon"}},
		{"wrong type in a file", nil, []string{"--config", wrongType}, []string{wrongType, "port"}},
		{"syntax error", nil, []string{"--config", syntax}, []string{syntax}},
		{"missing file", nil, []string{"--config", filepath.Join(dir, "none.hcl")}, []string{"none.hcl"}},
		{"unsupported extension", nil, []string{"--config", write("x.toml", "")}, []string{"x.toml", ".hcl"}},
		{"bad environment", []string{"SEXTANT_PUSH_DELAY=fast"}, nil, []string{"SEXTANT_PUSH_DELAY", "push.delay"}},
		{"invalid environment with a typo", []string{"SEXTANT_LOG_LEVL=debug", "SEXTANT_LOG_LEVEL=loud"}, nil,
			[]string{"warning: ignoring environment variable SEXTANT_LOG_LEVL", "did you mean SEXTANT_LOG_LEVEL", "environment variable SEXTANT_LOG_LEVEL: log.level"}},
		{"bad flag value", nil, []string{"--log-level", "loud"}, []string{"log.level", "loud"}},
		{"unknown flag", nil, []string{"--colour"}, []string{"colour"}},
	}
	for _, tc := range tests {
		code, out := servertest.Run(t, tc.env, append(append([]string{"server"}, portFlag...), tc.args...)...)
		if code == 0 {
			t.Errorf("%s: exit 0\n%s", tc.name, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not name %q:\n%s", tc.name, w, out)
			}
		}
		if strings.Contains(out, "listening") {
			t.Errorf("%s: a port was opened before the error:\n%s", tc.name, out)
		}
	}
}

// TestConfigFileFlagsAndEnvironment starts the sample configuration with a
// flag and an environment variable on top, and checks each took effect.
func TestConfigFileFlagsAndEnvironment(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{
		Args: []string{"--config", "../../examples/config/standalone.yaml", "--log-json"},
		Env:  []string{"SEXTANT_LOG_LEVEL=debug"},
	})
	logs := srv.Logs()
	if !strings.Contains(logs, `"@level":"debug"`) {
		t.Fatalf("want JSON debug logs (flag and environment over the file):\n%s", logs)
	}
	if !strings.Contains(logs, strconv.Itoa(srv.GRPCPort)) {
		t.Fatalf("the gRPC port is not the HTTP port + 1000:\n%s", logs)
	}
}

func TestServerStateReportsTheVersion(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/nacos/v1/console/server/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var state struct{ Version string }
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil || state.Version != "dev" {
		t.Fatalf("server state: %+v, %v", state, err)
	}
}

func TestSIGTERMStopsWithinFiveSeconds(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	began := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, srv.Logs())
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("took %v to stop", took)
	}
}
