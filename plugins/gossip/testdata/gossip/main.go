// Command gossip serves the built-in gossip membership provider from a
// binary of its own, for the conformance kit's run against a plugin binary.
package main

import (
	"github.com/sextantd/sextant/plugins/gossip"
	"github.com/sextantd/sextant/sdk/membership"
)

func main() { membership.Serve(gossip.Plugin) }
