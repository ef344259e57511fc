// Package nacossdk_test drives the real sextant binary with the official Nacos
// Go SDK. It must not import Sextant's proto package: the SDK registers the
// same protobuf message names.
package nacossdk_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// awaitTimeout bounds every wait for a push or a state.
const awaitTimeout = 15 * time.Second

// sdkDir holds the SDK's logs and caches for the whole run: the SDK's logger
// is global and outlives any one test.
var sdkDir string

func TestMain(m *testing.M) {
	var err error
	if sdkDir, err = os.MkdirTemp("", "sextant-nacossdk"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(sdkDir)
	servertest.Main(m)
}

// startServer runs a server whose pushes are fast (merge window 20 ms).
func startServer(t *testing.T) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Options{Env: []string{"SEXTANT_PUSH_DELAY=20ms"}})
}

// newClient returns an SDK naming client of srv in namespace ns ("" = public),
// closed when the test ends.
func newClient(t *testing.T, srv *servertest.Server, ns string) naming_client.INamingClient {
	t.Helper()
	client, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(
			constant.WithNamespaceId(ns),
			constant.WithTimeoutMs(5000),
			constant.WithNotLoadCacheAtStart(true),
			constant.WithUpdateCacheWhenEmpty(true),
			constant.WithLogDir(sdkDir),
			constant.WithCacheDir(sdkDir),
			constant.WithLogLevel("error"),
		),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", uint64(srv.HTTPPort))},
	})
	if err != nil {
		t.Fatalf("creating a naming client: %v", err)
	}
	t.Cleanup(client.CloseClient)
	return client
}

// watcher records what a subscription is pushed.
type watcher struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every push
	latest  []model.Instance
}

// subscribe subscribes client to a service and returns a watcher of its pushes.
func subscribe(t *testing.T, client naming_client.INamingClient, p vo.SubscribeParam) *watcher {
	t.Helper()
	w := &watcher{changed: make(chan struct{})}
	p.SubscribeCallback = func(instances []model.Instance, err error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.latest = slices.Clone(instances)
		close(w.changed)
		w.changed = make(chan struct{})
	}
	if err := client.Subscribe(&p); err != nil {
		t.Fatalf("subscribing to %s: %v", p.ServiceName, err)
	}
	return w
}

// await waits until the latest push satisfies ok and returns it.
func (w *watcher) await(t *testing.T, what string, ok func([]model.Instance) bool) []model.Instance {
	t.Helper()
	is, err := w.wait(what, ok)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// awaitCount waits until the latest push holds n instances.
func (w *watcher) awaitCount(t *testing.T, n int) []model.Instance {
	t.Helper()
	return w.await(t, fmt.Sprintf("%d instances", n), countIs(n))
}

func countIs(n int) func([]model.Instance) bool {
	return func(is []model.Instance) bool { return len(is) == n }
}

// wait is await for any goroutine: it reports a timeout as an error.
func (w *watcher) wait(what string, ok func([]model.Instance) bool) ([]model.Instance, error) {
	deadline := time.After(awaitTimeout)
	for {
		w.mu.Lock()
		latest, changed := w.latest, w.changed
		w.mu.Unlock()
		if ok(latest) {
			return latest, nil
		}
		select {
		case <-changed:
		case <-deadline:
			return nil, fmt.Errorf("no push with %s within %v; latest: %s", what, awaitTimeout, describe(latest))
		}
	}
}

func describe(is []model.Instance) string {
	parts := make([]string, len(is))
	for i, in := range is {
		parts[i] = fmt.Sprintf("%s:%d(%s)", in.Ip, in.Port, in.ClusterName)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// register registers an ephemeral, enabled, healthy instance.
func register(t *testing.T, client naming_client.INamingClient, p vo.RegisterInstanceParam) {
	t.Helper()
	p.Enable, p.Healthy, p.Ephemeral = true, true, true
	if p.Weight == 0 {
		p.Weight = 1
	}
	ok, err := client.RegisterInstance(p)
	if err != nil || !ok {
		t.Fatalf("registering %s:%d to %s: ok=%v err=%v", p.Ip, p.Port, p.ServiceName, ok, err)
	}
}

// serviceName returns a service name unique to the test.
func serviceName(t *testing.T) string {
	return strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
}

// addresses returns the sorted ip:port of each instance.
func addresses(is []model.Instance) []string {
	out := make([]string, len(is))
	for i, in := range is {
		out[i] = fmt.Sprintf("%s:%d", in.Ip, in.Port)
	}
	slices.Sort(out)
	return out
}
