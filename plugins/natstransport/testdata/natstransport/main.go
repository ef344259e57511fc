// Command natstransport serves the built-in natstransport plugin from a
// binary of its own, for the conformance kit's run on a plugin given by path.
package main

import (
	"github.com/sextantd/sextant/plugins/natstransport"
	"github.com/sextantd/sextant/sdk/transport"
)

func main() { transport.Serve(natstransport.Plugin) }
