// Package signals_test stops the real binary as systemd and a terminal do:
// with a signal to its whole process group, plugins included.
package signals_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/cmd/internal/sextantproc"
)

func TestMain(m *testing.M) { servertest.Main(m) }

// The plugins a node of a cluster runs by default, each a process.
var plugins = []string{"grpctransport", "pushrpc", "pushudp", "static"}

// TestSignalToTheProcessGroupStopsCleanly sends SIGTERM (systemd's
// KillMode=control-group) or SIGINT (Ctrl-C) to the process group of a
// server and its plugins: the server exits with status 0, logs no error and
// restarts no plugin, and no plugin process is left.
func TestSignalToTheProcessGroupStopsCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			port := servertest.FreePorts(t, 1)[0]
			self := "127.0.0.1:" + strconv.Itoa(port)
			srv := startInGroup(t, "server", "--port", strconv.Itoa(port), "--data-dir", t.TempDir(), "--members", self)
			srv.awaitReady(t, port)
			children := srv.awaitPlugins(t)

			if err := syscall.Kill(-srv.pgid, sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-srv.exited:
			case <-time.After(sextantproc.StopTimeout + 10*time.Second):
				t.Fatalf("the server did not exit after %v to its group:\n%s", sig, srv.logs)
			}
			logs := srv.logs.String()
			if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit status %d (%v), want 0:\n%s", code, srv.cmd.ProcessState, logs)
			}
			if strings.Contains(logs, "[ERROR]") {
				t.Errorf("errors logged while stopping:\n%s", logs)
			}
			if restart := regexp.MustCompile(`(?i)plugin exited; restarting|plugin restarted|restarting the plugin`); restart.MatchString(logs) {
				t.Errorf("a plugin was restarted while the server stopped:\n%s", logs)
			}
			if !strings.Contains(logs, "sextant: stopped") {
				t.Errorf("the server did not say it stopped:\n%s", logs)
			}
			srv.awaitGroupGone(t, children)
		})
	}
}

// process is a sextant server started in a process group of its own.
type process struct {
	cmd    *exec.Cmd
	pgid   int
	logs   *syncBuffer
	exited chan struct{}
}

// startInGroup runs the binary with args in a new process group, which the
// test kills when it ends.
func startInGroup(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(servertest.Binary(t), args...), logs: &syncBuffer{}, exited: make(chan struct{})}
	// A race-built binary, and each of its plugins, sleeps a second at exit
	// by default.
	p.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pgid = p.cmd.Process.Pid
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL) // whatever is left, if the test failed
		<-p.exited
	})
	return p
}

func (p *process) awaitReady(t *testing.T, port int) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/nacos/v1/console/health/readiness", port)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(sextantproc.StartTimeout)
	for {
		select {
		case <-p.exited:
			t.Fatalf("the server exited before it was ready:\n%s", p.logs)
		default:
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %v:\n%s", sextantproc.StartTimeout, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitPlugins waits until each default plugin runs as a child of the
// server, and returns their pids.
func (p *process) awaitPlugins(t *testing.T) []int {
	t.Helper()
	deadline := time.Now().Add(sextantproc.StartTimeout)
	for {
		var names []string
		var pids []int
		for _, c := range sextantproc.Children(p.cmd.Process.Pid) {
			if len(c.Cmdline) == 3 && c.Cmdline[1] == "plugin" && c.State != "Z" {
				names, pids = append(names, c.Cmdline[2]), append(pids, c.PID)
			}
		}
		slices.Sort(names)
		if slices.Equal(names, plugins) {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v, want %v", names, plugins)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitGroupGone waits until no process of the group is left, nor any of
// the plugins (which a server that dies leaves to init).
func (p *process) awaitGroupGone(t *testing.T, plugins []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := inGroup(p.pgid)
		for _, pid := range plugins {
			if alive(pid) && !slices.Contains(left, pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v are left after the server exited", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inGroup lists the live processes of process group pgid (Linux: from /proc).
func inGroup(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) >= 3 && fields[0] != "Z" && fields[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// syncBuffer collects a process's output while the test reads it.
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
