package pluginhost_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/sdk/push"
)

func kill(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// pushAsync pushes b through e and returns where its results arrive.
func pushAsync(ctx context.Context, e push.Executor, b push.Batch) <-chan []error {
	results := make(chan []error, 1)
	go func() { results <- e.Push(ctx, b) }()
	return results
}

// pending checks that nothing arrives on ch for a moment: what was to send
// it is waiting.
func pending[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s returned %v while the plugin was restarting", what, v)
	case <-time.After(200 * time.Millisecond):
	}
}

func awaitResults(t *testing.T, results <-chan []error) []error {
	t.Helper()
	select {
	case errs := <-results:
		return errs
	case <-time.After(15 * time.Second):
		t.Fatal("Push did not return")
		return nil
	}
}

// TestPushWaitsForARestart kills a push plugin's process while a restart is
// held back: a Push made meanwhile waits, and succeeds once the plugin is
// back.
func TestPushWaitsForARestart(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	e := executor(t, h, "rpc")
	if errs := e.Push(t.Context(), batch("a")); errs[0] != nil {
		t.Fatal(errs[0])
	}

	release := rpc.hold(t)
	pid := rpc.pid(t)
	kill(t, pid)
	eventually(t, "the restarted plugin to be held", rpc.held)
	if n := h.counter(t, restartsMetric, "rpc"); n != 1 {
		t.Errorf("%s{plugin=rpc} = %v, want 1", restartsMetric, n)
	}
	results := pushAsync(t.Context(), e, batch("a", "bad"))
	pending(t, results, "Push")
	release()
	errs := awaitResults(t, results)
	if errs[0] != nil || errs[1] == nil {
		t.Errorf("results %v, want [nil, an error]", errs)
	}
	if newPID := rpc.pid(t); newPID == pid {
		t.Errorf("the plugin still runs as %d", pid)
	}
	if n := h.counter(t, "sextant_plugin_calls_total", "rpc"); n != 2 {
		t.Errorf("sextant_plugin_calls_total{plugin=rpc} = %v, want 2", n)
	}
	if n := h.counter(t, "sextant_plugin_errors_total", "rpc"); n != 1 {
		t.Errorf("sextant_plugin_errors_total{plugin=rpc} = %v, want 1", n)
	}
}

// TestPluginExitingOnABatchIsRestarted: the batch the plugin died on fails,
// the next one goes through the restarted plugin.
func TestPluginExitingOnABatchIsRestarted(t *testing.T) {
	t.Parallel()
	udp := newFake(t, "udp")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{rpcSpec(t), {Name: "udp", Path: udp.path}}})
	e := executor(t, h, "udp")
	pid := udp.pid(t)
	if errs := e.Push(t.Context(), batch("a", "crash")); errs[0] == nil || errs[1] == nil {
		t.Errorf("the batch the plugin exited on: results %v, want errors", errs)
	}
	eventually(t, "a restart", func() bool { return h.counter(t, restartsMetric, "udp") == 1 })
	if errs := e.Push(t.Context(), batch("a")); errs[0] != nil {
		t.Errorf("after the restart: %v", errs[0])
	}
	if newPID := udp.pid(t); newPID == pid {
		t.Errorf("the plugin still runs as %d", pid)
	}
	if n := h.counter(t, restartsMetric, "rpc"); n != 0 {
		t.Errorf("%s{plugin=rpc} = %v, want 0", restartsMetric, n)
	}
}

// TestPushGivesUpWithItsContext: a Push waiting for a restart that does not
// come fails when its context ends.
func TestPushGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	rpc.hold(t)
	kill(t, rpc.pid(t))
	eventually(t, "the restarted plugin to be held", rpc.held)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	errs := executor(t, h, "rpc").Push(ctx, batch("a", "b"))
	if errs[0] == nil || errs[1] == nil {
		t.Errorf("results %v, want errors", errs)
	}
	if n := h.counter(t, "sextant_plugin_errors_total", "rpc"); n != 2 {
		t.Errorf("sextant_plugin_errors_total{plugin=rpc} = %v, want 2", n)
	}
}

// TestStopDuringARestart stops the host while it restarts a plugin: Stop
// returns promptly and no process is left.
func TestStopDuringARestart(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	e := executor(t, h, "rpc")
	kill(t, rpc.pid(t))
	eventually(t, "a restart", func() bool { return h.counter(t, restartsMetric, "rpc") == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- h.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hangs")
	}
	if pids := rpc.pids(t); len(pids) > 0 {
		t.Errorf("the plugin still runs as %v", pids)
	}
	if errs := e.Push(t.Context(), batch("a")); errs[0] == nil {
		t.Error("Push after Stop succeeded")
	}
}

// TestStopEndsEveryProcess: once Stop returns, the plugins' processes have
// exited.
func TestStopEndsEveryProcess(t *testing.T) {
	t.Parallel()
	bus, _ := memberLists(t)
	fakes := []fake{newFake(t, "rpc"), newFake(t, "spi"), newFake(t, "members"), newFake(t, "transport")}
	h := start(t, pluginhost.Config{
		Push:       []pluginhost.Spec{{Name: "rpc", Path: fakes[0].path}, {Name: "spi", Path: fakes[1].path}},
		Membership: &pluginhost.Spec{Name: "members", Path: fakes[2].path, Config: map[string]any{"members": []any{}}},
		Transport:  &pluginhost.Spec{Name: "transport", Path: fakes[3].path},
		Bus:        bus,
	})
	for _, f := range fakes {
		f.pid(t)
	}
	if err := h.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range fakes {
		if pids := f.pids(t); len(pids) > 0 {
			t.Errorf("%s still runs as %v", f.path, pids)
		}
	}
	if n := len(h.Executors()); n != 0 {
		t.Errorf("%d executors after Stop", n)
	}
}

// TestStopEndsAHeldRestart: Stop while a restarted plugin has not finished
// its handshake ends that start at once, instead of waiting for the start
// timeout (15 s), and leaves no process.
func TestStopEndsAHeldRestart(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	rpc.hold(t)
	kill(t, rpc.pid(t))
	eventually(t, "the restart held at its gate", rpc.held)
	stopped := make(chan error, 1)
	go func() { stopped <- h.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(5 * time.Second): // a third of the start timeout
		t.Fatal("Stop waits for the held start")
	}
	if pids := rpc.pids(t); len(pids) > 0 {
		t.Errorf("the plugin still runs as %v", pids)
	}
}

// TestStopIsNoRestart: stopping a plugin releases its process, which is not
// a death: no restart is counted or logged, however the supervisor's
// goroutine is scheduled.
func TestStopIsNoRestart(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	for round := range 8 {
		h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
		if err := h.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := h.counter(t, restartsMetric, "rpc"); n != 0 {
			t.Fatalf("round %d: a stop counted %v restarts", round, n)
		}
		if strings.Contains(h.logs.String(), "restarting") {
			t.Fatalf("round %d: a stop was logged as a restart:\n%s", round, h.logs)
		}
	}
}

// TestRestartIsLogged: a plugin's start and restart name its binary with its
// SHA-256 and its process; the restart says how many there were and why.
func TestRestartIsLogged(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	pid := rpc.pid(t)
	sum := sha256Of(t, rpc.path)
	if want := fmt.Sprintf("plugin started: kind=push pid=%d path=%s sha256=%s", pid, rpc.path, sum); !strings.Contains(h.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, h.logs)
	}
	kill(t, pid)
	eventually(t, "a restart", func() bool { return strings.Contains(h.logs.String(), "plugin restarted") })
	logs := h.logs.String()
	for _, want := range []string{
		fmt.Sprintf(`[WARN]  host.rpc: plugin exited; restarting: pid=%d reason="signal: killed"`, pid),
		fmt.Sprintf(`plugin restarted: pid=%d restarts=1 reason="signal: killed" path=%s sha256=%s`, statusOf(t, h, "rpc").PID, rpc.path, sum),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}
	if s := statusOf(t, h, "rpc"); s.LastError != "the plugin exited: signal: killed" {
		t.Errorf("last error %q", s.LastError)
	}
	if strings.Contains(logs, "[ERROR]") {
		t.Errorf("a restart logged an error:\n%s", logs)
	}
}

// TestExitWhileStoppingIsExpected: once the server has begun to stop, a
// plugin process that exits — here by SIGTERM, as the process group's
// signal would end a third party's plugin — is not restarted, and is
// logged at info, not as an error.
func TestExitWhileStoppingIsExpected(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	h.BeginStop()
	pid := rpc.pid(t)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the exit to be seen", func() bool { return strings.Contains(h.logs.String(), "exited as the server stops") })
	assertStoppedQuietly(t, h, rpc, pid)
}

// TestSIGTERMJustBeforeTheStopIsExpected: a plugin that dies of SIGTERM a
// moment before the server begins to stop (the group's signal reached it
// first) is not restarted either.
func TestSIGTERMJustBeforeTheStopIsExpected(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	pid := rpc.pid(t)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// go-plugin has seen the process end (its line is at debug).
	eventually(t, "the exit to be seen", func() bool { return strings.Contains(h.logs.String(), "plugin process exited") })
	h.BeginStop()
	eventually(t, "the exit to be taken as expected", func() bool {
		return strings.Contains(h.logs.String(), "exited as the server stops")
	})
	assertStoppedQuietly(t, h, rpc, pid)
}

// TestSIGTERMAloneIsRestarted: a plugin killed by SIGTERM while the server
// goes on is restarted, once the grace for the server's own stop is over.
func TestSIGTERMAloneIsRestarted(t *testing.T) {
	t.Parallel()
	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: rpc.path}}})
	if err := syscall.Kill(rpc.pid(t), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a restart", func() bool { return h.counter(t, restartsMetric, "rpc") == 1 })
	eventually(t, "serving again", func() bool { return statusOf(t, h, "rpc").State == pluginhost.StateServing })
	if !strings.Contains(h.logs.String(), `reason="signal: terminated"`) {
		t.Errorf("the restart does not say why:\n%s", h.logs)
	}
}

// assertStoppedQuietly checks that the plugin, whose process pid exited
// while the host stops, was neither restarted nor logged as an error, and
// that Stop then ends its supervision.
func assertStoppedQuietly(t *testing.T, h testHost, f fake, pid int) {
	t.Helper()
	if err := h.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	if n := h.counter(t, restartsMetric, "rpc"); n != 0 {
		t.Errorf("%v restarts counted", n)
	}
	if strings.Contains(logs, "[ERROR]") || strings.Contains(logs, "plugin exited; restarting") || strings.Contains(logs, "plugin restarted") {
		t.Errorf("the expected exit was logged as a failure or restarted:\n%s", logs)
	}
	if want := fmt.Sprintf(`[INFO]  host.rpc: plugin exited as the server stops; not restarting it: pid=%d reason="signal: terminated"`, pid); !strings.Contains(logs, want) {
		t.Errorf("no %q in the log:\n%s", want, logs)
	}
	if pids := f.pids(t); len(pids) > 0 {
		t.Errorf("the plugin runs again as %v", pids)
	}
}
