package remote

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/internal/metrictest"
)

// lockedBuffer is a log output tests read while the server writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestClientErrors(max int) (*clientErrors, *lockedBuffer, *time.Time) {
	logs := &lockedBuffer{}
	now := time.Unix(1000, 0)
	e := newClientErrors(hclog.New(&hclog.LoggerOptions{Output: logs}),
		prometheus.NewCounter(prometheus.CounterOpts{Name: "suppressed"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "evicted"}))
	e.max, e.now = max, func() time.Time { return now }
	return e, logs, &now
}

// TestClientErrorsAreRateLimited: a client's error is logged the first
// time, then once a minute at most with how many were left out; another
// client, or another error, is logged on its own.
func TestClientErrorsAreRateLimited(t *testing.T) {
	e, logs, now := newTestClientErrors(maxClientErrors)
	for range 5 {
		e.report("10.0.0.1", "InstanceRequest 400", "client request failed", "error", "serviceName: bad")
	}
	e.report("10.0.0.2", "InstanceRequest 400", "client request failed", "error", "serviceName: bad")
	e.report("10.0.0.1", "SubscribeServiceRequest 403", "client request failed", "error", "no right")
	if n := strings.Count(logs.String(), "[WARN]"); n != 3 {
		t.Fatalf("%d lines, want 3 (a client's repeats left out):\n%s", n, logs)
	}
	if got := metrictest.CounterValue(t, e.suppressed); got != 4 {
		t.Errorf("%v suppressed, want 4", got)
	}
	*now = now.Add(59 * time.Second)
	e.report("10.0.0.1", "InstanceRequest 400", "client request failed", "error", "serviceName: bad")
	*now = now.Add(time.Second)
	e.report("10.0.0.1", "InstanceRequest 400", "client request failed", "error", "serviceName: worse")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), logs)
	}
	want := `[WARN]  client request failed: client=10.0.0.1 error="serviceName: worse" suppressed=5 suppressed_over=1m0s`
	if !strings.Contains(lines[3], want) {
		t.Errorf("the line after a minute is %q, want %q", lines[3], want)
	}
	*now = now.Add(time.Second)
	e.report("10.0.0.1", "InstanceRequest 400", "client request failed")
	if n := strings.Count(logs.String(), "[WARN]"); n != 4 {
		t.Errorf("a repeat right after the minute's line was logged:\n%s", logs)
	}
}

// TestClientErrorsAreBounded: past the bound the least recent pair is
// forgotten, counted, and logged afresh when it comes back.
func TestClientErrorsAreBounded(t *testing.T) {
	e, logs, _ := newTestClientErrors(3)
	for i := range 5 {
		e.report(fmt.Sprintf("10.0.0.%d", i), "x", "client request failed")
	}
	if n := e.order.Len(); n != 3 || len(e.pairs) != 3 {
		t.Fatalf("%d pairs in the list, %d in the map; want the bound, 3", n, len(e.pairs))
	}
	if got := metrictest.CounterValue(t, e.evicted); got != 2 {
		t.Errorf("%v evicted, want 2", got)
	}
	e.report("10.0.0.4", "x", "client request failed") // remembered: left out
	e.report("10.0.0.0", "x", "client request failed") // forgotten: logged again
	if n := strings.Count(logs.String(), "[WARN]"); n != 6 {
		t.Errorf("%d lines, want 6:\n%s", n, logs)
	}
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct{ addr, id, want string }{
		{"10.0.0.1:5000", "1700000000000_10.0.0.1_5000", "10.0.0.1"},
		{"[fd00::1]:5000", "", "fd00::1"},
		{"", "1700000000000_fd00::1_5000", "fd00::1"},
		{"", "c1", "c1"},
	} {
		if got := clientIP(tc.addr, tc.id); got != tc.want {
			t.Errorf("clientIP(%q, %q) = %q, want %q", tc.addr, tc.id, got, tc.want)
		}
	}
}
