package wire_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/proto/nacos"
)

// closedFor is the series counting connections the server closed for reason.
func closedFor(reason string) string {
	return `sextant_remote_connections_closed_total{reason="` + reason + `"}`
}

// setUpUnread sets up a connection whose stream the client never reads, with
// HTTP/2 flow-control windows of 64 KiB and no growing them: once that much
// has arrived the server's writes to the stream block, as they do to a
// client that stopped reading. Its unary calls still work.
func setUpUnread(t *testing.T, srv *servertest.Server) *rawConn {
	t.Helper()
	c := &rawConn{answers: map[string]bool{}, arrived: make(chan struct{}), streamEnded: make(chan struct{})}
	cc, err := grpc.NewClient("passthrough:///"+srv.GRPCAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	c.cc, c.rpc = cc, nacos.NewRequestClient(cc)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = cc.Close()
	})
	if r := c.call(t, "ServerCheckRequest", map[string]any{}, nil); r.Type != "ServerCheckResponse" {
		t.Fatalf("ServerCheckRequest answered %s", r)
	}
	stream, err := nacos.NewBiRequestStreamClient(cc).RequestBiStream(ctx)
	if err != nil {
		t.Fatalf("opening the stream: %v", err)
	}
	setup, _ := json.Marshal(map[string]any{"clientVersion": "test", "labels": map[string]string{"source": "sdk", "module": "naming"}})
	if err := stream.Send(&nacos.Payload{Metadata: &nacos.Metadata{Type: "ConnectionSetupRequest"}, Body: &anypb.Any{Value: setup}}); err != nil {
		t.Fatalf("sending ConnectionSetupRequest: %v", err)
	}
	servertest.Eventually(t, awaitTimeout, "the unread connection is set up", func() (bool, string) {
		r := c.call(t, "HealthCheckRequest", map[string]any{}, nil)
		return r.ErrorCode != 301, r.String()
	})
	return c
}

// pushedService is what a NotifySubscriberRequest carries, in short.
func pushedService(t *testing.T, r *serverRequest) (name string, hosts int) {
	t.Helper()
	var b struct {
		ServiceName string `json:"serviceName"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("push body: %v", err)
	}
	return b.ServiceName, len(infoOf(t, r.Body).Hosts)
}

// TestLimitOutboundBudget checks remote.max_outbound_bytes: a subscriber that
// never reads its stream is disconnected once the pushes queued for it pass
// the budget — its instance is removed and pushed as removed — while a
// subscriber that reads keeps getting every push.
func TestLimitOutboundBudget(t *testing.T) {
	t.Parallel()
	srv := startServer(t,
		"SEXTANT_REMOTE_MAX_OUTBOUND_BYTES="+strconv.Itoa(64<<10),
		"SEXTANT_REMOTE_WRITE_TIMEOUT=5m", // the budget, not the write deadline, is under test
		"SEXTANT_NAMING_MAX_METADATA_BYTES="+strconv.Itoa(1<<20),
	)
	big := make([]svcRef, 4)
	for i := range big {
		big[i] = svcRef{"", "DEFAULT_GROUP", "big-" + strconv.Itoa(i)}
	}
	owned := svcRef{"", "DEFAULT_GROUP", "owned-by-the-unread"}

	watcher := setUp(t, srv, typeNotify)
	for _, svc := range append([]svcRef{owned}, big...) {
		watcher.subscribe(t, svc)
		watcher.mustNext(t, typeNotify)
	}
	unread := setUpUnread(t, srv)
	unread.register(t, owned, instance("10.0.0.9", 9000))
	if name, hosts := pushedService(t, watcher.mustNext(t, typeNotify)); name != owned.name || hosts != 1 {
		t.Fatalf("push after the unread client registered: %s with %d hosts", name, hosts)
	}
	for _, svc := range big {
		unread.subscribe(t, svc)
	}

	// Four pushes of 200 KiB, one per service: the stream takes what its
	// window and grpc's write quota hold, one push is accepted over the budget
	// on an empty queue, and the next one closes the connection. The watcher
	// reads each push before the next is made, as a reader keeping up does:
	// on a loaded machine it could otherwise fall a push behind, and be over
	// the budget too.
	pub := setUp(t, srv)
	blob := strings.Repeat("x", 200<<10)
	seen := map[string]bool{}
	for i, svc := range big {
		inst := instance("10.0.1.1", 1000+i)
		inst["metadata"] = map[string]string{"blob": blob}
		pub.register(t, svc, inst)
		for !seen[svc.name] {
			// The unread client's removal may come first.
			name, hosts := pushedService(t, watcher.mustNext(t, typeNotify))
			if name == svc.name && hosts == 1 || name == owned.name && hosts == 0 {
				seen[name] = true
			}
		}
	}
	servertest.Eventually(t, awaitTimeout, "the unread connection is closed for its outbound budget", func() (bool, string) {
		n := srv.Metric(t, closedFor("outbound_budget"))
		return n == 1, fmt.Sprintf("%v closed", n)
	})

	// The watcher got every big push, and the unread client's removal.
	for !seen[owned.name] {
		if name, hosts := pushedService(t, watcher.mustNext(t, typeNotify)); name == owned.name && hosts == 0 {
			seen[name] = true
		}
	}
	if got := watcher.query(t, owned); len(got.Hosts) != 0 {
		t.Errorf("the unread client's instance is still there: %s", describe(got.Hosts))
	}
	// It keeps getting pushes.
	pub.deregister(t, big[0], instance("10.0.1.1", 1000))
	for {
		if name, hosts := pushedService(t, watcher.mustNext(t, typeNotify)); name == big[0].name && hosts == 0 {
			break
		}
	}
	if r, err := unread.request("HealthCheckRequest", map[string]any{}, nil); err == nil && r.ErrorCode != 301 {
		t.Errorf("the closed connection is still served: %s", r)
	}
	if n := srv.Metric(t, closedFor("write_timeout")); n != 0 {
		t.Errorf("%v connections closed for the write timeout, want 0", n)
	}
	requireIncreasingIDs(t, "watcher", watcher.history())
}

// TestLimitSetupTimeout checks remote.setup_timeout: a connection that opens
// its stream but never sends ConnectionSetupRequest is closed once it has
// passed, and counted; a set-up connection stays.
func TestLimitSetupTimeout(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	srv := startServer(t, "SEXTANT_REMOTE_SETUP_TIMEOUT="+timeout.String())
	kept := setUp(t, srv)

	start := time.Now()
	c := dial(t, srv)
	c.openStream(t, false)
	select {
	case <-c.streamEnded:
	case <-time.After(awaitTimeout):
		t.Fatalf("a connection without setup was not closed within %s", awaitTimeout)
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("closed %s after it was opened, before the setup timeout %s", elapsed, timeout)
	}
	if n := srv.Metric(t, closedFor("setup_timeout")); n != 1 {
		t.Errorf("%v connections closed for the setup timeout, want 1", n)
	}
	// kept was accepted first: its deadline has passed too.
	kept.mustCall(t, "HealthCheckRequest", map[string]any{}, "HealthCheckResponse")
	if kept.streamClosed() {
		t.Error("the set-up connection's stream ended")
	}
}

// tryDial is dial that returns an error instead of failing the test.
func tryDial(t *testing.T, srv *servertest.Server) (*rawConn, error) {
	t.Helper()
	c := &rawConn{answers: map[string]bool{}, arrived: make(chan struct{}), streamEnded: make(chan struct{})}
	cc, err := grpc.NewClient("passthrough:///"+srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.cc, c.rpc = cc, nacos.NewRequestClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := c.rpc.Request(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: "ServerCheckRequest"}, Body: &anypb.Any{Value: []byte(`{}`)}})
	if err != nil {
		_ = cc.Close()
		return nil, err
	}
	var sc struct {
		ConnectionID string `json:"connectionId"`
	}
	if err := json.Unmarshal(p.GetBody().GetValue(), &sc); err != nil || sc.ConnectionID == "" {
		_ = cc.Close()
		return nil, fmt.Errorf("ServerCheckRequest answered %s (%v)", p.GetBody().GetValue(), err)
	}
	c.id = sc.ConnectionID
	t.Cleanup(c.close)
	return c, nil
}

// TestLimitMaxConnections checks remote.max_connections: connections over it
// are closed as they are accepted and counted, the open ones keep working,
// and a place freed is taken again.
func TestLimitMaxConnections(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "SEXTANT_REMOTE_MAX_CONNECTIONS=3")
	svc := svcRef{"", "DEFAULT_GROUP", "crowded"}
	watcher := setUp(t, srv, typeNotify)
	pub := setUp(t, srv)
	third := setUp(t, srv)

	raw, err := net.Dial("tcp", srv.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetReadDeadline(time.Now().Add(awaitTimeout)); err != nil {
		t.Fatal(err)
	}
	// A served connection gets the server's HTTP/2 SETTINGS at once.
	n, err := raw.Read(make([]byte, 64))
	var ne net.Error
	switch {
	case n > 0:
		t.Fatalf("a fourth TCP connection was served (%d bytes); remote.max_connections is 3", n)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("a fourth TCP connection was neither served nor closed")
	}
	if _, err := tryDial(t, srv); err == nil {
		t.Fatal("a fourth client was served; remote.max_connections is 3")
	}
	if n := srv.Metric(t, "sextant_remote_connections_refused_total"); n < 2 {
		t.Errorf("%v connections refused, want at least 2", n)
	}

	// The open connections keep working.
	watcher.subscribe(t, svc)
	watcher.mustNext(t, typeNotify)
	pub.register(t, svc, instance("10.0.0.1", 1000))
	if name, hosts := pushedService(t, watcher.mustNext(t, typeNotify)); name != svc.name || hosts != 1 {
		t.Errorf("push after register: %s with %d hosts", name, hosts)
	}

	// A place freed is taken again.
	third.close()
	var again *rawConn
	servertest.Eventually(t, awaitTimeout, "a new client is served once one has gone", func() (bool, string) {
		again, err = tryDial(t, srv)
		return err == nil, fmt.Sprint(err)
	})
	again.openStream(t, true)
	again.register(t, svc, instance("10.0.0.2", 2000))
	if name, hosts := pushedService(t, watcher.mustNext(t, typeNotify)); name != svc.name || hosts != 2 {
		t.Errorf("push after the new client registered: %s with %d hosts", name, hosts)
	}
}
