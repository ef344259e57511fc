// Command pushrpc serves the built-in pushrpc plugin from a binary of its
// own, for the kit's tests of plugins given by path.
package main

import (
	"github.com/sextantd/sextant/plugins/pushrpc"
	"github.com/sextantd/sextant/sdk/push"
)

func main() { push.Serve(pushrpc.Plugin) }
