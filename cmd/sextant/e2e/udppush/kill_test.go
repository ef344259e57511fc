package udppush_test

import (
	"fmt"
	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestPluginKilledMidStream kills the pushudp plugin process with SIGKILL
// while a writer keeps changing a service: the server restarts it, and every
// UDP subscriber — raw ones and the v1 SDK — ends with the latest instance
// list, pushed by the new process.
func TestPluginKilledMidStream(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "SEXTANT_PUSH_RETRY_DELAY=100ms", "SEXTANT_PUSH_TIMEOUT=1s")
	svc := serviceName(t)
	register(t, srv, svc, "10.0.0.1", 8080, 1)
	raws := make([]*rawSubscriber, 3)
	for i := range raws {
		raws[i] = newRawSubscriber(t, srv, svc, true)
		raws[i].poll(t)
		raws[i].keepPolling(t, time.Second)
	}
	sdk := subscribeV1(t, nacostest.NewV1Client(t, srv.HTTPAddr()), svc)
	sdk.await(t, "10.0.0.1:8080 w=1")
	victim, ok := plugin(srv, "pushudp")
	if !ok {
		t.Fatalf("no pushudp plugin process among the server's children: %+v", children(srv.PID()))
	}

	// The writer changes the instance's weight every 20 ms; written holds
	// the last weight the server acknowledged.
	var written atomic.Int64
	written.Store(1)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for w := int64(2); ; w++ {
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
			code, body, err := tryCall(srv, http.MethodPost, "/nacos/v1/ns/instance", url.Values{"serviceName": {svc}, "ip": {"10.0.0.1"},
				"port": {"8080"}, "weight": {strconv.FormatInt(w, 10)}, "ephemeral": {"true"}})
			if err != nil || code != http.StatusOK {
				t.Errorf("changing the weight to %d: %d %s %v", w, code, body, err)
				return
			}
			written.Store(w)
		}
	}()
	defer func() {
		select {
		case <-quit:
		default:
			close(quit)
		}
		<-done
	}()
	atLeast := func(w float64) func([]datagram) bool {
		return func(ds []datagram) bool {
			info, ok := current(ds)
			return ok && len(info.Hosts) == 1 && info.Hosts[0].Weight >= w
		}
	}
	raws[0].await(t, "pushes flowing", atLeast(5))

	if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var successor process
	eventually(t, "pushudp restarted", func() bool {
		p, ok := plugin(srv, "pushudp")
		successor = p
		return ok && p.pid != victim.pid
	}, func() string { return fmt.Sprint(children(srv.PID())) })
	restarted := time.Since(killed)
	// Changes made once the new process is up reach the subscribers.
	after := float64(written.Load()) + 1
	raws[0].await(t, "a change made after the restart", atLeast(after))
	close(quit)
	<-done
	final := fmt.Sprintf("10.0.0.1:8080 w=%d", written.Load())
	for i, s := range raws {
		got := s.await(t, "the latest instance list", currentIs(final))
		if !slices.ContainsFunc(got, func(d datagram) bool { return d.at.After(killed) }) {
			t.Errorf("raw subscriber %d was pushed nothing after the kill", i)
		}
	}
	sdk.await(t, final)
	converged := time.Since(killed)

	if n := srv.Metric(t, `sextant_plugin_restarts_total{plugin="pushudp"}`); n != 1 {
		t.Errorf("sextant_plugin_restarts_total{plugin=\"pushudp\"} = %v, want 1", n)
	}
	if n := srv.Metric(t, `sextant_plugin_restarts_total{plugin="pushrpc"}`); n != 0 {
		t.Errorf("pushrpc restarted %v times; only pushudp was killed", n)
	}
	t.Logf("pushudp pid %d killed; pid %d attached %v later; %d changes written; every subscriber had the last %v after the kill; %v pushes failed and were retried",
		victim.pid, successor.pid, restarted.Round(time.Millisecond), written.Load()-1, converged.Round(time.Millisecond),
		srv.Metric(t, `sextant_pushes_total{result="failed"}`))
}
