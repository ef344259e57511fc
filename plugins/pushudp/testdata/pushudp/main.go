// Command pushudp serves the built-in udp push plugin from a binary of its
// own, for the conformance kit's run against a plugin binary.
package main

import (
	"github.com/sextantd/sextant/plugins/pushudp"
	"github.com/sextantd/sextant/sdk/push"
)

func main() { push.Serve(pushudp.Plugin) }
