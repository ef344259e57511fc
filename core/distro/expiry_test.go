package distro

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/sdk/transport"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// reports is a transport that answers the health reports as the test says
// (the error per member address) and nothing else.
type reports struct {
	mu   sync.Mutex
	errs map[string]error // by cluster address
}

func (r *reports) fail(member string, err error) {
	target, _ := cluster.Address(member)
	r.mu.Lock()
	r.errs[target] = err
	r.mu.Unlock()
}

func (r *reports) Call(_ context.Context, target, kind string, _ []byte) ([]byte, error) {
	if kind != cluster.ReportKind {
		return nil, errors.New("reports: reports only")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return nil, r.errs[target]
}

func (r *reports) Snapshot(context.Context, string, func([]byte) error) error {
	return errors.New("reports: no snapshots")
}

// expiryFixture is one node whose expiry the test runs by hand, on a fake
// clock, beside a real member table kept by health reports.
type expiryFixture struct {
	clock *fakeClock
	// transportSince is when the transport began serving, in Unix
	// nanoseconds of the fake clock (0: before any of it).
	transportSince atomic.Int64
	registry       *naming.Registry
	cluster        *cluster.Cluster
	reports        *reports
	distro         *Distro
	logs           *logBuffer
	ticker         chan time.Time // the expiry's ticker, once the Distro is started
}

const (
	self       = "10.0.0.1:8848"
	testExpiry = 10 * time.Second
)

// newExpiryFixture starts a node with the members given (besides itself):
// cluster.report_interval 2 s, verify_interval 5 s, call timeout 3 s and
// client_expiry 10 s, as by default.
func newExpiryFixture(t *testing.T, members ...string) *expiryFixture {
	t.Helper()
	ctx := context.Background()
	f := &expiryFixture{clock: &fakeClock{now: time.Unix(1000, 0)}, reports: &reports{errs: map[string]error{}}, logs: &logBuffer{},
		ticker: make(chan time.Time)}
	bus, router := notify.New(notify.Config{}), cluster.NewRouter()
	f.registry = naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10},
		Bus: bus, Now: f.clock.Now})
	var err error
	// The member table moves on real reports, quickly; the expiry on the
	// fake clock.
	f.cluster, err = cluster.New(cluster.Config{Self: self, ReportInterval: 5 * time.Millisecond, Transport: f.reports,
		Router: router, Bus: bus, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.distro, err = New(Config{Registry: f.registry, Cluster: f.cluster, Transport: f.reports, Router: router, Bus: bus,
		SyncDelay: time.Second, RetryDelay: time.Second, CallTimeout: 3 * time.Second, ReportInterval: 2 * time.Second,
		VerifyInterval: 5 * time.Second, ClientExpiry: testExpiry, SnapshotTimeout: time.Second, Now: f.clock.Now,
		TransportSince: func() time.Time { return time.Unix(0, f.transportSince.Load()) },
		NewTicker:      func(time.Duration) (<-chan time.Time, func()) { return f.ticker, func() {} },
		Logger:         hclog.New(&hclog.LoggerOptions{Output: f.logs, Level: hclog.Info}), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface{ Start(context.Context) error }{bus, f.cluster} {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, c := range []interface{ Stop(context.Context) error }{f.cluster, bus} {
			if err := c.Stop(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	f.cluster.SetMembers(append([]string{self}, members...))
	return f
}

// replicate applies n replicated clients of owner, one instance of service
// each, as verified now.
func (f *expiryFixture) replicate(t *testing.T, owner, service string, n int) {
	t.Helper()
	clients := make([]naming.ClientData, n)
	for i := range clients {
		s := naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: service}
		clients[i] = naming.ClientData{ID: fmt.Sprintf("%s-%s-%d", owner, service, i), Owner: owner, Revision: 1,
			Services: map[naming.Service][]naming.Instance{s: {instance(fmt.Sprintf("10.9.%d.%d", len(service), i))}}}
	}
	if skipped, err := f.registry.Apply(context.Background(), clients); err != nil || len(skipped) > 0 {
		t.Fatal(skipped, err)
	}
}

// tick moves the clock by d and runs the expiry, as its ticker would.
func (f *expiryFixture) tick(d time.Duration) {
	f.clock.advance(d)
	f.distro.expire(context.Background())
}

// ticks runs the expiry every second for d.
func (f *expiryFixture) ticks(d time.Duration) {
	for range d / time.Second {
		f.tick(time.Second)
	}
}

func (f *expiryFixture) clients() int {
	return int(f.registry.Stats().Clients)
}

// awaitState waits until the member table says member is in one of states.
func (f *expiryFixture) awaitState(t *testing.T, member string, states ...cluster.State) {
	t.Helper()
	state := func() cluster.State {
		for _, m := range f.cluster.Members() {
			if m.Address == member {
				return m.State
			}
		}
		return ""
	}
	eventually(t, func() bool { return slices.Contains(states, state()) },
		func() string { return fmt.Sprintf("%s is %s, want %v", member, state(), states) })
}

// TestAStalledNodeDoesNotExpireItsReplicas: a node that was not running (a
// SIGSTOP, a starved process) has heard from nobody meanwhile; it gives every
// replica a fresh grace period from its resumption instead of expiring them
// all for a silence of its own making.
func TestAStalledNodeDoesNotExpireItsReplicas(t *testing.T) {
	// The owner is no member (not UP): only the stall rule keeps its clients.
	const owner = "10.0.0.9:8848"
	f := newExpiryFixture(t)
	f.replicate(t, owner, "orders", 14)
	f.ticks(3 * time.Second)
	f.tick(20 * time.Second) // the node was stopped for 20 s
	if n := f.clients(); n != 14 {
		t.Fatalf("%d of 14 clients left after the node resumed", n)
	}
	if n := f.logs.count("this node did not run"); n != 1 {
		t.Errorf("the stall was warned about %d times, want once", n)
	}
	if got := metrictest.CounterValue(t, f.distro.metrics.stalls); got != 1 {
		t.Errorf("stalls counted %v, want 1", got)
	}
	f.ticks(testExpiry) // a full grace since the resumption, to the second
	if n := f.clients(); n != 14 {
		t.Fatalf("%d of 14 clients left %s after the node resumed", n, testExpiry)
	}
	f.tick(time.Second)
	if n := f.clients(); n != 0 {
		t.Fatalf("%d clients still here once the grace after the stall ran out", n)
	}
	if n := f.logs.count("this node did not run"); n != 1 {
		t.Errorf("the stall was warned about %d times, want once", n)
	}
}

// TestADeafNodeDoesNotExpireItsReplicas: while this node's transport
// restarted it heard no owner; every replica gets the expiry afresh from
// the transport's return, as after a stall.
func TestADeafNodeDoesNotExpireItsReplicas(t *testing.T) {
	const owner = "10.0.0.9:8848" // no member: only the restart keeps its clients
	f := newExpiryFixture(t)
	f.replicate(t, owner, "orders", 5)
	f.ticks(testExpiry - time.Second)
	f.transportSince.Store(f.clock.Now().UnixNano()) // the transport is back now
	f.ticks(testExpiry)
	if n := f.clients(); n != 5 {
		t.Fatalf("%d of 5 clients left a full expiry after the transport came back", n)
	}
	f.tick(time.Second)
	if n := f.clients(); n != 0 {
		t.Fatalf("%d clients still here once the grace after the restart ran out", n)
	}
}

// TestAnUpOwnersReplicasWaitForItsVerification: an owner back UP gets the
// time to verify this node (a report, a verify interval and a call) before
// its replicas can expire.
func TestAnUpOwnersReplicasWaitForItsVerification(t *testing.T) {
	const owner = "10.0.0.2:8848"
	f := newExpiryFixture(t, owner)
	f.awaitState(t, owner, cluster.Up)
	f.replicate(t, owner, "orders", 3)
	f.tick(0)
	f.ticks(5 * time.Second)
	f.reports.fail(owner, fmt.Errorf("%w: connection refused", transport.ErrUnreachable))
	f.awaitState(t, owner, cluster.Down)
	f.tick(time.Second) // t0+6: seen DOWN
	f.reports.fail(owner, nil)
	f.awaitState(t, owner, cluster.Up)
	f.tick(time.Second) // t0+7: seen UP again
	f.ticks(9 * time.Second)
	// t0+16: unverified for 16 s, but UP for 9 s only, short of the 10 s
	// (2 s + 5 s + 3 s) it may take to verify this node.
	if n := f.clients(); n != 3 {
		t.Fatalf("%d of 3 clients of an owner UP for 9 s left", n)
	}
	f.tick(time.Second)
	if n := f.clients(); n != 0 {
		t.Fatalf("%d clients of an owner that had its chance to verify are still here", n)
	}
}

// TestAnUpOwnerThatVerifiesKeepsItsReplicas: the owner's verifications
// refresh its replicas, however long it has been UP.
func TestAnUpOwnerThatVerifiesKeepsItsReplicas(t *testing.T) {
	const owner = "10.0.0.2:8848"
	f := newExpiryFixture(t, owner)
	f.awaitState(t, owner, cluster.Up)
	f.replicate(t, owner, "orders", 2)
	ids := []naming.ClientVersion{{ID: owner + "-orders-0", Revision: 1}, {ID: owner + "-orders-1", Revision: 1}}
	for range 12 {
		f.ticks(5 * time.Second)
		if _, err := f.registry.Verify(context.Background(), owner, ids, naming.ReplicaOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.clients(); n != 2 {
		t.Fatalf("%d of 2 verified clients left", n)
	}
}

// TestADownOwnersReplicasExpireInTime: the clients of an owner that is not
// UP — DOWN (refused), or SUSPICIOUS and then DOWN (stopped: its reports
// time out) — leave one tick after the client expiry.
func TestADownOwnersReplicasExpireInTime(t *testing.T) {
	const refused, stopped = "10.0.0.2:8848", "10.0.0.3:8848"
	f := newExpiryFixture(t, refused, stopped)
	f.replicate(t, refused, "orders", 2)
	f.replicate(t, stopped, "users", 2)
	f.tick(0)
	f.ticks(2 * time.Second)
	f.reports.fail(refused, fmt.Errorf("%w: connection refused", transport.ErrUnreachable))
	f.reports.fail(stopped, context.DeadlineExceeded)
	f.awaitState(t, refused, cluster.Down)
	f.awaitState(t, stopped, cluster.Suspicious, cluster.Down)
	f.ticks(8 * time.Second) // t0+10
	if n := f.clients(); n != 4 {
		t.Fatalf("%d of 4 clients left at the expiry", n)
	}
	f.tick(time.Second)
	if n := f.clients(); n != 0 {
		t.Fatalf("%d clients of owners not UP left a second after the expiry", n)
	}
}

// TestAMassExpiryIsWarnedAboutAndCounted: an expiry that takes most of a
// service's instances at once still happens (its owner is gone), but is
// warned about with the service, and counted.
func TestAMassExpiryIsWarnedAboutAndCounted(t *testing.T) {
	const owner = "10.0.0.9:8848"
	f := newExpiryFixture(t)
	f.replicate(t, owner, "orders", 6) // 6 of 7
	f.replicate(t, owner, "users", 1)  // 1 of 6
	f.replicate(t, owner, "tiny", 2)   // 2 of 2, too few to matter
	if err := f.registry.Connect("local", nil); err != nil {
		t.Fatal(err)
	}
	for service, n := range map[string]int{"orders": 1, "users": 5} {
		insts := make([]naming.Instance, n)
		for i := range insts {
			insts[i] = instance(fmt.Sprintf("10.8.0.%d", i))
		}
		s := naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: service}
		if err := f.registry.BatchRegister(context.Background(), "local", s, insts); err != nil {
			t.Fatal(err)
		}
	}
	f.tick(0)
	f.ticks(11 * time.Second)
	if n := f.clients(); n != 1 {
		t.Fatalf("%d clients left, want the local one", n)
	}
	if got := metrictest.CounterValue(t, f.distro.metrics.massExpiries); got != 1 {
		t.Errorf("mass expiries counted %v, want 1 (orders)", got)
	}
	if n := f.logs.count("[WARN]  an expiry removed most of a service's instances"); n != 1 {
		t.Errorf("%d mass expiry warnings, want 1: %s", n, f.logs.b.String())
	}
	if n := f.logs.count("service=public/DEFAULT_GROUP@@orders"); n != 1 {
		t.Errorf("the warning does not name the service: %s", f.logs.b.String())
	}
}

// TestTheExpiryRunsOnItsTicker: a started Distro expires on its ticker.
func TestTheExpiryRunsOnItsTicker(t *testing.T) {
	f := newExpiryFixture(t)
	f.replicate(t, "10.0.0.9:8848", "orders", 1)
	f.clock.advance(testExpiry + time.Second)
	if err := f.distro.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.distro.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	f.ticker <- f.clock.Now() // the first run: no stall to see
	eventually(t, func() bool { return f.clients() == 0 }, func() string { return "the client did not expire: " + f.logs.b.String() })
}
