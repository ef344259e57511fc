package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/sdk/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mesh is an in-process cluster transport: a member's call goes straight
// to the other member's router, as the transport plugin would bring it
// there. Payloads and answers are copied, and errors cross as text (but
// ErrUnreachable and the context errors), as on the wire.
type mesh struct {
	mu      sync.Mutex
	routers map[string]*cluster.Router // by cluster address
	calls   map[string]*atomic.Int64   // by kind
}

func newMesh() *mesh {
	return &mesh{routers: make(map[string]*cluster.Router), calls: make(map[string]*atomic.Int64)}
}

func (m *mesh) attach(member string, r *cluster.Router) {
	addr, _ := cluster.Address(member)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.routers[addr] = r
}

func (m *mesh) detach(member string) {
	addr, _ := cluster.Address(member)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.routers, addr)
}

// count is how many calls of kind were made.
func (m *mesh) count(kind string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.calls[kind]; c != nil {
		return c.Load()
	}
	return 0
}

func (m *mesh) caller(from string) cluster.Caller { return &meshCaller{m: m, from: from} }

type meshCaller struct {
	m    *mesh
	from string
}

func (c *meshCaller) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	c.m.mu.Lock()
	counter := c.m.calls[kind]
	if counter == nil {
		counter = new(atomic.Int64)
		c.m.calls[kind] = counter
	}
	router := c.m.routers[target]
	self, _ := cluster.Address(c.from)
	_, up := c.m.routers[self]
	c.m.mu.Unlock()
	counter.Add(1)
	if router == nil || !up {
		return nil, fmt.Errorf("mesh: %s: %w", target, transport.ErrUnreachable)
	}
	answer, err := router.Handle(ctx, c.from, kind, bytes.Clone(payload))
	switch {
	case err == nil:
		return bytes.Clone(answer), nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	default:
		return nil, errors.New(err.Error())
	}
}

// kvFSM is the test's state machine: "set KEY VALUE" sets a key and
// answers "ok INDEX"; "bad ..." is rejected.
type kvFSM struct {
	mu   sync.Mutex
	data map[string]string
}

func newKV() *kvFSM { return &kvFSM{data: make(map[string]string)} }

func (f *kvFSM) Apply(l *raft.Log) any {
	cmd := string(l.Data)
	if strings.HasPrefix(cmd, "bad") {
		return errors.New("bad command " + strconv.Quote(cmd))
	}
	parts := strings.SplitN(cmd, " ", 3)
	if len(parts) != 3 || parts[0] != "set" {
		return fmt.Errorf("unknown command %q", cmd)
	}
	f.mu.Lock()
	f.data[parts[1]] = parts[2]
	f.mu.Unlock()
	return []byte("ok " + strconv.FormatUint(l.Index, 10))
}

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.data)
	return kvSnapshot(b), err
}

func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data := make(map[string]string)
	if err := json.NewDecoder(rc).Decode(&data); err != nil {
		return err
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

func (f *kvFSM) get(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[key]
	return v, ok
}

func (f *kvFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.data)
}

type kvSnapshot []byte

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (kvSnapshot) Release() {}

// testCluster runs nodes on one mesh.
type testCluster struct {
	t     testing.TB
	mesh  *mesh
	dir   string
	nodes map[string]*testNode
	// tune adjusts each node's configuration.
	tune func(*Config)
	// chunk, when set, is the snapshot chunk size.
	chunk int
}

type testNode struct {
	addr     string
	fsm      *kvFSM
	node     *Node
	registry *prometheus.Registry
}

// addr is the address of the i-th test node.
func addr(i int) string { return "127.0.0.1:" + strconv.Itoa(9000+i) }

func newCluster(t testing.TB) *testCluster {
	return &testCluster{t: t, mesh: newMesh(), dir: t.TempDir(), nodes: make(map[string]*testNode)}
}

func testLogger(name string) hclog.Logger {
	if os.Getenv("CONSENSUS_LOG") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug})
}

// config is a node's configuration, with timings for tests.
func (c *testCluster) config(a string, fsm raft.FSM, router *cluster.Router, reg prometheus.Registerer) Config {
	cfg := Config{
		DataDir:   filepath.Join(c.dir, a),
		Self:      a,
		FSM:       fsm,
		Transport: c.mesh.caller(a),
		Router:    router,
		Logger:    testLogger(a),
		Metrics:   reg,
		// Short enough for quick elections, long enough that a loaded
		// machine running the race detector keeps its leader.
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 400 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       3 * time.Second,
		CallTimeout:        time.Second,
		ReconcileInterval:  100 * time.Millisecond,
		RemoveAfter:        200 * time.Millisecond,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

// start starts the node at a (again, if it ran before: same data
// directory, a fresh state machine) with the member list members.
func (c *testCluster) start(a string, members []string) *testNode {
	c.t.Helper()
	router := cluster.NewRouter()
	fsm := newKV()
	reg := prometheus.NewRegistry()
	n, err := New(c.config(a, fsm, router, reg))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.chunk > 0 {
		n.trans.installs.chunk = c.chunk
	}
	n.SetMembers(members)
	c.mesh.attach(a, router)
	if err := n.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	tn := &testNode{addr: a, fsm: fsm, node: n, registry: reg}
	c.nodes[a] = tn
	c.t.Cleanup(func() { c.stop(a) })
	return tn
}

// stop stops the node at a, if it runs.
func (c *testCluster) stop(a string) {
	c.t.Helper()
	tn := c.nodes[a]
	if tn == nil {
		return
	}
	delete(c.nodes, a)
	c.mesh.detach(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.node.Stop(ctx); err != nil {
		c.t.Errorf("stopping %s: %v", a, err)
	}
}

// startAll starts n nodes with the list of all of them, and waits until
// they form one cluster of n voters.
func (c *testCluster) startAll(n int) []string {
	c.t.Helper()
	var members []string
	for i := range n {
		members = append(members, addr(i+1))
	}
	for _, a := range members {
		c.start(a, members)
	}
	c.awaitVoters(n)
	return members
}

// leader waits for a leader that every running node follows, and returns
// it.
func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var leader *testNode
	eventually(c.t, 10*time.Second, "one leader that every node knows", func() bool {
		leader = nil
		for _, tn := range c.nodes {
			if tn.node.IsLeader() {
				if leader != nil {
					return false
				}
				leader = tn
			}
		}
		if leader == nil {
			return false
		}
		for _, tn := range c.nodes {
			if tn.node.Leader() != leader.addr {
				return false
			}
		}
		return true
	})
	return leader
}

// followers are the running nodes but the leader.
func (c *testCluster) followers() []*testNode {
	leader := c.leader()
	var out []*testNode
	for _, a := range slices.Sorted(maps.Keys(c.nodes)) {
		if a != leader.addr {
			out = append(out, c.nodes[a])
		}
	}
	return out
}

// awaitVoters waits until the leader's configuration has n voters and no
// nonvoter.
func (c *testCluster) awaitVoters(n int) {
	c.t.Helper()
	eventually(c.t, 15*time.Second, fmt.Sprintf("%d voters", n), func() bool {
		for _, tn := range c.nodes {
			if s := tn.node.Stats(); s.State == raft.Leader {
				return s.Voters == n && s.Nonvoters == 0
			}
		}
		return false
	})
}

// awaitKey waits until every running node's state machine has key = value.
func (c *testCluster) awaitKey(key, value string) {
	c.t.Helper()
	eventually(c.t, 10*time.Second, fmt.Sprintf("%s=%s everywhere", key, value), func() bool {
		for _, tn := range c.nodes {
			if v, _ := tn.fsm.get(key); v != value {
				return false
			}
		}
		return true
	})
}

// eventually polls cond every few milliseconds until it holds, or fails
// the test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// apply applies "set key value" on tn, failing the test on an error. It
// retries a write that failed for want of a quorum, as a client given a
// 503 does: on a loaded machine a leader may lose its lease (each retry is
// logged).
func apply(t testing.TB, tn *testNode, key, value string) []byte {
	t.Helper()
	res, err := applyRetry(t, tn, "set "+key+" "+value)
	if err != nil {
		t.Fatalf("apply on %s: %v", tn.addr, err)
	}
	return res
}

func applyRetry(t testing.TB, tn *testNode, cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		res, err := tn.node.Apply(ctx, []byte(cmd))
		if !errors.Is(err, ErrNoQuorum) || ctx.Err() != nil {
			return res, err
		}
		t.Logf("retrying %q on %s: %v", cmd, tn.addr, err)
	}
}

// counter is the value of a counter.
func counter(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue()
}

// batchingKV takes committed entries in batches, as core/persist's FSM
// does.
type batchingKV struct{ *kvFSM }

func (f batchingKV) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = f.kvFSM.Apply(l)
		}
	}
	return out
}
