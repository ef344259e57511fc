package membership

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/wire"
)

// The plugin side of the membership protocol
// (proto/plugin/v1/membership.proto); the host side is sdk/host's.

func init() {
	wire.RegisterServer(wire.KindMembership, func(impl any) plugin.Plugin { return &grpcPlugin{impl: impl.(Plugin)} })
}

// grpcPlugin serves a membership plugin in its process through go-plugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
}

func (g *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: g.impl, logger: wire.Logger(g.impl.Name)}
	pluginv1.RegisterPluginServer(s, srv)
	pluginv1.RegisterMembershipServer(s, srv)
	return nil
}

func (g *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the plugin side of a membership plugin has no client; hosts use sdk/host")
}

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
	return wire.EncodeInfo(s.impl.Info, wire.KindMembership), nil
}

// Configure builds the provider. A provider calls no host service, so the
// request's host_broker_id is not used: its Host holds only a logger.
func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return nil, errors.New("already configured")
	}
	p, err := NewProvider(s.impl, req.GetConfigJson(), Host{Logger: s.logger})
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
	s.logger.Debug(wire.WatchEnded, // the conformance kit looks for it
		"self", req.GetSelf(), "error", err)
	return err
}

// NewProvider builds p's provider from a configuration block as the server
// does: New's panics become errors, and so does a nil provider. The
// provider returned keeps Watch's contract whatever p's does: a panic in
// Watch is returned as an error, update is never called concurrently, nor
// after Watch has returned, and is handed a list of its own. Use it in a
// plugin's unit tests to get the provider the server would get; a server
// running a built-in plugin in its own process uses it too.
func NewProvider(p Plugin, config []byte, host Host) (provider Provider, err error) {
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
