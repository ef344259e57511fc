package suite

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
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long a server may take to become ready, and
// stopTimeout how long it may take to exit once asked to.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// server is a sextant process the suite started.
type server struct {
	httpPort int
	cmd      *exec.Cmd
	logs     *syncBuffer
	exited   chan struct{}
	exitErr  error
	dataDir  string
}

// startServer runs "bin server" on free ports with env added to this
// process's environment and, when config is set, that YAML as its
// configuration file; it waits until the server reports ready.
func startServer(bin string, env []string, config string) (*server, error) {
	var lastErr error
	for range 3 { // a free port may be taken before the server binds it
		httpPort, err := freePortPair()
		if err != nil {
			return nil, err
		}
		dataDir, err := os.MkdirTemp("", "sextant-bench-data")
		if err != nil {
			return nil, err
		}
		s := &server{httpPort: httpPort, logs: &syncBuffer{}, exited: make(chan struct{}), dataDir: dataDir}
		args := []string{"server", "--port", strconv.Itoa(httpPort), "--data-dir", dataDir}
		if config != "" {
			path := filepath.Join(dataDir, "sextant.yaml")
			if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
				os.RemoveAll(dataDir)
				return nil, err
			}
			args = append(args, "--config", path)
		}
		s.cmd = exec.Command(bin, args...)
		s.cmd.Env = append(os.Environ(), env...)
		s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
		if err := s.cmd.Start(); err != nil {
			os.RemoveAll(dataDir)
			return nil, fmt.Errorf("starting %s: %w", bin, err)
		}
		go func() {
			s.exitErr = s.cmd.Wait()
			close(s.exited)
		}()
		if lastErr = s.awaitReady(); lastErr == nil {
			return s, nil
		}
		_ = s.cmd.Process.Kill()
		<-s.exited
		os.RemoveAll(dataDir)
	}
	return nil, lastErr
}

// addr is the server's HTTP address.
func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.httpPort)) }

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) awaitReady() error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	url := "http://" + s.addr() + "/nacos/v1/console/health/readiness"
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("the server exited before it was ready (%v):\n%s", s.exitErr, s.logs.tail())
		default:
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the server was not ready within %s:\n%s", startTimeout, s.logs.tail())
}

// stop sends SIGTERM, waits for the exit (killing the server after
// stopTimeout) and removes its data; it returns how the server ended.
func (s *server) stop() error {
	defer os.RemoveAll(s.dataDir)
	select {
	case <-s.exited:
		return fmt.Errorf("the server had exited: %v", s.exitErr)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.exited:
		return s.exitErr
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("the server did not exit within %s of SIGTERM", stopTimeout)
	}
}

// serverVersion runs "bin version".
func serverVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// freePortPair finds a free port P whose P+1000 (the client gRPC port) is
// free too.
func freePortPair() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
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
			return p, nil
		}
	}
	return 0, errors.New("no free port pair")
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// tail returns the last lines written.
func (b *syncBuffer) tail() string {
	out := b.Bytes()
	if len(out) > 4096 {
		out = out[len(out)-4096:]
	}
	return string(out)
}
