package wire_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/fakenacos"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// waitTimeout bounds every wait for something a test expects to happen.
const waitTimeout = 5 * time.Second

func dial(t *testing.T, addr string, opts wire.Options) *wire.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := wire.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestDialWaitsForAStartingServerAndSetsUp(t *testing.T) {
	srv := fakenacos.Start(t, fakenacos.Options{Starting: 2})
	c := dial(t, srv.Addr, wire.Options{ClientVersion: "test"})
	if c.ID() == "" {
		t.Error("no connection id")
	}
	if srv.Connections() != 1 {
		t.Errorf("server has %d set-up connections, want 1", srv.Connections())
	}
	// Dial returns only once a request is accepted: this one must succeed.
	if err := c.Call(context.Background(), wire.Query(wire.Service{Name: "a"}), &wire.ServiceInfoResponse{}); err != nil {
		t.Fatalf("query after Dial: %v", err)
	}
}

func TestCallClassifiesAnswers(t *testing.T) {
	srv := fakenacos.Start(t, fakenacos.Options{Respond: func(typ string, body []byte) (string, []byte, bool) {
		var req struct {
			ServiceName string `json:"serviceName"`
		}
		_ = json.Unmarshal(body, &req)
		switch req.ServiceName {
		case "refused":
			return "ErrorResponse", []byte(`{"resultCode":500,"errorCode":503,"message":"too fast"}`), true
		case "wrong-class":
			return "InstanceResponse", []byte(`{"resultCode":200}`), true
		case "failed":
			return "QueryServiceResponse", []byte(`{"resultCode":500,"errorCode":0}`), true
		case "garbage":
			return "QueryServiceResponse", []byte(`{"resultCode":`), true
		}
		return "", nil, false
	}})
	c := dial(t, srv.Addr, wire.Options{})
	for _, tc := range []struct {
		service  string
		decode   bool
		wantKind string
	}{
		{"fine", true, ""},
		{"refused", true, "refused (error 503)"},
		{"refused", false, "refused (error 503)"},
		{"wrong-class", false, "bad response"},
		{"failed", true, "failed (result 500)"},
		{"failed", false, ""}, // only the class is checked without decoding
		{"garbage", true, "bad response"},
	} {
		var out *wire.ServiceInfoResponse
		if tc.decode {
			out = &wire.ServiceInfoResponse{}
		}
		var err error
		if out != nil {
			err = c.Call(context.Background(), wire.Query(wire.Service{Name: tc.service}), out)
		} else {
			err = c.Call(context.Background(), wire.Query(wire.Service{Name: tc.service}), nil)
		}
		if got := wire.Kind(err); got != tc.wantKind {
			t.Errorf("%s (decode %v): kind %q (%v), want %q", tc.service, tc.decode, got, err, tc.wantKind)
		}
	}
}

func TestServerRequestsAreAnsweredAndHandedOn(t *testing.T) {
	srv := fakenacos.Start(t, fakenacos.Options{})
	got := make(chan wire.ServerRequest, 4)
	dial(t, srv.Addr, wire.Options{OnServerRequest: func(r wire.ServerRequest) { got <- r }})

	before := time.Now()
	if err := srv.Send(wire.NotifySubscriberType, map[string]any{"serviceName": "s", "serviceInfo": map[string]any{"name": "s", "lastRefTime": 7}}, 41); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Type != wire.NotifySubscriberType || r.Received.Before(before) {
			t.Errorf("handed on %s received at %v, want a push received after %v", r.Type, r.Received, before)
		}
		n, err := wire.DecodeNotify(r.Body)
		if err != nil || n.ServiceInfo.LastRefTime != 7 {
			t.Errorf("DecodeNotify = %+v, %v", n, err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the push was not handed on")
	}
	expectAnswer(t, srv, "NotifySubscriberResponse", "41")

	if err := srv.Send("ClientDetectionRequest", map[string]any{"module": "internal"}, 42); err != nil {
		t.Fatal(err)
	}
	expectAnswer(t, srv, "ClientDetectionResponse", "42")
}

func expectAnswer(t *testing.T, srv *fakenacos.Server, typ, id string) {
	t.Helper()
	select {
	case a := <-srv.Answers:
		var r wire.Response
		if err := json.Unmarshal(a.Body, &r); err != nil {
			t.Fatal(err)
		}
		if a.Type != typ || r.RequestID != id || r.ResultCode != 200 {
			t.Errorf("answer %s %+v, want %s with requestId %s and resultCode 200", a.Type, r, typ, id)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no %s", typ)
	}
}

func TestADroppedConnectionFailsFastAfterwards(t *testing.T) {
	srv := fakenacos.Start(t, fakenacos.Options{})
	c := dial(t, srv.Addr, wire.Options{})
	srv.Drop()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the connection did not notice its stream ended")
	}
	if !errors.Is(c.Err(), wire.ErrConnectionLost) {
		t.Errorf("Err() = %v, want ErrConnectionLost", c.Err())
	}
	err := c.Call(context.Background(), wire.NewHealthCheck(), nil)
	if wire.Kind(err) != "connection dropped" {
		t.Errorf("call on a dropped connection: kind %q (%v)", wire.Kind(err), err)
	}
}

func TestDialFailures(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	// A listener that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct {
		addr, kind string
	}{{closed, "unreachable"}, {silent.Addr().String(), "timeout"}} {
		const bound = 300 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		start := time.Now()
		c, err := wire.Dial(ctx, tc.addr, wire.Options{})
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("%s: Dial succeeded", tc.kind)
			continue
		}
		if got := wire.Kind(err); got != tc.kind {
			t.Errorf("Dial to a %s server: kind %q (%v)", tc.kind, got, err)
		}
		if took := time.Since(start); took > bound+time.Second {
			t.Errorf("Dial to a %s server took %s, beyond its bound %s", tc.kind, took, bound)
		}
	}
}

func TestIdleConnectionsSendHealthChecks(t *testing.T) {
	srv := fakenacos.Start(t, fakenacos.Options{})
	checks := make(chan error, 16)
	dial(t, srv.Addr, wire.Options{HealthInterval: 10 * time.Millisecond, Timeout: time.Second,
		OnHealthCheck: func(_ time.Duration, err error) {
			select {
			case checks <- err:
			default:
			}
		}})
	for range 3 {
		select {
		case err := <-checks:
			if err != nil {
				t.Fatalf("health check failed: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no health check")
		}
	}
	// Dial's own readiness check is one more.
	if n := srv.HealthChecks(); n < 4 {
		t.Errorf("server saw %d health checks, want at least 4", n)
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{context.DeadlineExceeded, "timeout"},
		{status.Error(codes.DeadlineExceeded, "late"), "timeout"},
		{fmt.Errorf("x: %w", wire.ErrUnreachable), "unreachable"},
		{status.Error(codes.Unavailable, "gone"), "connection dropped"},
		{fmt.Errorf("x: %w", wire.ErrConnectionLost), "connection dropped"},
		{context.Canceled, "cancelled"},
		{&wire.ResponseError{ErrorCode: 301}, "refused (error 301)"},
		{&wire.ResponseError{ResultCode: 500}, "failed (result 500)"},
		{&wire.ProtocolError{Reason: "x"}, "bad response"},
		{errors.New("?"), "other"},
	} {
		if got := wire.Kind(tc.err); got != tc.want {
			t.Errorf("Kind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
