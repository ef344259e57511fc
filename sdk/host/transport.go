package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/streamcall"
	"github.com/sextantd/sextant/sdk/transport"
)

// Transport is a running transport plugin process.
type Transport struct {
	Process
	broker    *plugin.GRPCBroker
	transport pluginv1.TransportClient
}

func newTransport(p Process, broker *plugin.GRPCBroker, conn *grpc.ClientConn) *Transport {
	return &Transport{Process: p, broker: broker, transport: pluginv1.NewTransportClient(conn)}
}

// closeWait is how long Close waits for a plugin to close its transport.
const closeWait = 5 * time.Second

// Configure hands the plugin its checked configuration and serves inbound
// to it (once, over the broker): calls from peers as one stream, snapshots
// as a stream each.
func (c *Transport) Configure(ctx context.Context, config []byte, inbound transport.Inbound) error {
	id, err := wire.ServeOnBroker(ctx, c.broker, func(s *grpc.Server) {
		pluginv1.RegisterInboundServer(s, &inboundServer{inbound: safeInbound{inbound}})
	})
	if err != nil {
		return err
	}
	_, err = c.info.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config, HostBrokerId: id})
	if err != nil {
		return wire.RPCError(ctx, "configuring the transport plugin", err)
	}
	return nil
}

// Transport opens the stream calls to peers are made on and returns the
// plugin's transport. It ends when ctx is cancelled, the plugin exits, or it
// is closed; a plugin process serves one.
func (c *Transport) Transport(ctx context.Context) (*RemoteTransport, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.transport.Call(ctx, wire.CallOptions...)
	if err != nil {
		cancel()
		return nil, err
	}
	s := newCallStream(stream)
	t := &RemoteTransport{client: c.transport, stream: s, cancel: cancel,
		caller: streamcall.NewCaller(s, func(id uint64) *pluginv1.CallRequest {
			return &pluginv1.CallRequest{Id: id, Cancel: true}
		})}
	go func() {
		<-t.caller.Done()
		cancel()
	}()
	return t, nil
}

// RemoteTransport is a plugin process's transport, as the host uses it; it
// is a transport.Transport.
type RemoteTransport struct {
	client pluginv1.TransportClient
	stream *callStream
	caller *streamcall.Caller[*pluginv1.CallRequest, *pluginv1.CallResult]
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// Listen has the plugin's transport listen on address as the node self.
func (t *RemoteTransport) Listen(ctx context.Context, address, self string) error {
	if _, err := t.client.Listen(ctx, &pluginv1.ListenRequest{Address: address, Self: self}); err != nil {
		return wire.RPCError(ctx, "transport plugin", err)
	}
	return nil
}

// Call sends payload to the peer at target through the plugin and waits for
// the peer's answer.
func (t *RemoteTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	if err := wire.Fits("the payload", payload); err != nil {
		return nil, err
	}
	res, err := t.caller.Call(ctx, func(id uint64, deadline int64) *pluginv1.CallRequest {
		return &pluginv1.CallRequest{Id: id, DeadlineUnixNano: deadline, Target: target, Kind: kind, Payload: payload}
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("transport plugin: %w", err)
	}
	if err := wire.ErrorFromText(res.GetError()); err != nil {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return nil, context.DeadlineExceeded // the plugin gave up at the deadline too
		}
		return nil, err
	}
	return res.GetPayload(), nil
}

// Snapshot streams the snapshot of the peer at target through the plugin
// to fn.
func (t *RemoteTransport) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := t.client.Snapshot(ctx, &pluginv1.SnapshotRequest{Target: target}, wire.CallOptions...)
	if err != nil {
		return wire.RPCError(ctx, "transport plugin", err)
	}
	return wire.ReceiveChunks(ctx, stream, "transport plugin", fn)
}

// Close ends the Call stream, on which the plugin closes its transport, and
// waits (a few seconds at most) until it has; it returns the error the
// transport's Close returned.
func (t *RemoteTransport) Close() error {
	t.closeOnce.Do(func() {
		t.stream.closeSend()
		select {
		case <-t.caller.Done():
		case <-time.After(closeWait):
			t.closeErr = fmt.Errorf("the transport plugin did not close its transport within %v", closeWait)
		}
		t.cancel()
		if s, ok := status.FromError(t.stream.end()); ok && s.Code() == codes.Unknown && t.closeErr == nil {
			t.closeErr = errors.New(s.Message())
		}
	})
	return t.closeErr
}

// Done is closed when the Call stream has ended: the transport was closed,
// the plugin exited, or the context the stream was opened with ended.
func (t *RemoteTransport) Done() <-chan struct{} { return t.caller.Done() }

// callStream is the host's end of the Call stream: sends (the caller's
// calls and withdrawals, and Close's end of sending) one at a time, and the
// error the stream ended with.
type callStream struct {
	stream pluginv1.Transport_CallClient

	sendMu sync.Mutex
	closed bool

	ended chan struct{} // closed when Recv has failed...
	err   error         // ...with this
}

func newCallStream(stream pluginv1.Transport_CallClient) *callStream {
	return &callStream{stream: stream, ended: make(chan struct{})}
}

func (s *callStream) Send(req *pluginv1.CallRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.closed {
		return errors.New("the transport is closed")
	}
	err := s.stream.Send(req)
	if err == io.EOF { // the plugin ended the stream: say why
		<-s.ended
		return s.err
	}
	return err
}

// Recv is only called by the caller's receiving goroutine.
func (s *callStream) Recv() (*pluginv1.CallResult, error) {
	res, err := s.stream.Recv()
	if err != nil {
		s.err = err
		close(s.ended)
	}
	return res, err
}

// closeSend tells the plugin that no more calls come.
func (s *callStream) closeSend() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.stream.CloseSend()
	}
}

// end returns the error the stream ended with (io.EOF when the plugin ended
// it cleanly), nil while it has not.
func (s *callStream) end() error {
	select {
	case <-s.ended:
		return s.err
	default:
		return nil
	}
}

// inboundServer serves the host's Inbound to a plugin.
type inboundServer struct {
	pluginv1.UnimplementedInboundServer
	inbound transport.Inbound
}

func (s *inboundServer) Handle(stream pluginv1.Inbound_HandleServer) error {
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.InboundRequest) wire.Result {
		return wire.Answer(s.inbound.Handle(ctx, req.GetFrom(), req.GetKind(), req.GetPayload()))
	}, func(id uint64, r wire.Result) *pluginv1.InboundResult {
		return &pluginv1.InboundResult{Id: id, Payload: r.Payload, Error: r.Err}
	})
}

func (s *inboundServer) Snapshot(req *pluginv1.InboundSnapshotRequest, stream pluginv1.Inbound_SnapshotServer) error {
	if err := s.inbound.Snapshot(stream.Context(), req.GetFrom(), wire.ChunkSender(stream)); err != nil {
		return errors.New(wire.ErrorText(err))
	}
	return nil
}

// safeInbound is the host's Inbound with its panics answered as errors.
type safeInbound struct{ in transport.Inbound }

func (s safeInbound) Handle(ctx context.Context, from, kind string, payload []byte) (answer []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			answer, err = nil, fmt.Errorf("the host's inbound panicked: %v", r)
		}
	}()
	return s.in.Handle(ctx, from, kind, payload)
}

func (s safeInbound) Snapshot(ctx context.Context, from string, fn func([]byte) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the host's snapshot panicked: %v", r)
		}
	}()
	return s.in.Snapshot(ctx, from, fn)
}
