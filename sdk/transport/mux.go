package transport

import (
	"context"

	"github.com/sextantd/sextant/sdk/internal/streamcall"
)

// Multiplexing, for transports built on gRPC: many concurrent calls on one
// bidirectional stream, as the SDK carries them between host and plugin and
// the built-in grpctransport between nodes. A request has an id, its result
// comes back with that id, and the same id sent again with cancel set
// withdraws it; the caller's deadline travels with the request.

// Request is what a transport's request messages must have: an id, the
// cancel flag and the caller's deadline (unix nanoseconds, 0 for none).
type Request interface {
	GetId() uint64
	GetCancel() bool
	GetDeadlineUnixNano() int64
}

// Result is what a transport's result messages must have: the id of the
// request they answer.
type Result interface {
	GetId() uint64
}

// Stream is one side of a bidirectional stream: it sends Out and receives
// In. A gRPC stream is one; Send is never called concurrently.
type Stream[Out, In any] interface {
	Send(Out) error
	Recv() (In, error)
}

// ErrStreamClosed is wrapped by the errors of calls on a stream that has
// ended, or ended while they waited.
var ErrStreamClosed = streamcall.ErrClosed

// Caller makes calls over a stream.
type Caller[Req any, Res Result] struct {
	c *streamcall.Caller[Req, Res]
}

// NewCaller starts receiving results on s; cancel builds the message that
// withdraws request id. The caller ends when s does: close it by cancelling
// the context s was opened with.
func NewCaller[Req any, Res Result](s Stream[Req, Res], cancel func(id uint64) Req) *Caller[Req, Res] {
	return &Caller[Req, Res]{c: streamcall.NewCaller[Req, Res](s, cancel)}
}

// Call sends the request build makes from its id and ctx's deadline and
// waits for its result. If ctx ends first it withdraws the request and
// returns ctx's error; if the stream ends first, an error wrapping
// ErrStreamClosed.
func (c *Caller[Req, Res]) Call(ctx context.Context, build func(id uint64, deadline int64) Req) (Res, error) {
	return c.c.Call(ctx, build)
}

// Done is closed when the stream has ended.
func (c *Caller[Req, Res]) Done() <-chan struct{} { return c.c.Done() }

// Err says why the stream ended, once Done is closed.
func (c *Caller[Req, Res]) Err() error { return c.c.Err() }

// ServeCalls answers the calls arriving on s until it ends, running handle
// for each request concurrently, and returns the error that ended it (io.EOF
// when the caller closed its side). handle's context carries the request's
// deadline and is cancelled when the request is withdrawn or the stream
// ends; result builds the answer with the request's id from what handle
// returned. ServeCalls returns once every handler has returned.
func ServeCalls[Req Request, Res, Out any](s Stream[Res, Req], handle func(context.Context, Req) Out, result func(id uint64, out Out) Res) error {
	return streamcall.Serve(s, handle, result)
}
