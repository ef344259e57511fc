// Package serveropts holds the gRPC transport of Sextant's client port —
// its server options, the codec that writes answers without copying them
// (Answer) and reads requests without protobuf's reflection
// (DecodePayload, which h2serve uses too), and the registration of the
// unary method's handler — apart from the server that uses them, so that a
// server with no logic of its own (sextant-bench serve-ceiling, the measure
// of what the gRPC stack alone costs) runs on exactly the same transport.
package serveropts

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ReadBufferSize is each connection's read buffer: most client requests are
// well under it (grpc-go's default is 32 KiB).
const ReadBufferSize = 4 << 10

// MinPingInterval is how often a client may PING its connection: the
// official clients ping every 60 s even when idle.
const MinPingInterval = 10 * time.Second

// Transport returns the options of the client port's transport: the
// largest message accepted (maxMessageSize bytes), the read buffer, the
// keep-alive policy, the codec that writes Answers and, when maxStreams > 0,
// HTTP/2 MAX_CONCURRENT_STREAMS.
func Transport(maxMessageSize, maxStreams int) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageSize),
		// Thousands of mostly idle connections: a small read buffer each
		// (write buffers go back to grpc's pool after every flush).
		grpc.ReadBufferSize(ReadBufferSize),
		// grpc-go's default policy would answer the official clients' idle
		// pings with GOAWAY "too_many_pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: MinPingInterval, PermitWithoutStream: true}),
		grpc.WaitForHandlers(true),
		grpc.ForceServerCodecV2(newCodec()),
	}
	if maxStreams > 0 {
		// A stream is a handler goroutine: without a limit, one connection
		// could open any number of them.
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(maxStreams)))
	}
	return opts
}
