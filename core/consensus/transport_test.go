//lint:file-ignore SA1019 the deprecated Candidate field is checked like the header.

package consensus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/cluster"
)

// idleNode is a node that is not started: enough to exercise the inbound
// side of the transport.
func idleNode(t *testing.T) *Node {
	t.Helper()
	c := newCluster(t)
	n, err := New(c.config(addr(1), newKV(), cluster.NewRouter(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.trans.installs.prepare(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.trans.Close() })
	return n
}

func TestRaftMessagesNamingAnotherSenderAreRefused(t *testing.T) {
	n := idleNode(t)
	from := addr(2)
	ctx := context.Background()
	req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte(addr(3)), Addr: []byte(addr(3))}, Term: 2}
	if _, err := n.trans.handleAppend(ctx, from, encodeAppendRequest(req)); !errors.Is(err, cluster.ErrNotMember) {
		t.Fatalf("an append naming another leader: %v", err)
	}
	vote := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte(from), Addr: []byte(from)}, Candidate: []byte(addr(3))}
	if _, err := n.trans.handleVote(ctx, from, encodeVoteRequest(vote)); !errors.Is(err, cluster.ErrNotMember) {
		t.Fatalf("a vote naming another candidate: %v", err)
	}
	if got := counter(n.metrics.impostors); got != 2 {
		t.Fatalf("%v refusals counted", got)
	}
	// One that names its sender reaches the (not running) node.
	vote.Candidate = []byte(from)
	if _, err := n.trans.handleVote(ctx, from, encodeVoteRequest(vote)); !errors.Is(err, ErrStopped) {
		t.Fatalf("a vote to a node not started: %v", err)
	}
	if _, err := n.trans.handleVote(ctx, from, []byte{9, 9}); err == nil {
		t.Fatal("a malformed vote was taken")
	}
}

func TestSnapshotTransfersAreBounded(t *testing.T) {
	n := idleNode(t)
	n.trans.installs.max = 100
	in := n.trans.installs
	from := addr(2)
	ctx := context.Background()
	head := func(size int64) []byte {
		return encodeInstallRequest(&raft.InstallSnapshotRequest{
			RPCHeader: raft.RPCHeader{ID: []byte(from), Addr: []byte(from)}, Term: 3, Size: size})
	}

	// Larger than this node takes: refused at the first chunk.
	_, err := in.handle(ctx, from, encodeChunk(1, 0, chunkFirst, head(101), make([]byte, 10)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a snapshot too large: %v", err)
	}
	// A chunk of no transfer.
	if _, err := in.handle(ctx, from, encodeChunk(2, 1, 0, nil, make([]byte, 10))); err == nil {
		t.Fatal("a chunk of no transfer was taken")
	}
	// Chunks out of order end the transfer.
	if _, err := in.handle(ctx, from, encodeChunk(3, 0, chunkFirst, head(100), make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	if _, err := in.handle(ctx, from, encodeChunk(3, 2, 0, nil, make([]byte, 10))); err == nil {
		t.Fatal("a chunk out of order was taken")
	}
	if _, err := in.handle(ctx, from, encodeChunk(3, 1, 0, nil, make([]byte, 10))); err == nil {
		t.Fatal("the transfer went on after a chunk out of order")
	}
	// More data than the request said.
	if _, err := in.handle(ctx, from, encodeChunk(4, 0, chunkFirst, head(100), make([]byte, 60))); err != nil {
		t.Fatal(err)
	}
	if _, err := in.handle(ctx, from, encodeChunk(4, 1, 0, nil, make([]byte, 60))); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("a snapshot past its size: %v", err)
	}
	// Less data than the request said.
	if _, err := in.handle(ctx, from, encodeChunk(5, 0, chunkFirst|chunkLast, head(100), make([]byte, 60))); err == nil || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("a short snapshot: %v", err)
	}
	// An impostor.
	other := encodeInstallRequest(&raft.InstallSnapshotRequest{RPCHeader: raft.RPCHeader{ID: []byte(addr(3))}, Size: 1})
	if _, err := in.handle(ctx, from, encodeChunk(6, 0, chunkFirst, other, nil)); !errors.Is(err, cluster.ErrNotMember) {
		t.Fatalf("an impostor's snapshot: %v", err)
	}
	in.mu.Lock()
	left := len(in.sessions)
	in.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d transfers left", left)
	}
	// A whole, well-formed snapshot reaches raft (here: a node not
	// running).
	if _, err := in.handle(ctx, from, encodeChunk(7, 0, chunkFirst|chunkLast, head(5), []byte("hello"))); !errors.Is(err, ErrStopped) {
		t.Fatalf("a whole snapshot: %v", err)
	}
	if got := counter(n.metrics.installs.WithLabelValues("refused")); got < 4 {
		t.Fatalf("%v refusals counted", got)
	}
}

func TestForwardedBatchesAreBounded(t *testing.T) {
	e := newEnc(16)
	e.u(maxForwardOps + 1)
	for range maxForwardOps + 1 {
		e.bool(false)
		e.bytes([]byte("x"))
	}
	if _, err := decodeForward(e.b); err == nil {
		t.Fatal("a batch too large was taken")
	}
	ops := []*op{{cmd: []byte("a")}, {read: true}}
	got, err := decodeForward(encodeForward(ops))
	if err != nil || len(got) != 2 || string(got[0].cmd) != "a" || !got[1].read {
		t.Fatalf("%+v, %v", got, err)
	}
	outs := []outcome{{result: []byte("r")}, {index: 7}, {err: &rejectedError{text: "no"}}, {err: errNotLeader},
		{err: noQuorum("lost")}, {err: errors.New("boom")}}
	back, err := decodeOutcomes(encodeOutcomes(outs), len(outs))
	if err != nil {
		t.Fatal(err)
	}
	if string(back[0].result) != "r" || back[1].index != 7 || !errors.Is(back[2].err, ErrRejected) ||
		back[2].err.Error() != outs[2].err.Error() || !errors.Is(back[3].err, errNotLeader) ||
		!errors.Is(back[4].err, ErrNoQuorum) || back[4].err.Error() != outs[4].err.Error() ||
		!strings.Contains(back[5].err.Error(), "boom") {
		t.Fatalf("outcomes %+v", back)
	}
	if _, err := decodeOutcomes(encodeOutcomes(outs), 2); err == nil {
		t.Fatal("answers to another batch were taken")
	}
}

// TestCloseWaitsForHeartbeatsInProgress: raft's heartbeat handler runs on
// the transport's goroutine and writes the stable store; Close (before
// raft shuts down and the store closes) must wait for it, and refuse
// later ones.
func TestCloseWaitsForHeartbeatsInProgress(t *testing.T) {
	n := idleNode(t)
	tr := n.trans
	tr.open.Store(true)
	entered, release := make(chan struct{}), make(chan struct{})
	tr.SetHeartbeatHandler(func(rpc raft.RPC) {
		close(entered)
		<-release
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})
	from := addr(2)
	beat := encodeAppendRequest(&raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte(from), Addr: []byte(from)}, Term: 2})
	answered := make(chan error, 1)
	go func() {
		_, err := tr.handleAppend(context.Background(), from, beat)
		answered <- err
	}()
	<-entered
	closed := make(chan struct{})
	go func() {
		tr.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a heartbeat ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if err := <-answered; err != nil {
		t.Fatalf("the heartbeat in progress: %v", err)
	}
	tr.open.Store(true) // as if a message slipped past the first check
	if _, err := tr.handleAppend(context.Background(), from, beat); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("a heartbeat after Close: %v", err)
	}
}
