package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/streamcall"
)

// inbound fakes a node's server, as the plugin's Inbound: it answers calls
// (see answerOf), refuses them or lets them hang as the checks need, records
// what reached it, and writes the snapshot it is given.
type inbound struct {
	node     string
	released chan struct{} // closed when the kit ends: hanging calls return
	release  func()

	mu       sync.Mutex
	mode     inboundMode
	hung     chan context.Context // in hang mode, the contexts of hanging calls
	unhang   chan struct{}        // closed when hang mode ends: hanging calls return
	received []received
	snapshot func(fn func([]byte) error) error
	askedBy  []string // the from of every snapshot asked for
}

type inboundMode int

const (
	answering inboundMode = iota
	refusing
	hanging
)

// received is a call that reached an inbound.
type received struct {
	from, kind string
	payload    []byte
}

func newInbound(node string) *inbound {
	released := make(chan struct{})
	return &inbound{node: node, released: released, release: sync.OnceFunc(func() { close(released) })}
}

// answerOf is a node's answer to payload.
func answerOf(node string, payload []byte) []byte {
	return append([]byte("transporttest: node "+node+" answers "), payload...)
}

// refusal is the error of a node's inbound that refuses calls.
func refusal(node string) string {
	return "transporttest: node " + node + "'s server refuses this call"
}

// answer makes the inbound answer calls.
func (in *inbound) answer() { in.set(answering) }

// refuse makes the inbound refuse calls.
func (in *inbound) refuse() { in.set(refusing) }

// hang makes calls wait until their context ends, sending it on the
// returned channel first, or until the inbound answers or refuses again, so
// that a transport that never gives up on a call fails one check, not the
// ones after it too.
func (in *inbound) hang() <-chan context.Context {
	in.set(hanging)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.hung, in.unhang = make(chan context.Context, 100), make(chan struct{})
	return in.hung
}

func (in *inbound) set(m inboundMode) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.unhang != nil {
		close(in.unhang)
		in.unhang = nil
	}
	in.mode = m
}

// got reports whether a call with exactly these from, kind and payload has
// reached the inbound, and else what did.
func (in *inbound) got(from, kind string, payload []byte) (bool, string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range in.received {
		if r.from == from && r.kind == kind && bytes.Equal(r.payload, payload) {
			return true, ""
		}
	}
	if len(in.received) == 0 {
		return false, "no call reached it"
	}
	last := in.received[len(in.received)-1]
	return false, fmt.Sprintf("the last call that reached it came from %q, of kind %q, with %s", last.from, last.kind, describe(last.payload))
}

// seen returns how many calls and snapshot requests have reached the
// inbound so far.
func (in *inbound) seen() (calls, snapshots int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.received), len(in.askedBy)
}

// since says what reached the inbound after it had seen calls and
// snapshots: "" for nothing.
func (in *inbound) since(calls, snapshots int) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case len(in.received) > calls:
		r := in.received[calls]
		return fmt.Sprintf("a call from %q, of kind %q, with %s", r.from, r.kind, describe(r.payload))
	case len(in.askedBy) > snapshots:
		return fmt.Sprintf("a request for its snapshot from %q", in.askedBy[snapshots])
	}
	return ""
}

// setSnapshot sets what the inbound's snapshot writes.
func (in *inbound) setSnapshot(write func(fn func([]byte) error) error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.snapshot = write
}

// askers returns the from of every snapshot asked of the inbound so far.
func (in *inbound) askers() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.askedBy...)
}

// Handle implements transport.Inbound.
func (in *inbound) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	in.mu.Lock()
	mode, hung, unhang := in.mode, in.hung, in.unhang
	in.received = append(in.received, received{from, kind, payload})
	in.mu.Unlock()
	switch mode {
	case refusing:
		return nil, errors.New(refusal(in.node))
	case hanging:
		select {
		case hung <- ctx:
		default:
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-unhang:
			return nil, errors.New("transporttest: the check is over")
		case <-in.released:
			return nil, errors.New("transporttest: the test is over")
		}
	}
	return answerOf(in.node, payload), nil
}

// Snapshot implements transport.Inbound.
func (in *inbound) Snapshot(_ context.Context, from string, fn func([]byte) error) error {
	in.mu.Lock()
	write := in.snapshot
	in.askedBy = append(in.askedBy, from)
	in.mu.Unlock()
	if write == nil {
		return errors.New("transporttest: no snapshot was expected")
	}
	return write(fn)
}

// inboundServer serves a node's inbound to its plugin, as the server does.
type inboundServer struct {
	pluginv1.UnimplementedInboundServer
	in *inbound
}

type inboundResult struct {
	payload []byte
	err     string
}

func (s inboundServer) Handle(stream pluginv1.Inbound_HandleServer) error {
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.InboundRequest) inboundResult {
		payload, err := s.in.Handle(ctx, req.GetFrom(), req.GetKind(), req.GetPayload())
		if err != nil {
			return inboundResult{err: err.Error()}
		}
		return inboundResult{payload: payload}
	}, func(id uint64, r inboundResult) *pluginv1.InboundResult {
		return &pluginv1.InboundResult{Id: id, Payload: r.payload, Error: r.err}
	})
}

func (s inboundServer) Snapshot(req *pluginv1.InboundSnapshotRequest, stream pluginv1.Inbound_SnapshotServer) error {
	return s.in.Snapshot(stream.Context(), req.GetFrom(), func(b []byte) error {
		return stream.Send(&pluginv1.Chunk{Data: b})
	})
}

// callStream is the host's end of a node's Call stream. It speaks the
// protocol itself, not through host.RemoteTransport, so that the kit
// sees what the plugin really answers, and when.
type callStream struct {
	sendMu sync.Mutex
	s      pluginv1.Transport_CallClient

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan *pluginv1.CallResult
	done    chan struct{} // closed when the stream has ended...
	err     error         // ...for this reason, set before
}

func newCallStream(s pluginv1.Transport_CallClient) *callStream {
	c := &callStream{s: s, waiting: make(map[uint64]chan *pluginv1.CallResult), done: make(chan struct{})}
	go c.receive()
	return c
}

// call sends a call with a deadline; the plugin's result arrives on the
// channel.
func (c *callStream) call(target, kind string, payload []byte, deadline time.Time) (uint64, <-chan *pluginv1.CallResult, error) {
	ch := make(chan *pluginv1.CallResult, 1)
	c.mu.Lock()
	c.next++
	id := c.next
	c.waiting[id] = ch
	c.mu.Unlock()
	return id, ch, c.send(&pluginv1.CallRequest{Id: id, DeadlineUnixNano: deadline.UnixNano(), Target: target, Kind: kind, Payload: payload})
}

// cancel withdraws call id, as the host does when a call's context ends.
func (c *callStream) cancel(id uint64) error {
	return c.send(&pluginv1.CallRequest{Id: id, Cancel: true})
}

// closeSend ends the stream from the host's side, which is how the host
// closes the plugin's transport.
func (c *callStream) closeSend() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.s.CloseSend()
}

func (c *callStream) send(req *pluginv1.CallRequest) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.s.Send(req); err != nil {
		return fmt.Errorf("sending on the Call stream: %w", err)
	}
	return nil
}

func (c *callStream) receive() {
	for {
		res, err := c.s.Recv()
		if err != nil {
			c.err = fmt.Errorf("the Call stream ended: %w", err)
			close(c.done)
			return
		}
		c.mu.Lock()
		ch := c.waiting[res.GetId()]
		delete(c.waiting, res.GetId())
		c.mu.Unlock()
		if ch != nil {
			ch <- res
		}
	}
}

// describe says what a payload is, for a message: short ones as they are.
func describe(p []byte) string {
	if len(p) <= 64 {
		return fmt.Sprintf("the payload %q", p)
	}
	return fmt.Sprintf("a payload of %d bytes starting %q", len(p), p[:32])
}
