package host

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/streamcall"
)

// Push is a running push plugin process.
type Push struct {
	Process
	broker *plugin.GRPCBroker
	push   pluginv1.PushExecutorClient
}

func newPush(p Process, broker *plugin.GRPCBroker, conn *grpc.ClientConn) *Push {
	return &Push{Process: p, broker: broker, push: pluginv1.NewPushExecutorClient(conn)}
}

// Configure hands the plugin its checked configuration and serves conns to
// it (once, over the broker); it returns what an spi executor declared.
func (c *Push) Configure(ctx context.Context, config []byte, conns push.Connections) (push.Interest, error) {
	id, err := wire.ServeOnBroker(ctx, c.broker, func(s *grpc.Server) {
		pluginv1.RegisterConnectionsServer(s, &connectionsServer{conns: conns})
	})
	if err != nil {
		return push.Interest{}, err
	}
	resp, err := c.Process.info.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config, HostBrokerId: id})
	if err != nil {
		return push.Interest{}, pluginError(err)
	}
	in := resp.GetInterest()
	return push.Interest{Namespaces: in.GetNamespaces(), Groups: in.GetGroups(), Services: in.GetServices(), Apps: in.GetApps(),
		Labels: in.GetLabels(), Subscribers: in.GetSubscribers(), Observe: in.GetObserve()}, nil
}

// Executor opens the stream batches are pushed on. It ends when ctx is
// cancelled or the plugin exits.
func (c *Push) Executor(ctx context.Context) (*RemoteExecutor, error) {
	stream, err := c.push.Push(ctx, wire.CallOptions...)
	if err != nil {
		return nil, err
	}
	return &RemoteExecutor{caller: streamcall.NewCaller(stream, func(id uint64) *pluginv1.PushRequest {
		return &pluginv1.PushRequest{Id: id, Cancel: true}
	})}, nil
}

// RemoteExecutor pushes through a plugin process; it is a push.Executor.
type RemoteExecutor struct {
	caller *streamcall.Caller[*pluginv1.PushRequest, *pluginv1.PushResult]
}

// Push sends b to the plugin and waits for its results.
func (e *RemoteExecutor) Push(ctx context.Context, b push.Batch) []error {
	res, err := e.caller.Call(ctx, func(id uint64, deadline int64) *pluginv1.PushRequest {
		return batchToProto(id, deadline, b)
	})
	if err != nil {
		return wire.Repeat(fmt.Errorf("push plugin: %w", err), len(b.Targets))
	}
	return wire.ErrorsFromTexts(res.GetErrors(), len(b.Targets))
}

// Done is closed when the stream has ended (the plugin exited, or the
// context it was opened with ended).
func (e *RemoteExecutor) Done() <-chan struct{} { return e.caller.Done() }

// connectionsServer serves the host's Connections to a plugin.
type connectionsServer struct {
	pluginv1.UnimplementedConnectionsServer
	conns push.Connections
}

func (s *connectionsServer) Request(stream pluginv1.Connections_RequestServer) error {
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.ConnectionRequest) []string {
		return wire.ErrorTexts(s.conns.Request(ctx, req.GetType(), req.GetBody(), req.GetConnectionIds()))
	}, func(id uint64, errs []string) *pluginv1.ConnectionResult {
		return &pluginv1.ConnectionResult{Id: id, Errors: errs}
	})
}

func batchToProto(id uint64, deadline int64, b push.Batch) *pluginv1.PushRequest {
	req := &pluginv1.PushRequest{
		Id:               id,
		DeadlineUnixNano: deadline,
		Service:          &pluginv1.Service{Namespace: b.Service.Namespace, Group: b.Service.Group, Name: b.Service.Name},
		Clusters:         b.Clusters,
		ServiceInfo:      b.ServiceInfo,
		Targets:          make([]*pluginv1.Target, len(b.Targets)),
	}
	// One array holds every target's message: one allocation for a batch
	// to 10,000 subscribers, not 10,000.
	targets := make([]pluginv1.Target, len(b.Targets))
	for i, t := range b.Targets {
		m := &targets[i]
		m.ClientId, m.ConnectionId, m.App, m.Address = t.ClientID, t.ConnectionID, t.App, t.Address
		req.Targets[i] = m
	}
	return req
}
