// Package rawnacos is a Nacos 2.x client connection spoken by hand, for the
// end-to-end tests that must see the wire as the server gives it: every
// answer's type and codes, every push (empty ones included, which the Go
// SDK drops), and no SDK reconnection logic (or its data races) in between.
//
// It uses the Nacos Go SDK's generated stubs, which register the same
// message names as Sextant's proto package: a test binary that also runs
// the SDK can use it.
package rawnacos

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
)

// NotifyType is the type of the server's pushes.
const NotifyType = "NotifySubscriberRequest"

// Options configure a connection.
type Options struct {
	// ClientVersion is announced in the connection setup.
	ClientVersion string
	// RequestIDPrefix starts every request id.
	RequestIDPrefix string
	// SetupTimeout bounds each request of the set-up, and the wait for the
	// server to have taken it.
	SetupTimeout time.Duration
	// OnPush, when set, is handed the body of every push before it is
	// acknowledged.
	OnPush func(body []byte)
}

// Conn is one client connection to a node: to the node, one client.
type Conn struct {
	Addr string
	ID   string // the connection id the node gave it (ServerCheckResponse)

	opts   Options
	cc     *grpc.ClientConn
	rpc    nacosgrpc.RequestClient
	ids    atomic.Int64
	stream nacosgrpc.BiRequestStream_RequestBiStreamClient
	cancel context.CancelFunc
	ended  chan struct{} // closed when the stream ends
	sendMu sync.Mutex
	closed sync.Once
	// endedAt and closedAt are when the stream ended and when Close was
	// called (unix nanoseconds; 0: not yet): a stream that ended first was
	// ended by the node.
	endedAt, closedAt atomic.Int64
}

// Dial connects to the client gRPC port at addr, opens the stream and sets
// the connection up: it returns once the node serves its requests.
func Dial(addr string, opts Options) (*Conn, error) {
	if opts.SetupTimeout <= 0 {
		opts.SetupTimeout = 5 * time.Second
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &Conn{Addr: addr, opts: opts, cc: cc, rpc: nacosgrpc.NewRequestClient(cc), ended: make(chan struct{})}
	if err := c.setUp(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	return c, nil
}

func (c *Conn) setUp() error {
	timeout := c.opts.SetupTimeout
	a, err := c.Call(timeout, "ServerCheckRequest", map[string]any{})
	if err != nil {
		return err
	}
	var check struct {
		ConnectionID string `json:"connectionId"`
	}
	if err := json.Unmarshal(a.Body, &check); err != nil {
		return err
	}
	c.ID = check.ConnectionID
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := nacosgrpc.NewBiRequestStreamClient(c.cc).RequestBiStream(ctx)
	if err != nil {
		cancel()
		close(c.ended)
		return err
	}
	c.stream, c.cancel = stream, cancel
	go c.read()
	if err := c.send("ConnectionSetupRequest", map[string]any{
		"clientVersion": c.opts.ClientVersion,
		"labels":        map[string]string{"source": "sdk", "module": "naming"},
	}); err != nil {
		return err
	}
	// The setup is asynchronous: requests before it are answered 301.
	deadline := time.Now().Add(timeout)
	for {
		a, err := c.Call(timeout, "HealthCheckRequest", map[string]any{})
		if err != nil {
			return err
		}
		if a.ResultCode == 200 {
			return nil
		}
		if a.ErrorCode != 301 || time.Now().After(deadline) {
			return fmt.Errorf("HealthCheckRequest: %s", a)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// read answers what the server sends on the stream (pushes, after OnPush
// has seen them, and probes) as the SDK does, until the stream ends.
func (c *Conn) read() {
	defer close(c.ended)
	defer func() { c.endedAt.Store(time.Now().UnixNano()) }()
	for {
		p, err := c.stream.Recv()
		if err != nil {
			return
		}
		typ, body := p.GetMetadata().GetType(), p.GetBody().GetValue()
		if typ == NotifyType && c.opts.OnPush != nil {
			c.opts.OnPush(body)
		}
		var id struct {
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(body, &id)
		if len(typ) > len("Request") {
			_ = c.send(typ[:len(typ)-len("Request")]+"Response", map[string]any{"requestId": id.RequestID, "resultCode": 200, "success": true})
		}
	}
}

func (c *Conn) send(typ string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(&nacosgrpc.Payload{Metadata: &nacosgrpc.Metadata{Type: typ}, Body: &anypb.Any{Value: b}})
}

// Close closes the connection (again: nothing).
func (c *Conn) Close() {
	c.closed.Do(func() {
		c.closedAt.Store(time.Now().UnixNano())
		if c.cancel != nil {
			c.cancel()
		}
		_ = c.cc.Close()
		if c.stream != nil {
			<-c.ended
		}
	})
}

// EndedByNode returns when the node ended the stream, if it did (before
// Close was called).
func (c *Conn) EndedByNode() (time.Time, bool) {
	ended, closed := c.endedAt.Load(), c.closedAt.Load()
	if ended == 0 || closed != 0 && closed <= ended {
		return time.Time{}, false
	}
	return time.Unix(0, ended), true
}

// Answer is a response: its type, common fields and body.
type Answer struct {
	Type       string `json:"-"`
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Message    string `json:"message"`
	Body       []byte `json:"-"`
}

func (a Answer) String() string { return a.Type + " " + string(a.Body) }

// Call sends a unary request (body gets its requestId) and returns the
// server's answer, whatever its codes; the error is for a request not
// answered at all, or an answer that is not JSON.
func (c *Conn) Call(timeout time.Duration, typ string, body map[string]any) (Answer, error) {
	body["requestId"] = c.opts.RequestIDPrefix + strconv.FormatInt(c.ids.Add(1), 10)
	raw, err := json.Marshal(body)
	if err != nil {
		return Answer{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := c.rpc.Request(ctx, &nacosgrpc.Payload{Metadata: &nacosgrpc.Metadata{Type: typ}, Body: &anypb.Any{Value: raw}})
	if err != nil {
		return Answer{}, fmt.Errorf("%s to %s: %w", typ, c.Addr, err)
	}
	a := Answer{Type: p.GetMetadata().GetType(), Body: p.GetBody().GetValue()}
	if err := json.Unmarshal(a.Body, &a); err != nil {
		return a, fmt.Errorf("%s to %s: %w: %s", typ, c.Addr, err, a.Body)
	}
	return a, nil
}
