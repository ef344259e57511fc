// Command clusterfile serves the built-in file membership provider from a
// binary of its own, for the conformance kit's run against a plugin binary.
package main

import (
	"github.com/sextantd/sextant/plugins/clusterfile"
	"github.com/sextantd/sextant/sdk/membership"
)

func main() { membership.Serve(clusterfile.Plugin) }
