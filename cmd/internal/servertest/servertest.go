// Package servertest builds the sextant binary and runs it for end-to-end
// tests: each server gets free ports and its own data directory, is awaited
// until ready, and is stopped (and checked to exit cleanly) when the test ends.
package servertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long a server may take to become ready.
const StartTimeout = 30 * time.Second

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
	HTTPPort int
	GRPCPort int
	DataDir  string
	cmd      *exec.Cmd
	logs     *syncBuffer
	exited   chan struct{}
	exitErr  error
	killed   bool // by Kill, on purpose
}

// Options are what a test adds to a server's command line and environment.
type Options struct {
	Args []string // after "server --port P --data-dir D"
	Env  []string // KEY=value, added to the test's environment
}

// Start runs "sextant server" on free ports and waits until it reports ready.
// The server is stopped when the test ends, and the test fails unless it
// exits cleanly.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	for attempt := 0; ; attempt++ {
		s, err := start(bin, t.TempDir(), opts)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("server did not stop cleanly: %v\n%s", err, s.Logs())
				}
			})
			return s
		}
		if attempt == 3 {
			t.Fatalf("starting sextant: %v", err)
		}
	}
}

func start(bin, dataDir string, opts Options) (*Server, error) {
	httpPort, grpcPort, err := FreePortPair()
	if err != nil {
		return nil, err
	}
	s := &Server{HTTPPort: httpPort, GRPCPort: grpcPort, DataDir: dataDir, logs: &syncBuffer{}, exited: make(chan struct{})}
	args := append([]string{"server", "--port", strconv.Itoa(httpPort), "--data-dir", dataDir}, opts.Args...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), opts.Env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.awaitReady(); err != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("%w\n%s", err, s.Logs())
	}
	return s, nil
}

func (s *Server) awaitReady() error {
	deadline := time.Now().Add(StartTimeout)
	url := "http://" + s.HTTPAddr() + "/nacos/v1/console/health/readiness"
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("sextant exited before it was ready: %v", s.exitErr)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("sextant was not ready in time")
}

// HTTPAddr is the server's HTTP address on loopback.
func (s *Server) HTTPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.HTTPPort)) }

// GRPCAddr is the server's client gRPC address on loopback.
func (s *Server) GRPCAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.GRPCPort)) }

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Logs returns everything the server has written so far.
func (s *Server) Logs() string { return s.logs.String() }

// Stop sends SIGTERM and waits for the process; it returns an error unless
// the server exits with status 0 within its stop timeout (and a margin). A
// server that Kill ended is not an error.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		if s.killed {
			return nil
		}
		return s.exitErr
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.exited:
		return s.exitErr
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("sextant did not exit within 10s of SIGTERM")
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() {
	s.killed = true
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Wait waits for the process to exit by itself and returns how it ended.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-s.exited:
		return s.exitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the sextant binary to completion with args, adding env to the
// test's environment, and returns its exit code and everything it printed.
func Run(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sextant %v did not exit in %v:\n%s", args, StartTimeout, out)
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

// FreePortPair finds a free port P whose P+1000 is free too.
func FreePortPair() (int, int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		if p+1000 > 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1000))
		l.Close()
		if err == nil {
			l2.Close()
			return p, p + 1000, nil
		}
	}
	return 0, 0, errors.New("no free port pair")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
