package pluginhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/transport"
)

// The test binary is also every plugin binary these tests run: started with
// fakeEnv naming a fake, it serves that fake instead of running the tests.
const (
	fakeEnv = "PLUGINHOST_TEST_PLUGIN"
	// gateEnv names a file: while it exists, the fake holds its start,
	// having created the file's name + ".held".
	gateEnv = "PLUGINHOST_TEST_GATE"
)

func TestMain(m *testing.M) {
	if name := os.Getenv(fakeEnv); name != "" {
		serveFake(name)
		os.Exit(1) // the Serve functions never return
	}
	// go-plugin's broker forgets a connection it was told of 5 s later.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/go-plugin.(*GRPCBroker).timeoutWait"))
}

// fakes are the plugins the test binary can serve, by name.
var fakes = map[string]func(){
	"rpc":     func() { push.Serve(pushFake("rpc", push.RoleRPC)) },
	"udp":     func() { push.Serve(pushFake("udp", push.RoleUDP)) },
	"spi":     func() { push.Serve(pushFake("spi", push.RoleSPI)) },
	"badrole": func() { push.Serve(pushFake("badrole", "carrier-pigeon")) },
	"badschema": func() {
		push.Serve(withSchema(pushFake("badschema", push.RoleRPC), sdk.Schema{{Key: "colour", Type: "hue"}}))
	},
	"crash": func() {
		fmt.Fprintln(os.Stderr, "fake: crashing at start")
		os.Exit(2)
	},
	// noisy writes more to its stderr than a failed start's error shows,
	// then exits.
	"noisy": func() {
		for i := range 100 {
			fmt.Fprintf(os.Stderr, "noisy line %d\n", i)
		}
		fmt.Fprintln(os.Stderr, strings.Repeat("x", 8<<10))
		fmt.Fprintln(os.Stderr, "noisy: giving up")
		os.Exit(1)
	},
	"members":   func() { membership.Serve(membersFake) },
	"transport": func() { transport.Serve(transportFake) },
}

func serveFake(name string) {
	if gate := os.Getenv(gateEnv); gate != "" {
		for held := false; exists(gate); time.Sleep(10 * time.Millisecond) {
			if !held {
				held = os.WriteFile(gate+".held", nil, 0o600) == nil
			}
		}
	}
	serve, ok := fakes[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no fake plugin %q\n", name)
		os.Exit(1)
	}
	serve()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// pushConfig is the fake push plugins' configuration block.
type pushConfig struct {
	// FailNew is the error New returns, if set.
	FailNew string `json:"fail_new"`
	// Log is a line New logs at info level, if set.
	Log string `json:"log"`
	// Services are an spi executor's service patterns.
	Services []string `json:"services"`
}

// pushFake is a push plugin whose executor fails the targets whose client id
// is "bad" and exits the process on a target "crash".
func pushFake(name string, role push.Role) push.Plugin {
	return push.Plugin{
		Info: sdk.Info{Name: name, Version: "0.0.1", Config: sdk.Schema{
			{Key: "fail_new", Type: sdk.String},
			{Key: "log", Type: sdk.String},
			{Key: "services", Type: sdk.StringList},
		}},
		Role: role,
		New: func(config []byte, h push.Host) (push.Executor, error) {
			var cfg pushConfig
			if err := sdk.DecodeConfig(config, &cfg); err != nil {
				return nil, err
			}
			if cfg.FailNew != "" {
				return nil, errors.New(cfg.FailNew)
			}
			if cfg.Log != "" {
				h.Logger.Info(cfg.Log)
			}
			return pushExecutor{services: cfg.Services}, nil
		},
	}
}

func withSchema(p push.Plugin, s sdk.Schema) push.Plugin {
	p.Config = s
	return p
}

type pushExecutor struct{ services []string }

func (pushExecutor) Push(_ context.Context, b push.Batch) []error {
	errs := make([]error, len(b.Targets))
	for i, t := range b.Targets {
		switch t.ClientID {
		case "bad":
			errs[i] = errors.New("bad refused the push")
		case "crash":
			os.Exit(3)
		}
	}
	return errs
}

func (e pushExecutor) Interest() push.Interest {
	return push.Interest{Services: e.services, Subscribers: true}
}

// membersFake reports its configured members, self included.
var membersFake = membership.Plugin{
	Info: sdk.Info{Name: "members", Version: "0.0.1", Config: sdk.Schema{{Key: "members", Type: sdk.StringList, Required: true}}},
	New: func(config []byte, _ membership.Host) (membership.Provider, error) {
		var cfg struct {
			Members []string `json:"members"`
		}
		if err := sdk.DecodeConfig(config, &cfg); err != nil {
			return nil, err
		}
		return staticMembers(cfg.Members), nil
	},
}

type staticMembers []string

func (m staticMembers) Watch(ctx context.Context, self string, update func([]string)) error {
	list, _ := membership.WithSelf(m, self)
	update(list)
	<-ctx.Done()
	return ctx.Err()
}

// transportFake answers a Call with what it was sent, except that a Call to
// the target "inbound" is handed to the host's Inbound as if a peer made it.
var transportFake = transport.Plugin{
	Info: sdk.Info{Name: "transport", Version: "0.0.1"},
	New: func(_ []byte, h transport.Host) (transport.Transport, error) {
		return &echoTransport{inbound: h.Inbound}, nil
	},
}

// inboundPeer is the peer the fake transport says an inbound call is from.
const inboundPeer = "10.0.0.2:8848"

type echoTransport struct {
	inbound transport.Inbound
	self    string
}

func (t *echoTransport) Listen(_ context.Context, address, self string) error {
	t.self = self
	return nil
}

func (t *echoTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	if target == "inbound" {
		return t.inbound.Handle(ctx, inboundPeer, kind, payload)
	}
	return fmt.Appendf(nil, "%s from %s to %s: %s", kind, t.self, target, payload), nil
}

func (t *echoTransport) Snapshot(context.Context, string, func([]byte) error) error {
	return errors.New("no snapshots here")
}

func (t *echoTransport) Close() error { return nil }

// quickExit keeps a fake built with -race from sleeping a second as it
// exits, as the race detector does by default.
const quickExit = `export GORACE="${GORACE:+$GORACE }atexit_sleep_ms=0"`

// fake is a plugin binary: a script that runs the test binary as a fake,
// passing it the script's path so that its processes can be found.
type fake struct {
	path string
	// gate: while this file exists, a starting process waits (see hold).
	gate string
}

// newFake writes the script of the fake plugin name.
func newFake(t *testing.T, name string) fake {
	t.Helper()
	dir := t.TempDir()
	f := fake{path: filepath.Join(dir, name), gate: filepath.Join(dir, "gate")}
	script := fmt.Sprintf("#!/bin/sh\n%s\n%s=%s %s=%s exec '%s' \"$0\"\n", quickExit, fakeEnv, name, gateEnv, f.gate, testBinary(t))
	if err := os.WriteFile(f.path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

// builtinsExecutable is a script standing for the server's binary: its
// "plugin NAME" runs the fake NAME.
func builtinsExecutable(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sextant")
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = plugin ] || exit 64\n%s\n%s=\"$2\" exec '%s' builtin\n", quickExit, fakeEnv, testBinary(t))
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func testBinary(t *testing.T) string {
	t.Helper()
	path, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// hold makes the fake's next starts wait until the returned release is
// called (or the test ends).
func (f fake) hold(t *testing.T) (release func()) {
	t.Helper()
	if err := os.WriteFile(f.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	release = func() { _ = os.Remove(f.gate) }
	t.Cleanup(release)
	return release
}

// held reports whether a start of the fake is waiting at its gate.
func (f fake) held() bool { return exists(f.gate + ".held") }

// pids returns the running processes of the fake.
func (f fake) pids(t *testing.T) []int {
	t.Helper()
	return processesOf(t, f.path)
}

// processesOf returns the running processes of the fake at path: the test's
// children whose command line has path.
func processesOf(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		cmdline, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err1 != nil || err2 != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[0] == "Z" || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		if slices.Contains(strings.Split(string(cmdline), "\x00"), path) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pid returns the fake's one running process.
func (f fake) pid(t *testing.T) int {
	t.Helper()
	var pids []int
	eventually(t, "one process of "+f.path, func() bool {
		pids = f.pids(t)
		return len(pids) == 1
	})
	return pids[0]
}

// eventually polls cond until it holds, failing the test after 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testHost is a Host under test with what it writes to.
type testHost struct {
	*pluginhost.Host
	metrics *prometheus.Registry
	logs    *logBuffer
}

// newHost returns a host for cfg, logging to a buffer and counting in a
// registry of its own; the test stops it at its end.
func newHost(t *testing.T, cfg pluginhost.Config) testHost {
	t.Helper()
	th := testHost{metrics: prometheus.NewRegistry(), logs: &logBuffer{}}
	cfg.Metrics = th.metrics
	if cfg.Logger == nil { // else the test reads the logger it gave
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Output: th.logs, Level: hclog.Debug})
	}
	if cfg.Connections == nil {
		cfg.Connections = noConnections{}
	}
	if cfg.Executable == "" {
		cfg.Executable = builtinsExecutable(t)
	}
	if cfg.Self == "" {
		cfg.Self = "10.0.0.1:8848"
	}
	th.Host = pluginhost.New(cfg)
	t.Cleanup(func() { _ = th.Stop(context.Background()) })
	return th
}

// start starts the host for cfg, failing the test if it cannot.
func start(t *testing.T, cfg pluginhost.Config) testHost {
	t.Helper()
	h := newHost(t, cfg)
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return h
}

// counter returns the value of the counter name for plugin (0 if unset).
func (h testHost) counter(t *testing.T, name, plugin string) float64 {
	t.Helper()
	families, err := h.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "plugin" && l.GetValue() == plugin {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

const restartsMetric = "sextant_plugin_restarts_total"

// rpcSpec is a push plugin serving the rpc role, which every host needs.
func rpcSpec(t *testing.T) pluginhost.Spec {
	return pluginhost.Spec{Name: "rpc", Path: newFake(t, "rpc").path}
}

// logBuffer is a log output the test reads while the host writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type noConnections struct{}

func (noConnections) Request(_ context.Context, _ string, _ []byte, ids []string) []error {
	return make([]error, len(ids))
}

// batch is a batch for targets, by client id.
func batch(clientIDs ...string) push.Batch {
	b := push.Batch{Service: push.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}, ServiceInfo: []byte(`{}`)}
	for _, id := range clientIDs {
		b.Targets = append(b.Targets, push.Target{ClientID: id, ConnectionID: "conn-" + id})
	}
	return b
}

// executor returns the host's push executor name.
func executor(t *testing.T, h testHost, name string) pluginhost.Executor {
	t.Helper()
	for _, e := range h.Executors() {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no executor %s among %v", name, h.Executors())
	return pluginhost.Executor{}
}
