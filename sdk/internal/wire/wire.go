// Package wire is what the two sides of the plugin protocol — a plugin
// process (the kind packages) and the server (sdk/host) — agree on beyond
// the generated proto: the go-plugin handshake, the protocol version, the
// kinds, the Info answer, and errors as they travel as text. Nothing here is
// for plugin authors; the kind packages and sdk/host are.
package wire

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sextantd/sextant/sdk"
)

// ProtocolVersion is the version of the plugin protocol this SDK speaks
// (proto/plugin/v1). A host offers every version it supports and go-plugin
// picks the highest both sides know, so a v2 can come without breaking v1
// plugins.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake of Sextant plugins. The cookie only
// keeps a plugin binary from being run by hand or by another program; it is
// not a security measure.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "SEXTANT_PLUGIN",
	MagicCookieValue: "3c1f9a52-sextant-plugin",
}

// LogLevelEnv is the environment variable in which the host passes its log
// level to a plugin process.
const LogLevelEnv = "SEXTANT_PLUGIN_LOG_LEVEL"

// Kind is what a plugin does for the server. A kind's name is also the name
// its plugin is dispensed by in a go-plugin plugin set.
type Kind string

// The kinds of plugin.
const (
	KindPush       Kind = "push"       // delivers pushes to subscribers (sdk/push)
	KindMembership Kind = "membership" // says which nodes form the cluster (sdk/membership)
	KindTransport  Kind = "transport"  // carries messages between nodes (sdk/transport)
)

// CallOptions are the options of every call between host and plugin: a
// message may be as large as sdk.MaxMessageSize.
var CallOptions = []grpc.CallOption{grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize)}

// NewServer is a gRPC server for one side of the plugin protocol, taking
// messages as large as sdk.MaxMessageSize.
func NewServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(sdk.MaxMessageSize), grpc.MaxSendMsgSize(sdk.MaxMessageSize))...)
}

// Logger returns the logger a plugin process writes with: JSON lines on
// stderr, which the host re-emits under the plugin's name.
func Logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.LevelFromString(os.Getenv(LogLevelEnv)),
		JSONFormat: true,
		Output:     os.Stderr,
	})
}

// Serve runs a plugin process serving set and never returns: the process
// exits when the host stops it, or soon after the host dies.
func Serve(set plugin.PluginSet, logger hclog.Logger) {
	go exitWithParent(logger)
	plugin.Serve(ServeConfig(set, logger))
	os.Exit(0)
}

// ServeConfig is how Serve serves set, for tests that serve a plugin inside
// their own process (go-plugin's ServeConfig.Test).
func ServeConfig(set plugin.PluginSet, logger hclog.Logger) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: set},
		GRPCServer:       NewServer,
		Logger:           logger,
	}
}

// exitWithParent ends the process once its parent — the host — is gone, so a
// host killed without warning leaves no plugin behind.
func exitWithParent(logger hclog.Logger) {
	parent := os.Getppid()
	for range time.Tick(200 * time.Millisecond) {
		if os.Getppid() != parent {
			logger.Info("the host is gone; exiting")
			os.Exit(0)
		}
	}
}

// ServeOnBroker serves a gRPC server (register adds its services) on a new
// broker id and returns that id once its listener is in place. go-plugin's
// AcceptAndServe registers the listener in its own goroutine, and the other
// side's dial fails at once ("no listener for id") when it comes first; so
// the id is handed over only once the server is built, which go-plugin does
// after the listener exists. The server stops when the broker closes.
func ServeOnBroker(ctx context.Context, broker *plugin.GRPCBroker, register func(*grpc.Server)) (uint32, error) {
	id := broker.NextId()
	ready, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			s := NewServer(opts)
			register(s)
			close(ready)
			return s
		})
	}()
	select {
	case <-ready:
		return id, nil
	case <-ended:
		return 0, fmt.Errorf("serving on the plugin broker: no listener for id %d", id)
	case <-ctx.Done():
		return 0, fmt.Errorf("serving on the plugin broker: %w", ctx.Err())
	}
}
