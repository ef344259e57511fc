package wire

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
)

// What both sides of a transport plugin send and receive alike: a call's
// answer or error, and snapshot chunks.

// Result is what a call on a stream returns: an answer, or an error as text.
type Result struct {
	Payload []byte
	Err     string
}

// Answer is the result of a handler that returned payload and err. An answer
// too large for a message becomes an error: sent, it would be lost.
func Answer(payload []byte, err error) Result {
	if err == nil {
		err = Fits("the answer", payload)
	}
	if err != nil {
		return Result{Err: ErrorText(err)}
	}
	return Result{Payload: payload}
}

// maxPayload bounds a call's payload and answer: a message's size, less room
// for the other fields.
const maxPayload = sdk.MaxMessageSize - 64<<10

// Fits says why payload cannot go in a message, if it cannot: a message
// larger than the other side takes would break the stream it is sent on.
func Fits(what string, payload []byte) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("%s is %d bytes, more than the %d a message between host and plugin may carry", what, len(payload), maxPayload)
	}
	return nil
}

// ChunkSender returns the fn of a snapshot that sends each chunk whole, as
// one message, so that chunk boundaries are kept.
func ChunkSender(stream interface{ Send(*pluginv1.Chunk) error }) func([]byte) error {
	return func(b []byte) error {
		if err := Fits("a snapshot chunk", b); err != nil {
			return err
		}
		return stream.Send(&pluginv1.Chunk{Data: b})
	}
}

// ReceiveChunks passes the chunks of a snapshot stream to fn until it ends.
func ReceiveChunks(ctx context.Context, stream grpc.ServerStreamingClient[pluginv1.Chunk], what string, fn func([]byte) error) error {
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return RPCError(ctx, what, err)
		}
		if err := fn(chunk.GetData()); err != nil {
			return err
		}
	}
}

// RPCError turns the error of a call to the other side into the error it
// carries: the other side's own error (ErrUnreachable kept) as it was, ctx's
// when it ended, otherwise the failure of the call itself.
func RPCError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return ErrorFromText(s.Message())
	}
	return fmt.Errorf("%s: %w", what, err)
}
