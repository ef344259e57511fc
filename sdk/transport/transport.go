// Package transport is the API of cluster transports: what carries the
// messages between Sextant nodes (Distro's syncs, verifications, queries and
// snapshots, and the nodes' health reports). A transport is a plugin in its
// own process (or, for built-ins, optionally inside the server). Payloads are
// opaque to it: the server encodes them.
//
// A plugin's main calls Serve with its Plugin. A transport built on gRPC can
// carry many concurrent calls on one stream with sdk/streamcall, as
// plugins/grpctransport does between nodes; sdk/transport/transporttest
// checks a transport against this package's contract.
//
// This package is public: plugin authors import it and never anything under core/.
package transport

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/wire"
)

// Transport carries this node's calls to its peers and takes what they send.
// Its methods may be called concurrently.
type Transport interface {
	// Listen accepts peers on address (host:port) for the node self (its HTTP
	// address) and hands what they send to the host's Inbound. It returns
	// once it listens; it serves until Close (ctx bounds only the start).
	// Call and Snapshot may be used once Listen has returned: self is what
	// the peers are told as the caller's from.
	Listen(ctx context.Context, address, self string) error
	// Call sends payload, of the given kind, to the peer listening on target
	// (its cluster address, host:port) and returns the peer's answer. It
	// returns by ctx's deadline or soon after ctx is cancelled, and the
	// peer's Inbound sees its own ctx end then too. An error the peer's
	// Inbound.Handle returns comes back as Call's error, its message intact.
	// It fails fast when the peer refuses the connection, with an error
	// wrapping ErrUnreachable.
	Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error)
	// Snapshot streams the snapshot of the peer at target to fn, one chunk
	// at a time, however large it is: each chunk as the peer's
	// Inbound.Snapshot wrote it (a transport may cut a chunk in pieces on
	// the wire, but joins them again), in order. An error from fn stops the
	// stream and is returned. Snapshot returns nil only once the whole
	// snapshot has been passed to fn.
	Snapshot(ctx context.Context, target string, fn func(chunk []byte) error) error
	// Close stops listening and closes every connection; calls in flight
	// fail.
	Close() error
}

// Inbound is the host service a transport hands what peers send to.
type Inbound interface {
	// Handle answers a call from the node from (its HTTP address). ctx ends
	// when the caller's deadline passes or it withdraws the call.
	Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error)
	// Snapshot writes this node's snapshot for from to fn, chunk by chunk,
	// and stops with fn's error. The peer's fn gets the same chunks (keep
	// them to about a MiB: between host and plugin a chunk is one message,
	// of at most sdk.MaxMessageSize). fn copies what it needs, so a chunk's
	// buffer may be reused once fn returns. An error means the peer gets no
	// complete snapshot.
	Snapshot(ctx context.Context, from string, fn func(chunk []byte) error) error
}

// Host is what the server offers a transport.
type Host struct {
	// Inbound takes what peers send.
	Inbound Inbound
	// Logger writes to the server's log under the plugin's name.
	Logger hclog.Logger
}

// Plugin is a transport plugin: what it is, and how to make its transport.
type Plugin struct {
	sdk.Info
	// New builds the transport from the plugin's configuration block (JSON,
	// already checked against Info.Config; decode it with sdk.DecodeConfig)
	// and the host's services.
	New func(config []byte, host Host) (Transport, error)
}

// Serve runs a transport plugin process; call it from the plugin's main. It
// never returns: the process exits when the server stops it, or soon after
// the server dies.
func Serve(p Plugin) {
	wire.Serve(plugin.PluginSet{string(wire.KindTransport): &grpcPlugin{impl: p}}, wire.Logger(p.Name))
}
