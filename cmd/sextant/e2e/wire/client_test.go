package wire_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/proto/nacos"
)

// Request and response class names used on the wire.
const (
	typeNotify    = "NotifySubscriberRequest"
	typeDetection = "ClientDetectionRequest"
	typeError     = "ErrorResponse"
)

// rawConn is one client connection to the server, driven by hand: unary calls
// on the Request service and, once opened, the bi-directional stream.
type rawConn struct {
	cc    *grpc.ClientConn
	rpc   nacos.RequestClient
	local atomic.Value // string: the client side's ip:port of the TCP connection
	id    string       // the connection id ServerCheckRequest answered
	ids   atomic.Int64 // request ids this client assigns

	stream       nacos.BiRequestStream_RequestBiStreamClient
	cancelStream context.CancelFunc
	sendMu       sync.Mutex    // serialises stream.Send
	streamEnded  chan struct{} // closed when the stream's Recv fails

	mu       sync.Mutex
	answers  map[string]bool // server request types answered 200 on arrival
	received []*serverRequest
	arrived  chan struct{} // closed and replaced on every arrival
}

// serverRequest is a request the server sent on the stream.
type serverRequest struct {
	Type string
	ID   string // its requestId
	Body []byte
	At   time.Time // when the client received it
	// taken is set once a test has consumed it with next.
	taken bool
}

// reply is the server's answer to a unary request.
type reply struct {
	Type string // metadata type
	Body []byte
	// SentID is the requestId the request carried ("" if none).
	SentID string
	base
}

// base holds the fields every Nacos response carries.
type base struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Success    bool   `json:"success"`
	Message    string `json:"message"`
	RequestID  string `json:"requestId"`
}

func (r reply) String() string { return r.Type + " " + string(r.Body) }

// dial opens a client connection and sends ServerCheckRequest on it; the
// stream is not opened. The connection is closed when the test ends.
func dial(t *testing.T, srv *servertest.Server) *rawConn {
	t.Helper()
	c := &rawConn{answers: map[string]bool{}, arrived: make(chan struct{}), streamEnded: make(chan struct{})}
	cc, err := grpc.NewClient("passthrough:///"+srv.GRPCAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.local.Store(conn.LocalAddr().String())
			}
			return conn, err
		}))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	c.cc, c.rpc = cc, nacos.NewRequestClient(cc)
	t.Cleanup(c.close)
	r := c.call(t, "ServerCheckRequest", map[string]any{}, nil)
	if r.Type != "ServerCheckResponse" || r.ResultCode != 200 {
		t.Fatalf("ServerCheckRequest answered %s", r)
	}
	var sc struct {
		ConnectionID string `json:"connectionId"`
	}
	if err := json.Unmarshal(r.Body, &sc); err != nil || sc.ConnectionID == "" {
		t.Fatalf("ServerCheckResponse without a connectionId (%v): %s", err, r)
	}
	c.id = sc.ConnectionID
	return c
}

// setUp dials, opens the stream and sends ConnectionSetupRequest, then waits
// until the server serves requests on the connection. Server requests of the
// types in autoAnswer are answered with resultCode 200 as they arrive.
func setUp(t *testing.T, srv *servertest.Server, autoAnswer ...string) *rawConn {
	t.Helper()
	c := dial(t, srv)
	c.autoAnswer(autoAnswer...)
	c.openStream(t, true)
	return c
}

// autoAnswer makes the client answer server requests of the given types with
// resultCode 200 as soon as they arrive.
func (c *rawConn) autoAnswer(types ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, typ := range types {
		c.answers[typ] = true
	}
}

// openStream opens the bi-directional stream and, when setup is true, sends
// ConnectionSetupRequest and waits until requests stop answering 301.
func (c *rawConn) openStream(t *testing.T, setup bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := nacos.NewBiRequestStreamClient(c.cc).RequestBiStream(ctx)
	if err != nil {
		cancel()
		t.Fatalf("opening the stream: %v", err)
	}
	c.stream, c.cancelStream = stream, cancel
	go c.readStream()
	if !setup {
		return
	}
	c.send(t, "ConnectionSetupRequest", map[string]any{
		"clientVersion": "test",
		"labels":        map[string]string{"source": "sdk", "module": "naming"},
	})
	servertest.Eventually(t, awaitTimeout, "the connection is set up", func() (bool, string) {
		r := c.call(t, "HealthCheckRequest", map[string]any{}, nil)
		return r.ErrorCode != 301, r.String()
	})
}

// readStream records what the server sends until the stream ends.
func (c *rawConn) readStream() {
	defer close(c.streamEnded)
	for {
		p, err := c.stream.Recv()
		if err != nil {
			return
		}
		r := &serverRequest{Type: p.GetMetadata().GetType(), Body: p.GetBody().GetValue(), At: time.Now()}
		var id struct {
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(r.Body, &id)
		r.ID = id.RequestID
		c.mu.Lock()
		c.received = append(c.received, r)
		close(c.arrived)
		c.arrived = make(chan struct{})
		auto := c.answers[r.Type]
		c.mu.Unlock()
		if auto {
			_ = c.answer(r, 200)
		}
	}
}

// send sends a payload on the stream.
func (c *rawConn) send(t *testing.T, typ string, body any) {
	t.Helper()
	if err := c.sendPayload(typ, body); err != nil {
		t.Fatalf("sending %s on the stream: %v", typ, err)
	}
}

func (c *rawConn) sendPayload(typ string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(&nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: b}})
}

// answer answers a server request on the stream with the given result code,
// as the Nacos clients do: XxxRequest is answered by XxxResponse.
func (c *rawConn) answer(r *serverRequest, resultCode int) error {
	return c.sendPayload(strings.TrimSuffix(r.Type, "Request")+"Response", map[string]any{
		"requestId":  r.ID,
		"resultCode": resultCode,
		"success":    resultCode == 200,
	})
}

// next returns the first server request of type typ the test has not taken
// yet, waiting for it up to d; ok is false if none arrived in time.
func (c *rawConn) next(typ string, d time.Duration) (r *serverRequest, ok bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for _, r := range c.received {
			if r.Type == typ && !r.taken {
				r.taken = true
				c.mu.Unlock()
				return r, true
			}
		}
		arrived := c.arrived
		c.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			return nil, false
		}
	}
}

// mustNext is next that fails the test when nothing arrives in awaitTimeout.
func (c *rawConn) mustNext(t *testing.T, typ string) *serverRequest {
	t.Helper()
	r, ok := c.next(typ, awaitTimeout)
	if !ok {
		t.Fatalf("connection %s: no %s within %s", c.id, typ, awaitTimeout)
	}
	return r
}

// history returns every server request received so far, in arrival order.
func (c *rawConn) history() []*serverRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*serverRequest(nil), c.received...)
}

// count returns how many server requests of type typ have arrived.
func (c *rawConn) count(typ string) int {
	n := 0
	for _, r := range c.history() {
		if r.Type == typ {
			n++
		}
	}
	return n
}

// streamClosed reports whether the stream has ended.
func (c *rawConn) streamClosed() bool {
	select {
	case <-c.streamEnded:
		return true
	default:
		return false
	}
}

// close ends the stream and closes the connection.
func (c *rawConn) close() {
	if c.cancelStream != nil {
		c.cancelStream()
	}
	_ = c.cc.Close()
	if c.stream != nil {
		<-c.streamEnded
	}
}

// call sends a unary request. A map body gets a fresh requestId unless it has
// one; a []byte body is sent as it is.
func (c *rawConn) call(t *testing.T, typ string, body any, headers map[string]string) reply {
	t.Helper()
	r, err := c.request(typ, body, headers)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// request is call for goroutines other than the test's.
func (c *rawConn) request(typ string, body any, headers map[string]string) (reply, error) {
	var raw []byte
	var sentID string
	switch b := body.(type) {
	case []byte:
		raw = b
	case map[string]any:
		b = maps.Clone(b)
		if _, ok := b["requestId"]; !ok {
			b["requestId"] = "wire-" + strconv.FormatInt(c.ids.Add(1), 10)
		}
		sentID, _ = b["requestId"].(string)
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return reply{}, fmt.Errorf("encoding %s: %w", typ, err)
		}
	default:
		return reply{}, fmt.Errorf("call: body must be []byte or map[string]any, not %T", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	p, err := c.rpc.Request(ctx, &nacos.Payload{
		Metadata: &nacos.Metadata{Type: typ, Headers: headers},
		Body:     &anypb.Any{Value: raw},
	})
	if err != nil {
		return reply{}, fmt.Errorf("%s: gRPC error: %w", typ, err)
	}
	r := reply{Type: p.GetMetadata().GetType(), Body: p.GetBody().GetValue(), SentID: sentID}
	if err := json.Unmarshal(r.Body, &r.base); err != nil {
		return r, fmt.Errorf("%s: reply body is not a response: %w: %s", typ, err, r)
	}
	return r, nil
}

// mustCall is call that fails the test unless the reply is a successful
// wantType echoing the request's id.
func (c *rawConn) mustCall(t *testing.T, typ string, body map[string]any, wantType string) reply {
	t.Helper()
	r := c.call(t, typ, body, nil)
	if r.Type != wantType || r.ResultCode != 200 || !r.Success || r.RequestID != r.SentID {
		t.Fatalf("%s: want a successful %s echoing requestId %q, got %s", typ, wantType, r.SentID, r)
	}
	return r
}

// svcRef names a service.
type svcRef struct{ namespace, group, name string }

func (s svcRef) fields() map[string]any {
	return map[string]any{"namespace": s.namespace, "groupName": s.group, "serviceName": s.name}
}

// with returns the service's request fields plus extra.
func (s svcRef) with(extra map[string]any) map[string]any {
	m := s.fields()
	maps.Copy(m, extra)
	return m
}

// instance returns a healthy, enabled, ephemeral instance as clients send it.
func instance(ip string, port int) map[string]any {
	return map[string]any{
		"ip": ip, "port": port, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true,
		"clusterName": "DEFAULT", "metadata": map[string]string{},
	}
}

func (c *rawConn) register(t *testing.T, svc svcRef, inst map[string]any) {
	t.Helper()
	c.mustCall(t, "InstanceRequest", svc.with(map[string]any{"type": "registerInstance", "instance": inst}), "InstanceResponse")
}

func (c *rawConn) deregister(t *testing.T, svc svcRef, inst map[string]any) {
	t.Helper()
	c.mustCall(t, "InstanceRequest", svc.with(map[string]any{"type": "deregisterInstance", "instance": inst}), "InstanceResponse")
}

// subscribe subscribes to every cluster of svc and returns the ServiceInfo
// the server answered.
func (c *rawConn) subscribe(t *testing.T, svc svcRef) serviceInfo {
	t.Helper()
	r := c.mustCall(t, "SubscribeServiceRequest", svc.with(map[string]any{"subscribe": true, "clusters": ""}), "SubscribeServiceResponse")
	return infoOf(t, r.Body)
}

// query returns what ServiceQueryRequest answers for every cluster of svc.
func (c *rawConn) query(t *testing.T, svc svcRef) serviceInfo {
	t.Helper()
	r := c.mustCall(t, "ServiceQueryRequest", svc.with(map[string]any{"cluster": "", "healthyOnly": false}), "QueryServiceResponse")
	return infoOf(t, r.Body)
}

// serviceInfo is Nacos's ServiceInfo as the server sends it.
type serviceInfo struct {
	Name        string          `json:"name"`
	GroupName   string          `json:"groupName"`
	Clusters    string          `json:"clusters"`
	CacheMillis int64           `json:"cacheMillis"`
	RawHosts    json.RawMessage `json:"hosts"`
	Hosts       []host          `json:"-"`
	LastRefTime int64           `json:"lastRefTime"`
	Valid       bool            `json:"valid"`
	raw         []byte
}

type host struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	ServiceName string            `json:"serviceName"`
	Metadata    map[string]string `json:"metadata"`
}

func (h host) addr() string { return h.IP + ":" + strconv.Itoa(h.Port) }

// addrs lists the hosts' ip:port.
func (s serviceInfo) addrs() []string {
	out := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		out[i] = h.addr()
	}
	return out
}

// infoOf decodes the serviceInfo field of a response or push body.
func infoOf(t *testing.T, body []byte) serviceInfo {
	t.Helper()
	var wrapper struct {
		ServiceInfo json.RawMessage `json:"serviceInfo"`
	}
	if err := json.Unmarshal(body, &wrapper); err != nil || len(wrapper.ServiceInfo) == 0 {
		t.Fatalf("no serviceInfo (%v) in %s", err, body)
	}
	var info serviceInfo
	if err := json.Unmarshal(wrapper.ServiceInfo, &info); err != nil {
		t.Fatalf("decoding serviceInfo: %v: %s", err, wrapper.ServiceInfo)
	}
	if string(info.RawHosts) == "null" || len(info.RawHosts) == 0 {
		t.Fatalf("serviceInfo has no hosts list (empty lists must be sent as []): %s", wrapper.ServiceInfo)
	}
	if err := json.Unmarshal(info.RawHosts, &info.Hosts); err != nil {
		t.Fatalf("decoding hosts: %v: %s", err, info.RawHosts)
	}
	info.raw = wrapper.ServiceInfo
	return info
}

// requireIncreasingIDs fails unless the requests' ids are numbers that
// strictly increase in arrival order.
func requireIncreasingIDs(t *testing.T, what string, reqs []*serverRequest) {
	t.Helper()
	var prev int64
	var inversions []string
	for i, r := range reqs {
		n, err := strconv.ParseInt(r.ID, 10, 64)
		if err != nil {
			t.Fatalf("%s: request %d (%s) has requestId %q, not a number", what, i, r.Type, r.ID)
		}
		if i > 0 && n <= prev {
			inversions = append(inversions, fmt.Sprintf("#%d %s %d after %d", i, r.Type, n, prev))
		}
		prev = n
	}
	if inversions != nil {
		t.Errorf("%s: of %d server requests, %d have a requestId not above the one before: %s",
			what, len(reqs), len(inversions), strings.Join(inversions, "; "))
	}
}

// describe renders hosts for failure messages.
func describe(hosts []host) string {
	b, _ := json.Marshal(hosts)
	return fmt.Sprintf("%d hosts %s", len(hosts), b)
}
