package sdktest_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/plugins/pushrpc"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/sdktest"
)

func TestBuiltinPushRPCPasses(t *testing.T) {
	sdktest.Push(t, sdktest.PushOptions{Plugin: &pushrpc.Plugin})
}

func TestBuiltinPushRPCBinaryPasses(t *testing.T) {
	sdktest.Push(t, sdktest.PushOptions{Binary: build(t, "./testdata/pushrpc")})
}

func TestLeavesNoGoroutineBehind(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		// The SDK's plugin side never closes its connection to the host's
		// services: harmless in a plugin process, left over in a test.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"))
	t.Run("in process", func(t *testing.T) { sdktest.Push(t, sdktest.PushOptions{Plugin: &pushrpc.Plugin}) })
}

// A failure the kit must report: in which check, and what its message says.
type failure struct{ check, says string }

func TestBrokenPluginsFail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		plugin push.Plugin
		want   []failure
	}{{
		name: "one result short",
		plugin: broken(func(ctx context.Context, conns push.Connections, b push.Batch) []error {
			errs := deliver(ctx, conns, b)
			return errs[:max(len(errs)-1, 0)]
		}),
		want: []failure{
			{"results", "499 results for 500 targets; Push must return exactly one error"},
			{"failures", "4 results for 5 targets"},
			{"deadline", "2 results for 3 targets"},
			{"cancel", "2 results for 3 targets"},
			{"concurrency", "16 of 16 batches sent at once, deliveries succeeding, got wrong results; the first, batch 1 (1 target): 0 results for 1 target"},
		},
	}, {
		name: "ignores cancellation",
		plugin: broken(func(_ context.Context, conns push.Connections, b push.Batch) []error {
			return deliver(context.Background(), conns, b)
		}),
		want: []failure{
			{"deadline", "no result 1s past its deadline; Push must return by its context's deadline"},
			{"cancel", "no result 1s after the host withdrew it; Push must return soon after its context is cancelled"},
		},
	}, {
		name: "panics",
		plugin: broken(func(context.Context, push.Connections, push.Batch) []error {
			panic("out of luck")
		}),
		want: []failure{
			{"results", "Push panicked 3 times (in its own process, a panic kills the process and every batch in flight: " +
				"report failures as errors instead); the first time: out of luck\n"},
			{"results", "sdktest_test.go:"}, // the stack, where it panicked
			{"failures", "Push panicked 3 times"},
			{"deadline", "Push panicked 1 time "},
			{"cancel", "Push panicked 1 time "},
			{"concurrency", "Push panicked 16 times"},
		},
	}, {
		name: "fails whatever the host says",
		plugin: broken(func(_ context.Context, _ push.Connections, b push.Batch) []error {
			errs := make([]error, len(b.Targets))
			for i := range errs {
				errs[i] = errors.New("nope")
			}
			return errs
		}),
		want: []failure{
			{"results", `target 0 (client-0) got the error "nope", but its delivery succeeded`},
			{"results", "a batch of 500 targets, deliveries succeeding: 500 of 500 targets got the wrong result:"},
			{"results", "\nand 497 more"},
			{"failures", `a batch of 6 targets whose connections 1, 3 and 5 fail: 3 of 6 targets got the wrong result:` + "\n" +
				`target 0 (client-0) got the error "nope", but its delivery succeeded` + "\n" +
				`target 2 (client-2) got the error "nope", but its delivery succeeded` + "\n" +
				`target 4 (client-4) got the error "nope", but its delivery succeeded`},
			{"concurrency", `16 of 16 batches sent at once, deliveries succeeding, got wrong results; the first, batch 1 (1 target): ` +
				`1 of 1 target got the wrong result:` + "\n" + `target 0 (client-0) got the error "nope", but its delivery succeeded`},
		},
	}, {
		name: "swallows failures",
		plugin: broken(func(ctx context.Context, conns push.Connections, b push.Batch) []error {
			deliver(ctx, conns, b)
			return make([]error, len(b.Targets))
		}),
		want: []failure{
			{"failures", "target 0 (client-0) got no error, but its delivery failed"},
			{"deadline", "target 0 (client-0) got no error"},
			{"cancel", "target 0 (client-0) got no error"},
		},
	}, {
		name: "invalid schema",
		plugin: func() push.Plugin {
			p := pushrpc.Plugin
			p.Config = sdk.Schema{{Key: "url", Type: "text"}}
			return p
		}(),
		want: []failure{{"describe", `configuration schema (Plugin.Info.Config) is invalid, so the server would refuse to start it: key "url" has unknown type "text"`}},
	}, {
		name: "spi without an interest",
		plugin: func() push.Plugin {
			p := pushrpc.Plugin
			p.Role = push.RoleSPI
			return p
		}(),
		want: []failure{{"configure", "an spi executor must implement Interested"}},
	}, {
		name: "no name, no role",
		plugin: func() push.Plugin {
			p := pushrpc.Plugin
			p.Name, p.Role = "", "sideways"
			return p
		}(),
		want: []failure{
			{"describe", "the plugin has no name: set Plugin.Info.Name"},
			{"describe", `the plugin's role is "sideways", want push.RoleRPC, RoleUDP or RoleSPI`},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := record(sdktest.PushOptions{Plugin: &tc.plugin})
			expectFailures(t, got, tc.want)
		})
	}
}

func TestCrashingBinaryFails(t *testing.T) {
	got := record(sdktest.PushOptions{Binary: build(t, "./testdata/crasher")})
	expectFailures(t, got, []failure{
		{"results", "a batch of 0 targets, deliveries succeeding: no result: the push stream ended"},
		{"results", "(did the plugin crash?)\nthe plugin's last output:\n"},
		{"results", "crasher: out of luck"},
		{"", "the plugin is gone after results"},
		{"", "the remaining checks were skipped"},
	})
	if slices.ContainsFunc(got, func(f failure) bool { return f.check == "failures" }) {
		t.Errorf("the kit went on checking a plugin that is gone: %v", got)
	}
}

func TestConfigMustPassTheSchema(t *testing.T) {
	got := record(sdktest.PushOptions{Plugin: &pushrpc.Plugin, Config: map[string]any{"colour": "blue"}})
	expectFailures(t, got, []failure{{"describe", "PushOptions.Config does not pass the plugin's configuration schema: config.colour: unknown key"}})
	if slices.ContainsFunc(got, func(f failure) bool { return f.check == "configure" || f.check == "results" }) {
		t.Errorf("the kit went on after describe failed: %v", got)
	}
}

func TestOptionsNeedOnePlugin(t *testing.T) {
	expectFailures(t, record(sdktest.PushOptions{}), []failure{{"", "set exactly one of PushOptions.Binary and PushOptions.Plugin"}})
}

// expectFailures fails t unless every wanted failure was recorded, and no
// failure in a check that no wanted one names.
func expectFailures(t *testing.T, got, want []failure) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g failure) bool { return g.check == w.check && strings.Contains(g.says, w.says) }) {
			t.Errorf("the kit did not report, in check %q, a failure saying %q; it reported:\n%s", w.check, w.says, show(got))
		}
	}
	for _, g := range got {
		if !slices.ContainsFunc(want, func(w failure) bool { return w.check == g.check }) {
			t.Errorf("the kit reported an unexpected failure in check %q: %s", g.check, g.says)
		}
	}
}

func show(fs []failure) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  [%s] %s\n", f.check, f.says)
	}
	return b.String()
}

// broken is pushrpc with its executor's Push replaced by pushFn.
func broken(pushFn func(context.Context, push.Connections, push.Batch) []error) push.Plugin {
	p := pushrpc.Plugin
	p.New = func(_ []byte, host push.Host) (push.Executor, error) {
		return executorFunc(func(ctx context.Context, b push.Batch) []error { return pushFn(ctx, host.Connections, b) }), nil
	}
	return p
}

type executorFunc func(context.Context, push.Batch) []error

func (f executorFunc) Push(ctx context.Context, b push.Batch) []error { return f(ctx, b) }

// deliver sends b through the host's connections, as pushrpc does.
func deliver(ctx context.Context, conns push.Connections, b push.Batch) []error {
	return pushrpc.New(conns).Push(ctx, b)
}

// build builds the plugin binary of a package and returns its path.
func build(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// record runs the kit against a recorder and returns what it reported.
func record(opts sdktest.PushOptions) []failure {
	r := &recorder{log: new(log)}
	r.run(func() { sdktest.Push(r, opts) })
	return r.log.failures
}

// recorder is an sdktest.T that records failures instead of failing a test.
// Like testing.T, it runs each test in its own goroutine, which Fatalf ends,
// and runs the test's cleanups when it is over.
type recorder struct {
	check    string // the subtest's name; "" at the top
	log      *log
	failed   bool
	cleanups []func()
}

type log struct {
	mu       sync.Mutex
	failures []failure
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	r.log.failures = append(r.log.failures, failure{r.check, fmt.Sprintf(format, args...)})
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recorder) Run(name string, f func(*recorder)) bool {
	sub := &recorder{check: name, log: r.log}
	sub.run(func() { f(sub) })
	r.failed = r.failed || sub.failed
	return !sub.failed
}

func (r *recorder) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for _, c := range slices.Backward(r.cleanups) {
				c()
			}
		}()
		f()
	}()
	<-done
}
