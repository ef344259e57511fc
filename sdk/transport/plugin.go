package transport

import (
	"github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk"
)

// pluginName is the key of transport plugins in a go-plugin plugin set.
const pluginName = "transport"

// DispenseName is the name a host dispenses a transport plugin by.
const DispenseName = pluginName

// Set returns the go-plugin plugin set that serves p.
func (p Plugin) Set() plugin.PluginSet {
	return plugin.PluginSet{pluginName: &grpcPlugin{impl: p}}
}

// PluginSet is the plugin set a host dispenses transport plugins from.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{pluginName: &grpcPlugin{}}
}

// Serve runs a transport plugin process; call it from the plugin's main.
func Serve(p Plugin) {
	sdk.Serve(p.Set(), sdk.Logger(p.Name))
}
