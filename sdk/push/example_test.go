package push_test

import (
	"context"
	"fmt"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

// logged is an executor that hands every batch to the server's gRPC
// connections as a Nacos push, as the built-in rpc executor does.
type logged struct{ host push.Host }

func (e logged) Push(ctx context.Context, b push.Batch) []error {
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
	return e.host.Connections.Request(ctx, push.NotifyRequestType, body, ids)
}

// printConnections stands in for the server's connections: it prints what
// it is asked to send.
type printConnections struct{}

func (printConnections) Request(_ context.Context, typ string, body []byte, ids []string) []error {
	fmt.Printf("%s to %v: %s\n", typ, ids, body)
	return make([]error, len(ids))
}

// A push plugin is a Plugin value; its main calls push.Serve(Plugin). Here
// the executor is built as the server builds it, and handed one batch.
func Example() {
	plugin := push.Plugin{
		Info: sdk.Info{Name: "logged", Version: "1.0.0"},
		Role: push.RoleRPC,
		New: func(_ []byte, host push.Host) (push.Executor, error) {
			return logged{host: host}, nil
		},
	}
	// In the plugin's main: push.Serve(plugin)

	exec, _, err := push.NewExecutor(plugin, []byte("{}"), push.Host{Connections: printConnections{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	errs := exec.Push(context.Background(), push.Batch{
		Service:     push.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"},
		ServiceInfo: []byte(`{"name":"orders","hosts":[]}`),
		Targets:     []push.Target{{ClientID: "c1", ConnectionID: "conn-1"}},
	})
	fmt.Println("errors:", errs)
	// Output:
	// NotifySubscriberRequest to [conn-1]: {"module":"naming","namespace":"public","serviceName":"orders","groupName":"DEFAULT_GROUP","serviceInfo":{"name":"orders","hosts":[]}}
	// errors: [<nil>]
}
