// Package pushrpc is the built-in executor for subscribers on gRPC connections
// (the Nacos 2.x SDKs): it wraps a batch's data in one NotifySubscriberRequest
// and has the host send it to every target's connection. It is written against
// sdk alone, like any third party's plugin.
package pushrpc

import (
	"context"
	"encoding/json"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

// NotifyRequestType is the Nacos class name of a server push.
const NotifyRequestType = "NotifySubscriberRequest"

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

// notifyBody is the JSON of a NotifySubscriberRequest minus its requestId.
type notifyBody struct {
	Module      string          `json:"module"`
	Namespace   string          `json:"namespace"`
	ServiceName string          `json:"serviceName"`
	GroupName   string          `json:"groupName"`
	ServiceInfo json.RawMessage `json:"serviceInfo"`
}

// Push sends b's data to every target; one error per target.
func (e *Executor) Push(ctx context.Context, b push.Batch) []error {
	body, err := json.Marshal(notifyBody{
		Module:      "naming",
		Namespace:   b.Service.Namespace,
		ServiceName: b.Service.Name,
		GroupName:   b.Service.Group,
		ServiceInfo: b.ServiceInfo,
	})
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
	return e.conns.Request(ctx, NotifyRequestType, body, ids)
}
