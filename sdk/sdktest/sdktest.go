// Package sdktest is a conformance kit for Sextant plugins: run it from a
// plugin's own tests and it drives the plugin the way the Sextant server
// does — through go-plugin, over gRPC — and checks that it keeps the contract
// of its kind.
//
//	func TestConformance(t *testing.T) {
//		sdktest.Push(t, sdktest.PushOptions{
//			Plugin: &Plugin, // or Binary: a path, to run the built plugin
//			Config: map[string]any{"region": "eu"},
//		})
//	}
//
// Like a plugin, the kit imports nothing under core/. examples/push-webhook
// shows it used on a plugin that delivers to a URL of its own.
package sdktest

import "github.com/sextantd/sextant/sdk/push"

// T is what the kit reports to: *testing.T satisfies T[*testing.T]. Each
// check is a subtest, run with Run.
type T[Sub any] interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Run(name string, f func(Sub)) bool
}

// PushOptions says which push plugin to check and how to exercise it.
type PushOptions struct {
	// Binary is the path of the plugin's executable. The kit launches it as
	// the server does: the Sextant handshake, protocol version
	// sdk.ProtocolVersion, gRPC only, automatic mutual TLS.
	Binary string
	// Plugin is the plugin itself, served inside the test process over a
	// real go-plugin gRPC connection: the same wire, no build step. A panic
	// in its executor is reported instead of crashing the test. Set either
	// Binary or Plugin.
	Plugin *push.Plugin
	// Config is a valid configuration block for the plugin, as a user's
	// file gives it: strings, numbers, bools, lists as []any.
	Config map[string]any
	// Deliveries steers where the plugin delivers, for a plugin that does
	// not deliver through the host's Connections service (a webhook, say).
	// When nil, the kit steers its own fake of that service, and also
	// checks that when only some connections fail, exactly their targets
	// get errors.
	Deliveries Deliveries
}

// Deliveries steers where a plugin delivers, so that the kit can check what
// the plugin reports when deliveries succeed, fail or never complete. The kit
// calls one method before each check; each applies to every delivery from
// then on.
type Deliveries interface {
	// Succeed makes deliveries succeed: the plugin must report nil for
	// every target.
	Succeed()
	// Fail makes deliveries fail: the plugin must report an error for every
	// target.
	Fail()
	// Hang makes deliveries never complete: each waits until the plugin
	// abandons it (its request's context ends), or until the test ends.
	// The returned channel is closed once a delivery has started waiting.
	Hang() <-chan struct{}
}

// Push checks a push plugin, each check a subtest of t:
//
//   - handshake: the plugin starts and accepts Sextant's handshake and
//     protocol version;
//   - describe: it is a push plugin with a name, a version, a role (rpc, udp
//     or spi) and a valid configuration schema, which accepts Config and
//     refuses an unknown key by name;
//   - configure: it configures itself from Config, and an spi plugin
//     declares its Interest;
//   - results: batches of 0, 1 and 500 targets get exactly one result per
//     target, nil when deliveries succeed;
//   - failures: failed deliveries are reported as errors for their targets,
//     in order, and the plugin keeps serving afterwards;
//   - deadline: with deliveries that never complete, a batch returns by its
//     deadline (plus a grace of a second), an error for each target;
//   - cancel: likewise soon after the host withdraws a batch in flight;
//   - concurrency: many batches in flight at once each get their results.
//
// The checks after configure are skipped if one of the first three fails, and
// once the plugin's process is gone.
func Push[Sub T[Sub]](t Sub, opts PushOptions) {
	t.Helper()
	if (opts.Binary == "") == (opts.Plugin == nil) {
		t.Fatalf("sdktest: set exactly one of PushOptions.Binary and PushOptions.Plugin")
	}
	k := newKit(opts)
	t.Cleanup(func() { k.close(t) })
	checks := []kitCheck{
		{"handshake", k.handshake, true},
		{"describe", k.describe, true},
		{"configure", k.configure, true},
		{"results", k.results, false},
		{"failures", k.failures, false},
		{"deadline", k.deadline, false},
		{"cancel", k.cancel, false},
		{"concurrency", k.concurrency, false},
	}
	runChecks(t, k, checks)
}

// reporter is the part of T a check uses.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}
