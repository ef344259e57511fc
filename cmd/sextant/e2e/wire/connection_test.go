package wire_test

import (
	"net"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// TestServerCheckAnswersConnectionID checks ServerCheckRequest's answer: a
// ServerCheckResponse whose connectionId is <unixMillis>_<ip>_<port> of the
// client's end of the TCP connection, the same for every call on it.
func TestServerCheckAnswersConnectionID(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	start := time.Now()
	c := dial(t, srv)
	end := time.Now()

	m := regexp.MustCompile(`^(\d+)_(.+)_(\d+)$`).FindStringSubmatch(c.id)
	if m == nil {
		t.Fatalf("connectionId %q is not <unixMillis>_<ip>_<port>", c.id)
	}
	millis, _ := strconv.ParseInt(m[1], 10, 64)
	// The id is made when the server accepts the TCP connection, between the
	// dial's start and the answer.
	if millis < start.UnixMilli() || millis > end.UnixMilli() {
		t.Errorf("connectionId %q: time %d not within the dial, %d-%d", c.id, millis, start.UnixMilli(), end.UnixMilli())
	}
	local, _ := c.local.Load().(string)
	ip, port, err := net.SplitHostPort(local)
	if err != nil {
		t.Fatalf("client's local address %q: %v", local, err)
	}
	if m[2] != ip || m[3] != port {
		t.Errorf("connectionId %q does not name the client's end %s", c.id, local)
	}

	r := c.call(t, "ServerCheckRequest", map[string]any{}, nil)
	if r.Type != "ServerCheckResponse" || r.ResultCode != 200 || !r.Success {
		t.Fatalf("second ServerCheckRequest: %s", r)
	}
	if again := dial(t, srv); again.id == c.id {
		t.Errorf("two connections got the same id %q", c.id)
	}
	if !regexp.MustCompile(`"connectionId":"` + regexp.QuoteMeta(c.id) + `"`).Match(r.Body) {
		t.Errorf("a second ServerCheckRequest on the connection answered another id: %s (first %s)", r.Body, c.id)
	}
}

// TestHealthCheck checks the client keep-alive on a set-up connection.
func TestHealthCheck(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := setUp(t, srv)
	for range 3 {
		c.mustCall(t, "HealthCheckRequest", map[string]any{"module": "internal"}, "HealthCheckResponse")
	}
}

// TestSilentConnectionIsDropped checks server keep-alive: a set-up connection
// that does not answer ClientDetectionRequest is dropped once idle for the idle
// timeout plus the detect timeout, with its instance (its subscribers are
// pushed the removal); a connection that answers the probes stays.
func TestSilentConnectionIsDropped(t *testing.T) {
	t.Parallel()
	const idle, detect = time.Second, 500 * time.Millisecond
	srv := startServer(t,
		"SEXTANT_REMOTE_IDLE_TIMEOUT="+idle.String(),
		"SEXTANT_REMOTE_DETECT_INTERVAL=100ms",
		"SEXTANT_REMOTE_DETECT_TIMEOUT="+detect.String(),
	)
	idleSvc := svcRef{"", "DEFAULT_GROUP", "idle"}
	keptSvc := svcRef{"", "DEFAULT_GROUP", "kept"}

	watcher := setUp(t, srv, typeNotify, typeDetection)
	watcher.subscribe(t, idleSvc)
	if got := infoOf(t, watcher.mustNext(t, typeNotify).Body); len(got.Hosts) != 0 {
		t.Fatalf("first push: want no hosts yet, got %s", describe(got.Hosts))
	}

	keeper := setUp(t, srv, typeDetection)
	keeper.register(t, keptSvc, instance("10.0.0.2", 2000))

	silent := setUp(t, srv) // answers nothing
	lastActive := time.Now()
	silent.register(t, idleSvc, instance("10.0.0.1", 1000))
	if got := infoOf(t, watcher.mustNext(t, typeNotify).Body); !slices.Equal(got.addrs(), []string{"10.0.0.1:1000"}) {
		t.Fatalf("push after register: want 10.0.0.1:1000, got %s", describe(got.Hosts))
	}

	select {
	case <-silent.streamEnded:
	case <-time.After(awaitTimeout):
		t.Fatalf("the silent connection was not dropped within %s", awaitTimeout)
	}
	if elapsed := time.Since(lastActive); elapsed < idle+detect {
		t.Errorf("the silent connection was dropped %s after its last request, before idle timeout + detect timeout (%s)", elapsed, idle+detect)
	}
	if silent.count(typeDetection) == 0 {
		t.Errorf("the silent connection was dropped without being sent a %s", typeDetection)
	}

	removal := infoOf(t, watcher.mustNext(t, typeNotify).Body)
	if len(removal.Hosts) != 0 {
		t.Errorf("push after the drop: want no hosts, got %s", describe(removal.Hosts))
	}
	if got := watcher.query(t, idleSvc); len(got.Hosts) != 0 {
		t.Errorf("query after the drop: want no hosts, got %s", describe(got.Hosts))
	}

	// The keeper answers its probes and stays, with its instance.
	servertest.Eventually(t, awaitTimeout, "the keeper has answered 2 probes", func() (bool, string) {
		n := keeper.count(typeDetection)
		return n >= 2, strconv.Itoa(n) + " probes"
	})
	if keeper.streamClosed() {
		t.Fatal("the keeper's stream ended although it answered its probes")
	}
	if got := watcher.query(t, keptSvc); !slices.Equal(got.addrs(), []string{"10.0.0.2:2000"}) {
		t.Errorf("keeper's service: want 10.0.0.2:2000, got %s", describe(got.Hosts))
	}
	keeper.mustCall(t, "HealthCheckRequest", map[string]any{}, "HealthCheckResponse")
	requireIncreasingIDs(t, "keeper", keeper.history())
	requireIncreasingIDs(t, "watcher", watcher.history())
}

// TestClosedConnectionIsRemoved checks that a connection the client closes
// takes its instances and subscriptions with it, however it is closed.
func TestClosedConnectionIsRemoved(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, tc := range []struct {
		name  string
		close func(*rawConn)
	}{
		{"gRPC connection closed", func(c *rawConn) { _ = c.cc.Close() }},
		{"stream half-closed", func(c *rawConn) { _ = c.stream.CloseSend() }},
		{"stream cancelled", func(c *rawConn) { c.cancelStream() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servertest.Eventually(t, awaitTimeout, "the connections of earlier subtests are gone", func() (bool, string) {
				nc, ns := int(srv.Metric(t, "sextant_clients")), int(srv.Metric(t, "sextant_subscribers"))
				return nc == 0 && ns == 0, "clients " + strconv.Itoa(nc) + " subscribers " + strconv.Itoa(ns)
			})
			svc := svcRef{"", "DEFAULT_GROUP", "closing-" + tc.name}
			other := svcRef{"", "DEFAULT_GROUP", "subscribed-" + tc.name}
			watcher := setUp(t, srv, typeNotify)
			watcher.subscribe(t, svc)
			watcher.mustNext(t, typeNotify)

			c := setUp(t, srv, typeNotify)
			c.register(t, svc, instance("10.0.0.3", 3000))
			c.subscribe(t, svc)
			c.subscribe(t, other)
			if got := infoOf(t, watcher.mustNext(t, typeNotify).Body); !slices.Equal(got.addrs(), []string{"10.0.0.3:3000"}) {
				t.Fatalf("push after register: want 10.0.0.3:3000, got %s", describe(got.Hosts))
			}
			clients, subs := int(srv.Metric(t, "sextant_clients")), int(srv.Metric(t, "sextant_subscribers"))

			tc.close(c)

			if got := infoOf(t, watcher.mustNext(t, typeNotify).Body); len(got.Hosts) != 0 {
				t.Errorf("push after close: want no hosts, got %s", describe(got.Hosts))
			}
			if got := watcher.query(t, svc); len(got.Hosts) != 0 {
				t.Errorf("query after close: want no hosts, got %s", describe(got.Hosts))
			}
			servertest.Eventually(t, awaitTimeout, "the closed client and its 2 subscriptions are gone", func() (bool, string) {
				nc, ns := int(srv.Metric(t, "sextant_clients")), int(srv.Metric(t, "sextant_subscribers"))
				return nc == clients-1 && ns == subs-2,
					"clients " + strconv.Itoa(nc) + " subscribers " + strconv.Itoa(ns) +
						" (before close: " + strconv.Itoa(clients) + ", " + strconv.Itoa(subs) + ")"
			})
			select {
			case <-c.streamEnded:
			case <-time.After(awaitTimeout):
				t.Errorf("the closed connection's stream did not end")
			}
		})
	}
}
