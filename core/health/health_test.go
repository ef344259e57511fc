package health

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock shared by the registry and the checker.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var svc = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "s"}

type fixture struct {
	reg     *naming.Registry
	clock   *clock
	changed chan naming.ServiceChanged
	removed chan naming.ClientRemoved
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	bus := notify.New(notify.Config{})
	f := &fixture{clock: &clock{now: time.Unix(1_700_000_000, 0)},
		changed: make(chan naming.ServiceChanged, 1024), removed: make(chan naming.ClientRemoved, 1024)}
	if err := notify.Subscribe(bus, "test", func(e naming.ServiceChanged) { f.changed <- e }); err != nil {
		t.Fatal(err)
	}
	if err := notify.Subscribe(bus, "test", func(e naming.ClientRemoved) { f.removed <- e }); err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(context.Background()) })
	f.reg = naming.NewRegistry(naming.Config{
		Limits: naming.Limits{MaxNameLength: 512, MaxMetadataBytes: 4096, MaxBatchSize: 10},
		Bus:    bus, Now: f.clock.Now,
	})
	return f
}

func (f *fixture) register(t *testing.T, ip string, md map[string]string) {
	t.Helper()
	in := naming.Instance{IP: ip, Port: 80, Weight: 1, Healthy: true, Enabled: true, Metadata: md}
	if err := f.reg.RegisterHTTP(context.Background(), "", svc, in); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) beat(t *testing.T, ip string) {
	t.Helper()
	if _, found, err := f.reg.BeatHTTP(context.Background(), svc, ip, 80); !found || err != nil {
		t.Fatalf("beat of %s: found=%v err=%v", ip, found, err)
	}
}

// instance returns the instance at ip, and whether there is one.
func (f *fixture) instance(ip string) (naming.Instance, bool) {
	d, ok := f.reg.Client(naming.HTTPClientID(ip, 80))
	if !ok || len(d.Services[svc]) == 0 {
		return naming.Instance{}, false
	}
	return d.Services[svc][0], true
}

func (f *fixture) checker(t *testing.T, cfg Config) *Checker {
	t.Helper()
	cfg.Registry, cfg.Now = f.reg, f.clock.Now
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBeatRules: an instance without beats goes unhealthy after its heartbeat
// timeout and away after its delete timeout, each per its metadata or the
// defaults (15 s, 30 s); a beat makes it healthy again.
func TestBeatRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "10.0.0.1", nil) // the defaults
	f.register(t, "10.0.0.2", map[string]string{naming.MetaHeartbeatInterval: "1000",
		naming.MetaHeartbeatTimeout: "3000", naming.MetaIPDeleteTimeout: "6000"})
	f.register(t, "10.0.0.3", nil) // beats all along
	c := f.checker(t, Config{})
	healthy := func(ip string) bool {
		in, ok := f.instance(ip)
		if !ok {
			t.Fatalf("%s is gone", ip)
		}
		return in.Healthy
	}

	step := func(d time.Duration) {
		f.clock.advance(d)
		f.beat(t, "10.0.0.3")
		c.Check(ctx)
	}
	step(3 * time.Second) // exactly the timeout: not past it
	if !healthy("10.0.0.2") {
		t.Fatal("10.0.0.2 unhealthy at its timeout")
	}
	step(time.Millisecond)
	if healthy("10.0.0.2") || !healthy("10.0.0.1") {
		t.Fatal("after 3.001 s: want 10.0.0.2 unhealthy, 10.0.0.1 healthy")
	}
	if got := metrictest.CounterValue(t, c.unhealthy); got != 1 {
		t.Errorf("unhealthy counter %v", got)
	}

	// A beat makes it healthy again, and restarts its clock.
	f.beat(t, "10.0.0.2")
	if !healthy("10.0.0.2") {
		t.Fatal("a beat left 10.0.0.2 unhealthy")
	}
	step(6 * time.Second)
	if _, ok := f.instance("10.0.0.2"); !ok {
		t.Fatal("10.0.0.2 went 6 s after its beat: the delete timeout is not past")
	}
	step(time.Millisecond)
	if _, ok := f.instance("10.0.0.2"); ok {
		t.Fatal("10.0.0.2 outlived its delete timeout")
	}
	if got := metrictest.CounterValue(t, c.expired); got != 1 {
		t.Errorf("expired counter %v", got)
	}

	// The defaults: 15 s and 30 s after registration (9.002 s so far).
	step(6*time.Second - 2*time.Millisecond) // 15 s
	if !healthy("10.0.0.1") {
		t.Fatal("10.0.0.1 unhealthy at 15 s")
	}
	step(time.Millisecond)
	if healthy("10.0.0.1") {
		t.Fatal("10.0.0.1 healthy 15.001 s without beats")
	}
	step(15*time.Second - time.Millisecond) // 30 s
	if _, ok := f.instance("10.0.0.1"); !ok {
		t.Fatal("10.0.0.1 gone at 30 s")
	}
	step(time.Millisecond)
	if _, ok := f.instance("10.0.0.1"); ok {
		t.Fatal("10.0.0.1 still there 30.001 s without beats")
	}
	if !healthy("10.0.0.3") {
		t.Fatal("the beating instance was touched")
	}
}

// TestOnlyOwnedClients: a client this node is not responsible for is left
// alone.
func TestOnlyOwnedClients(t *testing.T) {
	f := newFixture(t)
	f.register(t, "10.0.0.1", nil)
	f.register(t, "10.0.0.2", nil)
	mine := naming.HTTPClientID("10.0.0.1", 80)
	c := f.checker(t, Config{Owns: func(id string) bool { return id == mine }})
	f.clock.advance(time.Minute)
	c.Check(context.Background())
	if _, ok := f.instance("10.0.0.1"); ok {
		t.Error("an owned client's silent instance stayed")
	}
	if _, ok := f.instance("10.0.0.2"); !ok {
		t.Error("a client of another node's was expired")
	}
}

// TestUnownedSubscriptionsLapse: the UDP subscription of a client this
// node does not own for its beats still lapses here, where it was polled.
func TestUnownedSubscriptionsLapse(t *testing.T) {
	f := newFixture(t)
	c := f.checker(t, Config{Owns: func(string) bool { return false }})
	if err := f.reg.SubscribeHTTP(svc, "10.0.0.9", 55000, naming.Subscription{}); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(naming.DefaultUDPSubscriberTTL + time.Second)
	c.Check(context.Background())
	if n := len(f.reg.UDPSubscribers(svc)); n != 0 {
		t.Fatalf("%d subscriptions left past their TTL on a node that does not own their client", n)
	}
}

// TestBoundedWorkPerTick: a tick checks at most MaxChecksPerTick clients, and
// the next tick goes on with the rest of the round.
func TestBoundedWorkPerTick(t *testing.T) {
	f := newFixture(t)
	const n = 10
	for i := range n {
		f.register(t, "10.0.1."+strconv.Itoa(i), nil)
	}
	var checked []string
	c := f.checker(t, Config{MaxChecksPerTick: 4, Owns: func(id string) bool {
		checked = append(checked, id)
		return true
	}})
	f.clock.advance(time.Minute)
	for tick, want := range []int{4, 8, 10, 10} {
		c.Check(context.Background())
		if len(checked) != want {
			t.Fatalf("after tick %d: %d clients checked, want %d", tick+1, len(checked), want)
		}
	}
	if left := len(f.reg.HTTPClients()); left != 0 {
		t.Errorf("%d clients left after a full round", left)
	}
	seen := map[string]bool{}
	for _, id := range checked {
		if seen[id] {
			t.Errorf("%s checked twice in one round", id)
		}
		seen[id] = true
	}
}

// TestSubscriptionsLapse: a UDP subscriber not renewed within its TTL goes,
// and its client with it.
func TestSubscriptionsLapse(t *testing.T) {
	f := newFixture(t)
	c := f.checker(t, Config{})
	if err := f.reg.SubscribeHTTP(svc, "10.0.0.9", 55000, naming.Subscription{}); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(naming.DefaultUDPSubscriberTTL)
	c.Check(context.Background())
	if len(f.reg.UDPSubscribers(svc)) != 1 {
		t.Fatal("the subscription lapsed at its TTL, not after")
	}
	f.clock.advance(time.Millisecond)
	c.Check(context.Background())
	if len(f.reg.UDPSubscribers(svc)) != 0 || len(f.reg.HTTPClients()) != 0 {
		t.Fatal("the subscription outlived its TTL")
	}
	if got := metrictest.CounterValue(t, c.lapsed); got != 1 {
		t.Errorf("lapsed counter %v", got)
	}
	select {
	case e := <-f.removed:
		if e.ClientID != naming.HTTPClientID("10.0.0.9", 55000) {
			t.Errorf("ClientRemoved %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ClientRemoved")
	}
}

// TestLifecycle runs the checker on injected ticks: every tick runs a check,
// and Stop ends the goroutine.
func TestLifecycle(t *testing.T) {
	f := newFixture(t)
	f.register(t, "10.0.0.1", nil)
	<-f.changed                   // the registration's
	ticks := make(chan time.Time) // unbuffered: a send returns once the loop took it
	metrics := prometheus.NewRegistry()
	c := f.checker(t, Config{Ticks: ticks, Metrics: metrics})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(16 * time.Second)
	ticks <- time.Time{}
	ticks <- time.Time{} // taken only after the first tick's check ended
	if in, ok := f.instance("10.0.0.1"); !ok || in.Healthy {
		t.Fatalf("after a tick past the timeout: %+v, %v", in, ok)
	}
	select {
	case e := <-f.changed:
		if e.Service != svc {
			t.Errorf("ServiceChanged %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ServiceChanged")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if families, err := metrics.Gather(); err != nil || len(families) != 3 {
		t.Errorf("%d metrics registered (%v), want 3", len(families), err)
	}
}

func TestLifecycleWithTicker(t *testing.T) {
	f := newFixture(t)
	c := f.checker(t, Config{Interval: time.Millisecond})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := (&Checker{}).Stop(context.Background()); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a registry succeeded")
	}
}
