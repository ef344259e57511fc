package naming

import (
	"context"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/notify"
)

// snapshot is everything a client can observe of the registry.
type snapshot struct {
	stats       Stats
	clients     map[string]ClientData
	views       map[Service]string
	subscribers map[Service][]Subscriber
}

func (h *harness) snapshot(svcs ...Service) snapshot {
	s := snapshot{stats: h.Stats(), clients: map[string]ClientData{}, views: map[Service]string{}, subscribers: map[Service][]Subscriber{}}
	h.EachClient(func(d ClientData) bool {
		s.clients[d.ID] = d
		return true
	})
	for _, svc := range svcs {
		s.views[svc] = "(no entry)" // the view of nothing has lastRefTime now
		if h.lookup(svc) != nil {
			s.views[svc] = string(h.View(svc, ViewFilter{}))
		}
		subs := h.Subscribers(svc, nil)
		slices.SortFunc(subs, func(a, b Subscriber) int { return strings.Compare(a.ClientID, b.ClientID) })
		s.subscribers[svc] = subs
	}
	return s
}

// TestEntryPointsValidate sends bad input to every entry point of the
// registry that takes what a client sent: each is refused with an error
// naming the field, and the registry is left as it was.
func TestEntryPointsValidate(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "c")
	h.register(t, "c", svcA, inst("10.0.0.1", 80))
	if _, err := h.Subscribe(ctx, "c", svcA, Subscription{Clusters: "DEFAULT"}); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot(svcA, svcB)

	good := inst("10.0.0.2", 81)
	bad := func(f func(*Instance)) Instance {
		in := good
		f(&in)
		return in
	}
	badName := Service{Name: "a\x00b"}
	longName := Service{Name: strings.Repeat("n", testLimits.MaxNameLength+1)}
	tests := []struct {
		name      string
		call      func() error
		wantField string
	}{
		{"register: service name with NUL", func() error { return h.Register(ctx, "c", badName, good) }, "serviceName"},
		{"register: long service name", func() error { return h.Register(ctx, "c", longName, good) }, "serviceName"},
		{"register: instance id with ESC", func() error {
			return h.Register(ctx, "c", svcA, bad(func(i *Instance) { i.ID = "\x1b[31mred" }))
		}, "instance.instanceId"},
		{"register: metadata key with NUL", func() error {
			return h.Register(ctx, "c", svcA, bad(func(i *Instance) { i.Metadata = map[string]string{"k\x00": "v"} }))
		}, "instance.metadata"},
		{"register: metadata value not UTF-8", func() error {
			return h.Register(ctx, "c", svcA, bad(func(i *Instance) { i.Metadata = map[string]string{"k": "\xff"} }))
		}, "instance.metadata"},
		{"register: ip with NUL", func() error {
			return h.Register(ctx, "c", svcA, bad(func(i *Instance) { i.IP = "10.0.0.1\x00" }))
		}, "instance.ip"},
		{"register: cluster with ESC", func() error {
			return h.Register(ctx, "c", svcA, bad(func(i *Instance) { i.Cluster = "\x1b" }))
		}, "instance.clusterName"},
		{"batch: empty", func() error { return h.BatchRegister(ctx, "c", svcA, nil) }, "instances"},
		{"batch: over max_batch_size", func() error {
			insts := make([]Instance, testLimits.MaxBatchSize+1)
			for i := range insts {
				insts[i] = inst("10.1.0.1", i)
			}
			return h.BatchRegister(ctx, "c", svcA, insts)
		}, "instances"},
		{"batch: second instance id not UTF-8", func() error {
			return h.BatchRegister(ctx, "c", svcA, []Instance{good, bad(func(i *Instance) { i.Port = 9; i.ID = "\xc3(" })})
		}, "instances[1].instanceId"},
		{"batch: bad service", func() error { return h.BatchRegister(ctx, "c", badName, []Instance{good}) }, "serviceName"},
		{"deregister: bad service", func() error { return h.Deregister(ctx, "c", badName, inst("10.0.0.1", 80)) }, "serviceName"},
		{"deregister: bad instance", func() error {
			return h.Deregister(ctx, "c", svcA, bad(func(i *Instance) { i.IP = "10.0.0.1"; i.Port = 80; i.ID = "\x00" }))
		}, "instance.instanceId"},
		{"subscribe: bad service", func() error { _, err := h.Subscribe(ctx, "c", badName, Subscription{}); return err }, "serviceName"},
		{"subscribe: bad cluster", func() error {
			_, err := h.Subscribe(ctx, "c", svcB, Subscription{Clusters: "a,\x1b"})
			return err
		}, "clusters"},
		{"subscribe: app with NUL", func() error {
			_, err := h.Subscribe(ctx, "c", svcB, Subscription{App: "shop\x00"})
			return err
		}, "app"},
		{"subscribe: long app", func() error {
			_, err := h.Subscribe(ctx, "c", svcB, Subscription{App: strings.Repeat("a", testLimits.MaxNameLength+1)})
			return err
		}, "app"},
		{"unsubscribe: bad service", func() error { _, err := h.Unsubscribe("c", Service{Name: "a\x7f"}, ""); return err }, "serviceName"},
		{"unsubscribe: bad cluster", func() error { _, err := h.Unsubscribe("c", svcA, ",,"); return err }, "clusters"},
		{"query: bad service", func() error { _, err := h.Query(badName, ViewFilter{}); return err }, "serviceName"},
		{"query: bad cluster", func() error { _, err := h.Query(svcA, ViewFilter{Clusters: strings.Repeat("c", 1<<20)}); return err }, "cluster"},
		{"list: bad namespace", func() error { _, _, err := h.ListServices("a/b", "", 1, 10); return err }, "namespace"},
		{"list: group with NUL", func() error { _, _, err := h.ListServices("", "g\x00", 1, 10); return err }, "groupName"},
	}
	for _, tc := range tests {
		checkInvalid(t, tc.name, tc.call(), tc.wantField)
		if after := h.snapshot(svcA, svcB); !reflect.DeepEqual(after, before) {
			t.Errorf("%s changed the registry:\nbefore %+v\nafter  %+v", tc.name, before, after)
		}
	}
}

func TestListServicesPaging(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c")
	for i := range 5 {
		h.register(t, "c", Service{Namespace: "public", Group: DefaultGroup, Name: fmt.Sprintf("s%d", i)}, inst("10.0.0.1", 80))
	}
	all := []string{"s0", "s1", "s2", "s3", "s4"}
	tests := []struct {
		pageNo, pageSize int
		want             []string // nil when refused
		wantField        string
	}{
		{1, 2, all[:2], ""},
		{3, 2, all[4:], ""},
		{4, 2, []string{}, ""},
		{1, MaxPageSize, all, ""},
		{2, MaxPageSize, []string{}, ""},
		{math.MaxInt, 1, []string{}, ""},
		{math.MaxInt, MaxPageSize, []string{}, ""},
		{math.MaxInt/MaxPageSize + 2, MaxPageSize, []string{}, ""}, // (pageNo-1)*pageSize wraps to a small number
		{1 << 62, 4, []string{}, ""},                               // (pageNo-1)*pageSize wraps to -4
		{0, 10, nil, "pageNo"},
		{-1, 10, nil, "pageNo"},
		{math.MinInt, 10, nil, "pageNo"},
		{1, 0, nil, "pageSize"},
		{1, -1, nil, "pageSize"},
		{1, MaxPageSize + 1, nil, "pageSize"},
		{1, math.MaxInt, nil, "pageSize"},
		{math.MaxInt, math.MaxInt, nil, "pageSize"},
	}
	for _, tc := range tests {
		what := fmt.Sprintf("page %d of %d", tc.pageNo, tc.pageSize)
		count, names, err := h.ListServices("", "", tc.pageNo, tc.pageSize)
		checkInvalid(t, what, err, tc.wantField)
		if tc.wantField != "" {
			continue
		}
		if count != len(all) || names == nil || !slices.Equal(names, tc.want) {
			t.Errorf("%s: count %d, names %#v; want %d, %#v", what, count, names, len(all), tc.want)
		}
	}
}

func TestServicesPerClient(t *testing.T) {
	ctx := context.Background()
	h := newLimitedHarness(t, Limits{MaxServicesPerClient: 2})
	svcC := Service{Namespace: "public", Group: DefaultGroup, Name: "c"}
	h.connect(t, "p")
	h.connect(t, "other")
	h.register(t, "p", svcA, inst("10.0.0.1", 80))
	if err := h.BatchRegister(ctx, "p", svcB, []Instance{inst("10.0.0.1", 81), inst("10.0.0.1", 82)}); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot(svcA, svcB, svcC)

	err := h.Register(ctx, "p", svcC, inst("10.0.0.1", 83))
	checkInvalid(t, "a third service", err, "serviceName")
	checkLimit(t, "a third service", err, LimitServicesPerClient)
	err = h.BatchRegister(ctx, "p", svcC, []Instance{inst("10.0.0.1", 83)})
	checkLimit(t, "a third service in a batch", err, LimitServicesPerClient)
	if after := h.snapshot(svcA, svcB, svcC); !reflect.DeepEqual(after, before) {
		t.Errorf("refusals changed the registry:\nbefore %+v\nafter  %+v", before, after)
	}

	// Replacing is not growing; another client has its own count.
	h.register(t, "p", svcA, inst("10.0.0.1", 90))
	if err := h.BatchRegister(ctx, "p", svcB, []Instance{inst("10.0.0.1", 91)}); err != nil {
		t.Errorf("replacing a batch: %v", err)
	}
	h.register(t, "other", svcC, inst("10.0.0.2", 80))
	// A deregistered service makes room.
	if err := h.Deregister(ctx, "p", svcA, inst("10.0.0.1", 90)); err != nil {
		t.Fatal(err)
	}
	h.register(t, "p", svcC, inst("10.0.0.1", 83))
	if got := h.hosts(t, svcC); !slices.Equal(got, []string{"10.0.0.1:83", "10.0.0.2:80"}) {
		t.Errorf("hosts of c: %v", got)
	}
}

func TestSubscriptionsPerClient(t *testing.T) {
	ctx := context.Background()
	h := newLimitedHarness(t, Limits{MaxSubscriptionsPerClient: 2})
	svcC := Service{Namespace: "public", Group: DefaultGroup, Name: "c"}
	h.connect(t, "s")
	h.connect(t, "other")
	for _, svc := range []Service{svcA, svcB} {
		if _, err := h.Subscribe(ctx, "s", svc, Subscription{}); err != nil {
			t.Fatal(err)
		}
	}
	before := h.snapshot(svcA, svcB, svcC)
	_, err := h.Subscribe(ctx, "s", svcC, Subscription{})
	checkInvalid(t, "a third subscription", err, "serviceName")
	checkLimit(t, "a third subscription", err, LimitSubscriptionsPerClient)
	if after := h.snapshot(svcA, svcB, svcC); !reflect.DeepEqual(after, before) {
		t.Errorf("the refusal changed the registry:\nbefore %+v\nafter  %+v", before, after)
	}

	// Subscribing again (with another filter) replaces; others count apart.
	if _, err := h.Subscribe(ctx, "s", svcA, Subscription{Clusters: "DEFAULT"}); err != nil {
		t.Errorf("subscribing again: %v", err)
	}
	if subs := h.Subscribers(svcA, nil); len(subs) != 1 || subs[0].Clusters != "DEFAULT" {
		t.Errorf("subscribers of a: %+v", subs)
	}
	if _, err := h.Subscribe(ctx, "other", svcC, Subscription{}); err != nil {
		t.Errorf("another client: %v", err)
	}
	// Unsubscribing makes room.
	if _, err := h.Unsubscribe("s", svcB, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(ctx, "s", svcC, Subscription{}); err != nil {
		t.Errorf("after an unsubscribe: %v", err)
	}
}

func TestClustersPerFilter(t *testing.T) {
	ctx := context.Background()
	h := newLimitedHarness(t, Limits{MaxClustersPerFilter: 2})
	h.connect(t, "s")
	if _, err := h.Subscribe(ctx, "s", svcA, Subscription{Clusters: "a,b"}); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot(svcA)
	_, err := h.Subscribe(ctx, "s", svcA, Subscription{Clusters: "a,b,c"})
	checkInvalid(t, "three clusters", err, "clusters")
	checkLimit(t, "three clusters", err, LimitClustersPerFilter)
	_, err = h.Subscribe(ctx, "s", svcA, Subscription{Clusters: strings.Repeat("x", 4<<20)})
	checkLimit(t, "a 4 MiB filter", err, LimitClustersPerFilter)
	_, err = h.Query(svcA, ViewFilter{Clusters: "a,b,c"})
	checkInvalid(t, "query of three clusters", err, "cluster")
	if after := h.snapshot(svcA); !reflect.DeepEqual(after, before) {
		t.Errorf("the refusals changed the registry:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestRefusalsAreCounted hits each limit and reads its counter.
func TestRefusalsAreCounted(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	l := testLimits
	l.MaxServicesPerClient, l.MaxSubscriptionsPerClient, l.MaxClustersPerFilter = 1, 1, 1
	l.MaxInstancesPerClient = 1
	r := NewRegistry(Config{Limits: l, Bus: notify.New(notify.Config{}), Metrics: reg}) // a bus without subscribers
	if err := r.Connect("c", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, "c", svcA, inst("10.0.0.1", 80)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Subscribe(ctx, "c", svcA, Subscription{}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", l.MaxNameLength+1)
	refuse := map[string]func() error{
		LimitNameLength: func() error { return r.Register(ctx, "c", Service{Name: long}, inst("10.0.0.1", 80)) },
		LimitMetadataBytes: func() error {
			in := inst("10.0.0.1", 80)
			in.Metadata = map[string]string{"k": strings.Repeat("v", l.MaxMetadataBytes)}
			return r.Register(ctx, "c", svcA, in)
		},
		LimitBatchSize: func() error {
			return r.BatchRegister(ctx, "c", svcA, slices.Repeat([]Instance{inst("10.0.0.1", 80)}, l.MaxBatchSize+1))
		},
		LimitServicesPerClient: func() error { return r.Register(ctx, "c", svcB, inst("10.0.0.1", 80)) },
		LimitInstancesPerClient: func() error {
			return r.BatchRegister(ctx, "c", svcA, []Instance{inst("10.0.0.1", 80), inst("10.0.0.1", 81)})
		},
		LimitSubscriptionsPerClient: func() error { _, err := r.Subscribe(ctx, "c", svcB, Subscription{}); return err },
		LimitClustersPerFilter:      func() error { _, err := r.Query(svcA, ViewFilter{Clusters: "a,b"}); return err },
	}
	if keys := slices.Sorted(maps.Keys(refuse)); !slices.Equal(keys, slices.Sorted(slices.Values(limitKeys))) {
		t.Fatalf("test covers %v, limits are %v", keys, limitKeys)
	}
	for key, call := range refuse {
		for range 2 {
			checkLimit(t, key, call(), key)
		}
	}
	// Bad input that is over no limit is not counted.
	checkLimit(t, "bad port", r.Register(ctx, "c", svcA, Instance{IP: "10.0.0.1", Port: -1}), "")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sextant_naming_limit_refusals_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "limit" {
					got[lp.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{}
	for _, key := range limitKeys {
		want[key] = 2
	}
	if !maps.Equal(got, want) {
		t.Errorf("sextant_naming_limit_refusals_total by limit = %v, want %v", got, want)
	}
}

// newLimitedHarness is newHarness with testLimits plus the non-zero fields of extra.
func newLimitedHarness(t *testing.T, extra Limits) *harness {
	t.Helper()
	h := newHarness(t, nil)
	l := testLimits
	l.MaxServicesPerClient = extra.MaxServicesPerClient
	l.MaxSubscriptionsPerClient = extra.MaxSubscriptionsPerClient
	l.MaxClustersPerFilter = extra.MaxClustersPerFilter
	h.limits = l
	return h
}
