package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/streamcall"
)

// The plugin side of the push protocol (proto/plugin/v1/push.proto); the
// host side is sdk/host's.

func init() {
	wire.RegisterServer(wire.KindPush, func(impl any) plugin.Plugin { return &grpcPlugin{impl: impl.(Plugin)} })
}

// grpcPlugin serves a push plugin in its process through go-plugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
}

func (g *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: g.impl, broker: broker, logger: wire.Logger(g.impl.Name)}
	pluginv1.RegisterPluginServer(s, srv)
	pluginv1.RegisterPushExecutorServer(s, srv)
	return nil
}

func (g *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the plugin side of a push plugin has no client; hosts use sdk/host")
}

// server runs a push plugin's executor for the host.
type server struct {
	pluginv1.UnimplementedPluginServer
	pluginv1.UnimplementedPushExecutorServer
	impl   Plugin
	broker *plugin.GRPCBroker
	logger hclog.Logger

	mu       sync.Mutex
	exec     Executor
	hostConn *grpc.ClientConn // to the host's services
}

func (s *server) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	resp := wire.EncodeInfo(s.impl.Info, wire.KindPush)
	resp.PushRole = string(s.impl.Role)
	return resp, nil
}

func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exec != nil {
		return nil, errors.New("already configured")
	}
	conn, err := s.broker.DialWithOptions(req.GetHostBrokerId(), grpc.WithDefaultCallOptions(wire.CallOptions...))
	if err != nil {
		return nil, fmt.Errorf("reaching the host's services: %w", err)
	}
	stream, err := pluginv1.NewConnectionsClient(conn).Request(context.Background())
	if err != nil {
		return nil, fmt.Errorf("opening the host's connections stream: %w", err)
	}
	conns := &remoteConnections{caller: streamcall.NewCaller(stream, func(id uint64) *pluginv1.ConnectionRequest {
		return &pluginv1.ConnectionRequest{Id: id, Cancel: true}
	})}
	exec, interest, err := NewExecutor(s.impl, req.GetConfigJson(), Host{Connections: conns, Logger: s.logger})
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.exec, s.hostConn = exec, conn
	resp := &pluginv1.ConfigureResponse{}
	if s.impl.Role == RoleSPI {
		resp.Interest = &pluginv1.Interest{Namespaces: interest.Namespaces, Groups: interest.Groups, Services: interest.Services,
			Apps: interest.Apps, Labels: interest.Labels, Subscribers: interest.Subscribers, Observe: interest.Observe}
	}
	return resp, nil
}

// NewExecutor builds p's executor from a configuration block as the server
// does: New's panics become errors, and an spi executor must declare a valid
// Interest. Use it in a plugin's unit tests to get the executor the server
// would get; a server running a built-in plugin in its own process uses it
// too.
func NewExecutor(p Plugin, config []byte, host Host) (exec Executor, interest Interest, err error) {
	defer func() {
		if r := recover(); r != nil {
			exec, err = nil, fmt.Errorf("starting the executor panicked: %v", r)
		}
	}()
	if p.New == nil {
		return nil, interest, errors.New("starting the executor: Plugin.New is nil")
	}
	if exec, err = p.New(config, host); err != nil {
		return nil, interest, fmt.Errorf("starting the executor: %w", err)
	}
	if exec == nil {
		return nil, interest, errors.New("starting the executor: New returned no executor")
	}
	if p.Role != RoleSPI {
		return exec, interest, nil
	}
	in, ok := exec.(Interested)
	if !ok {
		return nil, interest, errors.New("an spi executor must implement Interested")
	}
	if interest = in.Interest(); interest.Validate() != nil {
		return nil, interest, fmt.Errorf("invalid interest: %w", interest.Validate())
	}
	return exec, interest, nil
}

func (s *server) Push(stream pluginv1.PushExecutor_PushServer) error {
	s.mu.Lock()
	exec, hostConn := s.exec, s.hostConn
	s.mu.Unlock()
	if exec == nil {
		return errors.New("push before Configure")
	}
	// The host opens one push stream per run of the plugin; when it ends,
	// so does the plugin's use of the host's services, and of its executor.
	defer hostConn.Close()
	if c, ok := exec.(io.Closer); ok {
		defer c.Close()
	}
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.PushRequest) []string {
		return wire.ErrorTexts(safePush(ctx, exec, batchFromProto(req)))
	}, func(id uint64, errs []string) *pluginv1.PushResult {
		return &pluginv1.PushResult{Id: id, Errors: errs}
	})
}

// safePush runs exec.Push, turning a panic into an error for every target:
// a plugin process must not die of one bad batch.
func safePush(ctx context.Context, exec Executor, b Batch) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = wire.Repeat(fmt.Errorf("the executor panicked: %v", r), len(b.Targets))
		}
	}()
	return exec.Push(ctx, b)
}

// remoteConnections is the host's Connections service seen from the plugin.
type remoteConnections struct {
	caller *streamcall.Caller[*pluginv1.ConnectionRequest, *pluginv1.ConnectionResult]
}

func (r *remoteConnections) Request(ctx context.Context, typ string, body []byte, ids []string) []error {
	res, err := r.caller.Call(ctx, func(id uint64, deadline int64) *pluginv1.ConnectionRequest {
		return &pluginv1.ConnectionRequest{Id: id, DeadlineUnixNano: deadline, Type: typ, Body: body, ConnectionIds: ids}
	})
	if err != nil {
		return wire.Repeat(fmt.Errorf("host connections: %w", err), len(ids))
	}
	return wire.ErrorsFromTexts(res.GetErrors(), len(ids))
}

func batchFromProto(req *pluginv1.PushRequest) Batch {
	s := req.GetService()
	b := Batch{
		Service:     Service{Namespace: s.GetNamespace(), Group: s.GetGroup(), Name: s.GetName()},
		Clusters:    req.GetClusters(),
		ServiceInfo: req.GetServiceInfo(),
		Targets:     make([]Target, len(req.GetTargets())),
	}
	for i, t := range req.GetTargets() {
		b.Targets[i] = Target{ClientID: t.GetClientId(), ConnectionID: t.GetConnectionId(), App: t.GetApp(), Address: t.GetAddress()}
	}
	return b
}
