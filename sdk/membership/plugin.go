package membership

import (
	"github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk/internal/wire"
)

// Serve runs a membership plugin process; call it from the plugin's main. It
// never returns: the process exits when the server stops it, or soon after
// the server dies.
func Serve(p Plugin) {
	wire.Serve(plugin.PluginSet{string(wire.KindMembership): &grpcPlugin{impl: p}}, wire.Logger(p.Name))
}
