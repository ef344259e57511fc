package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/infowire"
	"github.com/sextantd/sextant/sdk/internal/streamcall"
)

// grpcPlugin is the go-plugin glue of transport plugins: the plugin process
// serves with GRPCServer, the host gets a *Client from GRPCClient.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin // on the plugin side only
}

func (g *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: g.impl, broker: broker, logger: sdk.Logger(g.impl.Name)}
	pluginv1.RegisterPluginServer(s, srv)
	pluginv1.RegisterTransportServer(s, srv)
	return nil
}

func (g *grpcPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{
		exited:    ctx.Done(),
		broker:    broker,
		plugin:    pluginv1.NewPluginClient(conn),
		transport: pluginv1.NewTransportClient(conn),
	}, nil
}

// maxSize are the call options of every stream between host and plugin:
// calls carry batches, and a batch may be large.
var maxSize = []grpc.CallOption{grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize)}

// closeWait is how long Close waits for a plugin to close its transport.
const closeWait = 5 * time.Second

// result is what a call on a stream returns: an answer, or an error as text.
type result struct {
	payload []byte
	err     string
}

// answer is the result of a handler that returned payload and err. An answer
// too large for a message becomes an error: sent, it would be lost.
func answer(payload []byte, err error) result {
	if err == nil {
		err = fits("the answer", payload)
	}
	if err != nil {
		return result{err: errorText(err)}
	}
	return result{payload: payload}
}

// fits says why payload cannot go in a message, if it cannot: a message
// larger than the other side takes would break the stream it is sent on.
func fits(what string, payload []byte) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("%s is %d bytes, more than the %d a message between host and plugin may carry", what, len(payload), maxPayload)
	}
	return nil
}

// maxPayload bounds a call's payload and answer: a message's size, less room
// for the other fields.
const maxPayload = sdk.MaxMessageSize - 64<<10

// ---- plugin side ----

// server runs a transport plugin's transport for the host.
type server struct {
	pluginv1.UnimplementedPluginServer
	pluginv1.UnimplementedTransportServer
	impl   Plugin
	broker *plugin.GRPCBroker
	logger hclog.Logger

	mu        sync.Mutex
	transport Transport
	hostConn  *grpc.ClientConn // to the host's services
	streamed  bool             // the Call stream has been opened
}

func (s *server) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return infowire.Encode(s.impl.Info, sdk.KindTransport), nil
}

func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport != nil {
		return nil, errors.New("already configured")
	}
	conn, err := s.broker.DialWithOptions(req.GetHostBrokerId(), grpc.WithDefaultCallOptions(maxSize...))
	if err != nil {
		return nil, fmt.Errorf("reaching the host's services: %w", err)
	}
	client := pluginv1.NewInboundClient(conn)
	// The stream lives as long as the connection: it ends when the
	// transport is done with the host (see Call).
	stream, err := client.Handle(context.Background())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opening the host's inbound stream: %w", err)
	}
	inbound := &remoteInbound{client: client, caller: streamcall.NewCaller(stream, func(id uint64) *pluginv1.InboundRequest {
		return &pluginv1.InboundRequest{Id: id, Cancel: true}
	})}
	t, err := newTransport(s.impl, req.GetConfigJson(), Host{Inbound: inbound, Logger: s.logger})
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.transport, s.hostConn = t, conn
	return &pluginv1.ConfigureResponse{}, nil
}

// configured returns the transport, or an error saying it has none yet.
func (s *server) configured(what string) (Transport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport == nil {
		return nil, fmt.Errorf("%s before Configure", what)
	}
	return s.transport, nil
}

func (s *server) Listen(ctx context.Context, req *pluginv1.ListenRequest) (*pluginv1.ListenResponse, error) {
	t, err := s.configured("Listen")
	if err != nil {
		return nil, err
	}
	if err := t.Listen(ctx, req.GetAddress(), req.GetSelf()); err != nil {
		return nil, errors.New(errorText(err))
	}
	return &pluginv1.ListenResponse{}, nil
}

// Call serves the host's one Call stream of this run of the plugin. The host
// closes the transport by ending it, so when it ends the transport is closed,
// and so is the connection to the host's services; Close's error, if any,
// ends the stream.
func (s *server) Call(stream pluginv1.Transport_CallServer) error {
	s.mu.Lock()
	t, hostConn, streamed := s.transport, s.hostConn, s.streamed
	s.streamed = s.streamed || t != nil
	s.mu.Unlock()
	if t == nil {
		return errors.New("Call before Configure")
	}
	if streamed {
		return errors.New("the Call stream was opened before: a plugin process serves one")
	}
	_ = streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.CallRequest) result {
		return answer(t.Call(ctx, req.GetTarget(), req.GetKind(), req.GetPayload()))
	}, func(id uint64, r result) *pluginv1.CallResult {
		return &pluginv1.CallResult{Id: id, Payload: r.payload, Error: r.err}
	})
	err := t.Close()
	hostConn.Close()
	if err != nil {
		return fmt.Errorf("closing the transport: %s", errorText(err))
	}
	return nil
}

func (s *server) Snapshot(req *pluginv1.SnapshotRequest, stream pluginv1.Transport_SnapshotServer) error {
	t, err := s.configured("Snapshot")
	if err != nil {
		return err
	}
	if err := t.Snapshot(stream.Context(), req.GetTarget(), chunkSender(stream)); err != nil {
		return errors.New(errorText(err))
	}
	return nil
}

// chunkSender returns the fn of a snapshot that sends each chunk whole, as
// one message, so that chunk boundaries are kept.
func chunkSender(stream interface{ Send(*pluginv1.Chunk) error }) func([]byte) error {
	return func(b []byte) error {
		if err := fits("a snapshot chunk", b); err != nil {
			return err
		}
		return stream.Send(&pluginv1.Chunk{Data: b})
	}
}

// remoteInbound is the host's Inbound seen from the plugin.
type remoteInbound struct {
	client pluginv1.InboundClient
	caller *streamcall.Caller[*pluginv1.InboundRequest, *pluginv1.InboundResult]
}

func (r *remoteInbound) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	if err := fits("the payload", payload); err != nil {
		return nil, err
	}
	res, err := r.caller.Call(ctx, func(id uint64, deadline int64) *pluginv1.InboundRequest {
		return &pluginv1.InboundRequest{Id: id, DeadlineUnixNano: deadline, From: from, Kind: kind, Payload: payload}
	})
	if err != nil {
		return nil, fmt.Errorf("host inbound: %w", err)
	}
	if msg := res.GetError(); msg != "" {
		return nil, errors.New(msg)
	}
	return res.GetPayload(), nil
}

func (r *remoteInbound) Snapshot(ctx context.Context, from string, fn func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := r.client.Snapshot(ctx, &pluginv1.InboundSnapshotRequest{From: from}, maxSize...)
	if err != nil {
		return rpcError(ctx, "host snapshot", err)
	}
	return receiveChunks(ctx, stream, "host snapshot", fn)
}

// receiveChunks passes the chunks of a snapshot stream to fn until it ends.
func receiveChunks(ctx context.Context, stream grpc.ServerStreamingClient[pluginv1.Chunk], what string, fn func([]byte) error) error {
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return rpcError(ctx, what, err)
		}
		if err := fn(chunk.GetData()); err != nil {
			return err
		}
	}
}

// rpcError turns the error of a call to the other side into the error it
// carries: the other side's own error (ErrUnreachable kept) as it was, ctx's
// when it ended, otherwise the failure of the call itself.
func rpcError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return errorFromText(s.Message())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ---- host side ----

// Client is the host's handle on a running transport plugin process.
type Client struct {
	exited    <-chan struct{}
	broker    *plugin.GRPCBroker
	plugin    pluginv1.PluginClient
	transport pluginv1.TransportClient
}

// Description is what a transport plugin says about itself.
type Description struct {
	sdk.Info
	Kind sdk.Kind
}

// Exited is closed when the plugin process has exited.
func (c *Client) Exited() <-chan struct{} { return c.exited }

// Describe asks the plugin what it is.
func (c *Client) Describe(ctx context.Context) (Description, error) {
	resp, err := c.plugin.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		return Description{}, err
	}
	info, kind := infowire.Decode(resp)
	return Description{Info: info, Kind: kind}, nil
}

// Configure hands the plugin its checked configuration and serves inbound
// to it (once, over the broker): calls from peers as one stream, snapshots
// as a stream each.
func (c *Client) Configure(ctx context.Context, config []byte, inbound Inbound) error {
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(sdk.MaxMessageSize), grpc.MaxSendMsgSize(sdk.MaxMessageSize))...)
		pluginv1.RegisterInboundServer(s, &inboundServer{inbound: safeInbound{inbound}})
		return s
	})
	_, err := c.plugin.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config, HostBrokerId: id})
	if err != nil {
		return rpcError(ctx, "configuring the transport plugin", err)
	}
	return nil
}

// Transport opens the stream calls to peers are made on and returns the
// plugin's transport. It ends when ctx is cancelled, the plugin exits, or it
// is closed; a plugin process serves one.
func (c *Client) Transport(ctx context.Context) (*RemoteTransport, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.transport.Call(ctx, maxSize...)
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

// RemoteTransport is a plugin process's transport, as the host uses it.
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
		return rpcError(ctx, "transport plugin", err)
	}
	return nil
}

// Call sends payload to the peer at target through the plugin and waits for
// the peer's answer.
func (t *RemoteTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	if err := fits("the payload", payload); err != nil {
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
	if err := errorFromText(res.GetError()); err != nil {
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
	stream, err := t.client.Snapshot(ctx, &pluginv1.SnapshotRequest{Target: target}, maxSize...)
	if err != nil {
		return rpcError(ctx, "transport plugin", err)
	}
	return receiveChunks(ctx, stream, "transport plugin", fn)
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
	inbound Inbound
}

func (s *inboundServer) Handle(stream pluginv1.Inbound_HandleServer) error {
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.InboundRequest) result {
		return answer(s.inbound.Handle(ctx, req.GetFrom(), req.GetKind(), req.GetPayload()))
	}, func(id uint64, r result) *pluginv1.InboundResult {
		return &pluginv1.InboundResult{Id: id, Payload: r.payload, Error: r.err}
	})
}

func (s *inboundServer) Snapshot(req *pluginv1.InboundSnapshotRequest, stream pluginv1.Inbound_SnapshotServer) error {
	if err := s.inbound.Snapshot(stream.Context(), req.GetFrom(), chunkSender(stream)); err != nil {
		return errors.New(errorText(err))
	}
	return nil
}
