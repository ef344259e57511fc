package membership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/infowire"
	"github.com/sextantd/sextant/sdk/internal/watchlog"
)

// grpcPlugin is the go-plugin glue of membership plugins: the plugin process
// serves with GRPCServer, the host gets a *Client from GRPCClient.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin // on the plugin side only
}

func (g *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: g.impl, logger: sdk.Logger(g.impl.Name)}
	pluginv1.RegisterPluginServer(s, srv)
	pluginv1.RegisterMembershipServer(s, srv)
	return nil
}

func (g *grpcPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{
		exited:     ctx.Done(),
		plugin:     pluginv1.NewPluginClient(conn),
		membership: pluginv1.NewMembershipClient(conn),
	}, nil
}

// PluginSet is the plugin set a host dispenses membership plugins from.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{pluginName: &grpcPlugin{}}
}

// DispenseName is the name a host dispenses a membership plugin by.
const DispenseName = pluginName

// ---- plugin side ----

// lateReturn is how long after its context ends a Watch may take to return
// before the plugin logs that its provider ignores cancellation.
const lateReturn = time.Second

// server runs a membership plugin's provider for the host.
type server struct {
	pluginv1.UnimplementedPluginServer
	pluginv1.UnimplementedMembershipServer
	impl   Plugin
	logger hclog.Logger

	mu       sync.Mutex
	provider Provider
}

func (s *server) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return infowire.Encode(s.impl.Info, sdk.KindMembership), nil
}

// Configure builds the provider. A provider calls no host service, so the
// request's host_broker_id is not used: its Host holds only a logger.
func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return nil, errors.New("already configured")
	}
	p, err := newProvider(s.impl, req.GetConfigJson(), Host{Logger: s.logger})
	if err != nil {
		return nil, err
	}
	s.provider = p
	return &pluginv1.ConfigureResponse{}, nil
}

// Watch serves the provider's Watch until the stream's context ends: the
// host cancels it, or goes away.
func (s *server) Watch(req *pluginv1.WatchRequest, stream pluginv1.Membership_WatchServer) error {
	s.mu.Lock()
	p := s.provider
	s.mu.Unlock()
	if p == nil {
		return errors.New("watch before Configure")
	}
	ctx := stream.Context()
	returned := make(chan struct{})
	stopWarning := context.AfterFunc(ctx, func() {
		select {
		case <-returned:
		case <-time.After(lateReturn):
			s.logger.Error(fmt.Sprintf("the provider's Watch has not returned %v after its context ended: "+
				"it must return as soon as its context is done", lateReturn), "self", req.GetSelf())
		}
	})
	err := p.Watch(ctx, req.GetSelf(), func(members []string) {
		if err := stream.Send(&pluginv1.Members{Addresses: members}); err != nil {
			s.logger.Debug("sending a member list failed", "error", err)
		}
	})
	stopWarning()
	close(returned)
	s.logger.Debug(watchlog.Ended, // the conformance kit looks for it
		"self", req.GetSelf(), "error", err)
	return err
}

// NewProvider builds p's provider as Configure does, for a host that runs a
// plugin in its own process: New's panics become errors, and so does a nil
// provider. The provider returned keeps Watch's contract whatever p's does:
// a panic in Watch is returned as an error, update is never called
// concurrently, nor after Watch has returned, and is handed a list of its
// own.
func NewProvider(p Plugin, config []byte, host Host) (Provider, error) {
	return newProvider(p, config, host)
}

func newProvider(p Plugin, config []byte, host Host) (provider Provider, err error) {
	defer func() {
		if r := recover(); r != nil {
			provider, err = nil, fmt.Errorf("starting the provider panicked: %v", r)
		}
	}()
	if p.New == nil {
		return nil, errors.New("starting the provider: Plugin.New is nil")
	}
	if host.Logger == nil {
		host.Logger = hclog.NewNullLogger()
	}
	if provider, err = p.New(config, host); err != nil {
		return nil, fmt.Errorf("starting the provider: %w", err)
	}
	if provider == nil {
		return nil, errors.New("starting the provider: New returned no provider")
	}
	return guarded{provider}, nil
}

// guarded is a provider whose Watch keeps the contract whatever the
// provider's own does.
type guarded struct{ p Provider }

func (g guarded) Watch(ctx context.Context, self string, update func(members []string)) (err error) {
	var mu sync.Mutex // serializes update; ended stops it
	ended := false
	defer func() {
		mu.Lock()
		ended = true
		mu.Unlock()
	}()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the provider's Watch panicked: %v", r)
		}
	}()
	err = g.p.Watch(ctx, self, func(members []string) {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			update(slices.Clone(members))
		}
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		return errors.New("the provider's Watch returned before its context ended, and without an error")
	default:
		return fmt.Errorf("the provider's Watch failed: %w", err)
	}
}

// ---- host side ----

// Client is the host's handle on a running membership plugin process. It
// implements Provider.
type Client struct {
	exited     <-chan struct{}
	plugin     pluginv1.PluginClient
	membership pluginv1.MembershipClient
}

// Description is what a membership plugin says about itself.
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

// Configure hands the plugin its checked configuration. A provider is
// offered no host service (host_broker_id 0); it logs through go-plugin.
func (c *Client) Configure(ctx context.Context, config []byte) error {
	_, err := c.plugin.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config})
	return err
}

// Watch implements Provider over the plugin's Membership.Watch stream:
// update gets every list the plugin sends, in order, on one goroutine. It
// returns ctx's error once ctx is done, and any other error when the stream
// ends before — the plugin exited, or its provider failed — after which the
// host may Watch again (a restarted plugin, Configured again, first).
func (c *Client) Watch(ctx context.Context, self string, update func(members []string)) error {
	stream, err := c.membership.Watch(ctx, &pluginv1.WatchRequest{Self: self})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("membership plugin: %w", err)
	}
	for {
		m, err := stream.Recv()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, io.EOF):
			return errors.New("membership plugin: the plugin ended the watch")
		case err != nil:
			return fmt.Errorf("membership plugin: %w", err)
		}
		update(m.GetAddresses())
	}
}
