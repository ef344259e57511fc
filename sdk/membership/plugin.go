package membership

import (
	"github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk"
)

// pluginName is the key of membership plugins in a go-plugin plugin set.
const pluginName = "membership"

// Set returns the go-plugin plugin set that serves p.
func (p Plugin) Set() plugin.PluginSet {
	return plugin.PluginSet{pluginName: &grpcPlugin{impl: p}}
}

// Serve runs a membership plugin process; call it from the plugin's main.
func Serve(p Plugin) {
	sdk.Serve(p.Set(), sdk.Logger(p.Name))
}
