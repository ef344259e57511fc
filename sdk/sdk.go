// Package sdk is what every Sextant plugin author imports beside the package
// of the plugin's kind — sdk/push, sdk/membership or sdk/transport, each of
// which holds the interface to implement, its types and Serve: how a plugin
// describes itself (Info) and its configuration block (Schema), and how it
// decodes that block (DecodeConfig).
//
// A plugin is its own process, started by the Sextant server through
// HashiCorp go-plugin and spoken to over gRPC. It imports sdk and never
// anything under core/.
package sdk

// MaxMessageSize bounds one message between server and plugin, in bytes: a
// push batch carries a whole service's data, and a snapshot chunk or a
// cluster call's payload must fit in one.
const MaxMessageSize = 256 << 20

// Info describes a plugin.
type Info struct {
	Name    string
	Version string
	// Config declares the keys of the plugin's configuration block; the host
	// checks the user's block against it before starting the plugin.
	Config Schema
}
