// Package wire is a light Nacos 2.x client connection, speaking the gRPC wire
// directly: the server check, the connection setup on the bi-stream, unary
// requests, answers to the server's requests (pushes, detection probes) and
// keep-alive health checks. One Conn is one TCP connection, which is what a
// Nacos server knows as one client.
package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// Buffer sizes of a connection's transport. gRPC's defaults (32 KB each way
// per connection) would cost a client of thousands of connections hundreds of
// megabytes; messages here are small and a larger one only takes more reads.
// The flow-control window is fixed, as the official clients fix it, so that
// the transport sends no bandwidth-probing pings for the server to answer.
const (
	readBufferSize = 4 << 10
	windowSize     = 1 << 20
	maxMessageSize = 64 << 20 // a query of a large service may be big
)

// setupPollMax is the longest pause between checks that the server has
// registered a new connection.
const setupPollMax = 50 * time.Millisecond

// serverRetryPause is the pause before asking a starting server again.
const serverRetryPause = 100 * time.Millisecond

// answers maps each server request class the client acknowledges to the
// class of its answer.
var answers = map[string]string{
	NotifySubscriberType:     "NotifySubscriberResponse",
	"ClientDetectionRequest": "ClientDetectionResponse",
	"ConnectResetRequest":    "ConnectResetResponse",
}

// Options configure a connection.
type Options struct {
	// ClientVersion is sent in the connection setup.
	ClientVersion string
	// ClientIP is sent in every request's metadata.
	ClientIP string
	// HealthInterval is how long the connection may be idle before it sends
	// a HealthCheckRequest; 0 sends none.
	HealthInterval time.Duration
	// Timeout bounds each health check.
	Timeout time.Duration
	// OnHealthCheck, if set, is told the outcome of every health check and
	// how long it took.
	OnHealthCheck func(time.Duration, error)
	// OnServerRequest, if set, is given every request the server sends on the
	// stream, after it has been answered. It runs on the connection's reading
	// goroutine: it must be quick, and the connection reads nothing else
	// until it returns.
	OnServerRequest func(ServerRequest)
}

// ServerRequest is a request the server sent on the stream.
type ServerRequest struct {
	Type     string
	Body     []byte
	Received time.Time
}

// Conn is one client connection.
type Conn struct {
	id     string
	opts   Options
	cc     *grpc.ClientConn
	rpc    nacos.RequestClient
	stream nacos.BiRequestStream_RequestBiStreamClient
	cancel context.CancelFunc

	lastActive atomic.Int64 // unix nanoseconds of the last request sent
	done       chan struct{}
	err        error // why the connection ended; set before done is closed
	endOnce    sync.Once
	reading    chan struct{} // closed when the reading goroutine returns

	mu     sync.Mutex
	health *time.Timer
	closed bool
}

var dialOptions = []grpc.DialOption{
	grpc.WithTransportCredentials(insecure.NewCredentials()),
	grpc.WithReadBufferSize(readBufferSize),
	grpc.WithInitialWindowSize(windowSize),
	grpc.WithInitialConnWindowSize(windowSize),
	grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize)),
	grpc.WithDisableRetry(),
	grpc.WithDisableServiceConfig(),
	grpc.WithIdleTimeout(0),
}

// Dial opens a connection to the client gRPC address addr (host:port), runs
// the server check, sets the connection up and returns once the server
// accepts requests on it. ctx bounds all of that. Failing to reach the server
// is an error wrapping ErrUnreachable.
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	c := &Conn{
		opts:    opts,
		cc:      cc,
		rpc:     nacos.NewRequestClient(cc),
		done:    make(chan struct{}),
		reading: make(chan struct{}),
	}
	if err := c.setUp(ctx, addr); err != nil {
		c.Close()
		return nil, err
	}
	if opts.HealthInterval > 0 {
		c.mu.Lock()
		c.health = time.AfterFunc(opts.HealthInterval, c.healthCheck)
		c.mu.Unlock()
	}
	return c, nil
}

func (c *Conn) setUp(ctx context.Context, addr string) error {
	id, err := c.serverCheck(ctx)
	if err != nil {
		return err
	}
	c.id = id
	// The stream lives as long as the connection, not as long as ctx.
	streamCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.stream, err = nacos.NewBiRequestStreamClient(c.cc).RequestBiStream(streamCtx)
	if err != nil {
		close(c.reading)
		return fmt.Errorf("%w: opening the stream: %v", ErrUnreachable, err)
	}
	setup := &connectionSetup{
		internalRequest: internalRequest{Module: "internal"},
		ClientVersion:   c.opts.ClientVersion,
		Labels:          map[string]string{"source": "sdk", "module": "naming"},
	}
	p, err := c.payload("ConnectionSetupRequest", setup)
	if err != nil {
		close(c.reading)
		return err
	}
	if err := c.stream.Send(p); err != nil {
		close(c.reading)
		return fmt.Errorf("%w: sending the connection setup to %s: %v", ErrConnectionLost, addr, err)
	}
	go c.read()
	return c.awaitRegistered(ctx)
}

// serverCheck asks for the connection's id, waiting while the server starts.
func (c *Conn) serverCheck(ctx context.Context) (string, error) {
	for {
		var resp serverCheckResponse
		err := c.call(ctx, &serverCheck{internalRequest{Module: "internal"}}, &resp)
		var re *ResponseError
		switch {
		case err == nil:
			return resp.ConnectionID, nil
		case errors.As(err, &re) && re.ErrorCode >= 300 && re.ErrorCode < 400:
			if err := sleep(ctx, serverRetryPause); err != nil {
				return "", fmt.Errorf("server check: server still starting: %w", err)
			}
		case status.Code(err) == codes.Unavailable:
			return "", fmt.Errorf("%w: %v", ErrUnreachable, err)
		default:
			return "", fmt.Errorf("server check: %w", err)
		}
	}
}

// awaitRegistered sends health checks until the server no longer answers
// that the connection is unregistered (error 301): the setup request has no
// answer of its own.
func (c *Conn) awaitRegistered(ctx context.Context) error {
	pause := time.Millisecond
	for {
		err := c.Call(ctx, NewHealthCheck(), nil)
		var re *ResponseError
		if !errors.As(err, &re) || re.ErrorCode != 301 {
			if err != nil {
				return fmt.Errorf("connection setup: %w", err)
			}
			return nil
		}
		if err := sleep(ctx, pause); err != nil {
			return fmt.Errorf("connection setup: still unregistered: %w", err)
		}
		pause = min(2*pause, setupPollMax)
	}
}

// ID is the connection id the server assigned.
func (c *Conn) ID() string { return c.id }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (wrapping ErrConnectionLost), or nil while
// it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Call sends req and waits for its answer, bounded by ctx. An ErrorResponse
// or a resultCode other than 200 is a *ResponseError; an answer of another
// class than req.ResponseType() is a *ProtocolError. With out nil only the
// answer's class is checked, which is enough to tell success from failure
// and spares decoding a large body; otherwise the body is decoded into out
// (which must embed Response) and its resultCode checked.
func (c *Conn) Call(ctx context.Context, req Request, out response) error {
	if err := c.Err(); err != nil {
		return err
	}
	c.lastActive.Store(time.Now().UnixNano())
	err := c.call(ctx, req, out)
	if err == nil || status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if ended := c.Err(); ended != nil {
		return fmt.Errorf("%w (%v)", ended, err)
	}
	if status.Code(err) == codes.Unavailable {
		return fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	return err
}

func (c *Conn) call(ctx context.Context, req Request, out response) error {
	p, err := c.payload(req.RequestType(), req)
	if err != nil {
		return err
	}
	resp, err := c.rpc.Request(ctx, p)
	if err != nil {
		return err
	}
	typ, body := resp.GetMetadata().GetType(), resp.GetBody().GetValue()
	if typ == "ErrorResponse" {
		var r Response
		if err := json.Unmarshal(body, &r); err != nil {
			return &ProtocolError{Reason: fmt.Sprintf("ErrorResponse to %s could not be parsed: %v", req.RequestType(), err)}
		}
		return &ResponseError{Type: typ, ResultCode: r.ResultCode, ErrorCode: r.ErrorCode, Message: r.Message}
	}
	if typ != req.ResponseType() {
		return &ProtocolError{Reason: fmt.Sprintf("%s answered with %q, want %s", req.RequestType(), typ, req.ResponseType())}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &ProtocolError{Reason: fmt.Sprintf("%s could not be parsed: %v", typ, err)}
	}
	if b := out.base(); b.ResultCode != 200 {
		return &ResponseError{Type: typ, ResultCode: b.ResultCode, ErrorCode: b.ErrorCode, Message: b.Message}
	}
	return nil
}

func (c *Conn) payload(typ string, body any) (*nacos.Payload, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", typ, err)
	}
	return &nacos.Payload{
		Metadata: &nacos.Metadata{Type: typ, ClientIp: c.opts.ClientIP},
		Body:     &anypb.Any{Value: b},
	}, nil
}

// read answers and hands on what the server sends until the stream ends.
func (c *Conn) read() {
	defer close(c.reading)
	for {
		p, err := c.stream.Recv()
		if err != nil {
			c.end(fmt.Errorf("%w: stream: %v", ErrConnectionLost, err))
			return
		}
		received := time.Now()
		typ, body := p.GetMetadata().GetType(), p.GetBody().GetValue()
		if answer, ok := answers[typ]; ok {
			if err := c.answer(answer, body); err != nil {
				c.end(fmt.Errorf("%w: answering %s: %v", ErrConnectionLost, typ, err))
				return
			}
		}
		if c.opts.OnServerRequest != nil {
			c.opts.OnServerRequest(ServerRequest{Type: typ, Body: body, Received: received})
		}
	}
}

// answer acknowledges a server request on the stream.
func (c *Conn) answer(typ string, request []byte) error {
	id, err := requestID(request)
	if err != nil {
		return err
	}
	p, err := c.payload(typ, &Response{ResultCode: 200, Success: true, RequestID: id})
	if err != nil {
		return err
	}
	return c.stream.Send(p)
}

// requestIDPrefix is how a server request body usually starts; reading the
// id from it spares parsing a large push.
var requestIDPrefix = []byte(`{"requestId":"`)

// requestID returns the requestId of a server request body.
func requestID(body []byte) (string, error) {
	if rest, ok := bytes.CutPrefix(body, requestIDPrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			return string(rest[:i]), nil
		}
	}
	var r struct {
		RequestID string `json:"requestId"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", &ProtocolError{Reason: fmt.Sprintf("server request could not be parsed: %v", err)}
	}
	return r.RequestID, nil
}

// healthCheck runs on the health timer: it sends a HealthCheckRequest if the
// connection has been idle for the interval, and rearms the timer.
func (c *Conn) healthCheck() {
	interval := c.opts.HealthInterval
	idle := time.Since(time.Unix(0, c.lastActive.Load()))
	next := interval - idle
	if next <= 0 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		err := c.Call(ctx, NewHealthCheck(), nil)
		cancel()
		if c.Err() != nil {
			return
		}
		if c.opts.OnHealthCheck != nil {
			c.opts.OnHealthCheck(time.Since(start), err)
		}
		next = interval
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.health.Reset(next)
	}
}

// end records why the connection ended, once, and releases it.
func (c *Conn) end(err error) {
	c.endOnce.Do(func() {
		c.err = err
		close(c.done)
		c.mu.Lock()
		c.closed = true
		if c.health != nil {
			c.health.Stop()
		}
		c.mu.Unlock()
		if c.cancel != nil {
			c.cancel()
		}
		_ = c.cc.Close()
	})
}

// Close ends the connection (the server then drops what it registered) and
// waits for its reading goroutine.
func (c *Conn) Close() {
	c.end(fmt.Errorf("%w: closed", ErrConnectionLost))
	if c.stream != nil {
		<-c.reading
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
