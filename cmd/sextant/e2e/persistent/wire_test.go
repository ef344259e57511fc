package persistent_test

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

// The raw client speaks the Nacos 2.x client wire by hand, through the
// SDK's generated stubs (Sextant's proto package registers the same message
// names as the SDK): the SDK has no PersistentInstanceRequest, and a raw
// client shows every answer's codes as the server gave them.

const requestTimeout = 10 * time.Second

// rawConn is one client connection to a node: to the node, one client.
type rawConn struct {
	addr   string
	id     string // the connection id the node gave it
	cc     *grpc.ClientConn
	rpc    nacosgrpc.RequestClient
	ids    atomic.Int64
	stream nacosgrpc.BiRequestStream_RequestBiStreamClient
	cancel context.CancelFunc
	ended  chan struct{} // closed when the stream ends
	sendMu sync.Mutex
	closed sync.Once
}

// dial connects to the client gRPC port at addr, opens the stream and sets
// the connection up.
func dial(addr string) (*rawConn, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &rawConn{addr: addr, cc: cc, rpc: nacosgrpc.NewRequestClient(cc), ended: make(chan struct{})}
	if err := c.setUp(); err != nil {
		c.close()
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	return c, nil
}

func (c *rawConn) setUp() error {
	a, err := c.call(requestTimeout, "ServerCheckRequest", map[string]any{})
	if err != nil {
		return err
	}
	var check struct {
		ConnectionID string `json:"connectionId"`
	}
	if err := json.Unmarshal(a.body, &check); err != nil {
		return err
	}
	c.id = check.ConnectionID
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
		"clientVersion": "sextant-persistent-e2e",
		"labels":        map[string]string{"source": "sdk", "module": "naming"},
	}); err != nil {
		return err
	}
	// The setup is asynchronous: requests before it are answered 301.
	deadline := time.Now().Add(requestTimeout)
	for {
		a, err := c.call(requestTimeout, "HealthCheckRequest", map[string]any{})
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

// read answers what the server sends on the stream (pushes, probes) as the
// SDK does, until the stream ends.
func (c *rawConn) read() {
	defer close(c.ended)
	for {
		p, err := c.stream.Recv()
		if err != nil {
			return
		}
		typ := p.GetMetadata().GetType()
		var id struct {
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(p.GetBody().GetValue(), &id)
		if len(typ) > len("Request") {
			_ = c.send(typ[:len(typ)-len("Request")]+"Response", map[string]any{"requestId": id.RequestID, "resultCode": 200, "success": true})
		}
	}
}

func (c *rawConn) send(typ string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(&nacosgrpc.Payload{Metadata: &nacosgrpc.Metadata{Type: typ}, Body: &anypb.Any{Value: b}})
}

// close closes the connection (again: nothing).
func (c *rawConn) close() {
	c.closed.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		_ = c.cc.Close()
		if c.stream != nil {
			<-c.ended
		}
	})
}

// answer is a response: its type, common fields and body.
type answer struct {
	typ        string
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Message    string `json:"message"`
	body       []byte
}

func (a answer) String() string { return a.typ + " " + string(a.body) }

// call sends a unary request and returns the server's answer, whatever its
// codes; the error is for requests not answered at all.
func (c *rawConn) call(timeout time.Duration, typ string, body map[string]any) (answer, error) {
	body["requestId"] = "persistent-e2e-" + strconv.FormatInt(c.ids.Add(1), 10)
	raw, err := json.Marshal(body)
	if err != nil {
		return answer{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := c.rpc.Request(ctx, &nacosgrpc.Payload{Metadata: &nacosgrpc.Metadata{Type: typ}, Body: &anypb.Any{Value: raw}})
	if err != nil {
		return answer{}, fmt.Errorf("%s to %s: %w", typ, c.addr, err)
	}
	a := answer{typ: p.GetMetadata().GetType(), body: p.GetBody().GetValue()}
	if err := json.Unmarshal(a.body, &a); err != nil {
		return a, fmt.Errorf("%s to %s: %w: %s", typ, c.addr, err, a.body)
	}
	return a, nil
}

// instanceBody is a healthy, enabled instance of weight 1.
func instanceBody(ip string, port int, ephemeral bool, metadata map[string]string) map[string]any {
	return map[string]any{"ip": ip, "port": port, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": ephemeral,
		"clusterName": "DEFAULT", "metadata": metadata}
}

func namingBody(svc string, extra map[string]any) map[string]any {
	extra["namespace"], extra["groupName"], extra["serviceName"] = "public", "DEFAULT_GROUP", svc
	return extra
}

// registerPersistent sends a PersistentInstanceRequest registering ip:port
// in svc, and returns the answer.
func (c *rawConn) registerPersistent(timeout time.Duration, svc, ip string, port int, metadata map[string]string) (answer, error) {
	return c.call(timeout, "PersistentInstanceRequest", namingBody(svc, map[string]any{"type": "registerInstance", "instance": instanceBody(ip, port, false, metadata)}))
}

// deregisterPersistent sends a PersistentInstanceRequest deregistering
// ip:port from svc.
func (c *rawConn) deregisterPersistent(svc, ip string, port int) (answer, error) {
	return c.call(requestTimeout, "PersistentInstanceRequest", namingBody(svc, map[string]any{"type": "deregisterInstance", "instance": instanceBody(ip, port, false, nil)}))
}

// registerEphemeral makes ip:port this connection's instance of svc.
func (c *rawConn) registerEphemeral(svc, ip string, port int) (answer, error) {
	return c.call(requestTimeout, "InstanceRequest", namingBody(svc, map[string]any{"type": "registerInstance", "instance": instanceBody(ip, port, true, nil)}))
}

// query returns the addresses (ip:port) a node answers a
// ServiceQueryRequest for svc with, and whether each is ephemeral.
func (c *rawConn) query(svc string) (map[string]bool, error) {
	a, err := c.call(requestTimeout, "ServiceQueryRequest", namingBody(svc, map[string]any{"cluster": "", "healthyOnly": false}))
	if err != nil {
		return nil, err
	}
	if a.ResultCode != 200 {
		return nil, fmt.Errorf("ServiceQueryRequest: %s", a)
	}
	var b struct {
		ServiceInfo struct {
			Hosts []struct {
				IP        string `json:"ip"`
				Port      int    `json:"port"`
				Ephemeral bool   `json:"ephemeral"`
			} `json:"hosts"`
		} `json:"serviceInfo"`
	}
	if err := json.Unmarshal(a.body, &b); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, h := range b.ServiceInfo.Hosts {
		out[h.IP+":"+strconv.Itoa(h.Port)] = h.Ephemeral
	}
	return out, nil
}
