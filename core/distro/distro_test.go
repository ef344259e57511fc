package distro

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
	"github.com/sextantd/sextant/sdk/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mesh connects in-process nodes the way transport plugins would.
type mesh struct {
	mu    sync.Mutex
	nodes map[string]*node // by cluster address
	// onCall, if set, sees each call before it is delivered (and may hold
	// it); an error it returns fails the call.
	onCall func(target, kind string, payload []byte) error
	// logger, if set, is every node's Distro logger.
	logger hclog.Logger
}

// meshTransport is one node's view of the mesh.
type meshTransport struct {
	self string
	mesh *mesh
}

func (t meshTransport) target(addr string) (*node, error) {
	t.mesh.mu.Lock()
	defer t.mesh.mu.Unlock()
	n := t.mesh.nodes[addr]
	if n == nil {
		return nil, fmt.Errorf("%w: dial %s: connection refused", transport.ErrUnreachable, addr)
	}
	return n, nil
}

func (t meshTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	n, err := t.target(target)
	if err != nil {
		return nil, err
	}
	if t.mesh.onCall != nil && kind != cluster.ReportKind {
		if err := t.mesh.onCall(target, kind, payload); err != nil {
			return nil, err
		}
	}
	return n.router.Handle(ctx, t.self, kind, payload)
}

func (t meshTransport) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	n, err := t.target(target)
	if err != nil {
		return err
	}
	return n.router.Snapshot(ctx, t.self, fn)
}

// snapshotOf is a transport that reaches one node, for its snapshot only.
type snapshotOf struct{ d *Distro }

func (s snapshotOf) Call(context.Context, string, string, []byte) ([]byte, error) {
	return nil, errors.New("snapshotOf: no calls")
}

func (s snapshotOf) Snapshot(ctx context.Context, _ string, fn func([]byte) error) error {
	return s.d.snapshot(ctx, "", fn)
}

// node is one in-process Sextant node: a registry with Distro.
type node struct {
	addr     string
	bus      *notify.Bus
	registry *naming.Registry
	router   *cluster.Router
	cluster  *cluster.Cluster
	distro   *Distro
}

func (m *mesh) start(t *testing.T, addr string, members []string) *node {
	t.Helper()
	ctx := context.Background()
	n := &node{addr: addr, bus: notify.New(notify.Config{}), router: cluster.NewRouter()}
	n.registry = naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10}, Bus: n.bus})
	tr := meshTransport{self: addr, mesh: m}
	var err error
	n.cluster, err = cluster.New(cluster.Config{Self: addr, ReportInterval: 50 * time.Millisecond, Transport: tr,
		Router: n.router, Bus: n.bus, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	logger := m.logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	n.distro, err = New(Config{Registry: n.registry, Cluster: n.cluster, Transport: tr, Router: n.router, Bus: n.bus,
		SyncDelay: 10 * time.Millisecond, RetryDelay: 50 * time.Millisecond, CallTimeout: time.Second,
		VerifyInterval: 100 * time.Millisecond, ClientExpiry: 500 * time.Millisecond, SnapshotTimeout: 5 * time.Second,
		Logger: logger, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	clusterAddr, _ := cluster.Address(addr)
	m.mu.Lock()
	m.nodes[clusterAddr] = n
	m.mu.Unlock()
	for _, c := range []interface{ Start(context.Context) error }{n.bus, n.cluster, n.distro} {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n.cluster.SetMembers(members)
	t.Cleanup(func() { n.stop(t, m) })
	return n
}

// stop ends the node as a crash would: it leaves the mesh and stops.
func (n *node) stop(t *testing.T, m *mesh) {
	clusterAddr, _ := cluster.Address(n.addr)
	m.mu.Lock()
	if m.nodes[clusterAddr] != n {
		m.mu.Unlock()
		return
	}
	delete(m.nodes, clusterAddr)
	m.mu.Unlock()
	ctx := context.Background()
	for _, c := range []interface{ Stop(context.Context) error }{n.distro, n.cluster, n.bus} {
		if err := c.Stop(ctx); err != nil {
			t.Error(err)
		}
	}
}

var svc = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}

func instance(ip string) naming.Instance {
	return naming.Instance{ID: ip, IP: ip, Port: 80, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, Cluster: "DEFAULT"}
}

// register connects a client to n and registers ip.
func (n *node) register(t *testing.T, client, ip string) {
	t.Helper()
	if _, ok := n.registry.Client(client); !ok {
		if err := n.registry.Connect(client, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.registry.Register(context.Background(), client, svc, instance(ip)); err != nil {
		t.Fatal(err)
	}
}

// eventually polls until cond holds, for 5 s at most; then it fails t with
// what failure says.
func eventually(t *testing.T, cond func() bool, failure func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(failure())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitReady waits until n has loaded its start-up snapshot.
func (n *node) awaitReady(t *testing.T) {
	t.Helper()
	eventually(t, n.distro.Ready, func() string { return n.addr + " never got ready" })
}

// ips returns the instances n holds for svc.
func (n *node) ips() []string {
	var out []string
	n.registry.EachClient(func(d naming.ClientData) bool {
		for _, in := range d.Services[svc] {
			out = append(out, in.IP)
		}
		return true
	})
	slices.Sort(out)
	return out
}

// await polls until n holds exactly want.
func (n *node) await(t *testing.T, want ...string) {
	t.Helper()
	eventually(t, func() bool { return slices.Equal(n.ips(), want) },
		func() string { return fmt.Sprintf("%s holds %v, want %v", n.addr, n.ips(), want) })
}

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:8848", i+1)
	}
	return out
}

func TestChangesReplicateBothWays(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(3)
	a, b, c := m.start(t, members[0], members), m.start(t, members[1], members), m.start(t, members[2], members)
	a.register(t, "on-a", "10.1.0.1")
	b.register(t, "on-b", "10.1.0.2")
	for _, n := range []*node{a, b, c} {
		n.await(t, "10.1.0.1", "10.1.0.2")
	}
	a.register(t, "on-a", "10.1.0.3") // re-register: replaces
	c.await(t, "10.1.0.2", "10.1.0.3")
	if err := a.registry.Disconnect(context.Background(), "on-a"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		n.await(t, "10.1.0.2")
	}
	if d, _ := c.registry.Client("on-b"); d.Owner != b.addr {
		t.Fatalf("c holds on-b as owned by %q", d.Owner)
	}
}

func TestVerifyRepairsWhatASyncMissed(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(2)
	a, b := m.start(t, members[0], members), m.start(t, members[1], members)
	a.register(t, "client", "10.1.0.1")
	b.await(t, "10.1.0.1")
	// b loses the client behind a's back; a's next verification restores it.
	if err := b.registry.Disconnect(context.Background(), "client"); err != nil {
		t.Fatal(err)
	}
	b.await(t, "10.1.0.1")
	// b holds a client a no longer has; a's verification removes it.
	if _, err := b.registry.Apply(context.Background(), []naming.ClientData{{ID: "ghost", Owner: a.addr, Revision: 1,
		Services: map[naming.Service][]naming.Instance{svc: {instance("10.6.6.6")}}}}); err != nil {
		t.Fatal(err)
	}
	b.await(t, "10.1.0.1")
}

func TestADeadNodesClientsExpire(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(2)
	a, b := m.start(t, members[0], members), m.start(t, members[1], members)
	a.register(t, "client", "10.1.0.1")
	b.await(t, "10.1.0.1")
	died := time.Now()
	a.stop(t, m)
	b.await(t)
	if took := time.Since(died); took < 400*time.Millisecond {
		t.Fatalf("the clients went after %v, before the expiry", took)
	}
	eventually(t, func() bool { return b.cluster.Members()[0].State == cluster.Down },
		func() string { return fmt.Sprintf("the dead member is %s", b.cluster.Members()[0].State) })
}

func TestAStartingNodeLoadsASnapshotAndKeepsItsOwnClients(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(3)
	a, b := m.start(t, members[0], members), m.start(t, members[1], members)
	for i := range 50 {
		a.register(t, fmt.Sprintf("a-%d", i), fmt.Sprintf("10.2.0.%d", i))
	}
	b.register(t, "b-0", "10.3.0.1")
	b.await(t, append(a.ips(), "10.3.0.1")...)
	want := b.ips()

	c := m.start(t, members[2], members)
	c.register(t, "c-0", "10.4.0.1") // while it loads
	c.awaitReady(t)
	if got := c.ips(); len(got) < len(want) {
		t.Fatalf("ready with %d instances, want the %d of the snapshot", len(got), len(want))
	}
	c.await(t, append(slices.Clone(want), "10.4.0.1")...)
	a.await(t, c.ips()...)
}

// BenchmarkSnapshotLoad measures a starting node's load of a member's
// registry (encoding it in chunks, decoding and applying them), without the
// transport between them.
func BenchmarkSnapshotLoad(b *testing.B) {
	// Each client, as an application would, has one instance in each of ten
	// services, of a thousand in all.
	const perClient, services = 10, 1000
	for _, instances := range []int{100_000, 300_000} {
		b.Run(fmt.Sprintf("instances=%d", instances), func(b *testing.B) {
			ctx := context.Background()
			source := naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 1000, MaxBatchSize: 1000}, Bus: notify.New(notify.Config{})})
			for c := range instances / perClient {
				id := fmt.Sprintf("client-%d", c)
				if err := source.Connect(id, nil); err != nil {
					b.Fatal(err)
				}
				for i := range perClient {
					inst := instance(fmt.Sprintf("10.%d.%d.%d", c/65536, c/256%256, c%256))
					inst.Metadata = map[string]string{"version": "1.0.0", "zone": "eu-1a"}
					svc := naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: fmt.Sprintf("svc-%d", (c*perClient+i)%services)}
					if err := source.Register(ctx, id, svc, inst); err != nil {
						b.Fatal(err)
					}
				}
			}
			d := &Distro{cfg: Config{Registry: source}, self: "10.0.0.1:8848"}
			members, err := cluster.New(cluster.Config{Self: "10.0.0.2:8848", Router: cluster.NewRouter(), Bus: notify.New(notify.Config{}),
				Logger: hclog.NewNullLogger()})
			if err != nil {
				b.Fatal(err)
			}
			members.SetMembers([]string{d.self, "10.0.0.2:8848"})
			b.ResetTimer()
			for b.Loop() {
				target := naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 1000, MaxBatchSize: 1000}, Bus: notify.New(notify.Config{})})
				loader := &Distro{cfg: Config{Registry: target, Cluster: members, Transport: snapshotOf{d}, SnapshotTimeout: time.Minute}, self: "10.0.0.2:8848"}
				if _, err := loader.loadFrom(ctx, d.self); err != nil {
					b.Fatal(err)
				}
				if st := target.Stats(); st.Instances != int64(instances) {
					b.Fatalf("loaded %d instances", st.Instances)
				}
			}
		})
	}
}

// TestALoadingNodeAsksVerificationsForNothing: while its snapshot loads, a
// node would otherwise ask each verifying member for every client at once,
// and have them sent and applied twice.
func TestALoadingNodeAsksVerificationsForNothing(t *testing.T) {
	registry := naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10}, Bus: notify.New(notify.Config{})})
	d := &Distro{cfg: Config{Registry: registry}, self: "10.0.0.2:8848"}
	verify, err := proto.Marshal(&clusterv1.Verify{Entries: []*clusterv1.Verify_Entry{{Id: "client", Revision: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	need := func() []string {
		t.Helper()
		raw, err := d.handleVerify(context.Background(), "10.0.0.1:8848", verify)
		if err != nil {
			t.Fatal(err)
		}
		var answer clusterv1.VerifyAnswer
		if err := proto.Unmarshal(raw, &answer); err != nil {
			t.Fatal(err)
		}
		return answer.Need
	}
	if got := need(); len(got) != 0 {
		t.Errorf("loading, the node asked for %v", got)
	}
	d.ready.Store(true)
	if got := need(); !slices.Equal(got, []string{"client"}) {
		t.Errorf("ready, the node asked for %v, want [client]", got)
	}
}

// TestBatchesDueDuringASyncFollowItMerged: while a sync to a member is in
// flight, the batches that fall due for it wait and go as one, instead of
// queueing up one call each.
func TestBatchesDueDuringASyncFollowItMerged(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(2)
	bTarget, _ := cluster.Address(members[1])
	held, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var syncs [][]string // the clients of each sync to b, in order
	m.onCall = func(target, kind string, payload []byte) error {
		if target != bTarget || kind != SyncKind {
			return nil
		}
		var msg clusterv1.Sync
		if err := proto.Unmarshal(payload, &msg); err != nil {
			t.Error(err)
		}
		var ids []string
		for _, c := range msg.Changed {
			ids = append(ids, c.Id)
		}
		slices.Sort(ids)
		mu.Lock()
		syncs = append(syncs, ids)
		first := len(syncs) == 1
		mu.Unlock()
		if first {
			close(held)
			<-release
		}
		return nil
	}
	a, b := m.start(t, members[0], members), m.start(t, members[1], members)
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the nodes stop
	a.register(t, "c1", "10.1.0.1")
	select { // its sync to b is held
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("no sync to b")
	}
	parked := func(ids ...string) {
		t.Helper()
		got := func() []string {
			a.distro.mu.Lock()
			defer a.distro.mu.Unlock()
			return slices.Sorted(maps.Keys(a.distro.work(members[1]).parked))
		}
		eventually(t, func() bool { return slices.Equal(got(), ids) },
			func() string { return fmt.Sprintf("parked %v, want %v", got(), ids) })
	}
	a.register(t, "c2", "10.1.0.2")
	parked("c2")
	a.register(t, "c3", "10.1.0.3")
	parked("c2", "c3")
	releaseOnce.Do(func() { close(release) })
	b.await(t, "10.1.0.1", "10.1.0.2", "10.1.0.3")
	mu.Lock()
	defer mu.Unlock()
	if len(syncs) < 2 || !slices.Equal(syncs[0], []string{"c1"}) || !slices.Equal(syncs[1], []string{"c2", "c3"}) {
		t.Errorf("syncs to b: %v, want [c1] then [c2 c3]", syncs)
	}
}

// TestASyncThatPanicsIsRetried: a panic in a sync (a transport in process
// may panic) neither loses the batch nor stalls the member's later syncs.
func TestASyncThatPanicsIsRetried(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(2)
	bTarget, _ := cluster.Address(members[1])
	var panicked atomic.Bool
	m.onCall = func(target, kind string, _ []byte) error {
		if target == bTarget && kind == SyncKind && panicked.CompareAndSwap(false, true) {
			panic("the transport broke")
		}
		return nil
	}
	a, b := m.start(t, members[0], members), m.start(t, members[1], members)
	b.awaitReady(t) // c1 can reach b in a sync only, not in b's snapshot
	a.register(t, "c1", "10.1.0.1")
	b.await(t, "10.1.0.1")
	if !panicked.Load() {
		t.Fatal("no sync panicked")
	}
	a.register(t, "c2", "10.1.0.2")
	b.await(t, "10.1.0.1", "10.1.0.2")
}

// logBuffer is a logger's output.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func TestAMemberThatCannotBeSyncedIsWarnedAboutOnce(t *testing.T) {
	logs := &logBuffer{}
	m := &mesh{nodes: map[string]*node{}, logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})}
	members := addrs(2)
	bTarget, _ := cluster.Address(members[1])
	var failing atomic.Bool
	var failed atomic.Int32
	m.onCall = func(target, kind string, _ []byte) error {
		if target == bTarget && kind == SyncKind && failing.Load() {
			failed.Add(1)
			return errors.New("b is unreachable")
		}
		return nil
	}
	a, b := m.start(t, members[0], members), m.start(t, members[1], members)
	b.awaitReady(t)
	failing.Store(true)
	a.register(t, "c1", "10.1.0.1")
	eventually(t, func() bool { return failed.Load() >= 3 },
		func() string { return fmt.Sprintf("%d syncs failed, want retries", failed.Load()) })
	failing.Store(false)
	b.await(t, "10.1.0.1")
	eventually(t, func() bool { return logs.count("syncs to the member work again") > 0 },
		func() string { return "the recovery is not logged" })
	if n := logs.count("cannot sync clients to a member"); n != 1 {
		t.Errorf("%d syncs failed and were warned about %d times, want once", failed.Load(), n)
	}
}

func TestTheWorkOfAFormerMemberIsForgotten(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(2)
	a, b := m.start(t, members[0], members), m.start(t, members[1], members)
	a.register(t, "c1", "10.1.0.1")
	b.await(t, "10.1.0.1")
	a.cluster.SetMembers(members[:1])
	eventually(t, func() bool {
		a.distro.mu.Lock()
		defer a.distro.mu.Unlock()
		_, held := a.distro.peers[members[1]]
		return !held
	}, func() string { return "the former member's work entry is still held" })
}

// recorder is a transport that records each sync and fails the call numbered
// failOn (from 1; 0: none).
type recorder struct {
	failOn int
	syncs  []*clusterv1.Sync
}

func (r *recorder) Call(_ context.Context, _, kind string, payload []byte) ([]byte, error) {
	msg := &clusterv1.Sync{}
	if err := proto.Unmarshal(payload, msg); err != nil {
		return nil, err
	}
	r.syncs = append(r.syncs, msg)
	if len(r.syncs) == r.failOn {
		return nil, errors.New("the member went away")
	}
	return nil, nil
}

func (r *recorder) Snapshot(context.Context, string, func([]byte) error) error {
	return errors.New("recorder: no snapshots")
}

func TestASyncGoesInCallsOfAFewThousandInstancesAndRetriesTheRest(t *testing.T) {
	ctx := context.Background()
	registry := naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10}, Bus: notify.New(notify.Config{})})
	const clients, perClient = 4, 1500
	b := batch{}
	for c := range clients {
		id := fmt.Sprintf("c%d", c)
		if err := registry.Connect(id, nil); err != nil {
			t.Fatal(err)
		}
		for i := range perClient {
			if err := registry.Register(ctx, id, naming.Service{Namespace: "public", Group: "G", Name: fmt.Sprintf("s%d", i)}, instance(fmt.Sprintf("10.0.%d.%d", c, i%250))); err != nil {
				t.Fatal(err)
			}
		}
		b[id] = struct{}{}
	}
	members := addrs(2)
	for _, failOn := range []int{0, 2} {
		rec := &recorder{failOn: failOn}
		c, err := cluster.New(cluster.Config{Self: members[0], Transport: rec, Router: cluster.NewRouter(), Bus: notify.New(notify.Config{}), Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatal(err)
		}
		c.SetMembers(members)
		d := &Distro{cfg: Config{Registry: registry, Cluster: c, Transport: rec, CallTimeout: time.Second}, self: members[0]}
		unsent, err := d.sync(ctx, members[1], maps.Clone(b))

		sent := map[string]int{} // client -> call
		for i, msg := range rec.syncs {
			instances := 0
			for _, cl := range msg.Changed {
				sent[cl.Id] = i + 1
				for _, s := range cl.Services {
					instances += len(s.Instances)
				}
			}
			if instances > chunkInstances+perClient {
				t.Errorf("call %d carried %d instances", i+1, instances)
			}
		}
		if len(rec.syncs) != 2 || len(sent) != clients {
			t.Fatalf("failOn %d: %d calls carried %d clients, want 2 calls carrying %d", failOn, len(rec.syncs), len(sent), clients)
		}
		var wantUnsent []string
		for id, call := range sent {
			if call == failOn {
				wantUnsent = append(wantUnsent, id)
			}
		}
		slices.Sort(wantUnsent)
		if got := slices.Sorted(maps.Keys(unsent)); !slices.Equal(got, wantUnsent) || (err != nil) != (failOn != 0) {
			t.Errorf("failOn %d: sync returned unsent %v, %v; want %v", failOn, got, err, wantUnsent)
		}
	}
}

// TestAMemberThatDoesNotAnswerHoldsUpNoOther: the syncs and verifications
// to a member that takes each call to its timeout (a paused node, before it
// is marked DOWN) must not delay those to the others, which would expire
// the clients of a live owner.
func TestAMemberThatDoesNotAnswerHoldsUpNoOther(t *testing.T) {
	m := &mesh{nodes: map[string]*node{}}
	members := addrs(3)
	bTarget, _ := cluster.Address(members[1])
	var hanging atomic.Bool
	stuck := make(chan struct{})
	m.onCall = func(target, _ string, _ []byte) error {
		if target != bTarget || !hanging.Load() {
			return nil
		}
		select { // as a call to a stopped process does, until its timeout
		case <-stuck:
		case <-time.After(time.Second):
		}
		return errors.New("b did not answer in time")
	}
	a, b, c := m.start(t, members[0], members), m.start(t, members[1], members), m.start(t, members[2], members)
	t.Cleanup(func() { close(stuck) }) // before the nodes stop
	a.register(t, "on-a", "10.1.0.1")
	for _, n := range []*node{b, c} {
		n.await(t, "10.1.0.1")
	}
	hanging.Store(true)
	a.register(t, "on-a-2", "10.1.0.2") // a sync to b, which hangs
	c.await(t, "10.1.0.1", "10.1.0.2")
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got := c.ips(); len(got) != 2 {
			t.Fatalf("c holds %v of a's live clients while a's calls to b hang", got)
		}
	}
}
