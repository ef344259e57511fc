package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWithRequestID(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1}`:            `{"requestId":"7","a":1}`,
		`{}`:                 `{"requestId":"7"}`,
		" { } ":              `{"requestId":"7"}`,
		`{ "module":"x" }`:   `{"requestId":"7","module":"x"}`,
		`{"n":{"deep":[1]}}`: `{"requestId":"7","n":{"deep":[1]}}`,
	} {
		got, err := withRequestID([]byte(body), "7")
		if err != nil || string(got) != want || !json.Valid(got) {
			t.Errorf("withRequestID(%s) = %s, %v; want %s", body, got, err, want)
		}
	}
	for _, bad := range []string{"", "[]", `"x"`, "{"} {
		if _, err := withRequestID([]byte(bad), "7"); err == nil {
			t.Errorf("withRequestID(%q) accepted a body that is not an object", bad)
		}
	}
}

// newTestServer returns a server that is not listening; requests are served
// by calling serveRequest directly.
func newTestServer(t *testing.T) *Server {
	t.Helper()
	registry := naming.NewRegistry(naming.Config{
		Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10,
			MaxServicesPerClient: 10, MaxSubscriptionsPerClient: 10, MaxClustersPerFilter: 8},
		Bus: notify.New(notify.Config{}),
	})
	s := New(Config{MaxMessageSize: 1 << 20, Registry: registry, Logger: hclog.NewNullLogger(), Metrics: prometheus.NewRegistry()})
	s.SetReady(true)
	return s
}

// addConn registers a set-up connection without a network; what the server
// writes to it arrives on the returned channel.
func addConn(t *testing.T, s *Server, id string) (*conn, chan *nacos.Payload) {
	t.Helper()
	written := make(chan *nacos.Payload, outboundQueue)
	c := newConn(id, "", time.Now(), func(m serveropts.Message) error {
		written <- decoded(m)
		return nil
	}, func(error) {})
	if err := s.register(c, []byte(`{"clientVersion":"test"}`)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, written
}

// decoded is the Payload m carries, as a client reads it.
func decoded(m serveropts.Message) *nacos.Payload {
	p := new(nacos.Payload)
	if err := serveropts.DecodePayload(m.Payload(), p); err != nil {
		panic(err)
	}
	return p
}

// send queues p on c, as sendKeyed does, without a coalescing key.
func (c *conn) send(typ, requestID string, p *nacos.Payload, now time.Time) (*pendingRequest, error) {
	m, err := serveropts.EncodeMessage(p)
	if err != nil {
		return nil, err
	}
	return c.sendKeyed(typ, "", requestID, m, now)
}

// payloadOf is the Payload an answer stands for, as a client reads it.
func payloadOf(a *serveropts.Answer) *nacos.Payload {
	return &nacos.Payload{Metadata: &nacos.Metadata{Type: a.Type}, Body: &anypb.Any{Value: bytes.Join(a.Body, nil)}}
}

// withConnectionID returns ctx as a call on the connection id has it.
func withConnectionID(ctx context.Context, id string) context.Context {
	return peer.NewContext(ctx, &peer.Peer{Addr: &connAddr{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, id: id}})
}

// call serves one unary request as the connection id would send it and
// returns the response type and decoded body.
func serve(s *Server, connID, typ, body string) (string, map[string]any) {
	ctx := withConnectionID(context.Background(), connID)
	p := payloadOf(s.serveRequest(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(body)}}))
	var decoded map[string]any
	_ = json.Unmarshal(p.GetBody().GetValue(), &decoded)
	return p.GetMetadata().GetType(), decoded
}

func TestDispatch(t *testing.T) {
	s := newTestServer(t)
	addConn(t, s, "c1")
	s.handlers["PanicRequest"] = handle[healthCheckRequest]("PanicResponse", func(context.Context, *call, *healthCheckRequest) (response, error) {
		panic("boom")
	})
	const instance = `{"requestId":"9","serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"weight":1,"enabled":true,"ephemeral":true}}`

	tests := []struct {
		name, conn, typ, body string
		wantType              string
		wantCode              float64 // errorCode of an ErrorResponse
		wantMessage           string
	}{
		{"server check", "c9", "ServerCheckRequest", `{}`, "ServerCheckResponse", 0, ""},
		{"health check", "c1", "HealthCheckRequest", `{"requestId":"1"}`, "HealthCheckResponse", 0, ""},
		{"register", "c1", "InstanceRequest", instance, "InstanceResponse", 0, ""},
		{"not set up", "c9", "InstanceRequest", instance, "ErrorResponse", 301, "not registered"},
		{"unknown type", "c1", "ConfigQueryRequest", `{}`, "ErrorResponse", 302, "ConfigQueryRequest"},
		{"not JSON", "c1", "InstanceRequest", `{"requestId":`, "ErrorResponse", 502, "could not be parsed"},
		{"wrong JSON type", "c1", "InstanceRequest", `{"requestId":"3","instance":{"port":"80"}}`, "ErrorResponse", 400, "instance.port"},
		{"invalid field", "c1", "InstanceRequest", strings.Replace(instance, `"serviceName":"s"`, `"serviceName":"a@@b"`, 1), "ErrorResponse", 400, "serviceName"},
		{"panic", "c1", "PanicRequest", `{"requestId":"5"}`, "ErrorResponse", 500, "internal error"},
		{"after a panic", "c1", "HealthCheckRequest", `{"requestId":"6"}`, "HealthCheckResponse", 0, ""},
	}
	for _, tc := range tests {
		typ, body := serve(s, tc.conn, tc.typ, tc.body)
		if typ != tc.wantType {
			t.Errorf("%s: response type %s (%v), want %s", tc.name, typ, body, tc.wantType)
			continue
		}
		if tc.wantType != "ErrorResponse" {
			if body["resultCode"] != 200.0 || body["success"] != true {
				t.Errorf("%s: %v", tc.name, body)
			}
			continue
		}
		msg, _ := body["message"].(string)
		if body["resultCode"] != 500.0 || body["errorCode"] != tc.wantCode || !strings.Contains(msg, tc.wantMessage) {
			t.Errorf("%s: %v, want error %v mentioning %q", tc.name, body, tc.wantCode, tc.wantMessage)
		}
	}
	if _, body := serve(s, "c1", "InstanceRequest", instance); body["requestId"] != "9" {
		t.Errorf("requestId not echoed: %v", body)
	}
	if _, body := serve(s, "c9", "ServerCheckRequest", `{}`); body["connectionId"] != "c9" {
		t.Errorf("server check: %v", body)
	}

	s.SetReady(false)
	if typ, body := serve(s, "c9", "ServerCheckRequest", `{}`); typ != "ErrorResponse" || body["errorCode"] != 300.0 {
		t.Errorf("a starting server answered %s %v, want error 300", typ, body)
	}
}

// answer reads the request written to c and answers it with resultCode.
func answer(c *conn, written <-chan *nacos.Payload, resultCode int) error {
	p := <-written
	var req struct{ RequestID string }
	if err := json.Unmarshal(p.GetBody().GetValue(), &req); err != nil || req.RequestID == "" {
		return fmt.Errorf("queued request %s: %v", p.GetBody().GetValue(), err)
	}
	b, _ := json.Marshal(clientAnswer{RequestID: req.RequestID, ResultCode: resultCode})
	_, err := c.answer(b)
	return err
}

func TestRequestMatchesAnswers(t *testing.T) {
	s := newTestServer(t)
	ok, okWritten := addConn(t, s, "ok")
	refuses, refusesWritten := addConn(t, s, "refuses")
	silent, _ := addConn(t, s, "silent")
	for _, a := range []struct {
		c       *conn
		written chan *nacos.Payload
		code    int
	}{{ok, okWritten, 200}, {refuses, refusesWritten, 500}} {
		go func() {
			if err := answer(a.c, a.written, a.code); err != nil {
				t.Error(err)
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errs := s.Request(ctx, "NotifySubscriberRequest", []byte(`{"module":"naming"}`), []string{"ok", "refuses", "silent", "gone"})
	if errs[0] != nil {
		t.Errorf("answered 200: %v", errs[0])
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "result 500") {
		t.Errorf("answered 500: %v", errs[1])
	}
	if !errors.Is(errs[2], context.DeadlineExceeded) {
		t.Errorf("no answer: %v", errs[2])
	}
	if !errors.Is(errs[3], errConnectionClosed) {
		t.Errorf("unknown connection: %v", errs[3])
	}
	silent.mu.Lock()
	defer silent.mu.Unlock()
	if len(silent.pending) != 0 {
		t.Errorf("an abandoned request stays pending: %v", silent.pending)
	}
}

func TestRequestFailsFastOnAFullQueue(t *testing.T) {
	s := newTestServer(t)
	release := make(chan struct{})
	writing := make(chan struct{}, 1)
	// A client that stopped reading: the write blocks until the test ends.
	c := newConn("slow", "", time.Now(), func(serveropts.Message) error {
		select {
		case writing <- struct{}{}:
		default:
		}
		<-release
		return errors.New("closed")
	}, func(error) {})
	if err := s.register(c, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(release)
		c.close()
	}()
	// The first request is being written (and stays so); the queue behind
	// it then takes exactly outboundQueue more.
	if _, err := c.send("NotifySubscriberRequest", "first", &nacos.Payload{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	<-writing
	sent := 0
	for ; sent <= outboundQueue; sent++ {
		if _, err := c.send("NotifySubscriberRequest", strconv.Itoa(sent), &nacos.Payload{}, time.Now()); err != nil {
			if !errors.Is(err, errSendQueueFull) {
				t.Fatalf("send %d: %v", sent, err)
			}
			break
		}
	}
	if sent != outboundQueue {
		t.Fatalf("the queue took %d requests before refusing, want %d", sent, outboundQueue)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := s.Request(ctx, "NotifySubscriberRequest", []byte(`{}`), []string{"slow"})
	if !errors.Is(errs[0], errSendQueueFull) {
		t.Fatalf("got %v, want %v", errs[0], errSendQueueFull)
	}
}

func TestWritesKeepTheirOrder(t *testing.T) {
	s := newTestServer(t)
	c, written := addConn(t, s, "ordered")
	for i := range 100 {
		if _, err := c.send("R", strconv.Itoa(i), &nacos.Payload{Metadata: &nacos.Metadata{Type: strconv.Itoa(i)}}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if p := <-written; p.GetMetadata().GetType() != strconv.Itoa(i) {
			t.Fatalf("write %d was request %s", i, p.GetMetadata().GetType())
		}
	}
}

func TestClosingFailsPendingRequests(t *testing.T) {
	s := newTestServer(t)
	c, written := addConn(t, s, "closing")
	go func() {
		<-written
		c.close()
	}()
	errs := s.Request(context.Background(), "NotifySubscriberRequest", []byte(`{}`), []string{"closing"})
	if !errors.Is(errs[0], errConnectionClosed) {
		t.Fatalf("got %v, want %v", errs[0], errConnectionClosed)
	}
}

// TestNamingHandlersRefuseBadInput checks that what the registry refuses
// reaches the client as an ErrorResponse naming the field, and that a page
// past the end is an empty page, whatever its number.
func TestNamingHandlersRefuseBadInput(t *testing.T) {
	s := newTestServer(t)
	addConn(t, s, "c1")
	register := func(edit string) string {
		return `{"requestId":"1","serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"weight":1,"enabled":true,"ephemeral":true` + edit + `}}`
	}
	tests := []struct {
		name, typ, body string
		wantType        string
		wantCode        float64 // errorCode of an ErrorResponse
		wantMessage     string
	}{
		{"register", "InstanceRequest", register(""), "InstanceResponse", 0, ""},
		{"page past the end", "ServiceListRequest", `{"requestId":"2","pageNo":9223372036854775807,"pageSize":10000}`, "ServiceListResponse", 0, ""},
		{"page 2 of 1", "ServiceListRequest", `{"requestId":"2","pageNo":2,"pageSize":1}`, "ServiceListResponse", 0, ""},
		{"pageNo 0", "ServiceListRequest", `{"requestId":"2","pageNo":0,"pageSize":10}`, "ErrorResponse", 400, "pageNo"},
		{"pageNo negative", "ServiceListRequest", `{"requestId":"2","pageNo":-9223372036854775808,"pageSize":10}`, "ErrorResponse", 400, "pageNo"},
		{"pageSize too big", "ServiceListRequest", `{"requestId":"2","pageNo":1,"pageSize":10001}`, "ErrorResponse", 400, "pageSize"},
		{"pageNo beyond int64", "ServiceListRequest", `{"requestId":"2","pageNo":1e30,"pageSize":10}`, "ErrorResponse", 400, "pageNo"},
		{"instanceId with NUL", "InstanceRequest", register(`,"instanceId":"a\u0000b"`), "ErrorResponse", 400, "instance.instanceId"},
		{"metadata with ESC", "InstanceRequest", register(`,"metadata":{"k":"\u001b[2J"}`), "ErrorResponse", 400, "instance.metadata"},
		{"too many clusters", "SubscribeServiceRequest",
			`{"requestId":"3","serviceName":"s","subscribe":true,"clusters":"` + strings.Repeat("a,", 100) + `a"}`, "ErrorResponse", 400, "clusters"},
		{"huge cluster filter", "ServiceQueryRequest",
			`{"requestId":"4","serviceName":"s","cluster":"` + strings.Repeat("a", 1<<20) + `"}`, "ErrorResponse", 400, "cluster"},
	}
	for _, tc := range tests {
		typ, body := serve(s, "c1", tc.typ, tc.body)
		if typ != tc.wantType {
			t.Errorf("%s: response type %s (%v), want %s", tc.name, typ, body, tc.wantType)
			continue
		}
		if tc.wantType != "ErrorResponse" {
			if body["resultCode"] != 200.0 || body["success"] != true {
				t.Errorf("%s: %v", tc.name, body)
			}
			if tc.typ == "ServiceListRequest" {
				if names, ok := body["serviceNames"].([]any); !ok || len(names) != 0 || body["count"] != 1.0 {
					t.Errorf("%s: %v, want count 1 and an empty page", tc.name, body)
				}
			}
			continue
		}
		msg, _ := body["message"].(string)
		if body["resultCode"] != 500.0 || body["errorCode"] != tc.wantCode || !strings.HasPrefix(msg, tc.wantMessage+": ") {
			t.Errorf("%s: %v, want error %v naming %q", tc.name, body, tc.wantCode, tc.wantMessage)
		}
	}
}
