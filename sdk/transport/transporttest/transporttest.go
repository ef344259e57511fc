// Package transporttest is the conformance kit of transport plugins: run it
// from a plugin's own tests and it drives two instances of the plugin the way
// the Sextant servers of two nodes do — through go-plugin, over gRPC — and
// checks that they keep the contract of sdk/transport between them.
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Options{
//			Plugin: &Plugin, // or Binary: a path, to run the built plugin
//			Config: map[string]any{"dial_timeout": "1s"},
//		})
//	}
//
// A transport that authenticates its peers describes, in Options.Auth, the
// configuration blocks of two nodes that trust each other and of strangers
// they must refuse; the kit then checks that a stranger's calls reach no
// server.
//
// Dispense serves a transport plugin in the test process as the server
// reaches it, for a plugin's own tests and benchmarks of the whole path.
//
// Like a plugin, the kit imports nothing under core/.
package transporttest

import (
	"testing"

	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/transport"
)

// T is what Run reports to: *testing.T satisfies T[*testing.T]. Each check
// is a subtest, run with its Run method.
type T[Sub any] = kit.T[Sub]

// Options says which transport plugin to check.
type Options struct {
	// Binary is the path of the plugin's executable. The kit launches it
	// twice, as the servers of two nodes would: the Sextant handshake and
	// protocol version, gRPC only, automatic mutual TLS.
	Binary string
	// Plugin is the plugin itself, served twice inside the test process
	// over real go-plugin gRPC connections: the same wire, no build step. A
	// panic in its transport is reported instead of crashing the test. Set
	// either Binary or Plugin.
	Plugin *transport.Plugin
	// Config is a valid configuration block for the plugin, as a user's
	// file gives it (strings, numbers, bools, lists as []any); both
	// instances get it.
	Config map[string]any
	// Auth, for a transport that authenticates its peers, says how: nodes
	// A and B run with its blocks, and the auth check runs.
	Auth *Auth
}

// Auth describes how a transport authenticates its peers: the
// configuration blocks of nodes A and B, which make them trust each other,
// and of strangers they must refuse. Each block is laid over Options.Config
// (its keys replace Config's).
//
// A node is known by its address — NodeA, NodeB or NodeC, the self its
// transport's Listen is given and what its peers' Inbound must see as from
// — so credentials that name a node (a certificate's SAN) name it by that.
type Auth struct {
	// A and B are the blocks of nodes A and B.
	A, B map[string]any
	// Refused are blocks of a third node, C, each by a short description of
	// what is wrong with it ("a certificate of another CA", "a wrong
	// secret", "no secret"). Started with each, node C must listen, but its
	// calls and snapshot requests to node B must fail without reaching node
	// B's server.
	Refused map[string]map[string]any
}

// The addresses of the kit's nodes: A and B, and C, the stranger of the
// auth check.
const (
	NodeA = "node-a.transporttest:8848"
	NodeB = "node-b.transporttest:8848"
	NodeC = "node-c.transporttest:8848"
)

// Run checks a transport plugin, each check a subtest of t. It runs
// two instances of the plugin — nodes A and B — each configured with an
// Inbound the kit controls, and has them listen on free loopback ports:
//
//   - handshake: both start and accept Sextant's handshake and protocol
//     version;
//   - describe: it is a transport plugin with a name, a version and a valid
//     configuration schema, which accepts Config and refuses an unknown key
//     by name;
//   - configure: both configure themselves from Config;
//   - listen: both listen on the loopback addresses they are given;
//   - call: a call from A reaches B's inbound with A's address as from, the
//     kind and the payload, and A gets B's answer; likewise from B to A;
//   - errors: an error of the peer's inbound comes back as the call's
//     error, with its message, and the transport keeps serving;
//   - sizes: payloads (and answers) of 0 bytes and of 8 MiB pass intact;
//   - concurrency: 100 calls in flight at once each get their own answer;
//   - deadline: with the peer's inbound hanging, a call returns by its
//     deadline (plus a grace of a second), an error, and the peer's inbound
//     sees its context end;
//   - cancel: likewise soon after the host withdraws the call;
//   - refused: a call to a port nobody listens on fails within a few
//     seconds, with an error wrapping transport.ErrUnreachable, and so does
//     the next one, and a snapshot;
//   - snapshot: B's 20 MiB snapshot reaches A intact, chunk by chunk as
//     B's server wrote it (some chunks larger than a MiB), asked for with
//     A's address as from; a snapshot that fails at B fails at A;
//   - auth, with Options.Auth: node C, started with each of Auth.Refused,
//     listens, but its calls and snapshot requests to node B fail, and
//     node B's server sees none of them; node A's calls still go through;
//   - close: once A's host closes it, A's port no longer accepts
//     connections, and B's calls to A fail.
//
// With Options.Auth, the describe check also checks every block of it
// against the plugin's schema, and nodes A and B run with Auth.A and Auth.B.
// The checks after listen are skipped if one of the first four fails, and
// once a plugin's process is gone.
func Run[Sub T[Sub]](t Sub, opts Options) {
	t.Helper()
	kit.OnePlugin(t, "transporttest", opts.Binary != "", opts.Plugin != nil)
	k := newKit(opts)
	t.Cleanup(func() { k.close(t) })
	checks := []kit.Check{
		{Name: "handshake", Run: k.handshake, Required: true},
		{Name: "describe", Run: k.describe, Required: true},
		{Name: "configure", Run: k.configure, Required: true},
		{Name: "listen", Run: k.listen, Required: true},
		{Name: "call", Run: k.call},
		{Name: "errors", Run: k.inboundErrors},
		{Name: "sizes", Run: k.sizes},
		{Name: "concurrency", Run: k.concurrency},
		{Name: "deadline", Run: k.deadline},
		{Name: "cancel", Run: k.cancel},
		{Name: "refused", Run: k.refused},
		{Name: "snapshot", Run: k.snapshot},
	}
	if opts.Auth != nil {
		checks = append(checks, kit.Check{Name: "auth", Run: k.auth})
	}
	kit.Run(t, k, append(checks, kit.Check{Name: "close", Run: k.closing}))
}

// Dispense serves p in the test process over a real go-plugin gRPC
// connection and returns it as the server reaches it, to be configured and
// used like a plugin binary the server launched. It stops serving it when
// the test ends.
func Dispense(tb testing.TB, p transport.Plugin) *host.Transport {
	tb.Helper()
	proc := &kit.Process{Kind: wire.KindTransport, Plugin: p, Who: "the plugin"}
	tb.Cleanup(func() {
		if err := proc.Shutdown(); err != nil {
			tb.Errorf("transporttest: %v", err)
		}
	})
	if err := proc.Start(); err != nil {
		tb.Fatalf("transporttest: serving the plugin in process: %v", err)
	}
	return proc.Host.(*host.Transport)
}
