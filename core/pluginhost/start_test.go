package pluginhost_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/sdk/push"
)

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestStartFails checks that Start refuses what cannot run, saying which
// plugin and why, and leaves no process behind.
func TestStartFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) pluginhost.Config
		// want are all in the error; never is in none.
		want []string
	}{{
		name: "missing binary",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "ghost", Path: filepath.Join(t.TempDir(), "nothing")}}}
		},
		want: []string{"plugin ghost", "binary", "no such file"},
	}, {
		name: "wrong sha256",
		cfg: func(t *testing.T) pluginhost.Config {
			wrong := strings.Repeat("ab", 32)
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: newFake(t, "rpc").path, SHA256: wrong}}}
		},
		want: []string{"plugin rpc", "SHA-256", "but the configuration requires " + strings.Repeat("ab", 32)},
	}, {
		name: "sha256 not hex",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: newFake(t, "rpc").path, SHA256: "xyz"}}}
		},
		want: []string{"plugin rpc", "SHA-256", "requires xyz"},
	}, {
		name: "crashes at start",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "crash", Path: newFake(t, "crash").path}}}
		},
		want: []string{"plugin crash", "starting", "the process ended with exit status 2; its stderr ends with:\nfake: crashing at start"},
	}, {
		name: "wrong binary",
		cfg: func(*testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "hook", Path: "/bin/sh", Args: []string{"-c", "echo boom >&2; exit 1"}}}}
		},
		want: []string{"plugin hook", "starting /bin/sh", "the process ended with exit status 1", "its stderr ends with:\nboom"},
	}, {
		name: "builtin of another kind",
		cfg: func(*testing.T) pluginhost.Config {
			return pluginhost.Config{
				Builtins:  pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC)}},
				Transport: &pluginhost.Spec{Name: "wire", Builtin: "rpc"},
			}
		},
		want: []string{`plugins.wire.builtin: "rpc" is not a built-in transport plugin (this binary has none)`},
	}, {
		name: "builtin unknown",
		cfg: func(*testing.T) pluginhost.Config {
			return pluginhost.Config{
				Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC), "udp": pushFake("udp", push.RoleUDP)}},
				Push:     []pluginhost.Spec{{Name: "courier", Builtin: "pigeon"}},
			}
		},
		want: []string{`plugins.courier.builtin: "pigeon" is not a built-in push plugin (those are: rpc, udp)`},
	}, {
		name: "membership plugin in a push slot",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "members", Path: newFake(t, "members").path}}}
		},
		want: []string{"plugin members", `is a "membership" plugin, not a push plugin`},
	}, {
		name: "push plugin as the membership provider",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Membership: &pluginhost.Spec{Name: "rpc", Path: newFake(t, "rpc").path}}
		},
		want: []string{"plugin rpc", `is a "push" plugin, not a membership plugin`},
	}, {
		name: "push plugin as the transport",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Transport: &pluginhost.Spec{Name: "rpc", Path: newFake(t, "rpc").path}}
		},
		want: []string{"plugin rpc", `is a "push" plugin, not a transport plugin`},
	}, {
		name: "config rejected by the schema",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: newFake(t, "rpc").path,
				Config: map[string]any{"colour": "blue", "log": 42}}}}
		},
		want: []string{"plugin rpc", "config.colour: unknown key", "config.log"},
	}, {
		name: "required key missing",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Membership: &pluginhost.Spec{Name: "members", Path: newFake(t, "members").path}}
		},
		want: []string{"plugin members", "config.members: required"},
	}, {
		name: "invalid schema declared",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "badschema", Path: newFake(t, "badschema").path}}}
		},
		want: []string{"plugin badschema", "invalid configuration schema", `"hue"`},
	}, {
		name: "unknown role",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "badrole", Path: newFake(t, "badrole").path}}}
		},
		want: []string{"plugin badrole", `unknown push role "carrier-pigeon"`},
	}, {
		name: "New fails",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: newFake(t, "rpc").path,
				Config: map[string]any{"fail_new": "no widget at /dev/widget"}}}}
		},
		want: []string{"plugin rpc: configuring: starting the executor: no widget at /dev/widget"},
	}, {
		name: "unknown built-in",
		cfg: func(*testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "pushcarrier"}}}
		},
		want: []string{"plugin pushcarrier", "no built-in plugin has this name"},
	}, {
		name: "in process with a path",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: newFake(t, "rpc").path, InProcess: true}}}
		},
		want: []string{"plugin rpc", "in_process is only for built-in plugins, and this one has a path"},
	}, {
		name: "in process, not a built-in of that kind",
		cfg: func(*testing.T) pluginhost.Config {
			return pluginhost.Config{
				Builtins:   pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC)}},
				Membership: &pluginhost.Spec{Name: "rpc", InProcess: true},
			}
		},
		want: []string{"plugin rpc", "rpc is not a membership one"},
	}, {
		name: "in process, config rejected",
		cfg: func(*testing.T) pluginhost.Config {
			return pluginhost.Config{
				Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC)}},
				Push:     []pluginhost.Spec{{Name: "rpc", InProcess: true, Config: map[string]any{"volume": 11}}},
			}
		},
		want: []string{"plugin rpc", "config.volume: unknown key"},
	}, {
		name: "in process, New fails",
		cfg: func(*testing.T) pluginhost.Config {
			return pluginhost.Config{
				Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC)}},
				Push:     []pluginhost.Spec{{Name: "rpc", InProcess: true, Config: map[string]any{"fail_new": "no widget"}}},
			}
		},
		want: []string{"plugin rpc: starting the executor: no widget"},
	}, {
		name: "no rpc executor",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{{Name: "udp", Path: newFake(t, "udp").path}}}
		},
		want: []string{"no push plugin serves the rpc role", "enable pushrpc"},
	}, {
		name: "two rpc executors",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{
				{Name: "first", Path: newFake(t, "rpc").path},
				{Name: "second", Path: newFake(t, "rpc").path},
			}}
		},
		want: []string{"first, second all serve the rpc role"},
	}, {
		name: "two udp executors",
		cfg: func(t *testing.T) pluginhost.Config {
			return pluginhost.Config{Push: []pluginhost.Spec{
				rpcSpec(t),
				{Name: "udp1", Path: newFake(t, "udp").path},
				{Name: "udp2", Path: newFake(t, "udp").path},
			}}
		},
		want: []string{"udp1, udp2 all serve the udp role"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg(t)
			h := newHost(t, cfg)
			err := h.Start(t.Context())
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "rpc error") {
				t.Errorf("error %q has gRPC's text in it", err)
			}
			if got := h.Executors(); len(got) != 0 {
				t.Errorf("executors after a failed Start: %v", got)
			}
			for _, spec := range allSpecs(cfg) {
				if spec.Path == "" {
					continue
				}
				if pids := processesOf(t, spec.Path); len(pids) > 0 {
					t.Errorf("plugin %s still runs as %v after a failed Start", spec.Name, pids)
				}
			}
		})
	}
}

func allSpecs(cfg pluginhost.Config) []pluginhost.Spec {
	specs := append([]pluginhost.Spec(nil), cfg.Push...)
	for _, s := range []*pluginhost.Spec{cfg.Membership, cfg.Transport} {
		if s != nil {
			specs = append(specs, *s)
		}
	}
	return specs
}

func TestStartChecksSHA256(t *testing.T) {
	t.Parallel()
	f := newFake(t, "rpc")
	sum := sha256Of(t, f.path)
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: f.path, SHA256: strings.ToUpper(sum)}}})
	if errs := executor(t, h, "rpc").Push(t.Context(), batch("a")); errs[0] != nil {
		t.Fatal(errs[0])
	}
}

func TestStartsEveryKind(t *testing.T) {
	t.Parallel()
	bus, _ := memberLists(t)
	h := start(t, pluginhost.Config{
		Bus:        bus,
		Push:       []pluginhost.Spec{rpcSpec(t), {Name: "udp", Path: newFake(t, "udp").path}},
		Membership: &pluginhost.Spec{Name: "members", Path: newFake(t, "members").path, Config: map[string]any{"members": []any{"10.0.0.1:8848"}}},
		Transport:  &pluginhost.Spec{Name: "transport", Path: newFake(t, "transport").path},
	})
	if h.Transport() == nil {
		t.Error("no transport")
	}
	if n := len(h.Executors()); n != 2 {
		t.Errorf("%d executors, want 2", n)
	}
}

func TestNoTransportConfigured(t *testing.T) {
	t.Parallel()
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{rpcSpec(t)}})
	if h.Transport() != nil {
		t.Error("a transport without one configured")
	}
}

// TestBuiltinByName runs a built-in from the server's binary: Executable
// plugin NAME.
func TestBuiltinByName(t *testing.T) {
	t.Parallel()
	h := start(t, pluginhost.Config{
		Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC)}},
		Push:     []pluginhost.Spec{{Name: "rpc"}},
	})
	errs := executor(t, h, "rpc").Push(t.Context(), batch("a", "bad"))
	if errs[0] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "bad refused the push") {
		t.Errorf("results %v, want [nil, bad refused the push]", errs)
	}
}

func TestInProcess(t *testing.T) {
	t.Parallel()
	builtin := pushFake("rpc", push.RoleRPC)
	h := start(t, pluginhost.Config{
		Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": builtin, "spi": pushFake("spi", push.RoleSPI)}},
		Push: []pluginhost.Spec{
			{Name: "rpc", InProcess: true},
			{Name: "spi", InProcess: true, Config: map[string]any{"services": []any{"order-*"}}},
		},
	})
	e := executor(t, h, "rpc")
	if e.Role != push.RoleRPC {
		t.Errorf("role %q, want rpc", e.Role)
	}
	if errs := e.Push(t.Context(), batch("a", "bad")); errs[0] != nil || errs[1] == nil {
		t.Errorf("results %v, want [nil, an error]", errs)
	}
	if got := executor(t, h, "spi").Interest.Services; len(got) != 1 || got[0] != "order-*" {
		t.Errorf("spi interest services %v, want [order-*]", got)
	}
}

// TestPluginsStartAtOnce: the host starts its plugins together, not one
// after another: two built-ins whose start each waits for the other to
// begin both start.
func TestPluginsStartAtOnce(t *testing.T) {
	t.Parallel()
	var begun sync.WaitGroup
	begun.Add(2)
	waitForTheOther := func(p push.Plugin) push.Plugin {
		inner := p.New
		p.New = func(config []byte, h push.Host) (push.Executor, error) {
			begun.Done()
			done := make(chan struct{})
			go func() { begun.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				return nil, errors.New("the other plugin had not begun to start: plugins start one after another")
			}
			return inner(config, h)
		}
		return p
	}
	h := start(t, pluginhost.Config{
		Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{
			"rpc": waitForTheOther(pushFake("rpc", push.RoleRPC)),
			"spi": waitForTheOther(pushFake("spi", push.RoleSPI)),
		}},
		Push: []pluginhost.Spec{{Name: "rpc", InProcess: true}, {Name: "spi", InProcess: true}},
	})
	var names []string
	for _, e := range h.Executors() {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "rpc,spi" {
		t.Fatalf("executors %v, want rpc,spi in configuration order", names)
	}
}

// TestFailedStartShowsTheEndOfStderr: a plugin that writes more to its
// stderr than an error should hold fails with the last lines only, within
// the byte bound.
func TestFailedStartShowsTheEndOfStderr(t *testing.T) {
	t.Parallel()
	h := newHost(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "noisy", Path: newFake(t, "noisy").path}}})
	err := h.Start(t.Context())
	if err == nil {
		t.Fatal("Start succeeded")
	}
	msg := err.Error()
	_, tail, found := strings.Cut(msg, "its stderr ends with:\n")
	if !found {
		t.Fatalf("the error shows no stderr: %s", msg)
	}
	if !strings.HasPrefix(tail, "...\n") || !strings.HasSuffix(tail, "noisy: giving up") {
		t.Errorf("the stderr shown does not end with the last line, after a mark of what was left out:\n%s", tail)
	}
	if strings.Contains(tail, "noisy line") {
		t.Errorf("the stderr shown has lines from before the last 4 KiB:\n%s", tail)
	}
	if len(tail) > 4<<10+len("...\n") {
		t.Errorf("the stderr shown is %d bytes, over the bound", len(tail))
	}
}

// TestPathWithArgs runs a plugin binary with the arguments configured.
func TestPathWithArgs(t *testing.T) {
	t.Parallel()
	f := newFake(t, "rpc")
	script := filepath.Join(t.TempDir(), "with-args")
	body := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = --colour ] && [ \"$2\" = 'deep blue' ] || { echo \"wrong arguments: $*\" >&2; exit 1; }\nexec '%s'\n", f.path)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: script, Args: []string{"--colour", "deep blue"}}}})
	if errs := executor(t, h, "rpc").Push(t.Context(), batch("a")); errs[0] != nil {
		t.Fatal(errs[0])
	}
	err := newHost(t, pluginhost.Config{Push: []pluginhost.Spec{{Name: "rpc", Path: script, Args: []string{"--colour", "red"}}}}).Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "wrong arguments: --colour red") {
		t.Errorf("with other arguments: %v, want the script's complaint", err)
	}
}

// TestBuiltinUnderAnotherName runs a built-in under a name of the user's,
// from the server's binary and in process, and logs which built-in and
// binary it is.
func TestBuiltinUnderAnotherName(t *testing.T) {
	t.Parallel()
	exe := builtinsExecutable(t)
	h := start(t, pluginhost.Config{
		Executable: exe,
		Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{
			"rpc": pushFake("rpc", push.RoleRPC), "spi": pushFake("spi", push.RoleSPI)}},
		Push: []pluginhost.Spec{
			{Name: "courier", Builtin: "rpc"},
			{Name: "watcher", Builtin: "spi", InProcess: true, Config: map[string]any{"services": []any{"order-*"}}},
		},
	})
	if errs := executor(t, h, "courier").Push(t.Context(), batch("a", "bad")); errs[0] != nil || errs[1] == nil {
		t.Errorf("results %v, want [nil, an error]", errs)
	}
	if w := executor(t, h, "watcher"); w.Role != push.RoleSPI || len(w.Interest.Services) != 1 {
		t.Errorf("watcher: %+v, want the spi built-in with its services", w)
	}
	want := fmt.Sprintf("host.courier: plugin started: kind=push pid=%d path=%s builtin=rpc sha256=%s",
		statusOf(t, h, "courier").PID, exe, sha256Of(t, exe))
	if !strings.Contains(h.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, h.logs)
	}
	if !strings.Contains(h.logs.String(), "host.watcher: plugin running in process: kind=push builtin=spi") {
		t.Errorf("the in-process built-in's line is missing:\n%s", h.logs)
	}
}
