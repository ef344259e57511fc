package transport

import "github.com/sextantd/sextant/sdk/internal/wire"

// ErrUnreachable is wrapped by the error of a Call or a Snapshot that could
// not reach the peer at all — the connection was refused, or could not be
// made in time — so that nothing was delivered. The cluster marks such a peer
// DOWN at once, where other failures only count against it.
//
// A plugin's errors reach the server as text; the SDK keeps this one across
// by its message, so a transport only has to wrap it:
//
//	fmt.Errorf("%w: %v", transport.ErrUnreachable, err)
var ErrUnreachable = wire.ErrUnreachable
