package pushtest_test

import (
	"context"
	"testing"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/push/pushtest"
)

// Plugin is a push plugin, as its own package defines it: the smallest rpc
// plugin, which hands each batch's NotifySubscriberRequest to the host's
// Connections. (The kit's own tests check it too.)
var Plugin = push.Plugin{
	Info: sdk.Info{Name: "notify", Version: "1.0.0"},
	Role: push.RoleRPC,
	New: func(_ []byte, host push.Host) (push.Executor, error) {
		return notifier{host.Connections}, nil
	},
}

// notifier is Plugin's executor.
type notifier struct{ conns push.Connections }

// Push sends b's data to every target's connection; one error per target.
func (n notifier) Push(ctx context.Context, b push.Batch) []error {
	body, err := push.NotifyRequest(b)
	ids := make([]string, len(b.Targets))
	errs := make([]error, len(b.Targets))
	for i, t := range b.Targets {
		ids[i], errs[i] = t.ConnectionID, err
	}
	if err != nil {
		return errs
	}
	return n.conns.Request(ctx, push.NotifyRequestType, body, ids)
}

// The plugin's conformance test, in its own package, is one call: the kit
// serves Plugin in the test process and runs each check as a subtest.
func Example() {
	var t *testing.T // TestConformance's
	pushtest.Run(t, pushtest.Options{
		Plugin: &Plugin, // or Binary: the path of the built plugin
	})
}
