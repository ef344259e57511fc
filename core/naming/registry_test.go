package naming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/notify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testLimits = Limits{MaxNameLength: 512, MaxMetadataBytes: 1024, MaxBatchSize: 10}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// harness is a registry on a running bus, with the events it publishes.
type harness struct {
	*Registry
	changed    chan Service
	subscribed chan ServiceSubscribed
}

func newHarness(t *testing.T, now func() time.Time) *harness {
	t.Helper()
	bus := notify.New(notify.Config{})
	h := &harness{changed: make(chan Service, 4096), subscribed: make(chan ServiceSubscribed, 4096)}
	if err := notify.Subscribe(bus, "test", func(e ServiceChanged) { h.changed <- e.Service }); err != nil {
		t.Fatal(err)
	}
	if err := notify.Subscribe(bus, "test", func(e ServiceSubscribed) { h.subscribed <- e }); err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bus.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	h.Registry = NewRegistry(Config{Limits: testLimits, Bus: bus, Now: now})
	return h
}

// expectChanged reads the next ServiceChanged events and checks they are want.
func (h *harness) expectChanged(t *testing.T, want ...Service) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-h.changed:
			if got != w {
				t.Fatalf("ServiceChanged for %v, want %v", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no ServiceChanged for %v", w)
		}
	}
}

// expectNoChangeBefore proves nothing was published for an operation that
// should not publish: events of one type arrive in order, so the next one
// must be the marker's.
func (h *harness) expectNoChangeBefore(t *testing.T, marker Service) {
	t.Helper()
	h.connect(t, "marker-client")
	h.register(t, "marker-client", marker, inst("10.9.9.9", 9))
	h.expectChanged(t, marker)
}

func (h *harness) connect(t *testing.T, id string) {
	t.Helper()
	if err := h.Connect(id, nil); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
}

func (h *harness) register(t *testing.T, client string, svc Service, in Instance) {
	t.Helper()
	if err := h.Register(context.Background(), client, svc, in); err != nil {
		t.Fatalf("register: %v", err)
	}
}

// view decodes a service's view.
func (h *harness) view(t *testing.T, svc Service, f ViewFilter) serviceInfoJSON {
	t.Helper()
	var info serviceInfoJSON
	if err := json.Unmarshal(h.View(svc, f), &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// hosts returns the ip:port of each host in a service's full view.
func (h *harness) hosts(t *testing.T, svc Service) []string {
	t.Helper()
	var out []string
	for _, in := range h.view(t, svc, ViewFilter{}).Hosts {
		out = append(out, fmt.Sprintf("%s:%d", in.IP, in.Port))
	}
	return out
}

var svcA = Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "a"}
var svcB = Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "b"}

// inst returns a normalized, enabled, healthy instance.
func inst(ip string, port int) Instance {
	return Instance{ID: fmt.Sprintf("%s#%d", ip, port), IP: ip, Port: port, Weight: 1, Healthy: true, Enabled: true,
		Ephemeral: true, Cluster: DefaultCluster}
}

func TestRegisterReplacesTheClientsInstance(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c1")
	h.connect(t, "c2")
	h.register(t, "c1", svcA, inst("10.0.0.1", 80))
	h.register(t, "c2", svcA, inst("10.0.0.2", 80))
	h.register(t, "c1", svcA, inst("10.0.0.3", 80)) // one instance per service per client
	h.expectChanged(t, svcA, svcA, svcA)
	if got, want := h.hosts(t, svcA), []string{"10.0.0.2:80", "10.0.0.3:80"}; !slices.Equal(got, want) {
		t.Fatalf("hosts %v, want %v", got, want)
	}
	if st := h.Stats(); st != (Stats{Clients: 2, Services: 1, Instances: 2}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestBatchRegister(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "c1")
	if err := h.BatchRegister(ctx, "c1", svcA, []Instance{inst("10.0.0.1", 1), inst("10.0.0.2", 2), inst("10.0.0.3", 3)}); err != nil {
		t.Fatal(err)
	}
	if err := h.BatchRegister(ctx, "c1", svcA, []Instance{inst("10.0.0.4", 4)}); err != nil {
		t.Fatal(err)
	}
	if got, want := h.hosts(t, svcA), []string{"10.0.0.4:4"}; !slices.Equal(got, want) {
		t.Fatalf("a second batch should replace the first: hosts %v, want %v", got, want)
	}

	tooMany := make([]Instance, testLimits.MaxBatchSize+1)
	for i := range tooMany {
		tooMany[i] = inst("10.0.1.1", i)
	}
	for name, batch := range map[string][]Instance{
		"empty":      nil,
		"duplicates": {inst("10.0.0.1", 1), inst("10.0.0.2", 2), inst("10.0.0.1", 1)},
		"too many":   tooMany,
	} {
		var invalid *InvalidError
		if err := h.BatchRegister(ctx, "c1", svcA, batch); !errors.As(err, &invalid) || invalid.Field != "instances" {
			t.Errorf("%s batch: got %v, want an InvalidError for instances", name, err)
		}
	}
	if got, want := h.hosts(t, svcA), []string{"10.0.0.4:4"}; !slices.Equal(got, want) {
		t.Fatalf("refused batches changed the service: hosts %v, want %v", got, want)
	}
}

func TestDeregister(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "single")
	h.connect(t, "batch")
	h.register(t, "single", svcA, inst("10.0.0.1", 80))
	if err := h.BatchRegister(ctx, "batch", svcA, []Instance{inst("10.0.0.2", 80), inst("10.0.0.3", 80)}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA, svcA)

	// Of a batch, only the instance at the named address goes.
	if err := h.Deregister(ctx, "batch", svcA, inst("10.0.0.3", 80)); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	// As in Nacos, a client's single instance goes whatever address is named.
	if err := h.Deregister(ctx, "single", svcA, inst("192.168.0.1", 1)); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if got, want := h.hosts(t, svcA), []string{"10.0.0.2:80"}; !slices.Equal(got, want) {
		t.Fatalf("hosts %v, want %v", got, want)
	}
	// Deregistering what is not there succeeds and publishes nothing.
	if err := h.Deregister(ctx, "single", svcA, inst("10.0.0.1", 80)); err != nil {
		t.Fatal(err)
	}
	if err := h.Deregister(ctx, "batch", svcB, inst("10.0.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	h.expectNoChangeBefore(t, svcB)
}

func TestDisconnectRemovesEverything(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "gone")
	h.connect(t, "stays")
	h.register(t, "gone", svcA, inst("10.0.0.1", 80))
	h.register(t, "gone", svcB, inst("10.0.0.1", 81))
	h.register(t, "stays", svcA, inst("10.0.0.2", 80))
	if _, err := h.Subscribe(ctx, "gone", svcA, Subscription{}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA, svcB, svcA)

	if err := h.Disconnect(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	got := []Service{<-h.changed, <-h.changed}
	slices.SortFunc(got, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	if !slices.Equal(got, []Service{svcA, svcB}) {
		t.Fatalf("ServiceChanged after disconnect: %v", got)
	}
	if hosts := h.hosts(t, svcA); !slices.Equal(hosts, []string{"10.0.0.2:80"}) {
		t.Fatalf("hosts of a: %v", hosts)
	}
	if subs := h.Subscribers(svcA, nil); len(subs) != 0 {
		t.Fatalf("subscribers left: %v", subs)
	}
	if st := h.Stats(); st != (Stats{Clients: 1, Services: 1, Instances: 1}) {
		t.Fatalf("stats %+v", st)
	}
	if err := h.Register(ctx, "gone", svcA, inst("10.0.0.1", 80)); !errors.Is(err, ErrClientNotFound) {
		t.Fatalf("register on a disconnected client: %v", err)
	}
	if _, err := h.Subscribe(ctx, "never", svcA, Subscription{}); !errors.Is(err, ErrClientNotFound) {
		t.Fatalf("subscribe on an unknown client: %v", err)
	}
	if err := h.Connect("stays", nil); err == nil {
		t.Fatal("connecting an id twice succeeded")
	}
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "p")
	if err := h.Connect("s", map[string]string{"app": "shop"}); err != nil {
		t.Fatal(err)
	}
	h.register(t, "p", svcA, inst("10.0.0.1", 80))

	info, err := h.Subscribe(ctx, "s", svcA, Subscription{Clusters: "DEFAULT", App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	var decoded serviceInfoJSON
	if err := json.Unmarshal(info, &decoded); err != nil || len(decoded.Hosts) != 1 || decoded.Clusters != "DEFAULT" {
		t.Fatalf("subscribe returned %s (%v)", info, err)
	}
	if e := <-h.subscribed; e != (ServiceSubscribed{Service: svcA, ClientID: "s"}) {
		t.Fatalf("ServiceSubscribed %+v", e)
	}
	subs := h.Subscribers(svcA, nil)
	want := Subscriber{ClientID: "s", Subscription: Subscription{Clusters: "DEFAULT", App: "shop", Labels: map[string]string{"app": "shop"}}}
	if len(subs) != 1 || !reflect.DeepEqual(subs[0], want) {
		t.Fatalf("subscribers %+v, want %+v", subs, want)
	}
	if got := h.Subscribers(svcA, map[string]struct{}{"s": {}, "other": {}}); len(got) != 1 {
		t.Fatalf("targeted subscribers %+v", got)
	}
	if _, err := h.Unsubscribe("s", svcA, ""); err != nil {
		t.Fatal(err)
	}
	if subs := h.Subscribers(svcA, nil); len(subs) != 0 {
		t.Fatalf("subscribers after unsubscribe %+v", subs)
	}
}

func TestViewFilters(t *testing.T) {
	h := newHarness(t, nil)
	add := func(client string, in Instance) {
		h.connect(t, client)
		h.register(t, client, svcA, in)
	}
	a := inst("10.0.0.1", 1)
	a.Cluster = "east"
	b := inst("10.0.0.2", 2)
	b.Cluster = "west"
	c := inst("10.0.0.3", 3)
	c.Cluster = "west"
	c.Healthy = false
	d := inst("10.0.0.4", 4)
	d.Enabled = false
	add("a", a)
	add("b", b)
	add("c", c)
	add("d", d)

	for _, tc := range []struct {
		filter ViewFilter
		want   []string
	}{
		{ViewFilter{}, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{ViewFilter{Clusters: "west"}, []string{"10.0.0.2", "10.0.0.3"}},
		{ViewFilter{Clusters: "east,west"}, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{ViewFilter{Clusters: "west", HealthyOnly: true}, []string{"10.0.0.2"}},
		{ViewFilter{Clusters: "north"}, nil},
	} {
		info := h.view(t, svcA, tc.filter)
		var ips []string
		for _, in := range info.Hosts {
			ips = append(ips, in.IP)
		}
		if !slices.Equal(ips, tc.want) || info.Clusters != tc.filter.Clusters {
			t.Errorf("view %+v: hosts %v clusters %q, want %v %q", tc.filter, ips, info.Clusters, tc.want, tc.filter.Clusters)
		}
	}
}

func TestViewShape(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c")
	in := inst("10.0.0.1", 80)
	in.Metadata = map[string]string{MetaHeartbeatInterval: "1000", MetaHeartbeatTimeout: "3000", "k": "v"}
	h.register(t, "c", svcA, in)

	raw := h.View(svcA, ViewFilter{})
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"name": "a", "groupName": "DEFAULT_GROUP", "clusters": "", "cacheMillis": 10000.0,
		"valid": true, "allIPs": false, "reachProtectionThreshold": false} {
		if doc[key] != want {
			t.Errorf("%s = %v, want %v", key, doc[key], want)
		}
	}
	host := doc["hosts"].([]any)[0].(map[string]any)
	for key, want := range map[string]any{"serviceName": "DEFAULT_GROUP@@a", "instanceHeartBeatInterval": 1000.0,
		"instanceHeartBeatTimeOut": 3000.0, "ipDeleteTimeout": 30000.0, "clusterName": "DEFAULT"} {
		if host[key] != want {
			t.Errorf("hosts[0].%s = %v, want %v", key, host[key], want)
		}
	}

	// An unknown service is an empty view whose hosts is [] (not null) and
	// whose metadata maps are never null either.
	empty := string(h.View(Service{Namespace: "public", Group: "g", Name: "none"}, ViewFilter{}))
	var emptyDoc map[string]any
	if err := json.Unmarshal([]byte(empty), &emptyDoc); err != nil || emptyDoc["hosts"] == nil {
		t.Fatalf("empty view %s", empty)
	}
}

func TestViewIsEncodedOncePerRevision(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c")
	h.register(t, "c", svcA, inst("10.0.0.1", 80))
	first, again := h.View(svcA, ViewFilter{}), h.View(svcA, ViewFilter{})
	if &first[0] != &again[0] {
		t.Fatal("the same revision and filter were encoded twice")
	}
	h.register(t, "c", svcA, inst("10.0.0.2", 80))
	if changed := h.View(svcA, ViewFilter{}); &changed[0] == &first[0] {
		t.Fatal("a new revision served the old encoding")
	}
}

func TestLastRefTimeStrictlyIncreases(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	h := newHarness(t, clock.Now)
	h.connect(t, "c")
	ctx := context.Background()
	var last int64
	step := func(what string) {
		t.Helper()
		ref := h.view(t, svcA, ViewFilter{}).LastRefTime
		if ref <= last {
			t.Fatalf("after %s lastRefTime %d, not above %d", what, ref, last)
		}
		last = ref
	}
	// The clock stands still: changes in one millisecond still increase it.
	h.register(t, "c", svcA, inst("10.0.0.1", 80))
	step("register")
	h.register(t, "c", svcA, inst("10.0.0.2", 80))
	step("re-register")
	// The service disappears and comes back within the same millisecond.
	if err := h.Deregister(ctx, "c", svcA, inst("10.0.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	h.register(t, "c", svcA, inst("10.0.0.3", 80))
	step("deregister and register again")
	// The clock goes back.
	clock.mu.Lock()
	clock.now = clock.now.Add(-time.Hour)
	clock.mu.Unlock()
	h.register(t, "c", svcA, inst("10.0.0.4", 80))
	step("register after the clock went back")
}

func TestProtectionThreshold(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 4 {
		id := fmt.Sprintf("c%d", i)
		h.connect(t, id)
		in := inst(fmt.Sprintf("10.0.0.%d", i), 80)
		in.Healthy = i == 0 // one healthy of four
		h.register(t, id, svcA, in)
	}
	healthyCount := func(info serviceInfoJSON) int {
		n := 0
		for _, in := range info.Hosts {
			if in.Healthy {
				n++
			}
		}
		return n
	}
	if info := h.view(t, svcA, ViewFilter{}); info.ReachProtectionThreshold || healthyCount(info) != 1 {
		t.Fatalf("default threshold 0 with 1/4 healthy: got reach=%v healthy=%d", info.ReachProtectionThreshold, healthyCount(info))
	}
	h.define(t, svcA, ServiceMeta{ProtectThreshold: 0.3})
	info := h.view(t, svcA, ViewFilter{})
	if !info.ReachProtectionThreshold || healthyCount(info) != 4 {
		t.Fatalf("1/4 healthy ≤ 0.3: want every instance marked healthy; got reach=%v healthy=%d", info.ReachProtectionThreshold, healthyCount(info))
	}
	if healthyOnly := h.view(t, svcA, ViewFilter{HealthyOnly: true}); len(healthyOnly.Hosts) != 1 || healthyOnly.ReachProtectionThreshold {
		t.Fatalf("healthy-only view: %+v", healthyOnly)
	}
}

func TestListServices(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "c")
	for i := range 25 {
		h.register(t, "c", Service{Namespace: "public", Group: "g", Name: fmt.Sprintf("s%02d", i)}, inst("10.0.0.1", 80))
	}
	h.register(t, "c", Service{Namespace: "other", Group: "g", Name: "elsewhere"}, inst("10.0.0.1", 80))
	h.connect(t, "watcher")
	if _, err := h.Subscribe(ctx, "watcher", Service{Namespace: "public", Group: "g", Name: "only-subscribed"}, Subscription{}); err != nil {
		t.Fatal(err)
	}
	var all []string
	for page, size := range []int{10, 10, 5, 0} {
		count, names, err := h.ListServices("public", "g", page+1, 10)
		if err != nil || count != 25 || len(names) != size {
			t.Fatalf("page %d: count %d, %d names, %v; want 25, %d", page+1, count, len(names), err, size)
		}
		all = append(all, names...)
	}
	if !slices.IsSorted(all) || len(all) != 25 || all[0] != "s00" || all[24] != "s24" {
		t.Fatalf("pages: %v", all)
	}
}

// TestConcurrentClients has clients register, re-register, subscribe and
// disconnect at once; afterwards nothing they published may remain.
func TestConcurrentClients(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	services := []Service{svcA, svcB}
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Go(func() {
			id := fmt.Sprintf("client-%d", c)
			if err := h.Connect(id, nil); err != nil {
				t.Error(err)
				return
			}
			for i := range 50 {
				svc := services[i%2]
				if err := h.Register(ctx, id, svc, inst("10.0.0.1", c*100+i)); err != nil {
					t.Error(err)
				}
				if _, err := h.Subscribe(ctx, id, services[(i+1)%2], Subscription{}); err != nil {
					t.Error(err)
				}
				h.View(svc, ViewFilter{})
			}
			if err := h.Disconnect(ctx, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := h.Stats(); st != (Stats{}) {
		t.Fatalf("after every client left: %+v", st)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.services) != 0 {
		t.Fatalf("%d service entries left", len(h.services))
	}
}

func TestListServicesPastTheEnd(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c")
	h.register(t, "c", Service{Namespace: "public", Group: "g", Name: "only"}, inst("10.0.0.1", 80))
	for _, pageNo := range []int{2, 1 << 40, math.MaxInt / 10000, math.MaxInt/10000 + 2, math.MaxInt} {
		count, names, err := h.ListServices("public", "g", pageNo, 10000)
		if err != nil || count != 1 || names == nil || len(names) != 0 {
			t.Errorf("page %d: count %d, names %v, %v; want 1 and an empty page", pageNo, count, names, err)
		}
	}
}
