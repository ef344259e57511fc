package transport_test

import (
	"context"
	"fmt"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/transport"
)

// mirror is a transport whose only peer is its own node: a call to any
// target is handed to this node's Inbound, as if the target had sent it. A
// real transport dials the peer at target instead (see plugins/grpctransport).
type mirror struct {
	host transport.Host
	self string
}

func (m *mirror) Listen(_ context.Context, _, self string) error {
	m.self = self
	return nil
}

func (m *mirror) Call(ctx context.Context, _, kind string, payload []byte) ([]byte, error) {
	return m.host.Inbound.Handle(ctx, m.self, kind, payload)
}

func (m *mirror) Snapshot(ctx context.Context, _ string, fn func([]byte) error) error {
	return m.host.Inbound.Snapshot(ctx, m.self, fn)
}

func (m *mirror) Close() error { return nil }

// greeter is the server's side in this example: what peers' messages reach.
type greeter struct{}

func (greeter) Handle(_ context.Context, from, kind string, payload []byte) ([]byte, error) {
	return fmt.Appendf(nil, "%s from %s: %s", kind, from, payload), nil
}

func (greeter) Snapshot(_ context.Context, _ string, fn func([]byte) error) error {
	return fn([]byte("the whole registry"))
}

// A transport plugin is a Plugin value; its main calls
// transport.Serve(Plugin). Here the transport is built as the server builds
// it, listens, and makes a call and a snapshot.
func Example() {
	plugin := transport.Plugin{
		Info: sdk.Info{Name: "mirror", Version: "1.0.0"},
		New: func(_ []byte, host transport.Host) (transport.Transport, error) {
			return &mirror{host: host}, nil
		},
	}
	// In the plugin's main: transport.Serve(plugin)

	tr, err := transport.NewTransport(plugin, []byte("{}"), transport.Host{Inbound: greeter{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	ctx := context.Background()
	if err := tr.Listen(ctx, "127.0.0.1:9849", "10.0.0.1:8848"); err != nil {
		fmt.Println(err)
		return
	}
	answer, err := tr.Call(ctx, "10.0.0.2:9849", "sync", []byte("hello"))
	fmt.Printf("%s %v\n", answer, err)
	_ = tr.Snapshot(ctx, "10.0.0.2:9849", func(chunk []byte) error {
		fmt.Printf("chunk: %s\n", chunk)
		return nil
	})
	// Output:
	// sync from 10.0.0.1:8848: hello <nil>
	// chunk: the whole registry
}
