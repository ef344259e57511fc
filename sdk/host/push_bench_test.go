package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

// acked answers every connection at once, as if each client acknowledged.
type acked struct{}

func (acked) Request(_ context.Context, _ string, _ []byte, ids []string) []error {
	return make([]error, len(ids))
}

// notifier is an rpc executor like pushrpc: one NotifySubscriberRequest for
// the whole batch, sent to every target's connection through the host.
type notifier struct{ host push.Host }

func (n notifier) Push(ctx context.Context, b push.Batch) []error {
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
	return n.host.Connections.Request(ctx, push.NotifyRequestType, body, ids)
}

var notifierPlugin = push.Plugin{
	Info: sdk.Info{Name: "notifier", Version: "0.1.0"},
	Role: push.RoleRPC,
	New:  func(_ []byte, h push.Host) (push.Executor, error) { return notifier{host: h}, nil },
}

// benchBatch is one service's push to n subscribers, with a ServiceInfo of
// ten instances.
func benchBatch(n int) push.Batch {
	b := push.Batch{
		Service: push.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "bench"},
		Targets: make([]push.Target, n),
	}
	hosts := make([]string, 10)
	for i := range hosts {
		hosts[i] = fmt.Sprintf(`{"ip":"10.0.0.%d","port":8080,"weight":1.0,"healthy":true,"enabled":true,"ephemeral":true,`+
			`"clusterName":"DEFAULT","serviceName":"DEFAULT_GROUP@@bench","metadata":{"version":"1.0.%d"}}`, i, i)
	}
	b.ServiceInfo = fmt.Appendf(nil, `{"name":"bench","groupName":"DEFAULT_GROUP","clusters":"","cacheMillis":10000,`+
		`"hosts":[%s],"lastRefTime":1764668400000,"checksum":"","allIPs":false,"reachProtectionThreshold":false,"valid":true}`,
		strings.Join(hosts, ","))
	for i := range b.Targets {
		id := fmt.Sprintf("1764668400000_127.0.0.1_%d", 40000+i)
		b.Targets[i] = push.Target{ClientID: id, ConnectionID: id, App: "bench"}
	}
	return b
}

// BenchmarkPushHop measures one batch to 1,000 subscribers through the push
// plugin protocol (host → plugin → host's connections → results back) with
// connections that acknowledge at once, against the same executor called in
// the host's process: the cost of running the executor out of process.
func BenchmarkPushHop(b *testing.B) {
	batch := benchBatch(1000)
	b.Run("in-process", func(b *testing.B) {
		exec := notifier{host: push.Host{Connections: acked{}}}
		b.ReportAllocs()
		for b.Loop() {
			if errs := exec.Push(context.Background(), batch); errs[0] != nil {
				b.Fatal(errs[0])
			}
		}
	})
	b.Run("out-of-process", func(b *testing.B) {
		c := dispensePush(b, notifierPlugin)
		ctx := context.Background()
		if _, err := c.Configure(ctx, []byte(`{}`), acked{}); err != nil {
			b.Fatal(err)
		}
		exec, err := c.Executor(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if errs := exec.Push(ctx, batch); errs[0] != nil {
				b.Fatal(errs[0])
			}
		}
	})
}
