// Package plugins_test checks, against the real binary and the official Nacos
// Go SDK, that push executors run as supervised plugin processes.
package plugins_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

func TestMain(m *testing.M) { nacostest.Main(m) }

// process is a process seen in /proc.
type process struct {
	pid     int
	state   string // R, S, Z...
	cmdline []string
}

// children lists the processes whose parent is pid.
func children(t *testing.T, pid int) []process {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []process
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, parent, ok := readProcess(child)
		if ok && parent == pid {
			out = append(out, p)
		}
	}
	return out
}

// readProcess reads a process's state, parent and command line.
func readProcess(pid int) (process, int, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return process{}, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 2 {
		return process{}, 0, false
	}
	parent, _ := strconv.Atoi(fields[1])
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return process{pid: pid, state: fields[0], cmdline: strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")}, parent, true
}

// pushPlugin returns the server's pushrpc plugin process.
func pushPlugin(t *testing.T, srv *servertest.Server) process {
	t.Helper()
	for _, p := range children(t, srv.PID()) {
		if len(p.cmdline) == 3 && p.cmdline[1] == "plugin" && p.cmdline[2] == "pushrpc" && p.state != "Z" {
			return p
		}
	}
	t.Fatalf("no pushrpc plugin process among the server's children: %+v", children(t, srv.PID()))
	return process{}
}

func awaitPort(port uint64) func([]model.Instance) bool {
	return func(is []model.Instance) bool { return len(is) == 1 && is[0].Port == port }
}

func TestPushExecutorRunsAsAPluginProcess(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       []string
		wantChild bool
	}{
		{"by default, out of process", nil, true},
		{"in process when configured", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := servertest.Options{Env: []string{"SEXTANT_PUSH_DELAY=20ms"}}
			if !tc.wantChild {
				opts.Args = []string{"--config", writeConfig(t, "plugins {\n  pushrpc {\n    in_process = true\n  }\n}\n")}
			}
			srv := servertest.Start(t, opts)
			var pushrpc []process
			for _, p := range children(t, srv.PID()) {
				if len(p.cmdline) > 2 && p.cmdline[1] == "plugin" && p.cmdline[2] == "pushrpc" {
					pushrpc = append(pushrpc, p)
				}
			}
			if got := len(pushrpc) == 1; got != tc.wantChild {
				t.Fatalf("pushrpc processes: %+v", pushrpc)
			}
			w := nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: "via-plugin"})
			nacostest.Register(t, nacostest.NewClient(t, srv, ""), vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: "via-plugin"})
			w.Await(t, "the instance", awaitPort(80))
		})
	}
}

func writeConfig(t *testing.T, hcl string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sextant.hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKilledPluginIsRestartedAndNoPushIsLost kills the push plugin with
// SIGKILL while a provider keeps changing a service: the plugin comes back,
// the pushes due meanwhile go out once it is back (or fail and are retried),
// and every subscriber ends with the registry's final state.
func TestKilledPluginIsRestartedAndNoPushIsLost(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Env: []string{
		"SEXTANT_PUSH_DELAY=20ms", "SEXTANT_PUSH_RETRY_DELAY=100ms", "SEXTANT_PUSH_TIMEOUT=1s"}})
	const svc = "keeps-changing"
	watchers := make([]*nacostest.Watcher, 5)
	for i := range watchers {
		watchers[i] = nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: svc})
	}
	provider := nacostest.NewClient(t, srv, "")
	register := func(port uint64) {
		nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: port, ServiceName: svc})
	}
	for port := uint64(1000); port < 1020; port++ {
		register(port)
	}
	victim := pushPlugin(t, srv)
	if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	register(2000) // due while the plugin is down
	watchers[0].Await(t, "the change made while the plugin was down", awaitPort(2000))
	t.Logf("pushes flowed again %v after the plugin was killed", time.Since(killed).Round(time.Millisecond))
	for port := uint64(2001); port < 2020; port++ {
		register(port)
	}
	for i, w := range watchers {
		if _, err := w.Wait("the final state", awaitPort(2019)); err != nil {
			t.Errorf("subscriber %d: %v", i, err)
		}
	}
	if restarted := pushPlugin(t, srv); restarted.pid == victim.pid {
		t.Fatalf("the plugin still has the killed pid %d", victim.pid)
	}
	if n := srv.Metric(t, `sextant_plugin_restarts_total{plugin="pushrpc"}`); n != 1 {
		t.Errorf("sextant_plugin_restarts_total = %v, want 1", n)
	}
	// Pushes due while the plugin restarted waited for it; those in flight
	// when it died failed and were retried. Either way none was lost: every
	// subscriber ended on the final state above.
	t.Logf("pushes that failed and were retried: %v", srv.Metric(t, `sextant_pushes_total{result="failed"}`))
}

func TestKilledServerLeavesNoPlugin(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	plugin := pushPlugin(t, srv)
	srv.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _, alive := readProcess(plugin.pid)
		if !alive || p.state == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d (%v) still runs 5s after its server was killed", plugin.pid, p.cmdline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPluginProblemsStopStartup(t *testing.T) {
	port := servertest.FreePorts(t, 1)[0]
	sextant := servertest.Binary(t)
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"missing binary", "plugins {\n  hook {\n    path = \"/nonexistent/push-hook\"\n  }\n}\n",
			[]string{"plugin hook", "/nonexistent/push-hook", "no such file"}},
		{"wrong SHA-256", "plugins {\n  hook {\n    path = \"" + sextant + "\"\n    sha256 = \"" + strings.Repeat("0", 64) + "\"\n  }\n}\n",
			[]string{"plugin hook", "SHA-256", strings.Repeat("0", 64)}},
		{"invalid configuration block", "plugins {\n  pushrpc {\n    config {\n      colour = \"blue\"\n    }\n  }\n}\n",
			[]string{"plugin pushrpc", "config.colour: unknown key"}},
		{"not a plugin", "plugins {\n  hook {\n    path = \"/bin/true\"\n  }\n}\n",
			[]string{"plugin hook", "/bin/true"}},
		{"no rpc executor", "plugins {\n  pushrpc {\n    disabled = true\n  }\n}\n",
			[]string{"rpc role"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := servertest.Run(t, nil, "server", "--port", strconv.Itoa(port), "--data-dir", t.TempDir(),
				"--config", writeConfig(t, tc.config))
			if code == 0 {
				t.Fatalf("the server started:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the error does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}
