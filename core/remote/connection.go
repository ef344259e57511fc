package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// outboundQueue is how many server requests may wait to be written to one
// connection; beyond it, sends to that connection fail fast rather than stall
// the pushes to everyone else.
const outboundQueue = 256

var (
	errConnectionClosed = errors.New("connection closed")
	errSendQueueFull    = errors.New("connection send queue full")
)

// conn is one client connection with its bi-directional stream set up.
//
// Server requests queue on the connection and are written by a goroutine
// that exists only while there is something to write, so that thousands of
// idle connections cost no goroutine of their own.
type conn struct {
	id   string
	addr string // the client's ip:port, as the listener knows it
	// write sends on the stream; one call at a time. A failed write means the
	// connection is broken: brokenWrite is called and the queue dropped.
	write       func(*nacos.Payload) error
	brokenWrite func(error)

	lastActive atomic.Int64 // unix nanoseconds of the last message from the client
	probing    atomic.Bool  // a ClientDetectionRequest is outstanding

	mu      sync.Mutex
	closed  bool
	pending map[string]*pendingRequest // by requestId; made on first use
	queue   []*nacos.Payload           // waiting to be written
	writing bool                       // a writer goroutine runs
	writers sync.WaitGroup
}

type pendingRequest struct {
	typ    string
	sentAt time.Time
	// latency is set before result receives an answer from the client.
	latency time.Duration
	result  chan error // buffered; receives exactly once
}

func newConn(id, addr string, now time.Time, write func(*nacos.Payload) error, brokenWrite func(error)) *conn {
	c := &conn{id: id, addr: addr, write: write, brokenWrite: brokenWrite}
	c.touch(now)
	return c
}

func (c *conn) touch(now time.Time) { c.lastActive.Store(now.UnixNano()) }

func (c *conn) idleSince() time.Time { return time.Unix(0, c.lastActive.Load()) }

// send queues p, a request with the given id, and returns where its answer will
// arrive. It never blocks.
func (c *conn) send(typ, requestID string, p *nacos.Payload, now time.Time) (*pendingRequest, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errConnectionClosed
	}
	if len(c.queue) >= outboundQueue {
		return nil, errSendQueueFull
	}
	pr := &pendingRequest{typ: typ, sentAt: now, result: make(chan error, 1)}
	if c.pending == nil {
		c.pending = make(map[string]*pendingRequest)
	}
	c.pending[requestID] = pr
	c.queue = append(c.queue, p)
	if !c.writing {
		c.writing = true
		c.writers.Add(1)
		go c.drain()
	}
	return pr, nil
}

// drain writes the queue in order until it is empty.
func (c *conn) drain() {
	defer c.writers.Done()
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing, c.queue = false, nil
			c.mu.Unlock()
			return
		}
		p := c.queue[0]
		c.queue[0], c.queue = nil, c.queue[1:]
		c.mu.Unlock()
		if err := c.write(p); err != nil {
			c.mu.Lock()
			c.writing, c.queue = false, nil
			c.mu.Unlock()
			c.brokenWrite(err)
			return
		}
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
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("answer could not be parsed: %w", err)
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
	c.closed = true
	pending := c.pending
	c.pending, c.queue = nil, nil
	c.mu.Unlock()
	for _, pr := range pending {
		pr.result <- errConnectionClosed
	}
	c.writers.Wait()
}

// serverRequest builds the payload of a server-to-client request.
func serverRequest(typ string, body []byte, requestID string) (*nacos.Payload, error) {
	b, err := withRequestID(body, requestID)
	if err != nil {
		return nil, err
	}
	return &nacos.Payload{
		Metadata: &nacos.Metadata{Type: typ},
		Body:     &anypb.Any{Value: b},
	}, nil
}

// enqueue queues one request for every non-nil connection and records the
// failures in errs. Taking the requestId and queueing happen under one lock,
// so on every connection the requestIds of server requests rise in the order
// they are sent. Queueing never blocks, so the lock is held briefly.
func (s *Server) enqueue(typ string, body []byte, conns []*conn, errs []error) ([]*pendingRequest, string, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.lastRequestID++
	requestID := strconv.FormatUint(s.lastRequestID, 10)
	p, err := serverRequest(typ, body, requestID)
	if err != nil {
		return nil, "", err
	}
	now := time.Now()
	waits := make([]*pendingRequest, len(conns))
	for i, c := range conns {
		if c == nil {
			continue
		}
		if waits[i], err = c.send(typ, requestID, p, now); err != nil {
			errs[i] = fmt.Errorf("connection %s: %w", c.id, err)
		}
	}
	return waits, requestID, nil
}

// Request implements push.Connections: it sends one request to many
// connections — the same payload and requestId to all, so it is built once —
// and waits for every answer or ctx.
func (s *Server) Request(ctx context.Context, typ string, body []byte, connectionIDs []string) []error {
	errs := make([]error, len(connectionIDs))
	conns := make([]*conn, len(connectionIDs))
	for i, id := range connectionIDs {
		if conns[i] = s.conn(id); conns[i] == nil {
			errs[i] = fmt.Errorf("connection %s: %w", id, errConnectionClosed)
		}
	}
	waits, requestID, err := s.enqueue(typ, body, conns, errs)
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
		if errs[i] == nil {
			s.metrics.serverRequestOK(typ, pr.latency) // set by the answer just received
		} else {
			s.metrics.serverRequestFailed(typ)
		}
	}
	return errs
}
