package push

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sextantd/sextant/core/naming"
)

const owner = "10.0.0.9:8848"

// protected starts a pusher with push-empty protection of the grace given
// (off when 0), pushing at once.
func protected(t *testing.T, grace time.Duration) *fixture {
	t.Helper()
	return startWith(t, func(c *Config) {
		c.RetryDelay = time.Hour
		c.ProtectEmpty, c.ProtectEmptyGrace = grace > 0, grace
	})
}

// replicate applies a replicated client of owner with the instances at ips,
// as a sync from its owner does.
func (f *fixture) replicate(t *testing.T, id string, ips ...string) {
	t.Helper()
	var insts []naming.Instance
	for _, ip := range ips {
		insts = append(insts, instance(ip))
	}
	if _, err := f.registry.Apply(context.Background(), []naming.ClientData{{ID: id, Owner: owner, Revision: 1,
		Services: map[naming.Service][]naming.Instance{svc: insts}}}); err != nil {
		t.Fatal(err)
	}
}

// expire removes every replicated client, as the expiry does when their
// owner is not heard from.
func (f *fixture) expire(t *testing.T) {
	t.Helper()
	if _, err := f.registry.Expire(context.Background(), func(string) time.Time { return time.Now().Add(time.Hour) }); err != nil {
		t.Fatal(err)
	}
}

// drop removes a client as its disconnection does, or, for a replica, as
// its owner's sync saying it is gone does.
func (f *fixture) drop(t *testing.T, id string) {
	t.Helper()
	if err := f.registry.Disconnect(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// awaitIPs takes pushes until one carries exactly ips; it returns when.
func (f *fixture) awaitIPs(t *testing.T, ips ...string) time.Time {
	t.Helper()
	for {
		b := f.exec.next(t)
		if got := hostIPs(t, b); slices.Equal(got, ips) {
			return time.Now()
		}
	}
}

// quiet checks that nothing is pushed for d.
func (f *fixture) quiet(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case b := <-f.exec.batches:
		t.Fatalf("%s, yet %v was pushed", why, hostIPs(t, b))
	case <-time.After(d):
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// outcomes checks the protection's counters: held, released, dropped.
func (f *fixture) outcomes(t *testing.T, held, released, dropped float64) {
	t.Helper()
	m := f.pusher.metrics
	got := []float64{value(t, m.emptyHeld), value(t, m.emptyReleased), value(t, m.emptyDropped)}
	if want := []float64{held, released, dropped}; !slices.Equal(got, want) {
		t.Errorf("held, released, dropped = %v, want %v", got, want)
	}
}

// subscribed connects and subscribes sub, and takes its first push.
func (f *fixture) subscribed(t *testing.T) {
	t.Helper()
	f.connect(t, "sub")
	f.subscribe(t, "sub", "")
	f.exec.awaitPushed(t, "sub")
}

func TestAnEmptyPushAnExpiryCausedIsHeldForTheGrace(t *testing.T) {
	const grace = 400 * time.Millisecond
	f := protected(t, grace)
	f.subscribed(t)
	f.replicate(t, "r1", "10.0.1.1", "10.0.1.2")
	f.awaitIPs(t, "10.0.1.1", "10.0.1.2")
	emptied := time.Now()
	f.expire(t)
	f.quiet(t, grace/2, "the service went empty by expiry")
	if at := f.awaitIPs(t); at.Sub(emptied) < grace {
		t.Fatalf("the empty list went out %v after, within the grace", at.Sub(emptied))
	}
	f.outcomes(t, 1, 1, 0)
	// Empty already, the service is not protected again.
	f.replicate(t, "r2", "10.0.1.3")
	f.awaitIPs(t, "10.0.1.3")
	f.expire(t)
	f.quiet(t, grace/2, "held again")
	f.awaitIPs(t)
	f.outcomes(t, 2, 2, 0)
}

func TestAHeldEmptyPushIsDroppedWhenInstancesReturn(t *testing.T) {
	const grace = 400 * time.Millisecond
	f := protected(t, grace)
	f.subscribed(t)
	f.replicate(t, "r1", "10.0.1.1")
	f.awaitIPs(t, "10.0.1.1")
	f.expire(t)
	f.quiet(t, grace/4, "the service went empty by expiry")
	f.replicate(t, "r1", "10.0.1.1") // its owner verifies it again
	f.awaitIPs(t, "10.0.1.1")
	f.quiet(t, grace, "the instances came back")
	f.outcomes(t, 1, 0, 1)
}

// TestAnEmptyPushItsOwnerStatedGoesAtOnce: a replica its owner says is gone
// (a sync's removal, a verification not listing it) is no inference: the
// owner's client deregistered or disconnected there.
func TestAnEmptyPushItsOwnerStatedGoesAtOnce(t *testing.T) {
	const grace = 5 * time.Second
	f := protected(t, grace)
	f.subscribed(t)
	f.replicate(t, "r1", "10.0.1.1")
	f.awaitIPs(t, "10.0.1.1")
	removed := time.Now()
	f.drop(t, "r1")
	if at := f.awaitIPs(t); at.Sub(removed) > grace/2 {
		t.Fatalf("an owner's removal was pushed %v after", at.Sub(removed))
	}
	f.outcomes(t, 0, 0, 0)
}

func TestAnEmptyPushALocalClientCausedGoesAtOnce(t *testing.T) {
	const grace = 5 * time.Second
	f := protected(t, grace)
	f.subscribed(t)
	f.connect(t, "p1", "p2")
	f.register(t, "p1", "10.0.0.1")
	f.awaitIPs(t, "10.0.0.1")
	deregistered := time.Now()
	if err := f.registry.Deregister(context.Background(), "p1", svc, instance("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if at := f.awaitIPs(t); at.Sub(deregistered) > grace/2 {
		t.Fatalf("a deregistration was pushed %v after", at.Sub(deregistered))
	}
	f.register(t, "p2", "10.0.0.2")
	f.awaitIPs(t, "10.0.0.2")
	closed := time.Now()
	f.drop(t, "p2") // its connection closed
	if at := f.awaitIPs(t); at.Sub(closed) > grace/2 {
		t.Fatalf("a disconnection was pushed %v after", at.Sub(closed))
	}
	f.outcomes(t, 0, 0, 0)
}

// TestTheChangeThatEmptiedTheServiceDecides: with local and replicated
// instances, the push to zero is held if replication took the last one,
// and goes at once if a client of this node did.
func TestTheChangeThatEmptiedTheServiceDecides(t *testing.T) {
	const grace = 400 * time.Millisecond
	f := protected(t, grace)
	f.subscribed(t)
	f.connect(t, "local")

	f.replicate(t, "r1", "10.0.1.1")
	f.register(t, "local", "10.0.0.1")
	f.awaitIPs(t, "10.0.0.1", "10.0.1.1")
	f.expire(t)
	f.awaitIPs(t, "10.0.0.1")
	if err := f.registry.Deregister(context.Background(), "local", svc, instance("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	f.exec.next(t) // at once: see TestAnEmptyPushALocalClientCausedGoesAtOnce
	f.outcomes(t, 0, 0, 0)

	f.replicate(t, "r2", "10.0.1.2")
	f.register(t, "local", "10.0.0.1")
	f.awaitIPs(t, "10.0.0.1", "10.0.1.2")
	if err := f.registry.Deregister(context.Background(), "local", svc, instance("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	f.awaitIPs(t, "10.0.1.2")
	f.expire(t)
	f.quiet(t, grace/2, "an expiry took the last instance")
	f.awaitIPs(t)
	f.outcomes(t, 1, 1, 0)
}

// TestALocalChangeReleasesAHeldEmptyPush: once a client of this node has
// made the service empty too, there is nothing left to wait for.
func TestALocalChangeReleasesAHeldEmptyPush(t *testing.T) {
	const grace = 5 * time.Second
	f := protected(t, grace)
	f.subscribed(t)
	f.connect(t, "local")
	f.replicate(t, "r1", "10.0.1.1")
	f.awaitIPs(t, "10.0.1.1")
	f.expire(t)
	f.quiet(t, 100*time.Millisecond, "held")
	f.register(t, "local", "10.0.0.1")
	f.awaitIPs(t, "10.0.0.1")
	f.outcomes(t, 1, 0, 1)
	closed := time.Now()
	f.drop(t, "local")
	if at := f.awaitIPs(t); at.Sub(closed) > grace/2 {
		t.Fatalf("a disconnection was pushed %v after", at.Sub(closed))
	}
}

func TestWithoutProtectionAnEmptyPushGoesAtOnce(t *testing.T) {
	f := protected(t, 0)
	f.subscribed(t)
	f.replicate(t, "r1", "10.0.1.1")
	f.awaitIPs(t, "10.0.1.1")
	emptied := time.Now()
	f.expire(t)
	if at := f.awaitIPs(t); at.Sub(emptied) > time.Second {
		t.Fatalf("pushed %v after", at.Sub(emptied))
	}
	f.outcomes(t, 0, 0, 0)
}

// TestANewSubscriberOfAHeldServiceWaitsWithTheOthers: a subscription during
// the hold gets the (empty) view in its answer, as a query does; the push
// waits with the others.
func TestANewSubscriberOfAHeldServiceWaitsWithTheOthers(t *testing.T) {
	const grace = 400 * time.Millisecond
	f := protected(t, grace)
	f.subscribed(t)
	f.replicate(t, "r1", "10.0.1.1")
	f.awaitIPs(t, "10.0.1.1")
	f.expire(t)
	f.quiet(t, grace/4, "held")
	f.connect(t, "late")
	f.subscribe(t, "late", "")
	f.quiet(t, grace/4, "held")
	var pushed []string
	for len(pushed) < 2 {
		b := f.exec.next(t)
		if len(hostIPs(t, b)) != 0 {
			t.Fatalf("pushed %v", hostIPs(t, b))
		}
		pushed = append(pushed, targets(b)...)
	}
	slices.Sort(pushed)
	if !slices.Equal(pushed, []string{"late", "sub"}) {
		t.Fatalf("the empty list went to %v", pushed)
	}
	f.outcomes(t, 1, 1, 0)
}
