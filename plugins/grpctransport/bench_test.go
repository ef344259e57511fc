package grpctransport_test

import (
	"context"
	"net"
	"testing"

	"github.com/sextantd/sextant/plugins/grpctransport"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/transport/transporttest"
)

// echo is a node's server in the benchmarks: it answers with the payload.
type echo struct{}

func (echo) Handle(_ context.Context, _, _ string, payload []byte) ([]byte, error) {
	return payload, nil
}

func (echo) Snapshot(context.Context, string, func([]byte) error) error { return nil }

// pluginNode runs grpctransport as a plugin over a go-plugin connection, as
// the server does, listening on a free loopback port.
func pluginNode(b *testing.B, self string) (*host.RemoteTransport, string) {
	b.Helper()
	c := transporttest.Dispense(b, grpctransport.Plugin)
	ctx := context.Background()
	if err := c.Configure(ctx, []byte("{}"), echo{}); err != nil {
		b.Fatal(err)
	}
	tr, err := c.Transport(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	address := freeAddress(b)
	if err := tr.Listen(ctx, address, self); err != nil {
		b.Fatal(err)
	}
	return tr, address
}

func freeAddress(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// BenchmarkCallThroughPlugins measures small calls from one server to
// another, each node's transport a plugin: host, plugin, peer's plugin,
// peer's host and back.
func BenchmarkCallThroughPlugins(b *testing.B) {
	a, _ := pluginNode(b, "a")
	_, peer := pluginNode(b, "b")
	ctx := context.Background()
	payload := make([]byte, 256)
	if _, err := a.Call(ctx, peer, "echo", payload); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Call(ctx, peer, "echo", payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
