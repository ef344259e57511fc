package wire

import "github.com/hashicorp/go-plugin"

// servers build the plugin side of each kind's go-plugin glue around a
// Plugin value of that kind. The kind packages register theirs as they load,
// so that the conformance kits and the host's tests can serve a Plugin value
// in their own process while the kind packages export no go-plugin plumbing.
var servers = map[Kind]func(impl any) plugin.Plugin{}

// RegisterServer records how to serve Plugin values of kind k; the kind
// packages call it from init.
func RegisterServer(k Kind, serve func(impl any) plugin.Plugin) { servers[k] = serve }

// ServedSet is the plugin set that serves impl, a Plugin value of kind k (a
// push.Plugin for KindPush, ...), as that kind's Serve would.
func ServedSet(k Kind, impl any) plugin.PluginSet {
	return plugin.PluginSet{string(k): servers[k](impl)}
}
