package naming

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricValue returns the value of a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// storedOf returns the stored instances of svc of client id.
func storedOf(t *testing.T, r *Registry, id string, svc Service) []instance {
	t.Helper()
	e := r.lookup(svc)
	if e == nil {
		t.Fatalf("no entry of %v", svc)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.publishers[id]
}

// TestInstancesShareWhatIsEqual registers instances with equal clusters,
// weights and metadata from two clients (each request with maps and strings
// of its own, as decoded requests have): they share one shape, and a
// client's instances one IP string; what the registry answers is what was
// registered, and changing a caller's map afterwards changes nothing stored.
func TestInstancesShareWhatIsEqual(t *testing.T) {
	h := newHarness(t, nil)
	md := func() map[string]string { return map[string]string{"version": "1.0.0", "zone": "eu-1a"} }
	in := func(ip string, port int, md map[string]string) Instance {
		i := inst(ip, port)
		i.ID, i.Metadata = "", md
		return i
	}
	h.connect(t, "c1")
	h.connect(t, "c2")
	sent := md()
	h.register(t, "c1", svcA, in("10.0.0.1", 80, sent))
	h.register(t, "c1", svcB, in(string([]byte("10.0.0.1")), 81, md()))
	h.register(t, "c2", svcA, in("10.0.0.2", 80, md()))
	sent["version"] = "changed by the caller"

	a1, b1, a2 := storedOf(t, h.Registry, "c1", svcA)[0], storedOf(t, h.Registry, "c1", svcB)[0], storedOf(t, h.Registry, "c2", svcA)[0]
	if a1.shape != b1.shape || a1.shape != a2.shape {
		t.Errorf("equal shapes are not shared: %p %p %p", a1.shape, b1.shape, a2.shape)
	}
	if unsafe.StringData(a1.ip) != unsafe.StringData(b1.ip) {
		t.Error("a client's instances do not share their IP string")
	}
	d, _ := h.Client("c1")
	want := Instance{ID: "10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@a", IP: "10.0.0.1", Port: 80, Weight: 1, Healthy: true, Enabled: true,
		Ephemeral: true, Cluster: DefaultCluster, Metadata: md()}
	if got := d.Services[svcA]; len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("client c1 publishes %+v, want %+v", got, want)
	}
	if got := h.shapes.len(); got != 1 {
		t.Errorf("%d shapes interned, want 1", got)
	}
}

// TestInstanceIDs checks that an instance id is kept as registered: the
// default one (derived when read) and one of the client's own alike.
func TestInstanceIDs(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c")
	own := inst("10.0.0.1", 80) // id "10.0.0.1#80"
	explicit := inst("10.0.0.2", 80)
	explicit.ID = "10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@a" // the default one, sent
	none := inst("10.0.0.3", 80)
	none.ID = ""
	if err := h.BatchRegister(context.Background(), "c", svcA, []Instance{own, explicit, none}); err != nil {
		t.Fatal(err)
	}
	var v fuzzView
	if err := json.Unmarshal(h.View(svcA, ViewFilter{}), &v); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, host := range v.Hosts {
		ids = append(ids, host.InstanceID)
	}
	want := []string{"10.0.0.1#80", "10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@a", "10.0.0.3#80#DEFAULT#DEFAULT_GROUP@@a"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("view ids %q, want %q", ids, want)
	}
	d, _ := h.Client("c")
	for i, in := range d.Services[svcA] {
		if in.ID != want[i] {
			t.Errorf("client's instance %d has id %q, want %q", i, in.ID, want[i])
		}
	}
	if got, err := h.Instance(svcA, "10.0.0.1", 80, ""); err != nil || got.ID != "10.0.0.1#80" {
		t.Errorf("Instance = %+v, %v", got, err)
	}
}

func TestIsDefaultID(t *testing.T) {
	svc := Service{Namespace: "public", Group: "g", Name: "s"}
	for id, want := range map[string]bool{
		"10.0.0.1#80#DEFAULT#g@@s":  true,
		"10.0.0.1#80#DEFAULT#g@@s1": false,
		"10.0.0.1#8#DEFAULT#g@@s":   false,
		"10.0.0.1#80#DEFAULT#g@s":   false,
		"10.0.0.1#80":               false,
		"":                          false,
	} {
		if got := isDefaultID(id, "10.0.0.1", 80, DefaultCluster, svc); got != want {
			t.Errorf("isDefaultID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestInterner checks that equal keys get one value, that the table is
// bounded, and that a value nothing refers to leaves it.
func TestInterner(t *testing.T) {
	lookups := newInternLookups()
	in := newInterner[shape]("shape", 2, lookups)
	build := func(c string) func() *shape { return func() *shape { return &shape{cluster: c} } }
	a := in.intern([]byte("a"), build("a"))
	if again := in.intern([]byte("a"), build("other")); again != a {
		t.Error("the same key gave another value")
	}
	b := in.intern([]byte("b"), build("b"))
	c := in.intern([]byte("c"), build("c")) // over the bound: unshared
	if c.cluster != "c" || in.intern([]byte("c"), build("c")) == c {
		t.Error("a value over the bound was shared")
	}
	for result, want := range map[string]float64{"hit": 1, "miss": 2, "full": 2} {
		if got := metricValue(t, lookups.WithLabelValues("shape", result)); got != want {
			t.Errorf("%s lookups %v, want %v", result, got, want)
		}
	}
	if n := in.len(); n != 2 {
		t.Errorf("table holds %d, want 2", n)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	// Collected values leave the table (their cleanups run after a collection).
	deadline := time.Now().Add(10 * time.Second)
	for in.len() > 0 && time.Now().Before(deadline) {
		runtime.GC()
		runtime.Gosched()
	}
	if n := in.len(); n != 0 {
		t.Errorf("table holds %d values nothing refers to", n)
	}
	if d := in.intern([]byte("d"), build("d")); d.cluster != "d" {
		t.Error("no room after the table emptied")
	}
}

// TestConnectionsShareLabels checks that connections declaring the same
// labels share them, and that subscriptions carry them.
func TestConnectionsShareLabels(t *testing.T) {
	h := newHarness(t, nil)
	for _, id := range []string{"c1", "c2"} {
		if err := h.Connect(id, map[string]string{"source": "sdk", "AppName": "shop"}); err != nil {
			t.Fatal(err)
		}
	}
	c1, c2 := h.clients["c1"], h.clients["c2"]
	if c1.labels != c2.labels {
		t.Error("equal labels are not shared")
	}
	if _, err := h.Subscribe(context.Background(), "c1", svcA, Subscription{}); err != nil {
		t.Fatal(err)
	}
	subs := h.Subscribers(svcA, nil)
	if len(subs) != 1 || !maps.Equal(subs[0].Labels, map[string]string{"source": "sdk", "AppName": "shop"}) {
		t.Errorf("subscribers %+v", subs)
	}
	if info, _ := h.ClientInfo("c2"); info.Labels["AppName"] != "shop" || len(info.Subscribed) != 0 || info.Subscribed == nil {
		t.Errorf("client info %+v", info)
	}
}

// TestViewCacheBound checks that the views kept stay within their bound:
// over it, views of other services go, and are encoded again, the same,
// when read.
func TestViewCacheBound(t *testing.T) {
	h := newHarness(t, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.views.collectors()...)
	h.connect(t, "c")
	var svcs []Service
	for i := range 8 {
		svc := Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: fmt.Sprintf("s%d", i)}
		svcs = append(svcs, svc)
		h.register(t, "c", svc, inst("10.0.0.1", 80+i))
	}
	size := int64(len(h.View(svcs[0], ViewFilter{})))
	h.views.max = 3 * size
	views := map[Service]string{}
	for _, svc := range svcs {
		views[svc] = string(h.View(svc, ViewFilter{}))
		if n := h.views.bytes.Load(); n > h.views.max {
			t.Fatalf("views keep %d bytes, over the bound of %d", n, h.views.max)
		}
	}
	if got := metricValue(t, h.views.evictions); got < 5 {
		t.Errorf("%v evictions, want at least 5", got)
	}
	if got := metricValue(t, h.views.collectors()[1].(prometheus.Metric)); got <= 0 || got > float64(h.views.max) {
		t.Errorf("view cache gauge %v", got)
	}
	for _, svc := range svcs {
		if got := string(h.View(svc, ViewFilter{})); got != views[svc] {
			t.Errorf("view of %v read again: %s, want %s", svc, got, views[svc])
		}
	}
	// Kept bytes are the views the entries hold.
	var held int64
	for _, svc := range svcs {
		e := h.lookup(svc)
		e.mu.Lock()
		for _, b := range e.views {
			held += int64(len(b))
		}
		e.mu.Unlock()
	}
	if n := h.views.bytes.Load(); n != held {
		t.Errorf("the cache counts %d bytes, the entries hold %d", n, held)
	}
	// A change drops the service's views from the count.
	if err := h.Deregister(context.Background(), "c", svcs[7], inst("10.0.0.1", 87)); err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs[:7] {
		h.View(svc, ViewFilter{})
	}
	if n := h.views.bytes.Load(); n > h.views.max {
		t.Errorf("views keep %d bytes, over the bound of %d", n, h.views.max)
	}
}

// TestViewCacheConcurrent reads and changes services from several
// goroutines with a bound that keeps dropping views: the bytes the cache
// counts stay those the entries hold.
func TestViewCacheConcurrent(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c")
	var svcs []Service
	for i := range 16 {
		svcs = append(svcs, Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: fmt.Sprintf("s%d", i)})
	}
	h.register(t, "c", svcs[0], inst("10.0.0.1", 80))
	h.views.max = 4 * int64(len(h.View(svcs[0], ViewFilter{})))
	ctx := context.Background()
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			id := fmt.Sprintf("g%d", g)
			if err := h.Connect(id, nil); err != nil {
				done <- err
				return
			}
			for i := range 200 {
				svc := svcs[(g*7+i)%len(svcs)]
				if i%3 == 0 {
					if err := h.Register(ctx, id, svc, inst("10.0.1.1", 1000+i)); err != nil {
						done <- err
						return
					}
				}
				h.View(svc, ViewFilter{Clusters: []string{"", "DEFAULT"}[i%2]})
			}
			done <- h.Disconnect(ctx, id)
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var held int64
	for _, svc := range svcs {
		if e := h.lookup(svc); e != nil {
			e.mu.Lock()
			for _, b := range e.views {
				held += int64(len(b))
			}
			e.mu.Unlock()
		}
	}
	if n := h.views.bytes.Load(); n != held || n > h.views.max {
		t.Errorf("the cache counts %d bytes, the entries hold %d, the bound is %d", n, held, h.views.max)
	}
}
