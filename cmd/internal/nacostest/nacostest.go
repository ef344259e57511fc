// Package nacostest drives the real sextant binary with the official Nacos Go
// SDK in end-to-end tests: clients of a test server, and watchers of what a
// subscription is pushed. A package importing it must not import Sextant's
// proto package: the SDK registers the same protobuf message names.
package nacostest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1clients "github.com/nacos-group/nacos-sdk-go/clients"
	v1naming "github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	v1constant "github.com/nacos-group/nacos-sdk-go/common/constant"
	v1util "github.com/nacos-group/nacos-sdk-go/util"
	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/util"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	v1vo "github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// AwaitTimeout bounds every wait for a push or a state.
const AwaitTimeout = 15 * time.Second

// sdkDir holds the SDK's logs and caches for the whole run: the SDK's logger
// is global and outlives any one test.
var sdkDir string

// Main runs a package's tests with a directory for the SDK's files, which it
// removes afterwards with the server binary. Call it from TestMain.
//
// Both SDKs find the machine's address once and keep it in a global
// without a lock: clients created at once by parallel tests race on it.
// Main finds it first, so that the clients only read it.
func Main(m *testing.M) {
	util.LocalIP()
	v1util.LocalIP()
	var err error
	if sdkDir, err = os.MkdirTemp("", "sextant-nacossdk"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	servertest.Main(m, func() { os.RemoveAll(sdkDir) })
}

// NewClient returns an SDK naming client of srv in namespace ns ("" = public),
// closed when the test ends.
func NewClient(t *testing.T, srv *servertest.Server, ns string) naming_client.INamingClient {
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

// NewV1Client returns a client of the Nacos Go SDK v1 (the 1.x HTTP API,
// with beats and a UDP push receiver) of the server at addr (host:port).
// The v1 SDK's clients cannot be closed: their beat and refresh goroutines
// run until the process ends.
func NewV1Client(t *testing.T, addr string) v1naming.INamingClient {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	client, err := v1clients.NewNamingClient(v1vo.NacosClientParam{
		ClientConfig: &v1constant.ClientConfig{
			TimeoutMs:            5000,
			NotLoadCacheAtStart:  true,
			UpdateCacheWhenEmpty: true,
			LogDir:               filepath.Join(sdkDir, "v1"),
			CacheDir:             filepath.Join(sdkDir, "v1"),
			LogLevel:             "error",
		},
		ServerConfigs: []v1constant.ServerConfig{{IpAddr: host, Port: uint64(p)}},
	})
	if err != nil {
		t.Fatalf("creating a v1 naming client: %v", err)
	}
	return client
}

// Watcher records what a subscription is pushed.
type Watcher struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every push
	latest  []model.Instance
}

// Subscribe subscribes client to a service and returns a watcher of its pushes.
func Subscribe(t *testing.T, client naming_client.INamingClient, p vo.SubscribeParam) *Watcher {
	t.Helper()
	w := &Watcher{changed: make(chan struct{})}
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

// Await waits until the latest push satisfies ok and returns it.
func (w *Watcher) Await(t *testing.T, what string, ok func([]model.Instance) bool) []model.Instance {
	t.Helper()
	is, err := w.Wait(what, ok)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// AwaitCount waits until the latest push holds n instances.
func (w *Watcher) AwaitCount(t *testing.T, n int) []model.Instance {
	t.Helper()
	return w.Await(t, fmt.Sprintf("%d instances", n), CountIs(n))
}

// CountIs is a condition: a push of n instances.
func CountIs(n int) func([]model.Instance) bool {
	return func(is []model.Instance) bool { return len(is) == n }
}

// Wait is Await for any goroutine: it reports a timeout as an error.
func (w *Watcher) Wait(what string, ok func([]model.Instance) bool) ([]model.Instance, error) {
	deadline := time.After(AwaitTimeout)
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
			return nil, fmt.Errorf("no push with %s within %v; latest: %s", what, AwaitTimeout, Describe(latest))
		}
	}
}

// Describe renders instances for failure messages.
func Describe(is []model.Instance) string {
	parts := make([]string, len(is))
	for i, in := range is {
		parts[i] = fmt.Sprintf("%s:%d(%s)", in.Ip, in.Port, in.ClusterName)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Register registers an ephemeral, enabled, healthy instance.
func Register(t *testing.T, client naming_client.INamingClient, p vo.RegisterInstanceParam) {
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

// Addresses returns the sorted ip:port of each instance.
func Addresses(is []model.Instance) []string {
	out := make([]string, len(is))
	for i, in := range is {
		out[i] = fmt.Sprintf("%s:%d", in.Ip, in.Port)
	}
	slices.Sort(out)
	return out
}
