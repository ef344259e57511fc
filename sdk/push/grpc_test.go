package push

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk"
)

// fakeConnections answers for the host: connections named "bad" fail.
type fakeConnections struct{ seen chan []byte }

func (f *fakeConnections) Request(ctx context.Context, typ string, body []byte, ids []string) []error {
	f.seen <- body
	errs := make([]error, len(ids))
	for i, id := range ids {
		if id == "bad" {
			errs[i] = errors.New("no answer from bad")
		}
	}
	return errs
}

// relay is an spi executor that sends each batch's data through the host.
type relay struct{ host Host }

func (r relay) Push(ctx context.Context, b Batch) []error {
	ids := make([]string, len(b.Targets))
	for i, t := range b.Targets {
		ids[i] = t.ConnectionID
	}
	return r.host.Connections.Request(ctx, "Test", b.ServiceInfo, ids)
}

func (r relay) Interest() Interest {
	return Interest{Apps: []string{"web"}, Subscribers: true, Observe: true}
}

var relayPlugin = Plugin{
	Info: sdk.Info{Name: "relay", Version: "0.1.0", Config: sdk.Schema{{Key: "greeting", Type: sdk.String, Required: true}}},
	Role: RoleSPI,
	New: func(config []byte, host Host) (Executor, error) {
		var cfg struct {
			Greeting string `json:"greeting"`
		}
		if err := sdk.DecodeConfig(config, &cfg); err != nil {
			return nil, err
		}
		return relay{host: host}, nil
	},
}

// dispense serves p over a real go-plugin gRPC connection and returns the
// host's client.
func dispense(t *testing.T, p Plugin) *Client {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{pluginName: &grpcPlugin{impl: p}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(DispenseName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*Client)
}

func TestPluginOverGRPC(t *testing.T) {
	ctx := context.Background()
	c := dispense(t, relayPlugin)

	desc, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Description{Info: sdk.Info{Name: "relay", Version: "0.1.0", Config: relayPlugin.Config}, Kind: sdk.KindPush, Role: RoleSPI}
	if !reflect.DeepEqual(desc, want) {
		t.Fatalf("Describe = %+v, want %+v", desc, want)
	}

	conns := &fakeConnections{seen: make(chan []byte, 1)}
	interest, err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), conns)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(interest, relay{}.Interest()) {
		t.Fatalf("Configure returned the interest %+v", interest)
	}

	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	exec, err := c.Executor(streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	pushCtx, cancelPush := context.WithTimeout(ctx, 5*time.Second)
	defer cancelPush()
	errs := exec.Push(pushCtx, Batch{
		Service:     Service{Namespace: "public", Group: "g", Name: "s"},
		ServiceInfo: []byte(`{"hosts":[]}`),
		Targets:     []Target{{ConnectionID: "good"}, {ConnectionID: "bad"}, {ConnectionID: "good-too"}},
	})
	if len(errs) != 3 || errs[0] != nil || errs[1] == nil || errs[1].Error() != "no answer from bad" || errs[2] != nil {
		t.Fatalf("results %v", errs)
	}
	if body := <-conns.seen; string(body) != `{"hosts":[]}` {
		t.Fatalf("the host was sent %s", body)
	}

	cancel()
	select {
	case <-exec.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the executor stream did not end with its context")
	}
	if errs := exec.Push(pushCtx, Batch{Targets: []Target{{}}}); errs[0] == nil {
		t.Fatal("a push on an ended stream succeeded")
	}
}

func TestConfigureRefusesBadConfigurationAndRepeats(t *testing.T) {
	ctx := context.Background()
	c := dispense(t, relayPlugin)
	conns := &fakeConnections{seen: make(chan []byte, 1)}
	if _, err := c.Configure(ctx, []byte(`{"greting":"hi"}`), conns); err == nil {
		t.Fatal("a configuration the plugin cannot decode was accepted")
	}
	if _, err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), conns); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), conns); err == nil {
		t.Fatal("a second Configure was accepted")
	}
}
