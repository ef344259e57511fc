package sdktest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/plugins/grpctransport"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/sdktest"
	"github.com/sextantd/sextant/sdk/transport"
)

// The kit's own tests check its large call and snapshot with smaller ones:
// with the race detector, copying 8 and 20 MiB through every hop takes
// seconds. The plugins' conformance tests check the real sizes.
const (
	testCallSize     = 256 << 10
	testSnapshotSize = 3 << 20 // still several chunks
)

func TestTransportKitLeavesNoGoroutineBehind(t *testing.T) {
	t.Cleanup(sdktest.SetTransportSizes(testCallSize, testSnapshotSize))
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("in process", func(t *testing.T) { sdktest.Transport(t, sdktest.TransportOptions{Plugin: &grpctransport.Plugin}) })
}

func TestBrokenTransportsFail(t *testing.T) {
	t.Cleanup(sdktest.SetTransportSizes(testCallSize, testSnapshotSize)) // after the parallel subtests
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
			{"call", `a call from node A to node B: the answer is the payload "hello from node A", want node B's, the payload "sdktest: node B answers hello from node A"`},
			{"call", "a call from node B to node A: the answer is"},
			{"errors", "a call after a refused one: the answer is"},
			{"sizes", "a call with an empty payload: the answer is the payload \"\", want node B's"},
			{"sizes", "a call with a payload of 0.25 MiB (and an answer a little larger): the answer is a payload of 262144 bytes"},
			{"concurrency", "100 of 100 calls from node A to node B in flight at once got the wrong result; the first, call 0: the answer is"},
			{"refused", "a snapshot node A asks of 127.0.0.1:"},
			{"refused", ", where nobody listens, succeeded"},
			{"snapshot", "node B's snapshot of 3 MiB in 7 chunks, asked for by node A: chunk 0, at byte 0, is 0 bytes, but node B's server wrote 1 byte there: a transport must pass each chunk on as the peer's server wrote it"},
			{"snapshot", "a snapshot that fails at node B half-way ended without an error at node A: node A would load a partial snapshot as if it were whole"},
			{"close", "1s after node A's transport was closed, its port 127.0.0.1:"},
			{"close", "still accepts connections: Close must stop listening"},
		},
	}, {
		name: "sloppy",
		// Tells peers its address for its self, ignores the caller's
		// context, loses ErrUnreachable, and panics in Close.
		plugin: func(t *testing.T) transport.Plugin {
			return wrap(t, func(inner transport.Transport) transport.Transport { return sloppy{inner} })
		},
		want: []failure{
			{"call", `a call from node A to node B: node B's server did not get it from "node-a.sdktest:8848" (node A's self, as Listen was given it), of kind "sdktest.call", with the payload "hello from node A"; the last call that reached it came from "127.0.0.1:`},
			{"deadline", "a call to node B, whose server never answers, with a deadline 200ms away: no result 1s past its deadline; Call must return by its context's deadline"},
			{"deadline", "node B's server was still handling the call 1s past its deadline: the peer's Inbound.Handle context must end with the caller's deadline"},
			{"cancel", "no result 1s after the host withdrew it; Call must return soon after its context is cancelled"},
			{"cancel", "node B's server was still handling it 1s later"},
			{"refused", `a call from node A to 127.0.0.1:`},
			{"refused", `, where nobody listens, failed with "sloppy: peer unreachable: 127.0.0.1:`},
			{"refused", `which does not say the peer is unreachable: wrap transport.ErrUnreachable in the error`},
			{"refused", `a second call from node A`},
			{"snapshot", `node B's server was asked for it by ["127.0.0.1:`},
			{"close", "closing node A's transport failed: the Call stream ended: rpc error: code = Unknown desc = closing the transport: sdktest: Close panicked: sloppy to the end"},
			{"close", "node A's transport panicked 1 time (the SDK answers a panic with an error, but the call fails: report failures as errors instead); the first time: sloppy to the end\n"},
			{"close", "transport_test.go:"}, // the stack, where it panicked
		},
	}, {
		name: "New panics",
		plugin: func(*testing.T) transport.Plugin {
			p := grpctransport.Plugin
			p.New = func([]byte, transport.Host) (transport.Transport, error) { panic("no transport today") }
			return p
		},
		want: []failure{{"configure", "node A: Configure failed (New returned an error, or the plugin could not reach the host): starting the transport: panic in New: no transport today\n"}},
	}, {
		name: "invalid schema and no version",
		plugin: func(*testing.T) transport.Plugin {
			p := grpctransport.Plugin
			p.Config = sdk.Schema{{Key: "dial_timeout", Type: "time"}}
			p.Version = ""
			return p
		},
		want: []failure{
			{"describe", "the plugin has no version: set Plugin.Info.Version"},
			{"describe", `configuration schema (Plugin.Info.Config) is invalid, so the server would refuse to start it: key "dial_timeout" has unknown type "time"`},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.plugin(t)
			expectFailures(t, recordTransport(sdktest.TransportOptions{Plugin: &p}), tc.want)
		})
	}
}

func TestTransportConfigMustPassTheSchema(t *testing.T) {
	got := recordTransport(sdktest.TransportOptions{Plugin: &grpctransport.Plugin, Config: map[string]any{"dial_timeout": "soon"}})
	expectFailures(t, got, []failure{{"describe", `TransportOptions.Config does not pass the plugin's configuration schema: config.dial_timeout: invalid duration "soon"`}})
	if slices.ContainsFunc(got, func(f failure) bool { return f.check == "configure" }) {
		t.Errorf("the kit went on after describe failed: %v", got)
	}
}

func TestTransportOptionsNeedOnePlugin(t *testing.T) {
	expectFailures(t, recordTransport(sdktest.TransportOptions{}), []failure{{"", "set exactly one of TransportOptions.Binary and TransportOptions.Plugin"}})
}

// recordTransport runs the transport kit against a recorder and returns
// what it reported.
func recordTransport(opts sdktest.TransportOptions) []failure {
	r := &recorder{log: new(log)}
	r.run(func() { sdktest.Transport(r, opts) })
	return r.log.failures
}

// wrap is grpctransport with its transport wrapped by broken. The inner
// transports, which a broken Close may leave open, are closed when the test
// ends.
func wrap(t *testing.T, broken func(transport.Transport) transport.Transport) transport.Plugin {
	p := grpctransport.Plugin
	p.New = func(config []byte, host transport.Host) (transport.Transport, error) {
		inner, err := grpctransport.Plugin.New(config, host)
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
