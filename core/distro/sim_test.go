package distro

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/sdk/transport"
)

// A simulation of Distro in a cluster of many members, in one process: each
// member is the real thing (a registry, its member table, Distro), and only
// the transport between them is faked, by an in-memory network that counts
// the messages and bytes of each kind. BenchmarkDistroCluster reports what
// a cluster sends; BENCHMARKS.md ("Sizing") reads its figures.

// The simulation's shape, which the benchmark's flags change: go test -run
// '^$' -bench DistroCluster ./core/distro/ -args -distro.sim.clients=1000.
var (
	simMembersFlag   = flag.String("distro.sim.members", "3,10,30", "BenchmarkDistroCluster: the cluster sizes simulated, comma-separated")
	simClientsFlag   = flag.Int("distro.sim.clients", 100, "BenchmarkDistroCluster: the clients (connections) of each member")
	simInstancesFlag = flag.Int("distro.sim.instances", 10, "BenchmarkDistroCluster: the instances of each client, one in each of as many services")
)

// simServices is how many services the clients' instances spread over,
// cluster-wide.
const simServices = 1000

// simVerifyInterval is cluster.verify_interval's default, which turns a
// verification round into traffic per second.
const simVerifyInterval = 5 * time.Second

// simTraffic is what one kind of message cost: messages sent, and bytes of
// the requests and of their answers.
type simTraffic struct {
	msgs, requestBytes, answerBytes int64
}

func (t simTraffic) bytes() int64 { return t.requestBytes + t.answerBytes }

func (t simTraffic) minus(o simTraffic) simTraffic {
	return simTraffic{t.msgs - o.msgs, t.requestBytes - o.requestBytes, t.answerBytes - o.answerBytes}
}

// simNet delivers the members' calls to each other's routers, and counts
// each by kind once its answer is back (a snapshot: each chunk, as a
// message).
type simNet struct {
	mu      sync.Mutex
	nodes   map[string]*simNode // by cluster address
	traffic map[string]simTraffic
}

func (n *simNet) node(target string) (*simNode, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if node := n.nodes[target]; node != nil {
		return node, nil
	}
	return nil, fmt.Errorf("%w: %s is not in the simulation", transport.ErrUnreachable, target)
}

func (n *simNet) count(kind string, request, answer int) {
	n.mu.Lock()
	t := n.traffic[kind]
	t.msgs++
	t.requestBytes += int64(request)
	t.answerBytes += int64(answer)
	n.traffic[kind] = t
	n.mu.Unlock()
}

// counted returns what the messages of kind have cost so far.
func (n *simNet) counted(kind string) simTraffic {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.traffic[kind]
}

// simTransport is one member's side of the network.
type simTransport struct {
	self string // the member's HTTP address, as its peers know it
	net  *simNet
}

func (t simTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	node, err := t.net.node(target)
	if err != nil {
		return nil, err
	}
	answer, err := node.router.Handle(ctx, t.self, kind, payload)
	t.net.count(kind, len(payload), len(answer))
	return answer, err
}

func (t simTransport) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	node, err := t.net.node(target)
	if err != nil {
		return err
	}
	return node.router.Snapshot(ctx, t.self, func(chunk []byte) error {
		t.net.count(SnapshotKind, 0, len(chunk))
		return fn(chunk)
	})
}

// simNode is one member.
type simNode struct {
	addr     string
	bus      *notify.Bus
	registry *naming.Registry
	router   *cluster.Router
	cluster  *cluster.Cluster
	distro   *Distro
	clients  []string // its own clients
}

// simCluster is the members, connected by the network.
type simCluster struct {
	net                       *simNet
	nodes                     []*simNode
	members                   []string
	clients, instances, round int
}

// simLimits are the naming limits of a server's defaults.
var simLimits = naming.Limits{MaxNameLength: 512, MaxMetadataBytes: 16 << 10, MaxBatchSize: 1000,
	MaxServicesPerClient: 1000, MaxInstancesPerClient: 10000, MaxSubscriptionsPerClient: 5000, MaxClustersPerFilter: 64}

// never is a ticker that never ticks: the simulation runs no expiry.
func never(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

// newSimCluster starts members members, each with clients clients of
// instances instances, and returns once every member holds every instance
// and the replication is idle. Its members stop when tb ends.
//
// Syncs go at once (sync delay 1 ms: a change is measured alone, not merged
// with others); the verifications, expiry and health reports do not run on
// their own (the benchmark runs verification rounds itself; every member is
// UP from the start).
func newSimCluster(tb testing.TB, members, clients, instances int) *simCluster {
	tb.Helper()
	ctx := context.Background()
	c := &simCluster{net: &simNet{nodes: map[string]*simNode{}, traffic: map[string]simTraffic{}},
		clients: clients, instances: instances}
	for i := range members {
		c.members = append(c.members, simAddress(i))
	}
	for i, addr := range c.members {
		n := &simNode{addr: addr, bus: notify.New(notify.Config{}), router: cluster.NewRouter()}
		n.registry = naming.NewRegistry(naming.Config{Limits: simLimits, Bus: n.bus})
		tr := simTransport{self: addr, net: c.net}
		var err error
		n.cluster, err = cluster.New(cluster.Config{Self: addr, ReportInterval: 2 * time.Second, Transport: tr,
			Router: n.router, Bus: n.bus, Logger: hclog.NewNullLogger()})
		if err != nil {
			tb.Fatal(err)
		}
		n.distro, err = New(Config{Registry: n.registry, Cluster: n.cluster, Transport: tr, Router: n.router, Bus: n.bus,
			SyncDelay: time.Millisecond, RetryDelay: 100 * time.Millisecond, CallTimeout: time.Minute,
			VerifyInterval: time.Hour, ClientExpiry: time.Hour, ReportInterval: 2 * time.Second, SnapshotTimeout: time.Minute,
			NewTicker: never, Logger: hclog.NewNullLogger(), Metrics: prometheus.NewRegistry()})
		if err != nil {
			tb.Fatal(err)
		}
		target, _ := cluster.Address(addr)
		c.net.mu.Lock()
		c.net.nodes[target] = n
		c.net.mu.Unlock()
		n.cluster.SetMembers(c.members)
		for _, part := range []interface{ Start(context.Context) error }{n.bus, n.distro} {
			if err := part.Start(ctx); err != nil {
				tb.Fatal(err)
			}
		}
		tb.Cleanup(func() {
			for _, part := range []interface{ Stop(context.Context) error }{n.distro, n.bus} {
				if err := part.Stop(ctx); err != nil {
					tb.Error(err)
				}
			}
		})
		for j := range clients {
			n.clients = append(n.clients, simClientID(i, j))
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		simAwait(tb, n.distro.Ready, func() string { return n.addr + " never got ready" })
	}
	for i, n := range c.nodes {
		for j, id := range n.clients {
			if err := n.registry.Connect(id, nil); err != nil {
				tb.Fatal(err)
			}
			for k := range instances {
				if err := n.registry.Register(ctx, id, simService((i*clients+j)*instances+k), simInstance(i, j, 8080)); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	want := int64(members * clients * instances)
	for _, n := range c.nodes {
		simAwait(tb, func() bool { return n.registry.Stats().Instances == want },
			func() string {
				return fmt.Sprintf("%s holds %d instances, want %d", n.addr, n.registry.Stats().Instances, want)
			})
	}
	c.awaitIdle(tb)
	return c
}

// simAddress is member i's HTTP address.
func simAddress(i int) string { return fmt.Sprintf("10.0.%d.%d:8848", i/250, i%250+1) }

// simClientID is the id of member i's client j: a connection's, as
// core/remote makes them (unixMillis_ip_port).
func simClientID(i, j int) string {
	return fmt.Sprintf("1764000000%03d_10.%d.%d.%d_%d", i, 100+i/250, j/250, j%250+1, 40000+j%20000)
}

func simService(k int) naming.Service {
	return naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: fmt.Sprintf("svc-%d", k%simServices)}
}

// simInstance is the instance of member i's client j: its address, with
// the two metadata keys an application typically sets.
func simInstance(i, j, port int) naming.Instance {
	inst := instance(fmt.Sprintf("10.%d.%d.%d", 100+i/250, j/250, j%250+1))
	inst.Port = port
	inst.Metadata = map[string]string{"version": "1.0.0", "zone": "eu-1a"}
	return inst
}

// simAwait polls until cond holds, for a minute at most (large clusters on
// a busy machine take their time to replicate); then it fails tb.
func simAwait(tb testing.TB, cond func() bool, failure func() string) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal(failure())
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// idle reports whether d has nothing pending, queued or in flight.
func (d *Distro) idle() bool {
	if d.delay.Len() > 0 || d.queued.Load() > 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.peers {
		if w.syncing || w.verifying || w.running {
			return false
		}
	}
	return true
}

// awaitIdle waits until no member has replication work left.
func (c *simCluster) awaitIdle(tb testing.TB) {
	tb.Helper()
	for _, n := range c.nodes {
		simAwait(tb, n.distro.idle, func() string { return n.addr + " never got idle" })
	}
}

// change moves one instance of a client of member 0 to another port, and
// returns once every other member holds the client's new revision and the
// syncs that carried it are counted.
func (c *simCluster) change(tb testing.TB) {
	tb.Helper()
	owner := c.nodes[0]
	j := c.round % c.clients
	id := owner.clients[j]
	c.round++
	sent := c.net.counted(SyncKind).msgs
	if err := owner.registry.Register(context.Background(), id, simService(j*c.instances), simInstance(0, j, 10000+c.round%50000)); err != nil {
		tb.Fatal(err)
	}
	data, _ := owner.registry.Client(id)
	for _, n := range c.nodes[1:] {
		simAwait(tb, func() bool {
			got, ok := n.registry.Client(id)
			return ok && got.Revision == data.Revision
		}, func() string { return fmt.Sprintf("%s never got revision %d of %s", n.addr, data.Revision, id) })
	}
	peers := int64(len(c.nodes) - 1)
	simAwait(tb, func() bool { return c.net.counted(SyncKind).msgs-sent >= peers && owner.distro.idle() },
		func() string { return "the syncs of a change never ended" })
}

// verifyRound has every member verify its clients with every other, as each
// does every verify interval, and returns once all are answered and any sync
// they asked for is done.
func (c *simCluster) verifyRound(tb testing.TB) {
	tb.Helper()
	sent := c.net.counted(VerifyKind).msgs
	for _, n := range c.nodes {
		n.distro.verifyAll(context.Background())
	}
	want := int64(len(c.nodes) * (len(c.nodes) - 1))
	simAwait(tb, func() bool { return c.net.counted(VerifyKind).msgs-sent >= want },
		func() string { return "a verification round never ended" })
	c.awaitIdle(tb)
}

// burst sends every other member the changes to all of member 0's clients,
// as one sync window's batch does when they all changed within it.
func (c *simCluster) burst(tb testing.TB) {
	tb.Helper()
	owner := c.nodes[0]
	all := batch{}
	for _, id := range owner.clients {
		all[id] = struct{}{}
	}
	for _, peer := range c.members[1:] {
		if unsent, err := owner.distro.sync(context.Background(), peer, maps.Clone(all)); err != nil || len(unsent) > 0 {
			tb.Fatalf("a burst to %s left %d clients unsent: %v", peer, len(unsent), err)
		}
	}
}

// join loads a snapshot from member 0 into a new member's registry, which it
// returns; the source cannot tell the new member from the last one, whose
// address it asks from.
func (c *simCluster) join(tb testing.TB) *naming.Registry {
	tb.Helper()
	registry := naming.NewRegistry(naming.Config{Limits: simLimits, Bus: notify.New(notify.Config{})})
	self := simAddress(len(c.members))
	table, err := cluster.New(cluster.Config{Self: self, Router: cluster.NewRouter(), Bus: notify.New(notify.Config{}),
		Logger: hclog.NewNullLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	table.SetMembers(append([]string{self}, c.members...))
	tr := simTransport{self: c.members[len(c.members)-1], net: c.net}
	joiner := &Distro{cfg: Config{Registry: registry, Cluster: table, Transport: tr, SnapshotTimeout: time.Minute}, self: self}
	if _, err := joiner.loadFrom(context.Background(), c.members[0]); err != nil {
		tb.Fatal(err)
	}
	return registry
}

// simSizes parses the -distro.sim.members flag.
func simSizes(tb testing.TB) []int {
	var sizes []int
	for s := range strings.SplitSeq(*simMembersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			tb.Fatalf("-distro.sim.members: %q is not a cluster size of 2 or more", s)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// BenchmarkDistroCluster simulates Distro in clusters of 3, 10 and 30
// members (-distro.sim.members), each member with 100 clients of 10
// instances (-distro.sim.clients, -distro.sim.instances), and reports what
// replication costs:
//
//   - change: one client's registration, synced to every other member
//     (msgs/op and B/op: cluster-wide messages and bytes, requests and
//     answers, per change);
//   - burst: every client of one member changing within one sync window,
//     sent to every other member as that window's batch (per burst; also
//     per client);
//   - verify: a verification round, every member verifying its clients with
//     every other, as each does every verify interval (per round, and per
//     second at the default interval of 5 s: cluster-wide, and sent by each
//     member);
//   - snapshot: what a joining member loads from one member (bytes and
//     chunks), and the heap the loaded registry takes — what every member
//     holds, as every instance is replicated to every member.
//
// Message and byte counts are exact and do not depend on the machine; the
// times are of this process, all members sharing its cores.
func BenchmarkDistroCluster(b *testing.B) {
	for _, members := range simSizes(b) {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			c := newSimCluster(b, members, *simClientsFlag, *simInstancesFlag)
			b.Run("change", func(b *testing.B) {
				before := c.net.counted(SyncKind)
				for b.Loop() {
					c.change(b)
				}
				reportTraffic(b, c.net.counted(SyncKind).minus(before), float64(b.N), "op")
			})
			b.Run("burst", func(b *testing.B) {
				before := c.net.counted(SyncKind)
				for b.Loop() {
					c.burst(b)
				}
				t := c.net.counted(SyncKind).minus(before)
				reportTraffic(b, t, float64(b.N), "op")
				reportTraffic(b, t, float64(b.N*c.clients), "client")
			})
			b.Run("verify", func(b *testing.B) {
				before, syncs := c.net.counted(VerifyKind), c.net.counted(SyncKind).msgs
				cpu := processCPU(b)
				for b.Loop() {
					c.verifyRound(b)
				}
				cpu = processCPU(b) - cpu
				t := c.net.counted(VerifyKind).minus(before)
				reportTraffic(b, t, float64(b.N), "op")
				perSecond := float64(b.N) * simVerifyInterval.Seconds()
				reportTraffic(b, t, perSecond, "s")
				b.ReportMetric(float64(t.requestBytes)/perSecond/float64(members), "bytes-sent/s/member")
				// The members' CPU for verifying, as a share of one core.
				b.ReportMetric(cpu.Seconds()/perSecond/float64(members)*100, "%core/member")
				// In a steady cluster no verification asks for a sync.
				b.ReportMetric(float64(c.net.counted(SyncKind).msgs-syncs)/float64(b.N), "syncs-asked/op")
			})
			b.Run("snapshot", func(b *testing.B) {
				var heap uint64
				before := c.net.counted(SnapshotKind)
				for b.Loop() {
					b.StopTimer()
					start := heapInUse()
					b.StartTimer()
					registry := c.join(b)
					b.StopTimer()
					if end := heapInUse(); end > start {
						heap += end - start
					}
					if got, want := registry.Stats().Instances, int64(members*c.clients*c.instances); got != want {
						b.Fatalf("the new member loaded %d instances, want %d", got, want)
					}
					runtime.KeepAlive(registry)
					b.StartTimer()
				}
				t := c.net.counted(SnapshotKind).minus(before)
				b.ReportMetric(float64(t.bytes())/float64(b.N), "bytes/op")
				b.ReportMetric(float64(t.msgs)/float64(b.N), "chunks/op")
				instances := members * c.clients * c.instances
				b.ReportMetric(float64(instances), "instances/member")
				b.ReportMetric(float64(heap)/float64(b.N)/(1<<20), "heap-MiB/member")
				b.ReportMetric(float64(heap)/float64(b.N)/float64(instances), "heap-B/instance")
			})
		})
	}
}

// reportTraffic reports t per unit (per op, per second, per client...).
func reportTraffic(b *testing.B, t simTraffic, units float64, unit string) {
	b.ReportMetric(float64(t.msgs)/units, "msgs/"+unit)
	b.ReportMetric(float64(t.bytes())/units, "bytes/"+unit)
}

// processCPU returns the CPU time this process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestClusterTrafficIsOneMessagePerMember holds the simulation's counts to
// what Distro promises, at a size that runs in a moment: a change is one
// sync to each other member; a verification round one message from each
// member to each other, which in a steady cluster asks for nothing; and a
// joining member's snapshot brings every instance.
func TestClusterTrafficIsOneMessagePerMember(t *testing.T) {
	const members, clients, instances = 4, 5, 3
	c := newSimCluster(t, members, clients, instances)
	syncs := c.net.counted(SyncKind)
	c.change(t)
	if got := c.net.counted(SyncKind).minus(syncs).msgs; got != members-1 {
		t.Errorf("a change sent %d syncs, want %d", got, members-1)
	}
	syncs, verifies := c.net.counted(SyncKind), c.net.counted(VerifyKind)
	c.verifyRound(t)
	if got := c.net.counted(VerifyKind).minus(verifies).msgs; got != members*(members-1) {
		t.Errorf("a verification round sent %d messages, want %d", got, members*(members-1))
	}
	if got := c.net.counted(SyncKind).minus(syncs).msgs; got != 0 {
		t.Errorf("a verification round of a steady cluster asked for %d syncs", got)
	}
	syncs = c.net.counted(SyncKind)
	c.burst(t)
	if got := c.net.counted(SyncKind).minus(syncs).msgs; got != members-1 {
		t.Errorf("a burst of %d clients' changes sent %d syncs, want one per member (%d)", clients, got, members-1)
	}
	if got := c.join(t).Stats().Instances; got != members*clients*instances {
		t.Errorf("a joining member loaded %d instances, want %d", got, members*clients*instances)
	}
}
