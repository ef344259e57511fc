// Package host is the server's side of the plugin protocol: how a Sextant
// server launches a plugin binary through go-plugin, asks it what it is,
// configures it, and uses it — pushing batches to a push plugin, watching a
// membership plugin, calling peers through a transport plugin — and how it
// offers its own services (client connections, inbound cluster messages) to
// the plugin, once, over go-plugin's broker.
//
// Plugin authors do not need this package: they write against sdk/push,
// sdk/membership or sdk/transport and test with the kits under those. The
// server (core/pluginhost) imports it, and so may anything else that wants
// to host Sextant plugins.
package host

import (
	"context"
	"errors"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/push"
)

// Kind is what a plugin does for the server.
type Kind = wire.Kind

// The kinds of plugin.
const (
	KindPush       = wire.KindPush       // sdk/push
	KindMembership = wire.KindMembership // sdk/membership
	KindTransport  = wire.KindTransport  // sdk/transport
)

// ClientConfig is how a host launches the plugin binary cmd with go-plugin:
// Sextant's handshake and protocol versions, gRPC only, automatic mutual
// TLS, messages up to sdk.MaxMessageSize, and logger's level passed to the
// plugin (whose log lines logger then takes). Set StartTimeout and
// SecureConfig on the result as needed.
func ClientConfig(cmd *exec.Cmd, logger hclog.Logger) *plugin.ClientConfig {
	cmd.Env = append(cmd.Environ(), wire.LogLevelEnv+"="+logger.GetLevel().String())
	return &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{wire.ProtocolVersion: PluginSet()},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           logger,
		GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(wire.CallOptions...)},
	}
}

// PluginSet is what a go-plugin client dispenses Sextant plugins from, for
// a host that builds its own plugin.ClientConfig (to reattach to a running
// plugin, or in tests): every kind, each by its name, dispensing a *Push, a
// *Membership or a *Transport. A plugin binary serves one kind.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{
		string(KindPush):       clientOf(func(p Process, b *plugin.GRPCBroker, c *grpc.ClientConn) any { return newPush(p, b, c) }).glue(),
		string(KindMembership): clientOf(func(p Process, _ *plugin.GRPCBroker, c *grpc.ClientConn) any { return newMembership(p, c) }).glue(),
		string(KindTransport):  clientOf(func(p Process, b *plugin.GRPCBroker, c *grpc.ClientConn) any { return newTransport(p, b, c) }).glue(),
	}
}

// Dispense returns the plugin of kind k that the launched process rpc serves:
// a *Push, *Membership or *Transport. It fails when the binary serves
// another kind.
func Dispense(rpc plugin.ClientProtocol, k Kind) (any, error) {
	return rpc.Dispense(string(k))
}

// clientOf is the host side of one kind's go-plugin glue.
type clientOf func(p Process, broker *plugin.GRPCBroker, conn *grpc.ClientConn) any

// glue makes f a go-plugin plugin of the host side.
func (f clientOf) glue() plugin.Plugin { return hostPlugin{client: f} }

type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	client clientOf
}

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the host side of a plugin serves nothing")
}

func (h hostPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return h.client(Process{exited: ctx.Done(), info: pluginv1.NewPluginClient(conn)}, broker, conn), nil
}

// Description is what a plugin says about itself.
type Description struct {
	sdk.Info
	Kind Kind
	// Role is a push plugin's role ("" for other kinds).
	Role push.Role
}

// Process is what every kind of running plugin has: it can be asked what it
// is, and it can exit.
type Process struct {
	exited <-chan struct{}
	info   pluginv1.PluginClient
}

// Exited is closed when the plugin process has exited.
func (p Process) Exited() <-chan struct{} { return p.exited }

// Describe asks the plugin what it is.
func (p Process) Describe(ctx context.Context) (Description, error) {
	resp, err := p.info.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		return Description{}, err
	}
	info, kind := wire.DecodeInfo(resp)
	return Description{Info: info, Kind: kind, Role: push.Role(resp.GetPushRole())}, nil
}
