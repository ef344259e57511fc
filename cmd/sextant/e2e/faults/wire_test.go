package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// The suite speaks the Nacos 2.x client wire by hand: a subscriber that
// records every NotifySubscriberRequest as it arrives, its instance count
// included, is an honest witness of empty pushes (the Go SDK drops them
// unless told not to), and a raw client has none of the SDK's own data races
// on reconnection.

const (
	typeNotify     = "NotifySubscriberRequest"
	defaultGroup   = "DEFAULT_GROUP"
	requestTimeout = 5 * time.Second
)

// conn is one client connection to a node: a Nacos client, and so, to the
// node, one client.
type conn struct {
	addr   string
	id     string // the connection id the node gave it (ServerCheckResponse)
	cc     *grpc.ClientConn
	rpc    nacos.RequestClient
	ids    atomic.Int64
	stream nacos.BiRequestStream_RequestBiStreamClient
	cancel context.CancelFunc
	ended  chan struct{} // closed when the stream ends
	sendMu sync.Mutex
	closed sync.Once
	// onPush is handed the body of every NotifySubscriberRequest before it is
	// acknowledged.
	onPush func(body []byte)

	// endedAt and closedAt are when the stream ended and when close was
	// called (unix nanoseconds; 0: not yet): a stream that ended first was
	// ended by the node.
	endedAt, closedAt atomic.Int64
}

// dial connects to the client gRPC port at addr, opens the stream and sets
// the connection up; onPush (may be nil) sees every push.
func dial(addr string, onPush func([]byte)) (*conn, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &conn{addr: addr, cc: cc, rpc: nacos.NewRequestClient(cc), ended: make(chan struct{}), onPush: onPush}
	if err := c.setUp(); err != nil {
		c.close()
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	return c, nil
}

func (c *conn) setUp() error {
	a, err := c.request(requestTimeout, "ServerCheckRequest", map[string]any{})
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
	stream, err := nacos.NewBiRequestStreamClient(c.cc).RequestBiStream(ctx)
	if err != nil {
		cancel()
		close(c.ended)
		return err
	}
	c.stream, c.cancel = stream, cancel
	go c.read()
	if err := c.send("ConnectionSetupRequest", map[string]any{
		"clientVersion": "sextant-faults",
		"labels":        map[string]string{"source": "sdk", "module": "naming"},
	}); err != nil {
		return err
	}
	deadline := time.Now().Add(requestTimeout)
	for {
		r, err := c.request(requestTimeout, "HealthCheckRequest", map[string]any{})
		if err == nil {
			return nil
		}
		if r.ErrorCode != 301 || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// read answers what the server sends on the stream, pushes after onPush
// has seen them, until the stream ends.
func (c *conn) read() {
	defer close(c.ended)
	defer func() { c.endedAt.Store(time.Now().UnixNano()) }()
	for {
		p, err := c.stream.Recv()
		if err != nil {
			return
		}
		typ, body := p.GetMetadata().GetType(), p.GetBody().GetValue()
		if typ == typeNotify && c.onPush != nil {
			c.onPush(body)
		}
		var id struct {
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(body, &id)
		// Every server request (pushes, probes) is answered as the SDK does.
		_ = c.send(typ[:len(typ)-len("Request")]+"Response", map[string]any{"requestId": id.RequestID, "resultCode": 200, "success": true})
	}
}

func (c *conn) send(typ string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(&nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: b}})
}

// close closes the connection (again: nothing).
func (c *conn) close() {
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

// endedByNode returns when the node ended the stream, if it did (before
// close was called).
func (c *conn) endedByNode() (time.Time, bool) {
	ended, closed := c.endedAt.Load(), c.closedAt.Load()
	if ended == 0 || closed != 0 && closed <= ended {
		return time.Time{}, false
	}
	return time.Unix(0, ended), true
}

// answer is a response's common fields and its body.
type answer struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Message    string `json:"message"`
	body       []byte
}

// request sends a unary request and fails unless it is answered with
// result code 200.
func (c *conn) request(timeout time.Duration, typ string, body map[string]any) (answer, error) {
	body["requestId"] = "faults-" + strconv.FormatInt(c.ids.Add(1), 10)
	raw, err := json.Marshal(body)
	if err != nil {
		return answer{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := c.rpc.Request(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: raw}})
	if err != nil {
		return answer{}, fmt.Errorf("%s to %s: %w", typ, c.addr, err)
	}
	a := answer{body: p.GetBody().GetValue()}
	if err := json.Unmarshal(a.body, &a); err != nil {
		return a, fmt.Errorf("%s to %s: %w", typ, c.addr, err)
	}
	if a.ResultCode != 200 {
		return a, fmt.Errorf("%s to %s: answered %d/%d %s", typ, c.addr, a.ResultCode, a.ErrorCode, a.Message)
	}
	return a, nil
}

// instance is a healthy, enabled, ephemeral instance as clients send it.
func instance(addr endpoint) map[string]any {
	return map[string]any{
		"ip": addr.ip, "port": addr.port, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true,
		"clusterName": "DEFAULT", "metadata": map[string]string{},
	}
}

func naming(svc string, extra map[string]any) map[string]any {
	extra["namespace"], extra["groupName"], extra["serviceName"] = "", defaultGroup, svc
	return extra
}

// register makes addrs this client's instances of svc (one is sent as a
// registration, more as a batch).
func (c *conn) register(svc string, addrs []endpoint) error {
	if len(addrs) == 1 {
		_, err := c.request(requestTimeout, "InstanceRequest", naming(svc, map[string]any{"type": "registerInstance", "instance": instance(addrs[0])}))
		return err
	}
	list := make([]map[string]any, len(addrs))
	for i, a := range addrs {
		list[i] = instance(a)
	}
	_, err := c.request(requestTimeout, "BatchInstanceRequest", naming(svc, map[string]any{"type": "batchRegisterInstance", "instances": list}))
	return err
}

// deregister removes this client's instance addr of svc.
func (c *conn) deregister(svc string, addr endpoint) error {
	_, err := c.request(requestTimeout, "InstanceRequest", naming(svc, map[string]any{"type": "deregisterInstance", "instance": instance(addr)}))
	return err
}

// subscribe subscribes to every cluster of svc.
func (c *conn) subscribe(svc string) error {
	_, err := c.request(requestTimeout, "SubscribeServiceRequest", naming(svc, map[string]any{"subscribe": true, "clusters": ""}))
	return err
}

// query returns the instances the node serves for svc.
func (c *conn) query(timeout time.Duration, svc string) ([]endpoint, error) {
	info, err := c.queryInfo(timeout, svc)
	return info.hosts, err
}

// queryInfo returns what the node serves for svc.
func (c *conn) queryInfo(timeout time.Duration, svc string) (serviceInfo, error) {
	a, err := c.request(timeout, "ServiceQueryRequest", naming(svc, map[string]any{"cluster": "", "healthyOnly": false}))
	if err != nil {
		return serviceInfo{}, err
	}
	return decodeInfo(a.body)
}

// endpoint is an instance's address.
type endpoint struct {
	ip   string
	port int
}

func (e endpoint) String() string { return e.ip + ":" + strconv.Itoa(e.port) }

// pushed is what a push names and carries.
type pushed struct {
	service string
	serviceInfo
}

// serviceInfo is what a push or a query's answer says of a service.
type serviceInfo struct {
	hosts []endpoint
	// ref is its lastRefTime: when the node's data of the service last
	// changed before it was sent (the nodes share the test's clock).
	ref time.Time
}

// decodePush reads a NotifySubscriberRequest's body.
func decodePush(body []byte) (pushed, error) {
	var b struct {
		ServiceName string `json:"serviceName"`
		GroupName   string `json:"groupName"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return pushed{}, err
	}
	if b.GroupName != defaultGroup {
		return pushed{}, fmt.Errorf("a push for group %q", b.GroupName)
	}
	info, err := decodeInfo(body)
	return pushed{service: b.ServiceName, serviceInfo: info}, err
}

// decodeInfo reads the serviceInfo of a push or a query's answer.
func decodeInfo(body []byte) (serviceInfo, error) {
	var b struct {
		ServiceInfo *struct {
			Hosts []struct {
				IP   string `json:"ip"`
				Port int    `json:"port"`
			} `json:"hosts"`
			LastRefTime int64 `json:"lastRefTime"`
		} `json:"serviceInfo"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return serviceInfo{}, err
	}
	if b.ServiceInfo == nil {
		return serviceInfo{}, errors.New("no serviceInfo")
	}
	out := make([]endpoint, len(b.ServiceInfo.Hosts))
	for i, h := range b.ServiceInfo.Hosts {
		out[i] = endpoint{h.IP, h.Port}
	}
	return serviceInfo{hosts: out, ref: time.UnixMilli(b.ServiceInfo.LastRefTime)}, nil
}
