// Command rpc is the smallest rpc push plugin, as a binary, for the kit's
// tests of plugins given by path: it sends each batch's
// NotifySubscriberRequest to its targets' connections. (The tests serve the
// same plugin in process: example_test.go's Plugin.)
package main

import (
	"context"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

type executor struct{ conns push.Connections }

func (e executor) Push(ctx context.Context, b push.Batch) []error {
	body, err := push.NotifyRequest(b)
	ids := make([]string, len(b.Targets))
	errs := make([]error, len(b.Targets))
	for i, t := range b.Targets {
		ids[i], errs[i] = t.ConnectionID, err
	}
	if err != nil {
		return errs
	}
	return e.conns.Request(ctx, push.NotifyRequestType, body, ids)
}

func main() {
	push.Serve(push.Plugin{
		Info: sdk.Info{Name: "rpc", Version: "0.0.1"},
		Role: push.RoleRPC,
		New:  func(_ []byte, host push.Host) (push.Executor, error) { return executor{host.Connections}, nil },
	})
}
