package push

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/infowire"
	"github.com/sextantd/sextant/sdk/internal/streamcall"
)

// grpcPlugin is the go-plugin glue of push plugins: the plugin process serves
// with GRPCServer, the host gets a *Client from GRPCClient.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin // on the plugin side only
}

func (g *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: g.impl, broker: broker, logger: sdk.Logger(g.impl.Name)}
	pluginv1.RegisterPluginServer(s, srv)
	pluginv1.RegisterPushExecutorServer(s, srv)
	return nil
}

func (g *grpcPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{
		exited: ctx.Done(),
		broker: broker,
		plugin: pluginv1.NewPluginClient(conn),
		push:   pluginv1.NewPushExecutorClient(conn),
	}, nil
}

// PluginSet is the plugin set a host dispenses push plugins from.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{pluginName: &grpcPlugin{}}
}

// DispenseName is the name a host dispenses a push plugin by.
const DispenseName = pluginName

// ---- plugin side ----

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
	resp := infowire.Encode(s.impl.Info, sdk.KindPush)
	resp.PushRole = string(s.impl.Role)
	return resp, nil
}

func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exec != nil {
		return nil, errors.New("already configured")
	}
	conn, err := s.broker.DialWithOptions(req.GetHostBrokerId(), grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize)))
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
	exec, interest, err := newExecutor(s.impl, req.GetConfigJson(), Host{Connections: conns, Logger: s.logger})
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.exec, s.hostConn = exec, conn
	resp := &pluginv1.ConfigureResponse{}
	if s.impl.Role == RoleSPI {
		resp.Interest = interestToProto(interest)
	}
	return resp, nil
}

// NewExecutor builds p's executor as Configure does — New's panics become
// errors, an spi executor must declare a valid Interest — for a host that
// runs a plugin in its own process.
func NewExecutor(p Plugin, config []byte, host Host) (Executor, Interest, error) {
	return newExecutor(p, config, host)
}

func newExecutor(p Plugin, config []byte, host Host) (exec Executor, interest Interest, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting the executor panicked: %v", r)
		}
	}()
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
	// so does the plugin's use of the host's services.
	defer hostConn.Close()
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.PushRequest) []string {
		b := batchFromProto(req)
		return errorStrings(safePush(ctx, exec, b))
	}, func(id uint64, errs []string) *pluginv1.PushResult {
		return &pluginv1.PushResult{Id: id, Errors: errs}
	})
}

// safePush runs exec.Push, turning a panic into an error for every target:
// a plugin process must not die of one bad batch.
func safePush(ctx context.Context, exec Executor, b Batch) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = repeat(fmt.Errorf("the executor panicked: %v", r), len(b.Targets))
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
		return repeat(fmt.Errorf("host connections: %w", err), len(ids))
	}
	return errorsFromStrings(res.GetErrors(), len(ids))
}

// ---- host side ----

// Client is the host's handle on a running push plugin process.
type Client struct {
	exited <-chan struct{}
	broker *plugin.GRPCBroker
	plugin pluginv1.PluginClient
	push   pluginv1.PushExecutorClient
}

// Description is what a push plugin says about itself.
type Description struct {
	sdk.Info
	Kind sdk.Kind
	Role Role
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
	return Description{Info: info, Kind: kind, Role: Role(resp.GetPushRole())}, nil
}

// Configure hands the plugin its checked configuration and serves conns to
// it (once, over the broker); it returns what an spi executor declared.
func (c *Client) Configure(ctx context.Context, config []byte, conns Connections) (Interest, error) {
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(sdk.MaxMessageSize), grpc.MaxSendMsgSize(sdk.MaxMessageSize))...)
		pluginv1.RegisterConnectionsServer(s, &connectionsServer{conns: conns})
		return s
	})
	resp, err := c.plugin.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config, HostBrokerId: id})
	if err != nil {
		return Interest{}, err
	}
	return interestFromProto(resp.GetInterest()), nil
}

// Executor opens the stream batches are pushed on. It ends when ctx is
// cancelled or the plugin exits.
func (c *Client) Executor(ctx context.Context) (*RemoteExecutor, error) {
	stream, err := c.push.Push(ctx, grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))
	if err != nil {
		return nil, err
	}
	return &RemoteExecutor{caller: streamcall.NewCaller(stream, func(id uint64) *pluginv1.PushRequest {
		return &pluginv1.PushRequest{Id: id, Cancel: true}
	})}, nil
}

// RemoteExecutor pushes through a plugin process.
type RemoteExecutor struct {
	caller *streamcall.Caller[*pluginv1.PushRequest, *pluginv1.PushResult]
}

// Push sends b to the plugin and waits for its results.
func (e *RemoteExecutor) Push(ctx context.Context, b Batch) []error {
	res, err := e.caller.Call(ctx, func(id uint64, deadline int64) *pluginv1.PushRequest {
		return batchToProto(id, deadline, b)
	})
	if err != nil {
		return repeat(fmt.Errorf("push plugin: %w", err), len(b.Targets))
	}
	return errorsFromStrings(res.GetErrors(), len(b.Targets))
}

// Done is closed when the stream has ended (the plugin exited, or the
// context it was opened with ended).
func (e *RemoteExecutor) Done() <-chan struct{} { return e.caller.Done() }

// connectionsServer serves the host's Connections to a plugin.
type connectionsServer struct {
	pluginv1.UnimplementedConnectionsServer
	conns Connections
}

func (s *connectionsServer) Request(stream pluginv1.Connections_RequestServer) error {
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.ConnectionRequest) []string {
		return errorStrings(s.conns.Request(ctx, req.GetType(), req.GetBody(), req.GetConnectionIds()))
	}, func(id uint64, errs []string) *pluginv1.ConnectionResult {
		return &pluginv1.ConnectionResult{Id: id, Errors: errs}
	})
}

// ---- conversions ----

func batchToProto(id uint64, deadline int64, b Batch) *pluginv1.PushRequest {
	req := &pluginv1.PushRequest{
		Id:               id,
		DeadlineUnixNano: deadline,
		Service:          &pluginv1.Service{Namespace: b.Service.Namespace, Group: b.Service.Group, Name: b.Service.Name},
		Clusters:         b.Clusters,
		ServiceInfo:      b.ServiceInfo,
		Targets:          make([]*pluginv1.Target, len(b.Targets)),
	}
	for i, t := range b.Targets {
		req.Targets[i] = &pluginv1.Target{ClientId: t.ClientID, ConnectionId: t.ConnectionID, App: t.App}
	}
	return req
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
		b.Targets[i] = Target{ClientID: t.GetClientId(), ConnectionID: t.GetConnectionId(), App: t.GetApp()}
	}
	return b
}

func interestToProto(in Interest) *pluginv1.Interest {
	return &pluginv1.Interest{Namespaces: in.Namespaces, Groups: in.Groups, Services: in.Services, Apps: in.Apps,
		Labels: in.Labels, Subscribers: in.Subscribers, Observe: in.Observe}
}

func interestFromProto(p *pluginv1.Interest) Interest {
	return Interest{Namespaces: p.GetNamespaces(), Groups: p.GetGroups(), Services: p.GetServices(), Apps: p.GetApps(),
		Labels: p.GetLabels(), Subscribers: p.GetSubscribers(), Observe: p.GetObserve()}
}

// errorStrings turns results into strings: "" for success.
func errorStrings(errs []error) []string {
	out := make([]string, len(errs))
	for i, err := range errs {
		if err != nil {
			if out[i] = err.Error(); out[i] == "" {
				out[i] = "error"
			}
		}
	}
	return out
}

// errorsFromStrings turns strings back into results for n targets. A wrong
// number of results means a broken executor: every target then fails, so
// that nothing is taken as delivered on its word.
func errorsFromStrings(s []string, n int) []error {
	if len(s) != n {
		return repeat(fmt.Errorf("the executor returned %d results for %d targets", len(s), n), n)
	}
	errs := make([]error, n)
	for i := range errs {
		if s[i] != "" {
			errs[i] = errors.New(s[i])
		}
	}
	return errs
}

func repeat(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
