package pluginhost_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/sdk/push"
)

// TestBuiltinsRunOnlyFromTheBinaryAsItWasAtStart: once the server's binary
// is replaced on disk, a built-in that dies is not started again from it;
// with the original back, it is.
func TestBuiltinsRunOnlyFromTheBinaryAsItWasAtStart(t *testing.T) {
	t.Parallel()
	exe := builtinsExecutable(t)
	h := start(t, pluginhost.Config{
		Executable: exe,
		Builtins:   pluginhost.Builtins{Push: map[string]push.Plugin{"rpc": pushFake("rpc", push.RoleRPC)}},
		Push:       []pluginhost.Spec{{Name: "rpc"}},
	})
	e := executor(t, h, "rpc")
	if errs := e.Push(t.Context(), batch("a")); errs[0] != nil {
		t.Fatal(errs[0])
	}

	original, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	replace := func(content []byte) {
		t.Helper()
		if err := os.WriteFile(exe+".new", content, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(exe+".new", exe); err != nil {
			t.Fatal(err)
		}
	}
	replace(append(slices.Clone(original), "# another build\n"...))
	e.Push(t.Context(), batch("crash")) // the plugin exits on it
	const refusal = "has changed since the server started (its SHA-256 differs), so its built-in plugins are not run from it: restart the server"
	eventually(t, "the restart to be refused", func() bool { return strings.Contains(h.logs.String(), refusal) })
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if errs := e.Push(ctx, batch("a")); errs[0] == nil {
		t.Error("a push went through while the plugin could not restart")
	}

	replace(original)
	eventually(t, "the plugin to restart", func() bool { return e.Push(t.Context(), batch("a"))[0] == nil })
}

// TestSocketFilesAreRemoved: the Unix sockets of plugin processes go with
// the processes — killed and restarted, or stopped — and those of a server
// that died go when the next one starts; the host itself makes none.
func TestSocketFilesAreRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	// The directories of a host whose process is gone, and of one alive.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(tmp, fmt.Sprintf("sextant-plugins-%d-123", dead.Process.Pid))
	alive := filepath.Join(tmp, "sextant-plugins-1-456")
	for _, d := range []string{filepath.Join(stale, "789"), alive} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(stale, "789", "plugin42"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	rpc := newFake(t, "rpc")
	h := start(t, pluginhost.Config{
		Builtins:  pluginhost.Builtins{Push: map[string]push.Plugin{"udp": pushFake("udp", push.RoleUDP)}},
		Push:      []pluginhost.Spec{{Name: "rpc", Path: rpc.path}, {Name: "udp"}},
		Transport: &pluginhost.Spec{Name: "transport", Path: newFake(t, "transport").path},
	})
	ours := func() []string {
		t.Helper()
		var found []string
		err := filepath.WalkDir(tmp, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSocket != 0 {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	sockets := ours()
	if len(sockets) != 3 {
		t.Fatalf("with 3 plugin processes, the sockets %v", sockets)
	}
	prefix := filepath.Join(tmp, fmt.Sprintf("sextant-plugins-%d-", os.Getpid()))
	for _, s := range sockets {
		if !strings.HasPrefix(s, prefix) {
			t.Errorf("the socket %s is not in a directory of the host's (%s*)", s, prefix)
		}
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the directory of a server that died is still there (%v)", err)
	}

	kill(t, rpc.pid(t))
	eventually(t, "a restart", func() bool { return h.counter(t, restartsMetric, "rpc") == 1 })
	eventually(t, "the restarted plugin", func() bool { return executor(t, h, "rpc").Push(t.Context(), batch("a"))[0] == nil })
	if got := ours(); len(got) != 3 {
		t.Errorf("after a plugin was killed and restarted, the sockets %v", got)
	}

	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ours(); len(got) != 0 {
		t.Errorf("after Stop, the sockets %v", got)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(alive) {
		t.Errorf("after Stop, %s holds %v, want only the directory of the live host", tmp, entries)
	}
}
