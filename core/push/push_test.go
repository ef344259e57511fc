package push

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is an executor that records batches and fails the targets fail
// says to.
type recorder struct {
	mu      sync.Mutex
	fail    func(sdkpush.Target) bool
	batches chan sdkpush.Batch
}

func (r *recorder) Push(_ context.Context, b sdkpush.Batch) []error {
	errs := make([]error, len(b.Targets))
	r.mu.Lock()
	for i, t := range b.Targets {
		if r.fail != nil && r.fail(t) {
			errs[i] = errors.New("refused")
		}
	}
	r.mu.Unlock()
	r.batches <- b
	return errs
}

func (r *recorder) setFail(f func(sdkpush.Target) bool) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

// next returns the next batch, failing the test after a while.
func (r *recorder) next(t testing.TB) sdkpush.Batch {
	t.Helper()
	select {
	case b := <-r.batches:
		return b
	case <-time.After(5 * time.Second):
		t.Fatal("no push")
		return sdkpush.Batch{}
	}
}

// awaitPushed takes batches until each of ids has been pushed to.
func (r *recorder) awaitPushed(t *testing.T, ids ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, id := range ids {
		left[id] = true
	}
	for len(left) > 0 {
		for _, target := range r.next(t).Targets {
			delete(left, target.ClientID)
		}
	}
}

type fixture struct {
	registry *naming.Registry
	exec     *recorder // the rpc executor
	pusher   *Pusher
}

func newRecorder() *recorder { return &recorder{batches: make(chan sdkpush.Batch, 100)} }

// fixedRoutes are executors that are always the same.
type fixedRoutes []Route

func (r fixedRoutes) Routes() []Route { return r }

// start runs a pusher whose rpc executor is the fixture's recorder, plus the
// extra routes given.
func start(t testing.TB, delay, retry time.Duration, extra ...Route) *fixture {
	t.Helper()
	return startWith(t, func(c *Config) { c.Delay, c.RetryDelay = delay, retry }, extra...)
}

// startWith is start with the configuration set sets.
func startWith(t testing.TB, set func(*Config), extra ...Route) *fixture {
	t.Helper()
	ctx := context.Background()
	bus := notify.New(notify.Config{})
	registry := naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10}, Bus: bus})
	exec := newRecorder()
	routes := append([]Route{{Name: "rpc", Role: sdkpush.RoleRPC, Executor: exec}}, extra...)
	cfg := Config{Registry: registry, Bus: bus, Executors: fixedRoutes(routes), Timeout: time.Second,
		Logger: hclog.NewNullLogger(), Metrics: prometheus.NewRegistry()}
	set(&cfg)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(ctx); err != nil {
			t.Error(err)
		}
		if err := bus.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return &fixture{registry: registry, exec: exec, pusher: p}
}

var svc = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}

func instance(ip string) naming.Instance {
	return naming.Instance{ID: ip, IP: ip, Port: 80, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, Cluster: "DEFAULT"}
}

func (f *fixture) connect(t testing.TB, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := f.registry.Connect(id, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) subscribe(t testing.TB, id, clusters string) {
	t.Helper()
	f.subscribeAs(t, id, naming.Subscription{Clusters: clusters})
}

func (f *fixture) subscribeAs(t testing.TB, id string, sub naming.Subscription) {
	t.Helper()
	if _, err := f.registry.Subscribe(context.Background(), id, svc, sub); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) register(t testing.TB, id, ip string) {
	t.Helper()
	if err := f.registry.Register(context.Background(), id, svc, instance(ip)); err != nil {
		t.Fatal(err)
	}
}

func hostIPs(t *testing.T, b sdkpush.Batch) []string {
	t.Helper()
	var info struct{ Hosts []struct{ IP string } }
	if err := json.Unmarshal(b.ServiceInfo, &info); err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, h := range info.Hosts {
		ips = append(ips, h.IP)
	}
	return ips
}

func targets(b sdkpush.Batch) []string {
	var ids []string
	for _, t := range b.Targets {
		ids = append(ids, t.ClientID)
	}
	slices.Sort(ids)
	return ids
}

func TestSubscribePushesOnlyTheNewSubscriber(t *testing.T) {
	f := start(t, 0, time.Hour)
	f.connect(t, "s1", "s2")
	f.subscribe(t, "s1", "")
	if b := f.exec.next(t); !slices.Equal(targets(b), []string{"s1"}) {
		t.Fatalf("first subscription pushed to %v", targets(b))
	}
	f.subscribe(t, "s2", "")
	if b := f.exec.next(t); !slices.Equal(targets(b), []string{"s2"}) {
		t.Fatalf("second subscription pushed to %v", targets(b))
	}
}

func TestChangesInsideTheWindowMergeIntoOnePush(t *testing.T) {
	const window = 300 * time.Millisecond
	f := start(t, window, time.Hour)
	f.connect(t, "sub", "p1", "p2", "p3")
	f.subscribe(t, "sub", "")
	f.exec.next(t) // the subscription's own push

	began := time.Now()
	f.register(t, "p1", "10.0.0.1")
	f.register(t, "p2", "10.0.0.2")
	f.register(t, "p3", "10.0.0.3")
	b := f.exec.next(t)
	if waited := time.Since(began); waited < window {
		t.Fatalf("pushed after %v, inside the merge window", waited)
	}
	if ips := hostIPs(t, b); len(ips) != 3 {
		t.Fatalf("one push should carry all three changes, got %v", ips)
	}
	// The next push is caused by the next change, not by the merged ones.
	f.register(t, "p1", "10.0.0.4")
	if ips := hostIPs(t, f.exec.next(t)); !slices.Contains(ips, "10.0.0.4") {
		t.Fatalf("the change after the window was not pushed: %v", ips)
	}
}

func TestBatchesPerClusterFilter(t *testing.T) {
	f := start(t, 0, time.Hour)
	f.connect(t, "all-1", "all-2", "west", "p")
	f.subscribe(t, "all-1", "")
	f.subscribe(t, "all-2", "")
	f.subscribe(t, "west", "west")
	f.exec.awaitPushed(t, "all-1", "all-2", "west")
	f.register(t, "p", "10.0.0.1") // cluster DEFAULT
	got := map[string][]string{}
	for range 2 {
		b := f.exec.next(t)
		got[b.Clusters] = targets(b)
		if b.Clusters == "west" && len(hostIPs(t, b)) != 0 {
			t.Fatalf("the west view holds a DEFAULT instance: %v", hostIPs(t, b))
		}
	}
	if !slices.Equal(got[""], []string{"all-1", "all-2"}) || !slices.Equal(got["west"], []string{"west"}) {
		t.Fatalf("batches by view: %v", got)
	}
}

func TestFailedTargetsAreRetriedAlone(t *testing.T) {
	const retry = 100 * time.Millisecond
	f := start(t, 0, retry)
	f.connect(t, "ok", "flaky", "p")
	f.subscribe(t, "ok", "")
	f.subscribe(t, "flaky", "")
	f.exec.awaitPushed(t, "ok", "flaky")

	f.exec.setFail(func(t sdkpush.Target) bool { return t.ClientID == "flaky" })
	f.register(t, "p", "10.0.0.1")
	if b := f.exec.next(t); !slices.Equal(targets(b), []string{"flaky", "ok"}) {
		t.Fatalf("first attempt to %v", targets(b))
	}
	failedAt := time.Now()
	if b := f.exec.next(t); !slices.Equal(targets(b), []string{"flaky"}) {
		t.Fatalf("retry to %v, want only the failed target", targets(b))
	}
	if waited := time.Since(failedAt); waited < retry/2 {
		t.Fatalf("retried after %v, before the retry delay", waited)
	}
	// The retry carries the data current at retry time.
	f.exec.setFail(func(sdkpush.Target) bool { return false })
	f.register(t, "p", "10.0.0.2")
	for {
		b := f.exec.next(t)
		if ips := hostIPs(t, b); slices.Equal(ips, []string{"10.0.0.2"}) && len(b.Targets) == 2 {
			break
		}
	}
}

func TestSPIExecutorServesTheSubscribersItWants(t *testing.T) {
	spi := newRecorder()
	f := start(t, 0, time.Hour, Route{Name: "shop-push", Role: sdkpush.RoleSPI, Executor: spi,
		Interest: sdkpush.Interest{Apps: []string{"shop"}, Subscribers: true}})
	f.connect(t, "shop-client", "other-client")
	f.subscribeAs(t, "shop-client", naming.Subscription{App: "shop"})
	if b := spi.next(t); !slices.Equal(targets(b), []string{"shop-client"}) || b.Targets[0].App != "shop" {
		t.Fatalf("the spi executor got %+v", b.Targets)
	}
	f.subscribeAs(t, "other-client", naming.Subscription{App: "billing"})
	if b := f.exec.next(t); !slices.Equal(targets(b), []string{"other-client"}) {
		t.Fatalf("the rpc executor got %v", targets(b))
	}
}

func TestObserverIsPushedEveryChangeAndRetried(t *testing.T) {
	hook := newRecorder()
	hook.setFail(func(sdkpush.Target) bool { return true })
	f := start(t, 0, 50*time.Millisecond, Route{Name: "hook", Role: sdkpush.RoleSPI, Executor: hook,
		Interest: sdkpush.Interest{Services: []string{"ord*"}, Observe: true}})
	f.connect(t, "p")
	f.register(t, "p", "10.0.0.1") // no subscriber at all
	b := hook.next(t)
	if !slices.Equal(targets(b), []string{"observer:hook"}) || !slices.Equal(hostIPs(t, b), []string{"10.0.0.1"}) {
		t.Fatalf("the observer got %v with %v", targets(b), hostIPs(t, b))
	}
	hook.setFail(nil)
	if b := hook.next(t); !slices.Equal(targets(b), []string{"observer:hook"}) {
		t.Fatalf("the failed observer push was not retried: %v", targets(b))
	}
	if err := f.registry.Register(context.Background(), "p", naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "users"},
		instance("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	f.register(t, "p", "10.0.0.3") // the next push is for orders again, not users
	if b := hook.next(t); b.Service.Name != "orders" {
		t.Fatalf("the observer was pushed %s, which its interest excludes", b.Service.Name)
	}
}

// gate is an executor whose pushes wait until the test lets them through.
type gate struct {
	batches chan sdkpush.Batch
	open    chan struct{}
}

func (g *gate) Push(ctx context.Context, b sdkpush.Batch) []error {
	g.batches <- b
	select {
	case <-g.open:
	case <-ctx.Done():
	}
	return make([]error, len(b.Targets))
}

func TestNextPushWaitsForThePreviousOne(t *testing.T) {
	g := &gate{batches: make(chan sdkpush.Batch, 10), open: make(chan struct{})}
	f := start(t, 0, time.Hour, Route{Name: "slow", Role: sdkpush.RoleSPI, Executor: g,
		Interest: sdkpush.Interest{Apps: []string{"slow-app"}, Subscribers: true}})
	f.connect(t, "sub", "p")
	f.subscribeAs(t, "sub", naming.Subscription{App: "slow-app"})
	<-g.batches // the subscription's push, still unacknowledged

	began := time.Now()
	f.register(t, "p", "10.0.0.1")
	f.register(t, "p", "10.0.0.2")
	var next sdkpush.Batch
	select {
	case next = <-g.batches:
	case <-time.After(5 * time.Second):
		t.Fatal("no push after the order window")
	}
	if waited := time.Since(began); waited < orderWindow/2 {
		t.Fatalf("the next push went out %v after the changes, while the previous one was unacknowledged", waited)
	}
	if ips := hostIPs(t, next); !slices.Equal(ips, []string{"10.0.0.2"}) {
		t.Fatalf("the waiting changes were pushed as %v, want the latest state alone", ips)
	}
	select {
	case extra := <-g.batches:
		t.Fatalf("a second push %v for changes already merged", hostIPs(t, extra))
	default:
	}
	close(g.open)
}
