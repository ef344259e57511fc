// Package pushtest is the conformance kit of push plugins: run it from a
// plugin's own tests and it drives the plugin the way the Sextant server
// does — through go-plugin, over gRPC — and checks that it keeps the
// contract of sdk/push.
//
//	func TestConformance(t *testing.T) {
//		pushtest.Run(t, pushtest.Options{
//			Plugin: &Plugin, // or Binary: a path, to run the built plugin
//			Config: map[string]any{"region": "eu"},
//		})
//	}
//
// The kit makes deliveries succeed, fail or hang, according to the plugin's
// role:
//
//   - rpc and spi: the kit fakes the server's Connections service, through
//     which a plugin delivers to subscribers on gRPC connections; the
//     targets have a ConnectionID. A plugin that delivers elsewhere sets
//     Options.Deliveries: examples/push-webhook shows it on a plugin that
//     delivers to a URL.
//   - udp: the targets are subscribers of the HTTP API, each with an
//     Address and no ConnectionID, and the kit runs a real UDP receiver at
//     each address (on 127.0.0.1), which reads a push as Nacos 1.x clients
//     do — one datagram, gzipped or not, of
//     {"type":"dom","data":"<Batch.ServiceInfo>","lastRefTime":<integer>} —
//     and acknowledges it with {"type":"push-ack","lastRefTime":"<same>",
//     "data":""} (the lastRefTime a string, as the Go SDK v1 sends it, or a
//     number), or loses it, or never acknowledges it, as each check needs.
//     Such a plugin needs no Options.Deliveries: its results must follow
//     the acks, and it must resend a push whose datagram was lost. Give it
//     an Options.Config whose retry schedule gives up on a target within
//     the kit's wait of 10 s.
//
// An in-process plugin's executor that implements io.Closer is closed when
// the kit ends, so that a test checking for leaked goroutines passes.
//
// Like a plugin, the kit imports nothing under core/.
package pushtest

import (
	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/push"
)

// T is what the kit reports to: *testing.T satisfies T[*testing.T]. Each
// check is a subtest, run with its Run method.
type T[Sub any] = kit.T[Sub]

// Options says which push plugin to check and how to exercise it.
type Options struct {
	// Binary is the path of the plugin's executable. The kit launches it as
	// the server does: the Sextant handshake and protocol version, gRPC
	// only, automatic mutual TLS.
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
	// get errors; a plugin that then reports deliveries without a request
	// through Connections fails the results check, which asks for
	// Deliveries. A udp plugin needs none: the kit steers its UDP
	// receivers (when set, it steers instead, and the receivers at the
	// targets' addresses only listen).
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

// Run checks a push plugin, each check a subtest of t:
//
//   - handshake: the plugin starts and accepts Sextant's handshake and
//     protocol version;
//   - describe: it is a push plugin with a name, a version, a role (rpc, udp
//     or spi) and a valid configuration schema, which accepts Config and
//     refuses an unknown key by name;
//   - configure: it configures itself from Config, and an spi plugin
//     declares its Interest;
//   - results: batches of 0, 1 and 500 targets get exactly one result per
//     target, nil when deliveries succeed. Without Options.Deliveries, an
//     rpc or spi plugin must have delivered them through the host's
//     Connections: if it reports them delivered without, it delivers
//     elsewhere, and the kit fails once, asking for Deliveries, and skips
//     the three checks that steer deliveries. A udp plugin must have had
//     an ack from every target's receiver, each of which checks the
//     datagrams it gets;
//   - failures: failed deliveries are reported as errors for their targets,
//     in order, and the plugin keeps serving afterwards. For a udp plugin
//     also: only the targets whose receivers never acknowledge fail; an ack
//     with another lastRefTime, or from another address than the target's,
//     does not count; a push whose first datagram is lost is resent and
//     delivered;
//   - deadline: with deliveries that never complete, a batch returns by its
//     deadline (plus a grace of a second), an error for each target;
//   - cancel: likewise soon after the host withdraws a batch in flight;
//   - concurrency: many batches in flight at once each get their results.
//
// The checks after configure are skipped if one of the first three fails, and
// once the plugin's process is gone.
func Run[Sub T[Sub]](t Sub, opts Options) {
	t.Helper()
	kit.OnePlugin(t, "pushtest", opts.Binary != "", opts.Plugin != nil)
	k := newKit(opts)
	t.Cleanup(func() { k.close(t) })
	kit.Run(t, k, []kit.Check{
		{Name: "handshake", Run: k.Handshake, Required: true},
		{Name: "describe", Run: k.describe, Required: true},
		{Name: "configure", Run: k.configure, Required: true},
		{Name: "results", Run: k.results},
		{Name: "failures", Run: k.failures},
		{Name: "deadline", Run: k.deadline},
		{Name: "cancel", Run: k.cancel},
		{Name: "concurrency", Run: k.concurrency},
	})
}
