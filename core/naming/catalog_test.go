package naming

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// define defines svc as the Raft store does: m validated with
// CheckServiceMeta, then mirrored with SetDefinition.
func (h *harness) define(t *testing.T, svc Service, m ServiceMeta) {
	t.Helper()
	m, err := h.limits.CheckServiceMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetDefinition(context.Background(), svc, &m); err != nil {
		t.Fatal(err)
	}
}

// TestDefinedServices: a defined service exists, with or without
// instances, in the catalog's reads, and its threshold applies to views.
func TestDefinedServices(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)

	if _, err := h.ServiceDetail(svcA); !errors.Is(err, ErrServiceNotFound) {
		t.Fatalf("detail of nothing: %v", err)
	}
	h.define(t, svcA, ServiceMeta{ProtectThreshold: 0.5, Metadata: map[string]string{"owner": "team"},
		Selector: Selector{Type: SelectorLabel, Expression: "CONSUMER.label.zone = PROVIDER.label.zone & CONSUMER.label.az=PROVIDER.label.az"}})
	s, err := h.ServiceDetail(Service{Name: "a"}) // the defaults apply
	if err != nil || !s.Defined || s.Instances != 0 || len(s.Clusters) != 0 || s.ProtectionReached() || s.Meta.ProtectThreshold != 0.5 ||
		s.Meta.Metadata["owner"] != "team" || !reflect.DeepEqual(s.Meta.Selector.Labels(), []string{"az", "zone"}) {
		t.Fatalf("detail = %+v, %v", s, err)
	}
	// A defined service is listed without instances, and counted.
	if n, names, err := h.ListServices("", "", 1, 10); err != nil || n != 1 || !slices.Equal(names, []string{"a"}) {
		t.Fatalf("list = %d %v %v", n, names, err)
	}
	if all, err := h.Services(""); err != nil || len(all) != 1 || all[0].Service != svcA || !all[0].Defined {
		t.Fatalf("services = %+v, %v", all, err)
	}
	if h.ServiceCount() != 1 || !slices.Equal(h.Namespaces(), []string{"public"}) {
		t.Fatalf("count %d, namespaces %v", h.ServiceCount(), h.Namespaces())
	}

	// With instances: the threshold is the view's (1 healthy of 2 ≤ 0.5).
	h.connect(t, "c1")
	h.register(t, "c1", svcA, inst("10.0.0.1", 80))
	h.connect(t, "c2")
	bad := inst("10.0.0.2", 80)
	bad.Healthy, bad.Cluster = false, "c2"
	h.register(t, "c2", svcA, bad)
	if v := h.view(t, svcA, ViewFilter{}); !v.ReachProtectionThreshold {
		t.Errorf("view under the threshold: %+v", v)
	}
	s, _ = h.ServiceDetail(svcA)
	if s.Instances != 2 || s.Healthy != 1 || !slices.Equal(s.Clusters, []string{"DEFAULT", "c2"}) || !s.ProtectionReached() {
		t.Errorf("detail with instances = %+v", s)
	}
	// The service is listed and counted once, defined and with instances.
	if n, names, err := h.ListServices("", "", 1, 10); err != nil || n != 1 || !slices.Equal(names, []string{"a"}) || h.ServiceCount() != 1 {
		t.Errorf("list = %d %v %v, count %d", n, names, err, h.ServiceCount())
	}
	// A new definition replaces the old one, and the view follows it.
	h.define(t, svcA, ServiceMeta{})
	if v := h.view(t, svcA, ViewFilter{}); v.ReachProtectionThreshold {
		t.Errorf("view after the threshold went to 0: %+v", v)
	}
	if s, _ := h.ServiceDetail(svcA); s.ProtectionReached() || s.Meta.Selector.Type != SelectorNone || len(s.Meta.Metadata) != 0 {
		t.Errorf("a definition replaces the last: %+v", s)
	}

	// Without instances the definition keeps the service; without either
	// it is gone.
	if err := h.Disconnect(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := h.Disconnect(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if s, err := h.ServiceDetail(svcA); err != nil || !s.Defined || s.Instances != 0 {
		t.Fatalf("defined, without instances: %+v, %v", s, err)
	}
	if err := h.SetDefinition(ctx, svcA, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ServiceDetail(svcA); !errors.Is(err, ErrServiceNotFound) {
		t.Fatalf("after removal: %v", err)
	}
	if n, names, err := h.ListServices("", "", 1, 10); err != nil || n != 0 || len(names) != 0 {
		t.Errorf("list after removal = %d %v %v", n, names, err)
	}
	if h.ServiceCount() != 0 || len(h.Namespaces()) != 0 {
		t.Errorf("after removal: count %d, namespaces %v", h.ServiceCount(), h.Namespaces())
	}
}

// TestCheckServiceMeta: a bad definition is refused naming its field; a
// good one comes back normalized, its metadata a copy.
func TestCheckServiceMeta(t *testing.T) {
	label := func(expr string) Selector { return Selector{Type: SelectorLabel, Expression: expr} }
	for _, tc := range []struct {
		name  string
		m     ServiceMeta
		field string // "": accepted
		limit string // of a refusal over a limit
	}{
		{name: "zero", m: ServiceMeta{}},
		{name: "threshold 0", m: ServiceMeta{ProtectThreshold: 0}},
		{name: "threshold 1", m: ServiceMeta{ProtectThreshold: 1}},
		{name: "multiline value", m: ServiceMeta{Metadata: map[string]string{"k": "a\n\tb"}}},
		{name: "metadata at the limit", m: ServiceMeta{Metadata: map[string]string{"k": strings.Repeat("v", testLimits.MaxMetadataBytes-1)}}},
		{name: "none", m: ServiceMeta{Selector: Selector{Type: SelectorNone}}},
		{name: "label", m: ServiceMeta{Selector: label("CONSUMER.label.a = PROVIDER.label.a")}},
		// A label selector without an expression selects everything, as in Nacos.
		{name: "label without an expression", m: ServiceMeta{Selector: label("")}},
		{name: "label of blanks", m: ServiceMeta{Selector: label("  ")}},

		{name: "threshold above 1", m: ServiceMeta{ProtectThreshold: 1.5}, field: "protectThreshold"},
		{name: "threshold negative", m: ServiceMeta{ProtectThreshold: -0.1}, field: "protectThreshold"},
		{name: "threshold NaN", m: ServiceMeta{ProtectThreshold: math.NaN()}, field: "protectThreshold"},
		{name: "threshold infinite", m: ServiceMeta{ProtectThreshold: math.Inf(1)}, field: "protectThreshold"},
		{name: "empty metadata key", m: ServiceMeta{Metadata: map[string]string{"": "v"}}, field: "metadata"},
		{name: "control character in a key", m: ServiceMeta{Metadata: map[string]string{"k\x01": "v"}}, field: "metadata"},
		{name: "newline in a key", m: ServiceMeta{Metadata: map[string]string{"k\n": "v"}}, field: "metadata"},
		{name: "control character in a value", m: ServiceMeta{Metadata: map[string]string{"k": "v\x7f"}}, field: "metadata"},
		{name: "invalid UTF-8", m: ServiceMeta{Metadata: map[string]string{"k": "\xff"}}, field: "metadata"},
		{name: "metadata too large", m: ServiceMeta{Metadata: map[string]string{"k": strings.Repeat("v", testLimits.MaxMetadataBytes)}},
			field: "metadata", limit: LimitMetadataBytes},
		{name: "unknown selector", m: ServiceMeta{Selector: Selector{Type: "cmdb"}}, field: "selector"},
		{name: "none with an expression", m: ServiceMeta{Selector: Selector{Type: SelectorNone, Expression: "x"}}, field: "selector"},
		{name: "untyped with an expression", m: ServiceMeta{Selector: Selector{Expression: "x"}}, field: "selector"},
		{name: "bad label term", m: ServiceMeta{Selector: label("CONSUMER.label.a = b")}, field: "selector"},
		{name: "different label key", m: ServiceMeta{Selector: label("CONSUMER.label.a = PROVIDER.label.b")}, field: "selector"},
		{name: "empty label key", m: ServiceMeta{Selector: label("CONSUMER.label. = PROVIDER.label.")}, field: "selector"},
		{name: "control character in the expression", m: ServiceMeta{Selector: label("CONSUMER.label.a\n= PROVIDER.label.a")}, field: "selector"},
		{name: "expression too long", m: ServiceMeta{Selector: label(strings.Repeat(" ", testLimits.MaxMetadataBytes+1))},
			field: "selector", limit: LimitMetadataBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testLimits.CheckServiceMeta(tc.m)
			if tc.field != "" {
				var invalid *InvalidError
				if !errors.As(err, &invalid) || invalid.Field != tc.field || invalid.Limit != tc.limit {
					t.Fatalf("%v, want an InvalidError of %s (limit %q)", err, tc.field, tc.limit)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.m
			if want.Selector.Type == "" {
				want.Selector.Type = SelectorNone
			}
			if want.Metadata == nil {
				want.Metadata = map[string]string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			got.Metadata["added"] = "by the caller" // a copy: the input is not changed
			if _, ok := tc.m.Metadata["added"]; ok {
				t.Error("the metadata returned is the caller's map")
			}
		})
	}
}

func TestCatalogReads(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	h := newHarness(t, clock.Now)
	other := Service{Namespace: "dev", Group: "g", Name: "b"}
	h.connect(t, "c1")
	h.register(t, "c1", svcA, inst("10.0.0.1", 80))
	if _, err := h.Subscribe(ctx, "c1", other, Subscription{App: "shop"}); err != nil {
		t.Fatal(err)
	}
	if err := h.RegisterHTTP(ctx, "", other, Instance{IP: "10.0.0.2", Port: 8080, Weight: 1, Healthy: true, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	h.define(t, Service{Namespace: "dev", Group: "DEFAULT_GROUP", Name: "defined"}, ServiceMeta{})

	if got := h.Namespaces(); !slices.Equal(got, []string{"dev", "public"}) {
		t.Errorf("namespaces %v", got)
	}
	all, err := h.Services("dev")
	if err != nil || len(all) != 2 || all[0].Service.Name != "defined" || !all[0].Defined ||
		all[1].Service != other || all[1].Instances != 1 || all[1].Defined {
		t.Errorf("services of dev = %+v, %v", all, err)
	}
	if n := h.ServiceCount(); n != 3 {
		t.Errorf("service count %d", n)
	}

	pubs, err := h.Publishers(other)
	httpID := HTTPClientID("10.0.0.2", 8080)
	if err != nil || len(pubs) != 1 || len(pubs[httpID]) != 1 || pubs[httpID][0].IP != "10.0.0.2" {
		t.Errorf("publishers %v %v", pubs, err)
	}
	subs, err := h.AllSubscribers(other)
	if err != nil || len(subs) != 1 || subs[0].ClientID != "c1" || subs[0].App != "shop" {
		t.Errorf("subscribers %+v %v", subs, err)
	}

	if ids := h.ClientIDs(); !slices.Equal(ids, []string{httpID, "c1"}) {
		t.Errorf("client ids %v", ids)
	}
	c, ok := h.ClientInfo("c1")
	if !ok || c.HTTP || c.Owner != "" || len(c.Published[svcA]) != 1 || c.Subscribed[other].App != "shop" || !c.LastUpdated.IsZero() {
		t.Errorf("client c1 = %+v", c)
	}
	c, ok = h.ClientInfo(httpID)
	if !ok || !c.HTTP || len(c.Published[other]) != 1 || !c.LastUpdated.Equal(clock.now) {
		t.Errorf("client %s = %+v", httpID, c)
	}
	if _, ok := h.ClientInfo("nobody"); ok {
		t.Error("an unknown client was found")
	}
	if n := h.CountClients(); n != (ClientCounts{All: 2, Connection: 1, HTTP: 1, Local: 2, LocalInstances: 2}) {
		t.Errorf("client counts %+v", n)
	}
}
