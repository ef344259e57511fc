package naming

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

// batch returns n instances of ip on ports from port up.
func batch(ip string, port, n int) []Instance {
	out := make([]Instance, n)
	for i := range out {
		out[i] = inst(ip, port+i)
	}
	return out
}

// TestInstancesPerClient checks naming.max_instances_per_client on the
// entry points of a connection's client: a registration that would take the
// client over it is refused naming the limit and changes nothing, while
// replacements count only their net change.
func TestInstancesPerClient(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.limits.MaxInstancesPerClient = 5
	svcC := Service{Namespace: "public", Group: DefaultGroup, Name: "c"}
	h.connect(t, "p")
	h.connect(t, "other")
	if err := h.BatchRegister(ctx, "p", svcA, batch("10.0.0.1", 100, 3)); err != nil {
		t.Fatal(err)
	}
	if err := h.BatchRegister(ctx, "p", svcB, batch("10.0.0.1", 200, 2)); err != nil {
		t.Fatal(err) // 5: at the limit
	}
	before := h.snapshot(svcA, svcB, svcC)

	err := h.Register(ctx, "p", svcC, inst("10.0.0.1", 300))
	checkInvalid(t, "a sixth instance", err, "instance")
	checkLimit(t, "a sixth instance", err, LimitInstancesPerClient)
	err = h.BatchRegister(ctx, "p", svcC, batch("10.0.0.1", 300, 1))
	checkInvalid(t, "a sixth instance in a batch", err, "instances")
	checkLimit(t, "a sixth instance in a batch", err, LimitInstancesPerClient)
	err = h.BatchRegister(ctx, "p", svcA, batch("10.0.0.1", 100, 4))
	checkLimit(t, "a batch growing by one", err, LimitInstancesPerClient)
	if after := h.snapshot(svcA, svcB, svcC); !reflect.DeepEqual(after, before) {
		t.Errorf("refusals changed the registry:\nbefore %+v\nafter  %+v", before, after)
	}

	// A batch replaced by as many other instances is no growth, even at the limit.
	if err := h.BatchRegister(ctx, "p", svcA, batch("10.0.0.2", 100, 3)); err != nil {
		t.Errorf("replacing a batch by one as large: %v", err)
	}
	// Another client has its own count.
	h.register(t, "other", svcC, inst("10.0.0.3", 80))
	// Shrinking makes room: a batch of 2 replaced by one instance frees one.
	if err := h.Register(ctx, "p", svcB, inst("10.0.0.1", 200)); err != nil {
		t.Fatalf("replacing a batch by one instance: %v", err)
	}
	h.register(t, "p", svcC, inst("10.0.0.1", 300))
	if d, _ := h.Client("p"); d.InstanceCount() != 5 {
		t.Errorf("the client has %d instances, want 5", d.InstanceCount())
	}
	// Deregistering makes room too.
	if err := h.Deregister(ctx, "p", svcA, inst("10.0.0.2", 100)); err != nil {
		t.Fatal(err)
	}
	if err := h.BatchRegister(ctx, "p", svcA, batch("10.0.0.2", 100, 3)); err != nil {
		t.Errorf("after a deregistration: %v", err)
	}
}

// TestInstancesPerClientBoundsOneConnection is the case the limit is for:
// one connection registering full batches in service after service stops
// at the limit, not at services × batch size.
func TestInstancesPerClientBoundsOneConnection(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.limits.MaxInstancesPerClient = 25 // MaxBatchSize is 10
	h.connect(t, "greedy")
	var err error
	services := 0
	for ; services < 100 && err == nil; services++ {
		err = h.BatchRegister(ctx, "greedy", Service{Name: fmt.Sprint("s", services)}, batch("10.0.0.1", 1, testLimits.MaxBatchSize))
	}
	checkLimit(t, "the third full batch", err, LimitInstancesPerClient)
	if d, _ := h.Client("greedy"); d.InstanceCount() != 20 || services != 3 {
		t.Errorf("%d instances in %d services, want 20 in 2 before the refusal", d.InstanceCount(), services-1)
	}
	if got := h.Stats().Instances; got != 20 {
		t.Errorf("the registry holds %d instances, want 20", got)
	}
}

// TestInstancesPerClientHTTP checks the limit on an HTTP API client, which
// holds one instance of each service it registers at its ip:port.
func TestInstancesPerClientHTTP(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.limits.MaxInstancesPerClient = 2
	svcC := Service{Namespace: "public", Group: DefaultGroup, Name: "c"}
	for _, svc := range []Service{svcA, svcB} {
		if err := h.RegisterHTTP(ctx, "", svc, httpInst("10.0.0.1", 80)); err != nil {
			t.Fatal(err)
		}
	}
	before := h.snapshot(svcA, svcB, svcC)
	err := h.RegisterHTTP(ctx, "", svcC, httpInst("10.0.0.1", 80))
	checkInvalid(t, "a third service", err, "serviceName")
	checkLimit(t, "a third service", err, LimitInstancesPerClient)
	if after := h.snapshot(svcA, svcB, svcC); !reflect.DeepEqual(after, before) {
		t.Errorf("the refusal changed the registry:\nbefore %+v\nafter  %+v", before, after)
	}
	// Registering again (a beat re-registering, say) replaces.
	in := httpInst("10.0.0.1", 80)
	in.Weight = 2
	if err := h.RegisterHTTP(ctx, "beat", svcA, in); err != nil {
		t.Errorf("registering again: %v", err)
	}
	// Another address is another client.
	if err := h.RegisterHTTP(ctx, "", svcC, httpInst("10.0.0.1", 81)); err != nil {
		t.Errorf("another client: %v", err)
	}
}

// TestCheckInstancesPerClient checks the check replication applies to a
// replicated client's total.
func TestCheckInstancesPerClient(t *testing.T) {
	l := testLimits
	d := ClientData{ID: "r", Owner: "10.0.0.9:8848", Services: map[Service][]Instance{
		svcA: batch("10.0.0.1", 1, 3), svcB: batch("10.0.0.1", 1, 2),
	}}
	if err := l.CheckInstancesPerClient("instances", d.InstanceCount()); err != nil {
		t.Errorf("no limit: %v", err)
	}
	l.MaxInstancesPerClient = 5
	if err := l.CheckInstancesPerClient("instances", d.InstanceCount()); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	l.MaxInstancesPerClient = 4
	err := l.CheckInstancesPerClient("instances", d.InstanceCount())
	checkInvalid(t, "over the limit", err, "instances")
	checkLimit(t, "over the limit", err, LimitInstancesPerClient)
}
