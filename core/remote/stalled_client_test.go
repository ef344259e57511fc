package remote

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// TestAClientThatStopsReadingIsDropped checks the write timeout through a
// real transport: a client that opens its stream and then reads nothing
// lets no push past its flow-control window, and once the push has waited
// WriteTimeout its connection is closed and its client removed.
func TestAClientThatStopsReadingIsDropped(t *testing.T) {
	forEachTransport(t, testAClientThatStopsReadingIsDropped)
}

func testAClientThatStopsReadingIsDropped(t *testing.T, transport string) {
	const timeout = 200 * time.Millisecond
	s, reg := startLimitServer(t, func(c *Config) { c.Transport = transport; c.WriteTimeout = timeout })
	dialClient(t, s).openStream(t, true) // and never Recv
	var id string
	s.mu.RLock()
	for id = range s.conns {
	}
	s.mu.RUnlock()

	// Requests of more than HTTP/2's initial window of 64 KiB, which the
	// client never gives back: grpc-go takes up to two into its own
	// buffers (a stream's write quota is 64 KiB), and blocks on the third.
	body := `{"padding":"` + strings.Repeat("x", 100<<10) + `"}`
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	start := time.Now()
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- s.Request(ctx, typeClientDetection, []byte(body), []string{id})[0] }()
	}
	for range 4 {
		if err := <-errs; !errors.Is(err, errWriteTimeout) {
			t.Fatalf("a push to a client that reads nothing: %v, want %v", err, errWriteTimeout)
		}
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("dropped after %s, before the write timeout %s", elapsed, timeout)
	}
	waitFor(t, "the client is removed", func() bool { return s.connectionCount() == 0 && s.openConnections() == 0 })
	if got := metricValue(t, reg, "sextant_remote_connections_closed_total", "reason", "write_timeout"); got != 1 {
		t.Errorf("closed for the write timeout: counted %v, want 1", got)
	}
}

// TestMayWait: mayWait sends only the requests that can wait for a Raft commit to a
// goroutine of their own.
func TestMayWait(t *testing.T) {
	for _, c := range []struct {
		typ, body string
		want      bool
	}{
		{"PersistentInstanceRequest", `{"instance":{"ephemeral":false}}`, true},
		{"InstanceRequest", `{"instance":{"ip":"10.0.0.1","ephemeral":false}}`, true},
		{"InstanceRequest", `{"instance":{"ip":"10.0.0.1"}}`, true}, // no ephemeral is persistent
		{"InstanceRequest", `{"instance":{"ip":"10.0.0.1","ephemeral":true}}`, false},
		{"BatchInstanceRequest", `{"instances":[]}`, false},
		{"SubscribeServiceRequest", `{}`, false},
		{"HealthCheckRequest", `{}`, false},
	} {
		p := &nacos.Payload{Metadata: &nacos.Metadata{Type: c.typ}, Body: &anypb.Any{Value: []byte(c.body)}}
		if got := mayWait(p); got != c.want {
			t.Errorf("mayWait(%s %s) = %v, want %v", c.typ, c.body, got, c.want)
		}
	}
}

// TestAnIdleConnectionHoldsNoReadBuffer: on h2, a connection holds a read
// buffer while it has input, and gives it back a second after; the gauge
// counts the ones that hold one.
func TestAnIdleConnectionHoldsNoReadBuffer(t *testing.T) {
	s, reg := startLimitServer(t, func(c *Config) { c.Transport = TransportH2 })
	c := dialClient(t, s)
	if code, err := c.call(typeServerCheck); err != nil || code != 0 {
		t.Fatalf("ServerCheckRequest: %d, %v", code, err)
	}
	if got := metricValue(t, reg, "sextant_remote_reading_connections"); got != 1 {
		t.Fatalf("sextant_remote_reading_connections = %v right after a call, want 1", got)
	}
	waitFor(t, "the idle connection gives its read buffer back", func() bool {
		return metricValue(t, reg, "sextant_remote_reading_connections") == 0
	})
	if code, err := c.call(typeServerCheck); err != nil || code != 0 {
		t.Fatalf("ServerCheckRequest after idling: %d, %v", code, err)
	}
}
