package pushtest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/kit/kittest"
	"github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/push/pushtest"
)

func TestPluginPasses(t *testing.T) {
	pushtest.Run(t, pushtest.Options{Plugin: &Plugin})
}

func TestBinaryPasses(t *testing.T) {
	pushtest.Run(t, pushtest.Options{Binary: kittest.Build(t, "./testdata/rpc")})
}

func TestLeavesNoGoroutineBehind(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		// The SDK's plugin side never closes its connection to the host's
		// services: harmless in a plugin process, left over in a test.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"))
	t.Run("in process", func(t *testing.T) { pushtest.Run(t, pushtest.Options{Plugin: &Plugin}) })
}

// A failure the kit must report: in which check, and what its message says.
type failure = kittest.Failure

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
			{Check: "results", Says: "499 results for 500 targets; Push must return exactly one error"},
			{Check: "failures", Says: "4 results for 5 targets"},
			{Check: "deadline", Says: "2 results for 3 targets"},
			{Check: "cancel", Says: "2 results for 3 targets"},
			{Check: "concurrency", Says: "16 of 16 batches sent at once, deliveries succeeding, got wrong results; the first, batch 1 (1 target): 0 results for 1 target"},
		},
	}, {
		name: "ignores cancellation",
		plugin: broken(func(_ context.Context, conns push.Connections, b push.Batch) []error {
			return deliver(context.Background(), conns, b)
		}),
		want: []failure{
			{Check: "deadline", Says: "no result 1s past its deadline; Push must return by its context's deadline"},
			{Check: "cancel", Says: "no result 1s after the host withdrew it; Push must return soon after its context is cancelled"},
		},
	}, {
		name: "panics",
		plugin: broken(func(context.Context, push.Connections, push.Batch) []error {
			panic("out of luck")
		}),
		want: []failure{
			{Check: "results", Says: "Push panicked 3 times (in its own process, a panic kills the process and every batch in flight: " +
				"report failures as errors instead); the first time: out of luck\n"},
			{Check: "results", Says: "pushtest_test.go:"}, // the stack, where it panicked
			{Check: "failures", Says: "Push panicked 3 times"},
			{Check: "deadline", Says: "Push panicked 1 time "},
			{Check: "cancel", Says: "Push panicked 1 time "},
			{Check: "concurrency", Says: "Push panicked 16 times"},
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
			{Check: "results", Says: `target 0 (client-0) got the error "nope", but its delivery succeeded`},
			{Check: "results", Says: "a batch of 500 targets, deliveries succeeding: 500 of 500 targets got the wrong result:"},
			{Check: "results", Says: "\nand 497 more"},
			{Check: "failures", Says: `a batch of 6 targets whose connections 1, 3 and 5 fail: 3 of 6 targets got the wrong result:` + "\n" +
				`target 0 (client-0) got the error "nope", but its delivery succeeded` + "\n" +
				`target 2 (client-2) got the error "nope", but its delivery succeeded` + "\n" +
				`target 4 (client-4) got the error "nope", but its delivery succeeded`},
			{Check: "concurrency", Says: `16 of 16 batches sent at once, deliveries succeeding, got wrong results; the first, batch 1 (1 target): ` +
				`1 of 1 target got the wrong result:` + "\n" + `target 0 (client-0) got the error "nope", but its delivery succeeded`},
		},
	}, {
		name: "swallows failures",
		plugin: broken(func(ctx context.Context, conns push.Connections, b push.Batch) []error {
			deliver(ctx, conns, b)
			return make([]error, len(b.Targets))
		}),
		want: []failure{
			{Check: "failures", Says: "target 0 (client-0) got no error, but its delivery failed"},
			{Check: "deadline", Says: "target 0 (client-0) got no error"},
			{Check: "cancel", Says: "target 0 (client-0) got no error"},
		},
	}, {
		name: "invalid schema",
		plugin: func() push.Plugin {
			p := Plugin
			p.Config = sdk.Schema{{Key: "url", Type: "text"}}
			return p
		}(),
		want: []failure{{Check: "describe", Says: `configuration schema (Plugin.Info.Config) is invalid, so the server would refuse to start it: key "url" has unknown type "text"`}},
	}, {
		name: "spi without an interest",
		plugin: func() push.Plugin {
			p := Plugin
			p.Role = push.RoleSPI
			return p
		}(),
		want: []failure{{Check: "configure", Says: "an spi executor must implement Interested"}},
	}, {
		name: "no name, no role",
		plugin: func() push.Plugin {
			p := Plugin
			p.Name, p.Role = "", "sideways"
			return p
		}(),
		want: []failure{
			{Check: "describe", Says: "the plugin has no name: set Plugin.Info.Name"},
			{Check: "describe", Says: `the plugin's role is "sideways", want push.RoleRPC, RoleUDP or RoleSPI`},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kittest.Expect(t, record(pushtest.Options{Plugin: &tc.plugin}).Failures, tc.want)
		})
	}
}

func TestCrashingBinaryFails(t *testing.T) {
	got := record(pushtest.Options{Binary: kittest.Build(t, "./testdata/crasher")}).Failures
	kittest.Expect(t, got, []failure{
		{Check: "results", Says: "a batch of 0 targets, deliveries succeeding: no result: the push stream ended"},
		{Check: "results", Says: "(did the plugin crash?)\nthe plugin's last output:\n"},
		{Check: "results", Says: "crasher: out of luck"},
		{Check: "", Says: "the plugin is gone after results"},
		{Check: "", Says: "the remaining checks were skipped"},
	})
	if slices.ContainsFunc(got, func(f failure) bool { return f.Check == "failures" }) {
		t.Errorf("the kit went on checking a plugin that is gone: %v", got)
	}
}

func TestConfigMustPassTheSchema(t *testing.T) {
	got := record(pushtest.Options{Plugin: &Plugin, Config: map[string]any{"colour": "blue"}}).Failures
	kittest.Expect(t, got, []failure{{Check: "describe", Says: "Options.Config does not pass the plugin's configuration schema: config.colour: unknown key"}})
	if slices.ContainsFunc(got, func(f failure) bool { return f.Check == "configure" || f.Check == "results" }) {
		t.Errorf("the kit went on after describe failed: %v", got)
	}
}

func TestOptionsNeedOnePlugin(t *testing.T) {
	kittest.Expect(t, record(pushtest.Options{}).Failures, []failure{{Check: "", Says: "pushtest: set exactly one of Options.Binary and Options.Plugin"}})
}

// A plugin that delivers elsewhere than through the host's Connections, run
// without Options.Deliveries, fails once, saying to set it, and the checks
// that steer deliveries are skipped rather than failed.
func TestDeliveringElsewhereAsksForDeliveries(t *testing.T) {
	var sink sink
	got := record(pushtest.Options{Plugin: sink.plugin()})
	kittest.Expect(t, got.Failures, []failure{
		{Check: "results", Says: "delivered without sending a request through the host's Connections"},
		{Check: "results", Says: "A plugin that delivers elsewhere (to a URL, a queue, over UDP) must set Options.Deliveries"},
	})
	if len(got.Failures) != 1 {
		t.Errorf("the kit reported %d failures, want 1:\n%v", len(got.Failures), got.Failures)
	}
	var skipped []string
	for _, s := range got.Skipped {
		skipped = append(skipped, s.Check)
	}
	if want := []string{"failures", "deadline", "cancel"}; !slices.Equal(skipped, want) {
		t.Errorf("the kit skipped %q, want %q", skipped, want)
	}
}

// With Options.Deliveries, the same plugin passes.
func TestDeliveriesSteerAPluginThatDeliversElsewhere(t *testing.T) {
	var sink sink
	pushtest.Run(t, pushtest.Options{Plugin: sink.plugin(), Deliveries: &sink})
}

// deliver delivers b through conns, as Plugin does.
func deliver(ctx context.Context, conns push.Connections, b push.Batch) []error {
	return notifier{conns}.Push(ctx, b)
}

// broken is Plugin with its executor's Push replaced by pushFn.
func broken(pushFn func(context.Context, push.Connections, push.Batch) []error) push.Plugin {
	p := Plugin
	p.New = func(_ []byte, host push.Host) (push.Executor, error) {
		return executorFunc(func(ctx context.Context, b push.Batch) []error { return pushFn(ctx, host.Connections, b) }), nil
	}
	return p
}

type executorFunc func(context.Context, push.Batch) []error

func (f executorFunc) Push(ctx context.Context, b push.Batch) []error { return f(ctx, b) }

// sink is where a plugin that does not use the host's Connections delivers,
// and its Deliveries: each delivery succeeds, fails or hangs as set.
type sink struct {
	mu   sync.Mutex
	fail bool
	hang func() // when hanging: called as a delivery starts to hang
}

// plugin returns a plugin that delivers each target to s.
func (s *sink) plugin() *push.Plugin {
	p := Plugin
	p.Name = "sink"
	p.New = func([]byte, push.Host) (push.Executor, error) {
		return executorFunc(func(ctx context.Context, b push.Batch) []error {
			errs := make([]error, len(b.Targets))
			for i := range errs {
				errs[i] = s.deliver(ctx)
			}
			return errs
		}), nil
	}
	return &p
}

func (s *sink) deliver(ctx context.Context) error {
	s.mu.Lock()
	fail, hang := s.fail, s.hang
	s.mu.Unlock()
	switch {
	case hang != nil:
		hang()
		<-ctx.Done()
		return ctx.Err()
	case fail:
		return errors.New("the sink is full")
	}
	return nil
}

func (s *sink) set(fail bool, hang func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.hang = fail, hang
}

// Succeed implements pushtest.Deliveries.
func (s *sink) Succeed() { s.set(false, nil) }

// Fail implements pushtest.Deliveries.
func (s *sink) Fail() { s.set(true, nil) }

// Hang implements pushtest.Deliveries.
func (s *sink) Hang() <-chan struct{} {
	hung := make(chan struct{})
	s.set(false, sync.OnceFunc(func() { close(hung) }))
	return hung
}

// record runs the kit against a recorder and returns what it reported.
func record(opts pushtest.Options) kittest.Report {
	return kittest.Record(func(r *kittest.Recorder) { pushtest.Run(r, opts) })
}
