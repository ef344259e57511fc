package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// outboundQueue is how many server requests may wait to be written to one
// connection; beyond it, sends to that connection fail fast rather than stall
// the pushes to everyone else. The byte budget (Config.MaxOutboundBytes)
// usually binds first.
const outboundQueue = 256

// Bounds of the labels a connection declares in its ConnectionSetupRequest.
// Its client keeps them for the connection's life, and push matches plugins'
// interests against them; a Nacos client sends a handful (source, module,
// AppName and the labels it is configured with).
const (
	maxLabels          = 64
	maxLabelKeyBytes   = 256
	maxLabelValueBytes = 1024
)

// checkLabels returns the labels a connection keeps of those its setup
// declared: each with a key of 1 to maxLabelKeyBytes bytes and a value of at
// most maxLabelValueBytes, both text (naming.TextProblem), and of those the
// maxLabels with the smallest keys. The others are dropped, not refused: a
// Nacos client sends its setup without waiting for an answer, so a refusal
// could only close the connection. It returns how many it dropped and why
// the first was.
func checkLabels(labels map[string]string) (kept map[string]string, dropped int, why string) {
	drop := func(reason string) {
		if dropped++; why == "" {
			why = reason
		}
	}
	problem := func(k, v string) string {
		switch {
		case k == "":
			return "a label has an empty key"
		case len(k) > maxLabelKeyBytes:
			return fmt.Sprintf("label key %.32q... is longer than %d bytes", k, maxLabelKeyBytes)
		case len(v) > maxLabelValueBytes:
			return fmt.Sprintf("the value of label %.32q is longer than %d bytes", k, maxLabelValueBytes)
		}
		if p := naming.TextProblem(k); p != "" {
			return fmt.Sprintf("label key %.32q %s", k, p)
		}
		if p := naming.TextProblem(v); p != "" {
			return fmt.Sprintf("the value of label %.32q %s", k, p)
		}
		return ""
	}
	keys := slices.Sorted(maps.Keys(labels))
	for _, k := range keys {
		if p := problem(k, labels[k]); p != "" {
			drop(p)
			continue
		}
		if len(kept) == maxLabels {
			drop(fmt.Sprintf("more than %d labels", maxLabels))
			continue
		}
		if kept == nil {
			kept = make(map[string]string, min(len(labels), maxLabels))
		}
		kept[k] = labels[k]
	}
	if dropped == 0 {
		return labels, 0, ""
	}
	return kept, dropped, why
}

var (
	errConnectionClosed = errors.New("connection closed")
	errSendQueueFull    = errors.New("connection send queue full")
	// errSuperseded completes a request that a newer one with the same
	// coalescing key replaced in the queue before it was written: the newer
	// one delivers its data. Request reports it as delivered (nil).
	errSuperseded = errors.New("replaced by a newer request before it was written")
)

// conn is one client connection with its bi-directional stream set up.
//
// Server requests queue on the connection and are written by a writer
// that runs only while there is something to write, on a goroutine of the
// server's pool (writers.go), so that thousands of idle connections cost no
// goroutine of their own.
//
// The queue is bounded three ways. A request queued with a coalescing key
// (a push of one service and cluster filter) replaces an unsent request with
// the same key: it goes to the end of the queue, so requestIds still rise in
// write order, and the older request completes with errSuperseded. The bytes
// queued and not yet handed to the stream are held within budget: a send
// that would go over it closes the connection, except that a message larger
// than the budget is accepted when nothing else is queued (one push of a huge
// service must not close every subscriber of it). And each write must
// complete within the write timeout (clock), or the connection is closed:
// the message being written is bounded by that, not by the budget.
type conn struct {
	id   string
	addr string // the client's ip:port, as the listener knows it
	// version is the clientVersion of its setup (conninfo.go), and app its
	// AppName label; set before the connection is in Server.conns, never
	// changed after.
	version, app string
	since        time.Time // when it was accepted
	// write sends on the stream; one call at a time. A failed write means the
	// connection is broken: brokenWrite is called (once, with the cause) and
	// the queue dropped. A limit that closes the connection calls it too.
	write       func(serveropts.Message) error
	brokenWrite func(error)

	// Limits, set before the first send; zero means none.
	budget int         // bytes queued and not yet written
	clock  *writeClock // bounds each write; nil for no timeout
	// outbound is the server's total of bytes queued and being written on
	// every connection (nil: not counted).
	outbound *atomic.Int64

	lastActive atomic.Int64 // unix nanoseconds of the last message from the client
	probing    atomic.Bool  // a ClientDetectionRequest is outstanding
	failed     atomic.Bool  // brokenWrite has been called

	mu       sync.Mutex
	closed   bool
	cause    error                      // why the connection closed, if it did on its own
	pending  map[string]*pendingRequest // by requestId; made on first use
	queue    []*outbound                // waiting to be written
	queued   int                        // bytes in queue
	writing  bool                       // a writer goroutine runs
	writers  *writerPool                // runs the writer; set before the first send
	draining sync.WaitGroup             // the writer, while it runs
}

// outbound is one request waiting to be written.
type outbound struct {
	m         serveropts.Message
	key       string // coalescing key; "" never coalesces
	requestID string
}

type pendingRequest struct {
	typ    string
	sentAt time.Time
	// latency is set before result receives an answer from the client.
	latency time.Duration
	result  chan error // buffered; receives exactly once
}

func newConn(id, addr string, now time.Time, write func(serveropts.Message) error, brokenWrite func(error)) *conn {
	c := &conn{id: id, addr: addr, write: write, brokenWrite: brokenWrite, since: now}
	c.touch(now)
	return c
}

func (c *conn) touch(now time.Time) { c.lastActive.Store(now.UnixNano()) }

func (c *conn) idleSince() time.Time { return time.Unix(0, c.lastActive.Load()) }

// sendKeyed queues m, a request with the given id, and returns where its
// answer will arrive. It never blocks. m replaces a queued, unsent request
// with the same coalescing key ("" replaces nothing). A send over the byte
// budget closes the connection and returns errOutboundBudget.
func (c *conn) sendKeyed(typ, key, requestID string, m serveropts.Message, now time.Time) (*pendingRequest, error) {
	size := len(m)
	c.mu.Lock()
	if c.closed {
		err := c.closedErr()
		c.mu.Unlock()
		return nil, err
	}
	var superseded *pendingRequest
	if key != "" {
		if i := slices.IndexFunc(c.queue, func(o *outbound) bool { return o.key == key }); i >= 0 {
			old := c.queue[i]
			c.queue = slices.Delete(c.queue, i, i+1)
			c.addQueued(-len(old.m))
			superseded = c.pending[old.requestID]
			delete(c.pending, old.requestID)
		}
	}
	if c.budget > 0 && len(c.queue) > 0 && c.queued+size > c.budget {
		over := fmt.Errorf("%w: %d bytes queued, %d more, budget %d", errOutboundBudget, c.queued, size, c.budget)
		pending := c.shut(errOutboundBudget)
		err := c.closedErr()
		c.mu.Unlock()
		c.fail(over)
		fail(pending, err)
		if superseded != nil {
			superseded.result <- err
		}
		return nil, over
	}
	if len(c.queue) >= outboundQueue {
		c.mu.Unlock()
		return nil, errSendQueueFull
	}
	pr := &pendingRequest{typ: typ, sentAt: now, result: make(chan error, 1)}
	if c.pending == nil {
		c.pending = make(map[string]*pendingRequest)
	}
	c.pending[requestID] = pr
	c.queue = append(c.queue, &outbound{m: m, key: key, requestID: requestID})
	c.addQueued(size)
	if !c.writing {
		c.writing = true
		c.draining.Add(1)
		c.writers.start(c)
	}
	c.mu.Unlock()
	if superseded != nil {
		superseded.result <- errSuperseded
	}
	return pr, nil
}

// addQueued counts n more bytes queued; under mu.
func (c *conn) addQueued(n int) {
	c.queued += n
	c.addOutbound(n)
}

func (c *conn) addOutbound(n int) {
	if c.outbound != nil {
		c.outbound.Add(int64(n))
	}
}

// drain writes the queue in order until it is empty.
func (c *conn) drain() {
	defer c.draining.Done()
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		o := c.queue[0]
		c.queue[0], c.queue = nil, c.queue[1:]
		if len(c.queue) == 0 {
			c.queue = nil // let the backing array go
		}
		c.queued -= len(o.m) // still counted in outbound until written
		c.mu.Unlock()
		err := c.timedWrite(o.m)
		c.addOutbound(-len(o.m))
		if err != nil {
			c.abort(err)
			return
		}
	}
}

// timedWrite writes m, closing the connection if that takes longer than the
// write timeout: a stream Send blocks while the client does not read.
func (c *conn) timedWrite(m serveropts.Message) error {
	if c.clock == nil {
		return c.write(m)
	}
	c.clock.begin()
	err := c.write(m)
	if c.clock.end() && err == nil {
		err = errWriteTimeout
	}
	return err
}

// abort closes the connection for cause: nothing more is written, every
// pending request fails, and brokenWrite is called (once).
func (c *conn) abort(cause error) {
	c.mu.Lock()
	pending := c.shut(cause)
	err := c.closedErr()
	c.mu.Unlock()
	c.fail(cause) // closes the TCP connection, before anyone hears of it
	fail(pending, err)
}

// fail calls brokenWrite the first time only.
func (c *conn) fail(cause error) {
	if c.failed.CompareAndSwap(false, true) {
		c.brokenWrite(cause)
	}
}

// shut marks the connection closed for cause (nil: closed from outside),
// drops the queue and returns the pending requests, for the caller to fail
// once it has released mu. Under mu.
func (c *conn) shut(cause error) map[string]*pendingRequest {
	if c.closed {
		return nil
	}
	c.closed, c.cause = true, cause
	if c.clock != nil {
		c.clock.stop()
	}
	c.addQueued(-c.queued)
	pending := c.pending
	c.pending, c.queue = nil, nil
	return pending
}

// closedErr is what a request on the closed connection fails with. Under mu.
func (c *conn) closedErr() error {
	if c.cause == nil {
		return errConnectionClosed
	}
	return fmt.Errorf("%w: %w", errConnectionClosed, c.cause)
}

func fail(pending map[string]*pendingRequest, err error) {
	for _, pr := range pending {
		pr.result <- err
	}
}

// forget drops a request whose answer is no longer awaited.
func (c *conn) forget(requestID string) {
	c.mu.Lock()
	delete(c.pending, requestID)
	c.mu.Unlock()
}

// answer delivers a client's answer to the request it names; it returns the
// request (nil if none was pending).
func (c *conn) answer(body []byte) (*pendingRequest, error) {
	var a clientAnswer
	if !a.decodeFast(body) {
		a = clientAnswer{}
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, fmt.Errorf("answer could not be parsed: %w", err)
		}
	}
	c.mu.Lock()
	pr := c.pending[a.RequestID]
	delete(c.pending, a.RequestID)
	c.mu.Unlock()
	if pr == nil {
		return nil, nil
	}
	pr.latency = time.Since(pr.sentAt)
	if a.ResultCode == codeOK {
		pr.result <- nil
	} else {
		pr.result <- fmt.Errorf("client answered %s with result %d, error %d: %s", pr.typ, a.ResultCode, a.ErrorCode, a.Message)
	}
	return pr, nil
}

// close ends the connection: nothing more is written, every pending request
// fails, and close returns once no writer goroutine runs.
func (c *conn) close() {
	c.mu.Lock()
	pending := c.shut(nil)
	err := c.closedErr()
	c.mu.Unlock()
	fail(pending, err)
	c.draining.Wait()
}

// serverRequest encodes a server-to-client request.
func serverRequest(typ string, body []byte, requestID string) (serveropts.Message, error) {
	b, err := withRequestID(body, requestID)
	if err != nil {
		return nil, err
	}
	return serveropts.EncodeMessage(&nacos.Payload{
		Metadata: &nacos.Metadata{Type: typ},
		Body:     &anypb.Any{Value: b},
	})
}

// enqueue queues one request for every non-nil connection and records the
// failures in errs. Taking the requestId and queueing happen under one lock,
// so on every connection the requestIds of server requests rise in the order
// they are sent. Queueing never blocks, so the lock is held briefly.
func (s *Server) enqueue(typ, key string, body []byte, conns []*conn, errs []error) ([]*pendingRequest, string, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.lastRequestID++
	requestID := strconv.FormatUint(s.lastRequestID, 10)
	m, err := serverRequest(typ, body, requestID)
	if err != nil {
		return nil, "", err
	}
	now := time.Now()
	waits := make([]*pendingRequest, len(conns))
	for i, c := range conns {
		if c == nil {
			continue
		}
		if waits[i], err = c.sendKeyed(typ, key, requestID, m, now); err != nil {
			errs[i] = fmt.Errorf("connection %s: %w", c.id, err)
		}
	}
	return waits, requestID, nil
}

// Request implements push.Connections: it sends one request to many
// connections — the same payload and requestId to all, so it is built once —
// and waits for every answer or ctx.
//
// A push (NotifySubscriberRequest) still queued on a connection when a newer
// push of the same service and cluster filter is sent to it is replaced by
// the newer one, and its Request gets nil for that connection at once: the
// newer push delivers newer data, and if it fails, its own Request reports
// the failure (and push retries the client with the data current then). It
// is counted as "superseded", not "ok".
func (s *Server) Request(ctx context.Context, typ string, body []byte, connectionIDs []string) []error {
	errs := make([]error, len(connectionIDs))
	conns := make([]*conn, len(connectionIDs))
	for i, id := range connectionIDs {
		if conns[i] = s.conn(id); conns[i] == nil {
			errs[i] = fmt.Errorf("connection %s: %w", id, errConnectionClosed)
		}
	}
	waits, requestID, err := s.enqueue(typ, coalesceKey(typ, body), body, conns, errs)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for i, pr := range waits {
		if pr == nil {
			continue
		}
		select {
		case errs[i] = <-pr.result:
		case <-ctx.Done():
			select {
			case errs[i] = <-pr.result:
			default:
				conns[i].forget(requestID)
				errs[i] = fmt.Errorf("connection %s: no answer to %s: %w", conns[i].id, typ, ctx.Err())
			}
		}
		switch {
		case errs[i] == nil:
			s.metrics.serverRequestOK(typ, pr.latency) // set by the answer just received
		case errors.Is(errs[i], errSuperseded):
			errs[i] = nil
			s.metrics.serverRequestSuperseded(typ)
		default:
			s.metrics.serverRequestFailed(typ)
		}
	}
	return errs
}
