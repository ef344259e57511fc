package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestStandaloneBootstrapsAndApplies(t *testing.T) {
	c := newCluster(t)
	self := addr(1)
	tn := c.start(self, []string{self})
	if c.leader() != tn || !tn.node.bootstrapped.Load() {
		t.Fatal("a standalone node did not bootstrap itself as the leader")
	}
	if res := apply(t, tn, "a", "1"); !strings.HasPrefix(string(res), "ok ") {
		t.Fatalf("result %q", res)
	}
	if v, _ := tn.fsm.get("a"); v != "1" {
		t.Fatalf("a = %q", v)
	}

	ctx := context.Background()
	_, err := tn.node.Apply(ctx, []byte("bad thing"))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), `bad command "bad thing"`) {
		t.Fatalf("a rejected command: %v", err)
	}
	if _, err := tn.node.Apply(ctx, make([]byte, MaxCommandSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a command too large: %v", err)
	}
	if err := tn.node.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counter(tn.node.metrics.applies.WithLabelValues("rejected")); got != 1 {
		t.Fatalf("%v rejections counted", got)
	}

	// Restarted with its data, it does not bootstrap again, and has what
	// it had.
	c.stop(self)
	tn = c.start(self, []string{self})
	if !tn.node.hadState {
		t.Fatal("the restarted node found no state")
	}
	// Replayed only once the state machine has what the log had.
	eventually(t, 10*time.Second, "the restarted node replays its log", tn.node.Replayed)
	if v, _ := tn.fsm.get("a"); v != "1" {
		t.Fatalf("replayed, yet a = %q", v)
	}
	c.leader()
	if tn.node.bootstrapped.Load() {
		t.Fatal("the restarted node bootstrapped again")
	}
	apply(t, tn, "b", "2")
	if v, _ := tn.fsm.get("a"); v != "1" {
		t.Fatalf("after a restart a = %q", v)
	}
	if _, err := tn.node.Apply(ctx, nil); err == nil {
		t.Fatal("the state machine's error on an empty command was not returned")
	}
}

func TestThreeNodesElectOneLeader(t *testing.T) {
	c := newCluster(t)
	members := c.startAll(3)
	leader := c.leader()
	for _, a := range members {
		if got, want := c.nodes[a].node.bootstrapped.Load(), a == members[0]; got != want {
			t.Errorf("%s bootstrapped: %v", a, got)
		}
	}
	s := leader.node.Stats()
	if s.Voters != 3 || s.Term == 0 || s.CommitIndex == 0 || s.Leader != leader.addr {
		t.Fatalf("leader stats %+v", s)
	}
	for _, f := range c.followers() {
		eventually(t, 5*time.Second, "a follower in contact with its leader", func() bool {
			fs := f.node.Stats()
			return fs.State == raft.Follower && !fs.LastContact.IsZero() && fs.LastIndex > 0 && fs.Voters == 3
		})
	}
	// The collector reports the state.
	if got := gauge(t, leader, "sextant_raft_state", "Leader"); got != 1 {
		t.Fatalf("sextant_raft_state{state=Leader} = %v", got)
	}
}

func TestFollowerWriteIsForwardedAndAppliedEverywhere(t *testing.T) {
	c := newCluster(t)
	c.startAll(3)
	follower := c.followers()[0]
	res := apply(t, follower, "k", "v")
	if !strings.HasPrefix(string(res), "ok ") {
		t.Fatalf("forwarded result %q", res)
	}
	c.awaitKey("k", "v")
	if got := counter(follower.node.metrics.forwarded); got < 1 {
		t.Fatalf("%v writes forwarded", got)
	}
	// The state machine's rejection crosses the cluster as text.
	_, err := applyRetry(t, follower, "bad one")
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), `bad command "bad one"`) {
		t.Fatalf("a rejection forwarded: %v", err)
	}
	// Concurrent writes on every node all land.
	errs := make(chan error, 30)
	for i := range 30 {
		tn := c.nodes[addr(i%3+1)]
		go func() {
			_, err := applyRetry(t, tn, "set c"+strconv.Itoa(i)+" x")
			errs <- err
		}()
	}
	for range 30 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c.awaitKey("c29", "x")
}

func TestLeaderFailoverAndCatchUp(t *testing.T) {
	c := newCluster(t)
	members := c.startAll(3)
	old := c.leader()
	apply(t, old, "before", "1")
	c.stop(old.addr)

	leader := c.leader()
	if leader.addr == old.addr {
		t.Fatal("no new leader")
	}
	if c.mesh.count(KindPreVote) == 0 || c.mesh.count(KindVote) == 0 {
		t.Fatalf("the election went without pre-votes (%d) or votes (%d)", c.mesh.count(KindPreVote), c.mesh.count(KindVote))
	}
	for i, f := range c.nodes {
		apply(t, f, "after-"+i, "2")
	}
	apply(t, leader, "last", "3")

	back := c.start(old.addr, members)
	if back.node.bootstrapped.Load() {
		t.Fatal("a restarted member bootstrapped")
	}
	c.awaitKey("before", "1")
	c.awaitKey("last", "3")
	if back.fsm.len() != 4 {
		t.Fatalf("the restarted node has %d keys", back.fsm.len())
	}
	apply(t, back, "again", "4")
	c.awaitKey("again", "4")
}

func TestSnapshotInstalledInChunksOnAFarBehindFollower(t *testing.T) {
	c := newCluster(t)
	c.chunk = 4 << 10
	c.tune = func(cfg *Config) {
		cfg.SnapshotThreshold = 16
		cfg.TrailingLogs = 4
	}
	members := c.startAll(3)
	behind := c.followers()[0]
	c.stop(behind.addr)

	leader := c.leader()
	value := strings.Repeat("v", 1000)
	for i := range 60 {
		apply(t, leader, "key"+strconv.Itoa(i), value)
	}
	if err := leader.node.raftNode().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	before := c.mesh.count(KindInstall)

	back := c.start(behind.addr, members)
	c.awaitKey("key59", value)
	if back.fsm.len() != 60 {
		t.Fatalf("%d keys after the snapshot", back.fsm.len())
	}
	// About 60 kB in 4 kB chunks.
	if sent := c.mesh.count(KindInstall) - before; sent < 10 {
		t.Fatalf("the snapshot went in %d messages", sent)
	}
	// Counted once raft answered, a little after the state machine has it.
	eventually(t, 5*time.Second, "the install counted", func() bool {
		return counter(back.node.metrics.installs.WithLabelValues("ok")) == 1
	})
	// The restored state machine knows its index: reads wait for it.
	if got, last := back.node.sm.index(), leader.node.sm.index(); got == 0 || got > last {
		t.Fatalf("applied index %d (leader %d)", got, last)
	}
	apply(t, back, "after", "1")
	c.awaitKey("after", "1")
}

func TestNoQuorumFailsWithinTheBound(t *testing.T) {
	c := newCluster(t)
	const bound = time.Second
	c.tune = func(cfg *Config) {
		cfg.ApplyTimeout = bound
		cfg.LeaderReads = true
	}
	c.startAll(3)
	leader := c.leader()
	apply(t, leader, "k", "v")
	for _, f := range c.followers() {
		c.stop(f.addr)
	}

	start := time.Now()
	_, err := leader.node.Apply(context.Background(), []byte("set k w"))
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("without a quorum: %v", err)
	}
	if d := time.Since(start); d > bound+time.Second {
		t.Fatalf("it failed after %s", d)
	}
	if err := leader.node.ReadBarrier(context.Background()); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("a read barrier without a quorum: %v", err)
	}
	// Once leaderless for the bound, writes fail at once.
	eventually(t, 5*time.Second, "leaderless for the bound", func() bool { return leader.node.leaderless() != nil })
	start = time.Now()
	if _, err := leader.node.Apply(context.Background(), []byte("set k x")); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("leaderless: %v", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("a leaderless node took %s to fail a write", d)
	}
	if got := counter(leader.node.metrics.applies.WithLabelValues("no_quorum")); got != 2 {
		t.Fatalf("%v writes counted without quorum", got)
	}
}

func TestSetMembersAddsAndRemovesVoters(t *testing.T) {
	c := newCluster(t)
	members := c.startAll(3)
	apply(t, c.leader(), "early", "1")

	// A new member, with the lowest address of all: it must not bootstrap
	// a cluster of its own, but be added.
	newcomer := addr(0)
	four := append([]string{newcomer}, members...)
	joined := c.start(newcomer, four)
	for _, a := range members {
		c.nodes[a].node.SetMembers(four)
	}
	c.awaitVoters(4)
	if joined.node.bootstrapped.Load() {
		t.Fatal("the newcomer bootstrapped")
	}
	c.awaitKey("early", "1")
	promotions := 0.0
	for _, tn := range c.nodes {
		promotions += counter(tn.node.metrics.changes.WithLabelValues("promote", "ok"))
	}
	if promotions < 1 {
		t.Fatal("no promotion counted")
	}

	// It leaves the list: it is removed.
	for _, tn := range c.nodes {
		tn.node.SetMembers(members)
	}
	c.awaitVoters(3)
	c.stop(newcomer)

	// The leader leaves the list: it hands over, and is removed.
	leader := c.leader()
	var rest []string
	for _, a := range members {
		if a != leader.addr {
			rest = append(rest, a)
		}
	}
	for _, tn := range c.nodes {
		tn.node.SetMembers(rest)
	}
	eventually(t, 10*time.Second, "another leader with two voters", func() bool {
		for _, a := range rest {
			if s := c.nodes[a].node.Stats(); s.State == raft.Leader && s.Voters == 2 && s.Nonvoters == 0 {
				return true
			}
		}
		return false
	})
	if c.mesh.count(KindTimeout) == 0 {
		t.Fatal("the leadership was not handed over with TimeoutNow")
	}
	c.stop(leader.addr)
	apply(t, c.nodes[rest[0]], "two", "2")
	c.awaitKey("two", "2")
}

func TestRestartedClusterDoesNotBootstrapAgain(t *testing.T) {
	c := newCluster(t)
	members := c.startAll(3)
	apply(t, c.leader(), "k", "v")
	for _, a := range members {
		c.stop(a)
	}
	for _, a := range members {
		tn := c.start(a, members)
		if !tn.node.hadState {
			t.Fatalf("%s found no state", a)
		}
	}
	c.leader()
	for _, tn := range c.nodes {
		if tn.node.bootstrapped.Load() {
			t.Fatalf("%s bootstrapped again", tn.addr)
		}
	}
	c.awaitKey("k", "v")
	c.awaitVoters(3)
}

func TestReadBarrierSeesEarlierWrites(t *testing.T) {
	c := newCluster(t)
	c.tune = func(cfg *Config) {
		cfg.LeaderReads = true
		cfg.FSM = batchingKV{cfg.FSM.(*kvFSM)}
	}
	c.startAll(3)
	leader := c.leader()
	if _, ok := leader.node.fsm.(raft.BatchingFSM); !ok {
		t.Fatal("a batching state machine is not given batches")
	}
	for i := range 20 {
		v := strconv.Itoa(i)
		apply(t, leader, "x", v)
		for _, f := range c.followers() {
			err := f.node.ReadBarrier(context.Background())
			if errors.Is(err, ErrNoQuorum) { // a leader lost its lease: as a client would, try again
				t.Logf("retrying a read barrier: %v", err)
				err = f.node.ReadBarrier(context.Background())
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := f.fsm.get("x"); got != v {
				t.Fatalf("after a read barrier %s has x=%q, not %q", f.addr, got, v)
			}
		}
	}
}

func TestStoppedNodeRefuses(t *testing.T) {
	c := newCluster(t)
	tn := c.start(addr(1), []string{addr(1)})
	c.leader()
	c.stop(tn.addr)
	if _, err := tn.node.Apply(context.Background(), []byte("set a b")); !errors.Is(err, ErrStopped) {
		t.Fatalf("apply after stop: %v", err)
	}
	if err := tn.node.ReadBarrier(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("read after stop: %v", err)
	}
	if err := tn.node.Stop(context.Background()); err != nil {
		t.Fatalf("a second stop: %v", err)
	}
	if tn.node.State() != raft.Shutdown {
		t.Fatalf("state %v", tn.node.State())
	}
}

// gauge is the value of the node's metric name (with the label value
// label, if any) as /metrics would show it.
func gauge(t *testing.T, tn *testNode, name, label string) float64 {
	t.Helper()
	families, err := tn.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// structFSM answers with a struct, as core/persist's FSM does.
type structFSM struct{ *kvFSM }

type structResult struct {
	Index  uint64
	Result string
}

func (f structFSM) Apply(l *raft.Log) any {
	switch r := f.kvFSM.Apply(l).(type) {
	case []byte:
		return structResult{Index: l.Index, Result: string(r)}
	default:
		return r
	}
}

func TestEncodedResultsAreTheSameOnEveryNode(t *testing.T) {
	c := newCluster(t)
	c.tune = func(cfg *Config) {
		cfg.FSM = structFSM{cfg.FSM.(*kvFSM)}
		cfg.EncodeResult = func(r any) ([]byte, error) { return json.Marshal(r) }
	}
	c.startAll(3)
	for _, tn := range append(c.followers(), c.leader()) {
		res := apply(t, tn, "k", tn.addr)
		var got structResult
		if err := json.Unmarshal(res, &got); err != nil || got.Index == 0 || got.Result != "ok "+strconv.FormatUint(got.Index, 10) {
			t.Fatalf("result on %s: %s (%v)", tn.addr, res, err)
		}
	}
	if _, err := applyRetry(t, c.followers()[0], "bad x"); !errors.Is(err, ErrRejected) {
		t.Fatalf("a rejection: %v", err)
	}

	// Without an encoder, a result that is not bytes is an error.
	c2 := newCluster(t)
	c2.tune = func(cfg *Config) { cfg.FSM = structFSM{cfg.FSM.(*kvFSM)} }
	tn := c2.start(addr(1), []string{addr(1)})
	c2.leader()
	if _, err := tn.node.Apply(context.Background(), []byte("set a b")); err == nil || !strings.Contains(err.Error(), "EncodeResult") {
		t.Fatalf("a struct result without an encoder: %v", err)
	}
}
