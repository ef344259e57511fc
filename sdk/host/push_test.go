package host_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/push"
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
type relay struct{ host push.Host }

func (r relay) Push(ctx context.Context, b push.Batch) []error {
	ids := make([]string, len(b.Targets))
	for i, t := range b.Targets {
		ids[i] = t.ConnectionID
	}
	return r.host.Connections.Request(ctx, "Test", b.ServiceInfo, ids)
}

func (r relay) Interest() push.Interest {
	return push.Interest{Apps: []string{"web"}, Subscribers: true, Observe: true}
}

var relayPlugin = push.Plugin{
	Info: sdk.Info{Name: "relay", Version: "0.1.0", Config: sdk.Schema{{Key: "greeting", Type: sdk.String, Required: true}}},
	Role: push.RoleSPI,
	New: func(config []byte, h push.Host) (push.Executor, error) {
		var cfg struct {
			Greeting string `json:"greeting"`
		}
		if err := sdk.DecodeConfig(config, &cfg); err != nil {
			return nil, err
		}
		return relay{host: h}, nil
	},
}

func dispensePush(t testing.TB, p push.Plugin) *host.Push {
	c := dispense[*host.Push](t, host.KindPush, p)
	t.Cleanup(func() {
		// A plugin process exits with its host; in a test, the plugin's
		// connection to the host's services closes with its push stream.
		ctx, cancel := context.WithCancel(context.Background())
		if exec, err := c.Executor(ctx); err == nil {
			cancel()
			<-exec.Done()
		}
		cancel()
	})
	return c
}

func TestPushPluginOverGRPC(t *testing.T) {
	ctx := context.Background()
	c := dispensePush(t, relayPlugin)

	desc, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := host.Description{Info: sdk.Info{Name: "relay", Version: "0.1.0", Config: relayPlugin.Config}, Kind: host.KindPush, Role: push.RoleSPI}
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
	errs := exec.Push(pushCtx, push.Batch{
		Service:     push.Service{Namespace: "public", Group: "g", Name: "s"},
		ServiceInfo: []byte(`{"hosts":[]}`),
		Targets:     []push.Target{{ConnectionID: "good"}, {ConnectionID: "bad"}, {ConnectionID: "good-too"}},
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
	if errs := exec.Push(pushCtx, push.Batch{Targets: []push.Target{{}}}); errs[0] == nil {
		t.Fatal("a push on an ended stream succeeded")
	}
}

func TestPushConfigureRefusesBadConfigurationAndRepeats(t *testing.T) {
	ctx := context.Background()
	c := dispensePush(t, relayPlugin)
	conns := &fakeConnections{seen: make(chan []byte, 1)}
	_, err := c.Configure(ctx, []byte(`{"greting":"hi"}`), conns)
	if err == nil {
		t.Fatal("a configuration the plugin cannot decode was accepted")
	}
	// The plugin's own words reach the user, without gRPC's around them.
	if want := `starting the executor: json: unknown field "greting"`; err.Error() != want {
		t.Errorf("Configure failed with %q, want %q", err, want)
	}
	if _, err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), conns); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), conns); err == nil {
		t.Fatal("a second Configure was accepted")
	}
}
