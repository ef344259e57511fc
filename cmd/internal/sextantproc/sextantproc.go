// Package sextantproc runs a sextant server as a process on free loopback
// ports: for the end-to-end tests (through servertest) and for the benchmark
// suite, which must both start the real binary the same way.
package sextantproc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts for a server to become ready, and to exit once asked to. A
// server starts in a second or two here, but each of its plugins is a
// process of the race-built binary, and a full test run starts many nodes
// at once on two cores: one took 28 s to start its four plugins (one after
// another, as they then started).
const (
	StartTimeout = 60 * time.Second
	StopTimeout  = 10 * time.Second
)

// Options are what a caller adds to a server's command line and environment.
type Options struct {
	Port    int      // --port; 0 picks free ports
	DataDir string   // --data-dir
	Args    []string // after "server --port P --data-dir D"
	Env     []string // KEY=value, added to this process's environment
}

// Process is a running sextant server.
type Process struct {
	HTTPPort int
	GRPCPort int
	cmd      *exec.Cmd
	logs     *syncBuffer
	exited   chan struct{}
	exitErr  error
	stopped  bool // Stop was called
	killed   bool // by Kill, on purpose
}

// Start runs "bin server" on opts.Port, or on free ports, and waits until it
// reports ready. Free ports taken by someone else between choosing and
// binding them are chosen again.
func Start(bin string, opts Options) (*Process, error) {
	if opts.Port != 0 {
		return start(bin, opts)
	}
	var err error
	for range 4 {
		var ports []int
		if ports, err = FreePorts(1); err != nil {
			return nil, err
		}
		opts.Port = ports[0]
		var p *Process
		if p, err = start(bin, opts); err == nil {
			return p, nil
		}
	}
	return nil, err
}

func start(bin string, opts Options) (*Process, error) {
	httpPort := opts.Port
	p := &Process{HTTPPort: httpPort, GRPCPort: httpPort + 1000, logs: &syncBuffer{}, exited: make(chan struct{})}
	args := append([]string{"server", "--port", strconv.Itoa(httpPort), "--data-dir", opts.DataDir}, opts.Args...)
	p.cmd = exec.Command(bin, args...)
	// A race-built binary sleeps a second at exit by default, and so does
	// each of its plugin processes: a stopping server would spend its stop
	// timeout waiting for its plugins. Races are still reported.
	p.cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), opts.Env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.awaitReady(); err != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
		return nil, fmt.Errorf("%w\n%s", err, p.Tail())
	}
	return p, nil
}

func (p *Process) awaitReady() error {
	deadline := time.Now().Add(StartTimeout)
	client := &http.Client{Timeout: time.Second}
	url := "http://" + p.HTTPAddr() + "/nacos/v1/console/health/readiness"
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("sextant exited before it was ready: %v", p.exitErr)
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
	return fmt.Errorf("sextant was not ready within %v", StartTimeout)
}

// HTTPAddr is the server's HTTP address on loopback.
func (p *Process) HTTPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.HTTPPort)) }

// GRPCAddr is the server's client gRPC address on loopback.
func (p *Process) GRPCAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.GRPCPort)) }

// PID is the server's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Logs returns everything the server has written so far.
func (p *Process) Logs() []byte { return p.logs.Bytes() }

// Tail returns the last few KiB the server wrote, for error messages.
func (p *Process) Tail() string {
	out := p.logs.Bytes()
	if len(out) > 4096 {
		out = out[len(out)-4096:]
	}
	return string(out)
}

// Stop sends SIGTERM and waits; it returns an error unless the server exits
// with status 0 within StopTimeout (it is killed after that), or if it had
// exited by itself before. A server that Kill ended is not an error, and
// stopping twice returns what the first Stop did.
func (p *Process) Stop() error {
	select {
	case <-p.exited:
		switch {
		case p.killed:
			return nil
		case p.stopped:
			return p.exitErr
		}
		return fmt.Errorf("sextant had exited by itself: %v", p.exitErr)
	default:
	}
	p.stopped = true
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.exitErr
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("sextant did not exit within %v of SIGTERM", StopTimeout)
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (p *Process) Kill() {
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr says how the process ended, once Exited is closed.
func (p *Process) ExitErr() error { return p.exitErr }

// FreePorts finds n distinct free HTTP ports P whose P+1000 (client gRPC)
// and P+1001 (cluster) are free too. They are drawn below the range the
// kernel hands out to outgoing connections (ip_local_port_range, from 32768
// by default), so that a node's ports are not taken by some connection's
// source port while the node restarts. Each is reserved for the rest of
// this process's life (see reserve), so that no other test process, nor a
// later call here, picks it while the server is yet to bind it or is
// restarting.
func FreePorts(n int) ([]int, error) {
	const lowest = 10000
	highest := ephemeralStart() - 1 - 1001
	if highest <= lowest {
		return nil, fmt.Errorf("the kernel hands out ports from %d: no room below for test servers", highest+1002)
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries == 100*n {
			return nil, errors.New("no free ports")
		}
		port := lowest + rand.IntN(highest-lowest)
		if slices.ContainsFunc(out, func(p int) bool { return p-1001 <= port && port <= p+1001 }) {
			continue
		}
		if !reserve(port, port+1000, port+1001) {
			continue
		}
		if listenable(port) && listenable(port+1000) && listenable(port+1001) {
			out = append(out, port)
		}
	}
	return out, nil
}

// reservations holds the lock files of the ports this process reserved,
// open until it exits.
var reservations struct {
	mu    sync.Mutex
	files []*os.File
}

// reserve takes, for the rest of this process's life, an exclusive lock on
// a file per port in a directory every test process shares, and reports
// whether it got all of them (it keeps none otherwise). The kernel drops
// the locks when the process exits, however it ends. Where locks cannot be
// taken at all, every port counts as reserved: listenable is then the only
// check.
func reserve(ports ...int) bool {
	dir := filepath.Join(os.TempDir(), "sextant-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
	}
	for _, port := range ports {
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			release()
			return true
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			release()
			return false
		}
		held = append(held, f)
	}
	reservations.mu.Lock()
	reservations.files = append(reservations.files, held...)
	reservations.mu.Unlock()
	return true
}

// ephemeralStart returns the first port of the kernel's
// ip_local_port_range (Linux's default, 32768, where it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 32768
	}
	first, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return first
}

// listenable reports whether a TCP port on 127.0.0.1 is free now.
func listenable(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
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

// Child is a child process as /proc shows it.
type Child struct {
	PID     int
	State   string // R, S, Z...
	Cmdline []string
}

// Children lists the processes whose parent is pid (Linux: read from /proc);
// a process that ends while it is read is left out.
func Children(pid int) []Child {
	entries, _ := os.ReadDir("/proc")
	var out []Child
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, Child{PID: child, State: fields[0], Cmdline: strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")})
	}
	return out
}
