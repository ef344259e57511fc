package transporttest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/kit/kittest"
	"github.com/sextantd/sextant/sdk/transport"
	"github.com/sextantd/sextant/sdk/transport/transporttest"
)

// The kit's own tests check its large call and snapshot with smaller ones:
// with the race detector, copying 8 and 20 MiB through every hop takes
// seconds. The plugins' conformance tests check the real sizes.
const (
	testCallSize     = 256 << 10
	testSnapshotSize = 3 << 20 // still several chunks
)

// A failure the kit must report: in which check, and what its message says.
type failure = kittest.Failure

func TestLeavesNoGoroutineBehind(t *testing.T) {
	t.Cleanup(transporttest.SetSizes(testCallSize, testSnapshotSize))
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("in process", func(t *testing.T) { transporttest.Run(t, transporttest.Options{Plugin: &httpPlugin}) })
}

func TestBrokenTransportsFail(t *testing.T) {
	t.Cleanup(transporttest.SetSizes(testCallSize, testSnapshotSize)) // after the parallel subtests
	for _, tc := range []struct {
		name   string
		plugin func(*testing.T) transport.Plugin
		want   []failure
	}{{
		name: "careless",
		// Answers with its own payload, cuts snapshot chunks in two, takes
		// a broken snapshot for a whole one, and never closes.
		plugin: func(t *testing.T) transport.Plugin {
			return wrap(t, func(inner transport.Transport) transport.Transport { return careless{inner} })
		},
		want: []failure{
			{Check: "call", Says: `a call from node A to node B: the answer is the payload "hello from node A", want node B's, the payload "transporttest: node B answers hello from node A"`},
			{Check: "call", Says: "a call from node B to node A: the answer is"},
			{Check: "errors", Says: "a call after a refused one: the answer is"},
			{Check: "sizes", Says: "a call with an empty payload: the answer is the payload \"\", want node B's"},
			{Check: "sizes", Says: "a call with a payload of 0.25 MiB (and an answer a little larger): the answer is a payload of 262144 bytes"},
			{Check: "concurrency", Says: "100 of 100 calls from node A to node B in flight at once got the wrong result; the first, call 0: the answer is"},
			{Check: "refused", Says: "a snapshot node A asks of 127.0.0.1:"},
			{Check: "refused", Says: ", where nobody listens, succeeded"},
			{Check: "snapshot", Says: "node B's snapshot of 3 MiB in 7 chunks, asked for by node A: chunk 0, at byte 0, is 0 bytes, but node B's server wrote 1 byte there: a transport must pass each chunk on as the peer's server wrote it"},
			{Check: "snapshot", Says: "a snapshot that fails at node B half-way ended without an error at node A: node A would load a partial snapshot as if it were whole"},
			{Check: "close", Says: "1s after node A's transport was closed, its port 127.0.0.1:"},
			{Check: "close", Says: "still accepts connections: Close must stop listening"},
		},
	}, {
		name: "sloppy",
		// Tells peers its address for its self, ignores the caller's
		// context, loses ErrUnreachable, and panics in Close.
		plugin: func(t *testing.T) transport.Plugin {
			return wrap(t, func(inner transport.Transport) transport.Transport { return sloppy{inner} })
		},
		want: []failure{
			{Check: "call", Says: `a call from node A to node B: node B's server did not get it from "node-a.transporttest:8848" (node A's self, as Listen was given it), of kind "transporttest.call", with the payload "hello from node A"; the last call that reached it came from "127.0.0.1:`},
			{Check: "deadline", Says: "a call to node B, whose server never answers, with a deadline 200ms away: no result 1s past its deadline; Call must return by its context's deadline"},
			{Check: "deadline", Says: "node B's server was still handling the call 1s past its deadline: the peer's Inbound.Handle context must end with the caller's deadline"},
			{Check: "cancel", Says: "no result 1s after the host withdrew it; Call must return soon after its context is cancelled"},
			{Check: "cancel", Says: "node B's server was still handling it 1s later"},
			{Check: "refused", Says: `a call from node A to 127.0.0.1:`},
			{Check: "refused", Says: `, where nobody listens, failed with "sloppy: peer unreachable: 127.0.0.1:`},
			{Check: "refused", Says: `which does not say the peer is unreachable: wrap transport.ErrUnreachable in the error`},
			{Check: "refused", Says: `a second call from node A`},
			{Check: "snapshot", Says: `node B's server was asked for it by ["127.0.0.1:`},
			{Check: "close", Says: "closing node A's transport failed: the Call stream ended: rpc error: code = Unknown desc = closing the transport: transporttest: Close panicked: sloppy to the end"},
			{Check: "close", Says: "node A's transport panicked 1 time (the SDK answers a panic with an error, but the call fails: report failures as errors instead); the first time: sloppy to the end\n"},
			{Check: "close", Says: "transporttest_test.go:"}, // the stack, where it panicked
		},
	}, {
		name: "New panics",
		plugin: func(*testing.T) transport.Plugin {
			p := httpPlugin
			p.New = func([]byte, transport.Host) (transport.Transport, error) { panic("no transport today") }
			return p
		},
		want: []failure{{Check: "configure", Says: "node A: Configure failed (New returned an error, or the plugin could not reach the host): starting the transport: panic in New: no transport today\n"}},
	}, {
		name: "invalid schema and no version",
		plugin: func(*testing.T) transport.Plugin {
			p := httpPlugin
			p.Config = sdk.Schema{{Key: "dial_timeout", Type: "time"}}
			p.Version = ""
			return p
		},
		want: []failure{
			{Check: "describe", Says: "the plugin has no version: set Plugin.Info.Version"},
			{Check: "describe", Says: `configuration schema (Plugin.Info.Config) is invalid, so the server would refuse to start it: key "dial_timeout" has unknown type "time"`},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.plugin(t)
			kittest.Expect(t, record(transporttest.Options{Plugin: &p}).Failures, tc.want)
		})
	}
}

func TestTransportConfigMustPassTheSchema(t *testing.T) {
	got := record(transporttest.Options{Plugin: &httpPlugin, Config: map[string]any{"dial_timeout": "soon"}}).Failures
	kittest.Expect(t, got, []failure{{Check: "describe", Says: `Options.Config does not pass the plugin's configuration schema: config.dial_timeout: invalid duration "soon"`}})
	if slices.ContainsFunc(got, func(f failure) bool { return f.Check == "configure" }) {
		t.Errorf("the kit went on after describe failed: %v", got)
	}
}

func TestAuth(t *testing.T) {
	t.Cleanup(transporttest.SetSizes(testCallSize, testSnapshotSize))
	auth := &transporttest.Auth{
		A: map[string]any{"token": "open sesame"},
		B: map[string]any{"token": "open sesame"},
		Refused: map[string]map[string]any{
			"a wrong token": {"token": "open barley"},
			"no token":      {},
		},
	}
	kittest.Expect(t, record(transporttest.Options{Plugin: &httpPlugin, Config: map[string]any{"dial_timeout": "1s"}, Auth: auth}).Failures, nil)

	lax := httpPlugin
	lax.New = func(config []byte, host transport.Host) (transport.Transport, error) {
		tr, err := httpPlugin.New(config, host)
		if err == nil {
			tr.(*httpTransport).lax = true
		}
		return tr, err
	}
	kittest.Expect(t, record(transporttest.Options{Plugin: &lax, Auth: auth}).Failures, []failure{
		{Check: "auth", Says: `node C, with a wrong token (Auth.Refused["a wrong token"]): a call to node B succeeded, with the payload "transporttest: node B answers let me in": node B must refuse it`},
		{Check: "auth", Says: `node C, with a wrong token (Auth.Refused["a wrong token"]): a snapshot of node B succeeded: node B must refuse it`},
		{Check: "auth", Says: `node C, with a wrong token (Auth.Refused["a wrong token"]): node B's server got a call from "node-c.transporttest:8848", of kind "transporttest.call", with the payload "let me in": a transport must refuse a stranger before it hands anything to the server`},
		{Check: "auth", Says: `node C, with no token (Auth.Refused["no token"]): a call to node B succeeded`},
		{Check: "auth", Says: `node C, with no token (Auth.Refused["no token"]): a snapshot of node B succeeded`},
		{Check: "auth", Says: `node C, with no token (Auth.Refused["no token"]): node B's server got a call`},
	})

	bad := *auth
	bad.Refused = map[string]map[string]any{"a token of the wrong type": {"token": 42}}
	kittest.Expect(t, record(transporttest.Options{Plugin: &httpPlugin, Auth: &bad}).Failures, []failure{
		{Check: "describe", Says: `Options.Auth.Refused["a token of the wrong type"] (over Options.Config) does not pass the plugin's configuration schema: config.token:`},
	})
}

func TestTransportOptionsNeedOnePlugin(t *testing.T) {
	kittest.Expect(t, record(transporttest.Options{}).Failures, []failure{{Check: "", Says: "transporttest: set exactly one of Options.Binary and Options.Plugin"}})
}

// record runs the kit against a recorder and returns what it reported.
func record(opts transporttest.Options) kittest.Report {
	return kittest.Record(func(r *kittest.Recorder) { transporttest.Run(r, opts) })
}

// wrap is httpPlugin with its transport wrapped by broken. The inner
// transports, which a broken Close may leave open, are closed when the test
// ends.
func wrap(t *testing.T, broken func(transport.Transport) transport.Transport) transport.Plugin {
	p := httpPlugin
	p.New = func(config []byte, host transport.Host) (transport.Transport, error) {
		inner, err := httpPlugin.New(config, host)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { inner.Close() })
		return broken(inner), nil
	}
	return p
}

// careless answers with the payload it sent, cuts snapshot chunks in two,
// takes a snapshot that broke for a whole one, and never closes.
type careless struct{ transport.Transport }

func (c careless) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	if _, err := c.Transport.Call(ctx, target, kind, payload); err != nil {
		return nil, err
	}
	return payload, nil
}

func (c careless) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	_ = c.Transport.Snapshot(ctx, target, func(chunk []byte) error {
		half := len(chunk) / 2
		if err := fn(chunk[:half]); err != nil {
			return err
		}
		return fn(chunk[half:])
	})
	return nil
}

func (careless) Close() error { return nil }

// sloppy tells its peers its address for its self, ignores the caller's
// context, loses ErrUnreachable, and panics in Close.
type sloppy struct{ transport.Transport }

func (s sloppy) Listen(ctx context.Context, address, _ string) error {
	return s.Transport.Listen(ctx, address, address)
}

func (s sloppy) Call(_ context.Context, target, kind string, payload []byte) ([]byte, error) {
	answer, err := s.Transport.Call(context.Background(), target, kind, payload)
	if err != nil {
		return nil, fmt.Errorf("sloppy: %v", err)
	}
	return answer, nil
}

func (s sloppy) Close() error {
	s.Transport.Close()
	panic("sloppy to the end")
}
