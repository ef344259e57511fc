package sdktest

import "github.com/sextantd/sextant/sdk/transport"

// TransportOptions says which transport plugin to check.
//
//	func TestConformance(t *testing.T) {
//		sdktest.Transport(t, sdktest.TransportOptions{Plugin: &Plugin})
//	}
type TransportOptions struct {
	// Binary is the path of the plugin's executable. The kit launches it
	// twice, as the servers of two nodes would: the Sextant handshake,
	// protocol version sdk.ProtocolVersion, gRPC only, automatic mutual TLS.
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
}

// Transport checks a transport plugin, each check a subtest of t. It runs
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
//   - close: once A's host closes it, A's port no longer accepts
//     connections, and B's calls to A fail.
//
// The checks after listen are skipped if one of the first four fails, and
// once a plugin's process is gone.
func Transport[Sub T[Sub]](t Sub, opts TransportOptions) {
	t.Helper()
	if (opts.Binary == "") == (opts.Plugin == nil) {
		t.Fatalf("sdktest: set exactly one of TransportOptions.Binary and TransportOptions.Plugin")
	}
	k := newTransportKit(opts)
	t.Cleanup(func() { k.close(t) })
	checks := []kitCheck{
		{"handshake", k.handshake, true},
		{"describe", k.describe, true},
		{"configure", k.configure, true},
		{"listen", k.listen, true},
		{"call", k.call, false},
		{"errors", k.inboundErrors, false},
		{"sizes", k.sizes, false},
		{"concurrency", k.concurrency, false},
		{"deadline", k.deadline, false},
		{"cancel", k.cancel, false},
		{"refused", k.refused, false},
		{"snapshot", k.snapshot, false},
		{"close", k.closing, false},
	}
	runChecks(t, k, checks)
}
