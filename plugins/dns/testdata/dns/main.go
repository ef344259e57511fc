// Command dns serves the built-in dns membership provider from a binary of
// its own, for the conformance kit's run against a plugin binary.
package main

import (
	"github.com/sextantd/sextant/plugins/dns"
	"github.com/sextantd/sextant/sdk/membership"
)

func main() { membership.Serve(dns.Plugin) }
