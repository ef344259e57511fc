package grpctransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	peerv1 "github.com/sextantd/sextant/proto/grpctransport/v1"
	"github.com/sextantd/sextant/sdk/streamcall"
)

// peerServer serves the node's peers: their calls and snapshot requests go
// to the host's Inbound.
type peerServer struct {
	peerv1.UnimplementedPeerServer
	t *Transport
}

// result is the answer to one call.
type result struct {
	payload []byte
	err     string
}

func (s *peerServer) Call(stream peerv1.Peer_CallServer) error {
	from, err := s.t.authenticate(stream.Context(), peerv1.Peer_Call_FullMethodName)
	if err != nil {
		return err
	}
	limit := s.t.cfg.MaxMessageSize - overhead
	err = streamcall.Serve(callServerStream{stream}, func(ctx context.Context, req incoming) result {
		payload, err := s.handle(ctx, from, req.GetKind(), req.GetPayload())
		if err == nil && len(payload) > limit {
			// Sent, it would fail and the caller wait in vain.
			err = fmt.Errorf("grpctransport: an answer of %d bytes is more than max_message_size (%d) allows", len(payload), s.t.cfg.MaxMessageSize)
		}
		if err != nil {
			msg := err.Error()
			if msg == "" {
				msg = "error"
			}
			return result{err: msg}
		}
		return result{payload: payload}
	}, func(id uint64, r result) *peerv1.CallResult {
		return &peerv1.CallResult{Id: id, Payload: r.payload, Error: r.err}
	})
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// incoming is a call request with its deadline on this node's clock.
type incoming struct {
	*peerv1.CallRequest
	deadline int64 // unix nanoseconds, 0 for none
}

func (r incoming) GetDeadlineUnixNano() int64 { return r.deadline }

// callServerStream is the server's end of a Call stream, whose requests'
// deadlines it reckons as it receives them.
type callServerStream struct {
	peerv1.Peer_CallServer
}

func (s callServerStream) Recv() (incoming, error) {
	req, err := s.Peer_CallServer.Recv()
	if err != nil {
		return incoming{}, err
	}
	in := incoming{CallRequest: req}
	if t := req.GetTimeoutNanos(); t > 0 {
		in.deadline = time.Now().UnixNano() + t
	}
	return in, nil
}

// handle hands a call to the host, answering its panic as an error.
func (s *peerServer) handle(ctx context.Context, from, kind string, payload []byte) (answer []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.t.logger.Error("the host's inbound panicked", "from", from, "kind", kind, "panic", fmt.Sprint(r))
			answer, err = nil, fmt.Errorf("the peer's inbound panicked: %v", r)
		}
	}()
	return s.t.inbound.Handle(ctx, from, kind, payload)
}

func (s *peerServer) Snapshot(_ *peerv1.SnapshotRequest, stream peerv1.Peer_SnapshotServer) error {
	from, err := s.t.authenticate(stream.Context(), peerv1.Peer_Snapshot_FullMethodName)
	if err != nil {
		return err
	}
	// A chunk larger than chunkSize goes in pieces; the receiver joins them.
	err = s.snapshot(stream.Context(), from, func(b []byte) error {
		for len(b) > chunkSize {
			if err := stream.Send(&peerv1.Chunk{Data: b[:chunkSize], More: true}); err != nil {
				return err
			}
			b = b[chunkSize:]
		}
		return stream.Send(&peerv1.Chunk{Data: b})
	})
	if err != nil {
		return status.Error(codes.Unknown, err.Error())
	}
	return nil
}

func (s *peerServer) snapshot(ctx context.Context, from string, fn func([]byte) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.t.logger.Error("the host's snapshot panicked", "from", from, "panic", fmt.Sprint(r))
			err = fmt.Errorf("the peer's snapshot panicked: %v", r)
		}
	}()
	return s.t.inbound.Snapshot(ctx, from, fn)
}

// Challenge issues a challenge, for a caller to prove the secret with.
func (s *peerServer) Challenge(context.Context, *peerv1.ChallengeRequest) (*peerv1.ChallengeResult, error) {
	return &peerv1.ChallengeResult{Challenge: s.t.challenges.issue()}, nil
}

// fromOf returns the address the calling node claims, which it sends when
// it opens a stream.
func fromOf(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if from := md.Get(fromKey); len(from) == 1 && from[0] != "" {
		return from[0], nil
	}
	return "", status.Errorf(codes.InvalidArgument, "grpctransport: a stream must be opened with the caller's address in metadata %q", fromKey)
}
