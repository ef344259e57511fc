package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/streamcall"
)

// The plugin side of the transport protocol
// (proto/plugin/v1/transport.proto); the host side is sdk/host's.

func init() {
	wire.RegisterServer(wire.KindTransport, func(impl any) plugin.Plugin { return &grpcPlugin{impl: impl.(Plugin)} })
}

// grpcPlugin serves a transport plugin in its process through go-plugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
}

func (g *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: g.impl, broker: broker, logger: wire.Logger(g.impl.Name)}
	pluginv1.RegisterPluginServer(s, srv)
	pluginv1.RegisterTransportServer(s, srv)
	return nil
}

func (g *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the plugin side of a transport plugin has no client; hosts use sdk/host")
}

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
	return wire.EncodeInfo(s.impl.Info, wire.KindTransport), nil
}

func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport != nil {
		return nil, errors.New("already configured")
	}
	conn, err := s.broker.DialWithOptions(req.GetHostBrokerId(), grpc.WithDefaultCallOptions(wire.CallOptions...))
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
	t, err := NewTransport(s.impl, req.GetConfigJson(), Host{Inbound: inbound, Logger: s.logger})
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
		return nil, errors.New(wire.ErrorText(err))
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
	_ = streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.CallRequest) wire.Result {
		return wire.Answer(t.Call(ctx, req.GetTarget(), req.GetKind(), req.GetPayload()))
	}, func(id uint64, r wire.Result) *pluginv1.CallResult {
		return &pluginv1.CallResult{Id: id, Payload: r.Payload, Error: r.Err}
	})
	err := t.Close()
	hostConn.Close()
	if err != nil {
		return fmt.Errorf("closing the transport: %s", wire.ErrorText(err))
	}
	return nil
}

func (s *server) Snapshot(req *pluginv1.SnapshotRequest, stream pluginv1.Transport_SnapshotServer) error {
	t, err := s.configured("Snapshot")
	if err != nil {
		return err
	}
	if err := t.Snapshot(stream.Context(), req.GetTarget(), wire.ChunkSender(stream)); err != nil {
		return errors.New(wire.ErrorText(err))
	}
	return nil
}

// remoteInbound is the host's Inbound seen from the plugin.
type remoteInbound struct {
	client pluginv1.InboundClient
	caller *streamcall.Caller[*pluginv1.InboundRequest, *pluginv1.InboundResult]
}

func (r *remoteInbound) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	if err := wire.Fits("the payload", payload); err != nil {
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
	stream, err := r.client.Snapshot(ctx, &pluginv1.InboundSnapshotRequest{From: from}, wire.CallOptions...)
	if err != nil {
		return wire.RPCError(ctx, "host snapshot", err)
	}
	return wire.ReceiveChunks(ctx, stream, "host snapshot", fn)
}
