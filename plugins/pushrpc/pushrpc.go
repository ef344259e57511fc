// Package pushrpc is the built-in executor for subscribers on gRPC connections
// (the Nacos 2.x SDKs): it wraps a batch's data in one NotifySubscriberRequest
// and has the host send it to every target's connection. It is written against
// sdk alone, like any third party's plugin.
package pushrpc

import (
	"context"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

// Plugin is the executor as a push plugin serving the rpc role. It takes no
// configuration.
var Plugin = push.Plugin{
	Info: sdk.Info{Name: "pushrpc", Version: "1.0.0"},
	Role: push.RoleRPC,
	New: func(_ []byte, host push.Host) (push.Executor, error) {
		return New(host.Connections), nil
	},
}

// Executor pushes to gRPC client connections.
type Executor struct {
	conns push.Connections
}

// New returns an executor that sends through conns.
func New(conns push.Connections) *Executor {
	return &Executor{conns: conns}
}

// Push sends b's data to every target; one error per target.
func (e *Executor) Push(ctx context.Context, b push.Batch) []error {
	body, err := push.NotifyRequest(b)
	if err != nil {
		errs := make([]error, len(b.Targets))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	ids := make([]string, len(b.Targets))
	for i, t := range b.Targets {
		ids[i] = t.ConnectionID
	}
	return e.conns.Request(ctx, push.NotifyRequestType, body, ids)
}
