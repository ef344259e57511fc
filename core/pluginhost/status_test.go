package pluginhost_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/push"
)

// statusOf returns the status Status reports for the plugin name.
func statusOf(t *testing.T, h testHost, name string) pluginhost.PluginStatus {
	t.Helper()
	for _, s := range h.Status() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no plugin %s in %+v", name, h.Status())
	return pluginhost.PluginStatus{}
}

// TestStatus: every plugin in start order with its kind, role, source and
// process; a death makes it restarting, with its failed relaunches as its
// last error, until it serves again under a new process; Stop leaves every
// plugin stopped.
func TestStatus(t *testing.T) {
	t.Parallel()
	bus, _ := memberLists(t)
	udp := newFake(t, "udp")
	before := time.Now()
	h := start(t, pluginhost.Config{
		Builtins: pluginhost.Builtins{
			Push:       map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC)},
			Membership: map[string]membership.Plugin{"members": membersFake},
		},
		Push:       []pluginhost.Spec{{Name: "rpc", InProcess: true}, {Name: "udp", Path: udp.path}},
		Membership: &pluginhost.Spec{Name: "members", Config: map[string]any{"members": []any{"10.0.0.3:8848"}}},
		Bus:        bus,
	})
	got := h.Status()
	if len(got) != 3 || got[0].Name != "members" || got[1].Name != "rpc" || got[2].Name != "udp" {
		t.Fatalf("Status() = %+v, want members, rpc, udp", got)
	}
	for _, s := range got {
		if s.State != pluginhost.StateServing || s.ServingSince.Before(before) || s.Restarts != 0 || s.LastError != "" {
			t.Errorf("%s: %+v, want serving since the start, no restarts, no error", s.Name, s)
		}
	}
	if m := got[0]; m.Kind != host.KindMembership || m.Role != "" || m.Path != "" || m.InProcess || m.PID <= 0 {
		t.Errorf("members: %+v, want a built-in membership plugin with a process", m)
	}
	if r := got[1]; r.Kind != host.KindPush || r.Role != "rpc" || r.Path != "" || !r.InProcess || r.PID != 0 {
		t.Errorf("rpc: %+v, want the rpc push plugin in process", r)
	}
	pid := udp.pid(t)
	if u := got[2]; u.Kind != host.KindPush || u.Role != "udp" || u.Path != udp.path || u.InProcess || u.PID != pid {
		t.Errorf("udp: %+v, want the udp push plugin at %s as %d", u, udp.path, pid)
	}

	// The binary fails to start while it is replaced.
	script, err := os.ReadFile(udp.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(udp.path, []byte("#!/bin/sh\nexit 1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	kill(t, pid)
	eventually(t, "a failed relaunch", func() bool {
		s := statusOf(t, h, "udp")
		return s.State == pluginhost.StateRestarting && strings.HasPrefix(s.LastError, "starting "+udp.path)
	})
	if s := statusOf(t, h, "udp"); s.Restarts != 1 || s.PID != 0 || !s.ServingSince.IsZero() || s.LastErrorTime.Before(before) {
		t.Errorf("restarting: %+v, want 1 restart, no process, an error's time", s)
	}
	if err := os.WriteFile(udp.path, script, 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, "serving again", func() bool { return statusOf(t, h, "udp").State == pluginhost.StateServing })
	if s := statusOf(t, h, "udp"); s.Restarts != 1 || s.PID <= 0 || s.PID == pid || s.LastError == "" {
		t.Errorf("restarted: %+v, want 1 restart, a new process, the last error kept", s)
	}

	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range h.Status() {
		if s.State != pluginhost.StateStopped || s.PID != 0 {
			t.Errorf("after Stop, %s: %+v", s.Name, s)
		}
	}
}
