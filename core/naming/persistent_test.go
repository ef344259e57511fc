package naming

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestSetPersistent: the store's persistent instances show in views beside
// the ephemeral ones, marked persistent, under ip:port#false; replacing them
// publishes a change, setting the same ones again does not, and none left
// removes them.
func TestSetPersistent(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "eph")
	h.register(t, "eph", svcA, inst("10.0.0.1", 80))
	h.expectChanged(t, svcA)

	db, web := inst("10.0.0.2", 5432), inst("10.0.0.3", 80)
	if err := h.SetPersistent(ctx, svcA, []Instance{db, web}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if got := h.hosts(t, svcA); !slices.Equal(sorted(got), []string{"10.0.0.1:80", "10.0.0.2:5432", "10.0.0.3:80"}) {
		t.Fatalf("hosts %v", got)
	}
	for _, host := range h.view(t, svcA, ViewFilter{}).Hosts {
		if want := host.IP == "10.0.0.1"; host.Ephemeral != want {
			t.Errorf("%s ephemeral=%v, want %v", host.IP, host.Ephemeral, want)
		}
	}
	pubs, err := h.Publishers(svcA)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pubs[PersistentClientID("10.0.0.2", 5432)]; !ok {
		t.Errorf("publishers %v lack 10.0.0.2:5432#false", pubs)
	}
	if got := h.Stats().Instances; got != 3 {
		t.Errorf("stats count %d instances, want 3", got)
	}

	if err := h.SetPersistent(ctx, svcA, []Instance{web, db}); err != nil { // the same, in another order
		t.Fatal(err)
	}
	h.expectNoChangeBefore(t, svcB)

	web.Weight = 5
	if err := h.SetPersistent(ctx, svcA, []Instance{web}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if got := h.hosts(t, svcA); !slices.Equal(sorted(got), []string{"10.0.0.1:80", "10.0.0.3:80"}) {
		t.Fatalf("after replacing: hosts %v", got)
	}

	if err := h.SetPersistent(ctx, svcA, nil); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if got := h.hosts(t, svcA); !slices.Equal(got, []string{"10.0.0.1:80"}) {
		t.Fatalf("after removing all: hosts %v", got)
	}
	if err := h.Disconnect(ctx, "eph"); err != nil {
		t.Fatal(err)
	}
	if h.lookup(svcA) != nil {
		t.Error("the service's entry outlived its last instance")
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

// TestChangePersistent: changes apply at their addresses only — a second
// cluster of the same address is a second instance of its client, a
// removal leaves the address's other clusters — and agree with what
// SetPersistent makes of the same final set; an unchanged instance
// publishes nothing.
func TestChangePersistent(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	db, web := inst("10.0.0.2", 5432), inst("10.0.0.3", 80)
	dbOther := db
	dbOther.Cluster = "other"
	if err := h.ChangePersistent(ctx, svcA, []PersistentChange{{Instance: dbOther}, {Instance: db}, {Instance: web}}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	pubs, err := h.Publishers(svcA)
	if err != nil {
		t.Fatal(err)
	}
	group := pubs[PersistentClientID("10.0.0.2", 5432)]
	if len(group) != 2 || group[0].Cluster != DefaultCluster || group[1].Cluster != "other" || group[0].Ephemeral {
		t.Fatalf("10.0.0.2:5432's instances %+v, want its two clusters in order, persistent", group)
	}
	if got := h.Stats().Instances; got != 3 {
		t.Errorf("stats count %d instances, want 3", got)
	}

	if err := h.ChangePersistent(ctx, svcA, []PersistentChange{{Instance: web}}); err != nil { // as it is
		t.Fatal(err)
	}
	h.expectNoChangeBefore(t, svcB)

	web.Weight = 5
	if err := h.ChangePersistent(ctx, svcA, []PersistentChange{{Instance: db, Removed: true}, {Instance: web}}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	incremental := h.view(t, svcA, ViewFilter{}).Hosts

	other := newHarness(t, nil)
	if err := other.SetPersistent(ctx, svcA, []Instance{web, dbOther}); err != nil {
		t.Fatal(err)
	}
	if whole := other.view(t, svcA, ViewFilter{}).Hosts; !slices.EqualFunc(incremental, whole, func(a, b instanceJSON) bool {
		return a.IP == b.IP && a.Port == b.Port && a.ClusterName == b.ClusterName && a.Weight == b.Weight && !a.Ephemeral && !b.Ephemeral
	}) {
		t.Fatalf("changes made %+v, the same set at once %+v", incremental, whole)
	}

	if err := h.ChangePersistent(ctx, svcA, []PersistentChange{{Instance: dbOther, Removed: true}, {Instance: web, Removed: true}}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if h.lookup(svcA) != nil {
		t.Error("the service's entry outlived its last instance")
	}
}

// TestSetDefinition: the store's definition of a service is what the
// catalog shows; changing it pushes the service's subscribers when it has
// instances; nil removes it.
func TestSetDefinition(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	def := &ServiceMeta{ProtectThreshold: 0.5, Metadata: map[string]string{"team": "db"}}
	if err := h.SetDefinition(ctx, svcA, def); err != nil {
		t.Fatal(err)
	}
	d, err := h.ServiceDetail(svcA)
	if err != nil || !d.Defined || d.Meta.ProtectThreshold != 0.5 || d.Meta.Metadata["team"] != "db" {
		t.Fatalf("detail %+v, %v", d, err)
	}
	h.expectNoChangeBefore(t, svcB) // no instances: nobody to push

	h.connect(t, "eph")
	h.register(t, "eph", svcA, inst("10.0.0.1", 80))
	h.expectChanged(t, svcA)
	if err := h.SetDefinition(ctx, svcA, &ServiceMeta{ProtectThreshold: 0.9}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if err := h.SetDefinition(ctx, svcA, &ServiceMeta{ProtectThreshold: 0.9}); err != nil {
		t.Fatal(err)
	}
	h.register(t, "eph", svcB, inst("10.0.0.1", 80)) // a marker: the unchanged set published nothing
	h.expectChanged(t, svcB)
	if err := h.SetDefinition(ctx, svcA, nil); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if d, err := h.ServiceDetail(svcA); err != nil || d.Defined {
		t.Fatalf("after removal: %+v, %v", d, err)
	}
}

// TestAnAddressIsEphemeralOrPersistent: an ephemeral registration at a
// persistent instance's address is refused, on every path, and EphemeralAt
// sees an ephemeral instance's address.
func TestAnAddressIsEphemeralOrPersistent(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	if err := h.SetPersistent(ctx, svcA, []Instance{inst("10.0.0.2", 80)}); err != nil {
		t.Fatal(err)
	}
	h.connect(t, "eph")
	taken := inst("10.0.0.2", 80)
	for name, err := range map[string]error{
		"Register":      h.Register(ctx, "eph", svcA, taken),
		"BatchRegister": h.BatchRegister(ctx, "eph", svcA, []Instance{inst("10.0.0.3", 80), taken}),
		"RegisterHTTP":  h.RegisterHTTP(ctx, "ip", svcA, taken),
	} {
		if inv, ok := errors.AsType[*InvalidError](err); !ok || !strings.Contains(inv.Reason, "persistent") {
			t.Errorf("%s at a persistent address: %v", name, err)
		}
	}
	other := taken
	other.Cluster = "other"
	h.register(t, "eph", svcA, other) // another cluster: another address
	if !h.EphemeralAt(svcA, "10.0.0.2", 80, "other") || h.EphemeralAt(svcA, "10.0.0.2", 80, DefaultCluster) {
		t.Error("EphemeralAt does not tell the ephemeral address from the persistent one")
	}
}
