package host_test

import (
	"context"
	"testing"

	"github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/internal/wire"
)

func TestMain(m *testing.M) {
	// go-plugin's broker forgets a connection it was told of 5 s later.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/go-plugin.(*GRPCBroker).timeoutWait"))
}

// bothSides is one kind's go-plugin glue with the plugin's side serving and
// the host's side dispensing, for go-plugin's in-process test connection,
// which uses one plugin set for both.
type bothSides struct {
	plugin.NetRPCUnsupportedPlugin
	served, host plugin.GRPCPlugin
}

func (b bothSides) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	return b.served.GRPCServer(broker, s)
}

func (b bothSides) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return b.host.GRPCClient(ctx, broker, c)
}

// dispense serves impl, a Plugin value of kind k, over a real go-plugin gRPC
// connection in this process and returns the host's side of it.
func dispense[T any](t testing.TB, k host.Kind, impl any) T {
	t.Helper()
	set := plugin.PluginSet{string(k): bothSides{
		served: wire.ServedSet(k, impl)[string(k)].(plugin.GRPCPlugin),
		host:   host.PluginSet()[string(k)].(plugin.GRPCPlugin),
	}}
	client, _ := plugin.TestPluginGRPCConn(t, false, set)
	t.Cleanup(func() { client.Close() }) // which stops the plugin's server too
	raw, err := host.Dispense(client, k)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(T)
}
