//lint:file-ignore SA1019 the deprecated Leader and Candidate fields name the sender too, and raft still reads them: they are checked like the header.

package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/sdk/transport"
)

// The cluster message kinds of raft's RPCs.
const (
	KindAppend  = "raft.append"  // AppendEntries, heartbeats included
	KindVote    = "raft.vote"    // RequestVote
	KindPreVote = "raft.prevote" // RequestPreVote
	KindTimeout = "raft.timeout" // TimeoutNow (leadership transfer)
	KindInstall = "raft.install" // one chunk of an InstallSnapshot
)

// errNoTransport fails the calls of a node without a transport (a
// standalone node has no one to call).
var errNoTransport = fmt.Errorf("consensus: no cluster transport: %w", transport.ErrUnreachable)

// raftTransport is raft's Transport over the cluster transport: raft's
// RPCs go to the other members as cluster messages (the kinds above)
// through the Caller, and what they send arrives through the handlers this
// transport registers on the router. A ServerAddress is a member's HTTP
// address; target maps it to the cluster address the Caller wants.
type raftTransport struct {
	self        raft.ServerAddress
	caller      cluster.Caller
	target      func(member string) (string, error)
	callTimeout time.Duration
	log         hclog.Logger
	metrics     *metrics

	consumer chan raft.RPC

	// The heartbeat fast path runs raft's code on the transport's
	// goroutine, not raft's: Close waits for the heartbeats in progress
	// (beats) and refuses later ones (hbClosed), so that none touches the
	// stores once raft has shut down and they are closed.
	hbMu      sync.Mutex
	heartbeat func(raft.RPC)
	hbClosed  bool
	beats     sync.WaitGroup

	// open is set while raft runs on this transport: before, messages are
	// answered with ErrStopped rather than waiting for a consumer.
	open atomic.Bool
	// ctx bounds the outbound calls; Close cancels it.
	ctx       context.Context
	cancel    context.CancelFunc
	shutdown  chan struct{}
	closeOnce sync.Once

	installs *installs // install.go
}

var (
	_ raft.Transport   = (*raftTransport)(nil)
	_ raft.WithClose   = (*raftTransport)(nil)
	_ raft.WithPreVote = (*raftTransport)(nil)
)

// transportConfig is what a raftTransport is made of.
type transportConfig struct {
	self           string
	caller         cluster.Caller
	target         func(member string) (string, error)
	callTimeout    time.Duration
	installTimeout time.Duration
	maxSnapshot    int64
	dir            string // where snapshots being received are kept
	log            hclog.Logger
	metrics        *metrics
}

func newTransport(cfg transportConfig) *raftTransport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &raftTransport{
		self:        raft.ServerAddress(cfg.self),
		caller:      cfg.caller,
		target:      cfg.target,
		callTimeout: cfg.callTimeout,
		log:         cfg.log,
		metrics:     cfg.metrics,
		consumer:    make(chan raft.RPC),
		ctx:         ctx,
		cancel:      cancel,
		shutdown:    make(chan struct{}),
	}
	t.installs = newInstalls(t, cfg.dir, cfg.maxSnapshot, cfg.installTimeout)
	return t
}

// register registers the kinds of raft's RPCs on router.
func (t *raftTransport) register(router *cluster.Router) error {
	return errors.Join(
		router.Register(KindAppend, t.handleAppend),
		router.Register(KindVote, t.handleVote),
		router.Register(KindPreVote, t.handlePreVote),
		router.Register(KindTimeout, t.handleTimeout),
		router.Register(KindInstall, t.installs.handle),
	)
}

// Consumer implements raft.Transport.
func (t *raftTransport) Consumer() <-chan raft.RPC { return t.consumer }

// LocalAddr implements raft.Transport: this node's HTTP address.
func (t *raftTransport) LocalAddr() raft.ServerAddress { return t.self }

// AppendEntriesPipeline implements raft.Transport. The cluster transport
// runs concurrent calls concurrently on the peer, so pipelined appends
// could reach the follower's raft out of order: raft replicates one
// AppendEntries at a time per follower instead.
func (t *raftTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// EncodePeer implements raft.Transport: a peer is its address.
func (t *raftTransport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer implements raft.Transport.
func (t *raftTransport) DecodePeer(p []byte) raft.ServerAddress { return raft.ServerAddress(p) }

// SetHeartbeatHandler implements raft.Transport: heartbeats are handed to
// fn on the transport's goroutine, not queued behind the log's disk writes.
func (t *raftTransport) SetHeartbeatHandler(fn func(rpc raft.RPC)) {
	t.hbMu.Lock()
	defer t.hbMu.Unlock()
	t.heartbeat = fn
}

// beat runs a heartbeat on the fast path, if there is one; it reports
// whether it did, and fails once the transport is closed.
func (t *raftTransport) beat(rpc raft.RPC) (bool, error) {
	t.hbMu.Lock()
	fn := t.heartbeat
	if t.hbClosed {
		t.hbMu.Unlock()
		return false, raft.ErrTransportShutdown
	}
	if fn == nil {
		t.hbMu.Unlock()
		return false, nil
	}
	t.beats.Add(1)
	t.hbMu.Unlock()
	defer t.beats.Done()
	fn(rpc)
	return true, nil
}

// Close implements raft.WithClose: outbound calls fail, inbound ones
// waiting for raft are answered with raft.ErrTransportShutdown, and it
// returns once no heartbeat runs on the fast path. Closing twice is
// harmless.
func (t *raftTransport) Close() error {
	t.closeOnce.Do(func() {
		t.open.Store(false)
		t.cancel()
		close(t.shutdown)
		t.installs.close()
		t.hbMu.Lock()
		t.hbClosed = true
		t.hbMu.Unlock()
	})
	t.beats.Wait()
	return nil
}

// call sends one message to the member target, within timeout.
func (t *raftTransport) call(target raft.ServerAddress, kind string, payload []byte, timeout time.Duration) ([]byte, error) {
	if t.caller == nil {
		return nil, errNoTransport
	}
	addr, err := t.target(string(target))
	if err != nil {
		return nil, fmt.Errorf("consensus: the cluster address of %s: %w", target, err)
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	return t.caller.Call(ctx, addr, kind, payload)
}

// AppendEntries implements raft.Transport.
func (t *raftTransport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	answer, err := t.call(target, KindAppend, encodeAppendRequest(args), t.callTimeout)
	if err != nil {
		return err
	}
	return decodeAppendResponse(answer, resp)
}

// RequestVote implements raft.Transport.
func (t *raftTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	answer, err := t.call(target, KindVote, encodeVoteRequest(args), t.callTimeout)
	if err != nil {
		return err
	}
	return decodeVoteResponse(answer, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (t *raftTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	answer, err := t.call(target, KindPreVote, encodePreVoteRequest(args), t.callTimeout)
	if err != nil {
		return err
	}
	return decodePreVoteResponse(answer, resp)
}

// TimeoutNow implements raft.Transport.
func (t *raftTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	answer, err := t.call(target, KindTimeout, encodeTimeoutRequest(args), t.callTimeout)
	if err != nil {
		return err
	}
	return decodeTimeoutResponse(answer, resp)
}

// InstallSnapshot implements raft.Transport (install.go).
func (t *raftTransport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.installs.send(target, args, resp, data)
}

// checkSender refuses a message whose raft header (or legacy leader or
// candidate field) names another server than the member that sent it:
// the router vouches for from, not for what the message says.
func (t *raftTransport) checkSender(from, kind string, h raft.RPCHeader, legacy []byte) error {
	for _, claimed := range [][]byte{h.ID, h.Addr, legacy} {
		if len(claimed) != 0 && string(claimed) != from {
			t.metrics.impostors.Inc()
			return fmt.Errorf("consensus: refused a %q message from %s that names %q as its sender: %w",
				kind, from, claimed, cluster.ErrNotMember)
		}
	}
	return nil
}

// dispatch hands one RPC to raft and returns raft's answer: heartbeats to
// the heartbeat handler, on this goroutine; the rest through the consumer
// channel. It waits within ctx, on the calling (the transport's) goroutine.
func (t *raftTransport) dispatch(ctx context.Context, command any, reader io.Reader, heartbeat bool) (any, error) {
	if !t.open.Load() {
		return nil, ErrStopped
	}
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: command, Reader: reader, RespChan: respCh}
	done := false
	if heartbeat {
		var err error
		if done, err = t.beat(rpc); err != nil {
			return nil, err
		}
	}
	if !done {
		select {
		case t.consumer <- rpc:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.shutdown:
			return nil, raft.ErrTransportShutdown
		}
	}
	select {
	case r := <-respCh: // an answer given (a heartbeat's at once) goes back, closing or not
		return r.Response, r.Error
	default:
	}
	select {
	case r := <-respCh:
		return r.Response, r.Error
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.shutdown:
		return nil, raft.ErrTransportShutdown
	}
}

// isHeartbeat reports whether an AppendEntries is a heartbeat, as raft's
// NetworkTransport decides.
func isHeartbeat(r *raft.AppendEntriesRequest) bool {
	leader := r.Addr
	if len(leader) == 0 {
		leader = r.Leader
	}
	return r.Term != 0 && leader != nil && r.PrevLogEntry == 0 && r.PrevLogTerm == 0 &&
		len(r.Entries) == 0 && r.LeaderCommitIndex == 0
}

// answer type-checks raft's response.
func answer[T any](resp any, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*T)
	if !ok {
		return nil, fmt.Errorf("consensus: raft answered with a %T", resp)
	}
	return r, nil
}

func (t *raftTransport) handleAppend(ctx context.Context, from string, payload []byte) ([]byte, error) {
	req := new(raft.AppendEntriesRequest)
	// The entries keep aliasing the message (raft's log cache holds them):
	// one copy makes them independent of the transport's buffer.
	if err := decodeAppendRequest(bytes.Clone(payload), req); err != nil {
		return nil, err
	}
	if err := t.checkSender(from, KindAppend, req.RPCHeader, req.Leader); err != nil {
		return nil, err
	}
	resp, err := answer[raft.AppendEntriesResponse](t.dispatch(ctx, req, nil, isHeartbeat(req)))
	if err != nil {
		return nil, err
	}
	return encodeAppendResponse(resp), nil
}

func (t *raftTransport) handleVote(ctx context.Context, from string, payload []byte) ([]byte, error) {
	req := new(raft.RequestVoteRequest)
	if err := decodeVoteRequest(bytes.Clone(payload), req); err != nil {
		return nil, err
	}
	if err := t.checkSender(from, KindVote, req.RPCHeader, req.Candidate); err != nil {
		return nil, err
	}
	resp, err := answer[raft.RequestVoteResponse](t.dispatch(ctx, req, nil, false))
	if err != nil {
		return nil, err
	}
	return encodeVoteResponse(resp), nil
}

func (t *raftTransport) handlePreVote(ctx context.Context, from string, payload []byte) ([]byte, error) {
	req := new(raft.RequestPreVoteRequest)
	if err := decodePreVoteRequest(bytes.Clone(payload), req); err != nil {
		return nil, err
	}
	if err := t.checkSender(from, KindPreVote, req.RPCHeader, nil); err != nil {
		return nil, err
	}
	resp, err := answer[raft.RequestPreVoteResponse](t.dispatch(ctx, req, nil, false))
	if err != nil {
		return nil, err
	}
	return encodePreVoteResponse(resp), nil
}

func (t *raftTransport) handleTimeout(ctx context.Context, from string, payload []byte) ([]byte, error) {
	req := new(raft.TimeoutNowRequest)
	if err := decodeTimeoutRequest(bytes.Clone(payload), req); err != nil {
		return nil, err
	}
	if err := t.checkSender(from, KindTimeout, req.RPCHeader, nil); err != nil {
		return nil, err
	}
	resp, err := answer[raft.TimeoutNowResponse](t.dispatch(ctx, req, nil, false))
	if err != nil {
		return nil, err
	}
	return encodeTimeoutResponse(resp), nil
}
