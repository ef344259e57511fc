// Package sdk is what a Sextant plugin author imports beside the package of
// the plugin's kind (sdk/push): the handshake every Sextant plugin and host
// share, the description of a plugin and of its configuration, and Serve.
//
// A plugin is its own process, started by the Sextant server through
// HashiCorp go-plugin and spoken to over gRPC. It never imports anything
// under core/.
package sdk

import (
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
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

// MaxMessageSize bounds one message between host and plugin, in bytes: a
// batch carries a whole service's data.
const MaxMessageSize = 256 << 20

// LogLevelEnv is the environment variable in which the host passes its log
// level to a plugin process.
const LogLevelEnv = "SEXTANT_PLUGIN_LOG_LEVEL"

// Kind is what a plugin does for the server.
type Kind string

// The kinds of plugin.
const (
	KindPush       Kind = "push"       // delivers pushes to subscribers (sdk/push)
	KindMembership Kind = "membership" // says which nodes form the cluster (sdk/membership)
	KindTransport  Kind = "transport"  // carries messages between nodes (sdk/transport)
)

// Info describes a plugin.
type Info struct {
	Name    string
	Version string
	// Config declares the keys of the plugin's configuration block; the host
	// checks the user's block against it before starting the plugin.
	Config Schema
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

// Serve runs a plugin process serving plugins (built by the kind packages,
// e.g. push.Serve) and never returns: the process exits when the host stops
// it, or soon after the host dies.
func Serve(plugins plugin.PluginSet, logger hclog.Logger) {
	go exitWithParent(logger)
	plugin.Serve(ServeConfig(plugins, logger))
	os.Exit(0)
}

// ServeConfig is how Serve serves plugins, for tests that serve a plugin
// inside their own process (go-plugin's ServeConfig.Test).
func ServeConfig(plugins plugin.PluginSet, logger hclog.Logger) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: plugins},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))...)
		},
		Logger: logger,
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
