// Package servertest builds the sextant binary and runs it for end-to-end
// tests: each server gets free ports and its own data directory, is awaited
// until ready, and is stopped (and checked to exit cleanly) when the test ends.
// Eventually awaits what a test expects of such a server.
package servertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/sextantd/sextant/cmd/internal/sextantproc"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Main runs the tests of a package that starts servers, then runs cleanups
// and removes the binary it built. Call it from TestMain.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Binary returns the path of a sextant binary built from this checkout once
// per test process (with the race detector when the tests have it).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "sextant-bin")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", filepath.Join(buildDir, "sextant")}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "github.com/sextantd/sextant/cmd/sextant")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "sextant")
}

// Server is a running sextant process.
type Server struct {
	*sextantproc.Process
	DataDir string
}

// Options are what a test adds to a server's command line and environment.
type Options struct {
	Port    int      // 0 picks free ports
	DataDir string   // "" is a new temporary directory
	Args    []string // after "server --port P --data-dir D"
	Env     []string // KEY=value, added to the test's environment
	// Config, if set, is an HCL configuration file's text, written to a
	// temporary file and passed as --config.
	Config string
}

// Start runs "sextant server" on free ports and waits until it reports ready.
// The server is stopped when the test ends, and the test fails unless it
// exits cleanly.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	args := opts.Args
	if opts.Config != "" {
		path := filepath.Join(t.TempDir(), "sextant.hcl")
		if err := os.WriteFile(path, []byte(opts.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", path}, args...)
	}
	p, err := sextantproc.Start(Binary(t), sextantproc.Options{Port: opts.Port, DataDir: dataDir, Args: args, Env: opts.Env})
	if err != nil {
		t.Fatalf("starting sextant: %v", err)
	}
	s := &Server{Process: p, DataDir: dataDir}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("server did not stop cleanly: %v\n%s", err, s.Logs())
		}
	})
	if want := transport(opts.Env); want != "" && !strings.Contains(s.Logs(), "transport="+want) {
		t.Fatalf("%s=%s, and the server's log does not say it serves on that transport:\n%s", transportVar, want, s.Tail())
	}
	return s
}

// transportVar chooses the client port's transport; `make test` runs the
// official SDK's suites again with it set to h2.
const transportVar = "SEXTANT_REMOTE_TRANSPORT"

// transport is the transport a server started with env is asked for, if
// any: the test process's environment, or env, which comes after it.
func transport(env []string) string {
	want := os.Getenv(transportVar)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, transportVar+"="); ok {
			want = v
		}
	}
	return want
}

// PasswordHash returns the bcrypt hash of password, as auth.users takes it,
// at the lowest cost (tests log in often).
func PasswordHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// Metric reads one sample of the server's /metrics — a series as written
// there, labels included — or 0 when the server has not written it (yet).
func (s *Server) Metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	return 0
}

// Logs returns everything the server has written so far.
func (s *Server) Logs() string { return string(s.Process.Logs()) }

// Run runs the sextant binary to completion with args, adding env to the
// test's environment, and returns its exit code and everything it printed.
func Run(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sextantproc.StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sextant %v did not exit in %v:\n%s", args, sextantproc.StartTimeout, out)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	case err != nil:
		t.Fatalf("running sextant %v: %v", args, err)
	}
	return 0, string(out)
}

// FreePorts finds n free HTTP ports whose client gRPC and cluster ports are
// free too.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := sextantproc.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}
