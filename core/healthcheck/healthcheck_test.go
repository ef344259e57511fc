package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/naming"
)

// TestTCPDownAndUp: an instance whose port stops listening is reported
// unhealthy within Interval + TCPTimeout (a refusal is a hard failure), and
// healthy again once it listens again.
func TestTCPDownAndUp(t *testing.T) {
	srv := listenTCP(t, "127.0.0.1:0")
	addr := srv.address("DEFAULT")
	st := newStore(Target{Service: svcA, Address: addr, Healthy: true})
	const interval, timeout = 200 * time.Millisecond, 200 * time.Millisecond
	s := start(t, st, Config{Interval: interval, TCPTimeout: timeout})

	eventually(t, "two successful checks", func() bool { return checks(t, s, typeIndexTCP, outcomeSuccess) >= 2 })
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("%d reports for a healthy instance that stays healthy", n)
	}
	srv.stop()
	down := time.Now()
	r := st.next(t)
	elapsed := time.Since(down)
	if r != (report{svcA, addr, false}) {
		t.Fatalf("report %+v, want %v unhealthy", r, addr)
	}
	// The slack is for a loaded machine (the race detector, CI).
	if limit := interval + timeout + 300*time.Millisecond; elapsed > limit {
		t.Errorf("unhealthy %v after the port closed, want within %v", elapsed, limit)
	}
	if checks(t, s, typeIndexTCP, outcomeRefused) < 1 {
		t.Error("no refused check counted")
	}

	listenTCP(t, net.JoinHostPort(addr.IP, strconv.Itoa(addr.Port)))
	if r := st.next(t); r != (report{svcA, addr, true}) {
		t.Fatalf("report %+v, want %v healthy", r, addr)
	}
	if n := st.calls.Load(); n != 2 {
		t.Errorf("%d reports, want 2", n)
	}
}

// TestCheckPort: with CheckPort set, that port is checked, not the
// instance's.
func TestCheckPort(t *testing.T) {
	srv := listenTCP(t, "127.0.0.1:0")
	addr := Address{IP: "127.0.0.1", Port: closedPort(t), Cluster: "c"}
	st := newStore(Target{Service: svcA, Address: addr, Healthy: false,
		Checker: Checker{Type: TypeTCP, CheckPort: srv.address("").Port}})
	start(t, st, Config{Interval: 20 * time.Millisecond})
	if r := st.next(t); r != (report{svcA, addr, true}) {
		t.Fatalf("report %+v, want healthy: the check port listens", r)
	}
}

// TestHTTPStatus: an HTTP instance answering 500 is reported unhealthy at
// once (a hard failure), and healthy when it answers 200 again.
func TestHTTPStatus(t *testing.T) {
	var status atomic.Int64
	status.Store(http.StatusOK)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	addr := httpAddress(t, srv, "DEFAULT")
	st := newStore(Target{Service: svcA, Address: addr, Healthy: true, Checker: Checker{Type: TypeHTTP, Path: "/health"}})
	s := start(t, st, Config{Interval: 30 * time.Millisecond})

	eventually(t, "a successful check", func() bool { return checks(t, s, typeIndexHTTP, outcomeSuccess) >= 1 })
	status.Store(http.StatusInternalServerError)
	before := checks(t, s, typeIndexHTTP, outcomeStatus)
	if r := st.next(t); r != (report{svcA, addr, false}) {
		t.Fatalf("report %+v, want unhealthy", r)
	}
	if n := checks(t, s, typeIndexHTTP, outcomeStatus) - before; n != 1 {
		t.Errorf("unhealthy after %v checks answering 500, want 1 (a hard failure)", n)
	}
	status.Store(http.StatusOK)
	if r := st.next(t); r != (report{svcA, addr, true}) {
		t.Fatalf("report %+v, want healthy", r)
	}
}

// TestHTTPRequest: the check GETs the path with its query and the
// checker's headers (Host included), and passes on the expected code only.
func TestHTTPRequest(t *testing.T) {
	type seen struct {
		method, uri, host, agent string
		close                    bool
	}
	var mu sync.Mutex
	var last seen // of the last request with the right token
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") == "s3cret" {
			mu.Lock()
			last = seen{r.Method, r.RequestURI, r.Host, r.Header.Get("User-Agent"), r.Close}
			mu.Unlock()
		}
		if r.URL.Path != "/health" || r.Header.Get("X-Token") != "s3cret" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	good := Checker{Type: TypeHTTP, Path: "/health?deep=1", ExpectedCode: http.StatusNoContent,
		Headers: map[string]string{"X-Token": "s3cret", "host": "svc.example"}}
	wrongToken := good
	wrongToken.Headers = map[string]string{"X-Token": "nope"}
	wrongCode := good
	wrongCode.ExpectedCode = 0 // 200
	a, b, c := httpAddress(t, srv, "a"), httpAddress(t, srv, "b"), httpAddress(t, srv, "c")
	st := newStore(
		Target{Service: svcA, Address: a, Healthy: false, Checker: good},
		Target{Service: svcA, Address: b, Healthy: true, Checker: wrongToken},
		Target{Service: svcA, Address: c, Healthy: true, Checker: wrongCode},
	)
	start(t, st, Config{Interval: 30 * time.Millisecond})
	got := map[Address]bool{}
	for range 3 {
		r := st.next(t)
		got[r.addr] = r.healthy
	}
	want := map[Address]bool{a: true, b: false, c: false}
	for addr, h := range want {
		if g, ok := got[addr]; !ok || g != h {
			t.Errorf("%s: reported %v (%v), want %v", addr.Cluster, g, ok, h)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := (seen{"GET", "/health?deep=1", "svc.example", userAgent, true}); last != want {
		t.Errorf("request %+v, want %+v", last, want)
	}
}

// TestHTTPRedirects: a redirect is not followed; a 302 is a soft failure
// (UnhealthyAfter in a row), a 301 a hard one.
func TestHTTPRedirects(t *testing.T) {
	var found, moved, elsewhere atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/found", func(w http.ResponseWriter, r *http.Request) {
		found.Add(1)
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		moved.Add(1)
		http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f, m := httpAddress(t, srv, "found"), httpAddress(t, srv, "moved")
	st := newStore(
		Target{Service: svcA, Address: f, Healthy: true, Checker: Checker{Type: TypeHTTP, Path: "/found"}},
		Target{Service: svcA, Address: m, Healthy: true, Checker: Checker{Type: TypeHTTP, Path: "/moved"}},
	)
	hitsAtReport := map[string]int64{}
	var mu sync.Mutex
	st.fail = func(r report) error {
		mu.Lock()
		defer mu.Unlock()
		// The target's next check waits for this Report to return.
		hitsAtReport[r.addr.Cluster] = map[string]int64{"found": found.Load(), "moved": moved.Load()}[r.addr.Cluster]
		return nil
	}
	start(t, st, Config{Interval: 20 * time.Millisecond, UnhealthyAfter: 2})
	for range 2 {
		if r := st.next(t); r.healthy {
			t.Fatalf("report %+v, want unhealthy", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hitsAtReport["found"] != 2 || hitsAtReport["moved"] != 1 {
		t.Errorf("unhealthy after %v checks, want 302 after 2 (soft) and 301 after 1 (hard)", hitsAtReport)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
}

// TestSoftFailures: timeouts and errors turn an instance unhealthy only
// after UnhealthyAfter in a row, a success in between starting the count
// again; HealthyAfter successes in a row turn it healthy.
func TestSoftFailures(t *testing.T) {
	addr := Address{IP: "192.0.2.1", Port: 80, Cluster: "c"} // never dialed for real
	hp := "192.0.2.1:80"
	g := newGatedDial(hp)
	st := newStore(Target{Service: svcA, Address: addr, Healthy: true})
	s := start(t, st, Config{Interval: 10 * time.Millisecond, TCPTimeout: time.Minute, Dial: g.Dial,
		UnhealthyAfter: 3, HealthyAfter: 2})
	step := func(err error) {
		t.Helper()
		if a := <-g.entered; a != hp {
			t.Fatalf("dialed %s", a)
		}
		g.release <- err
	}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	step(timeout)
	step(errors.New("no route"))
	step(nil) // a success: the count starts again
	step(timeout)
	step(timeout)
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("reported after 2 soft failures in a row")
	}
	step(timeout) // the third in a row
	if r := st.next(t); r.healthy {
		t.Fatalf("report %+v, want unhealthy", r)
	}
	if n := g.count(hp); n != 6 {
		t.Errorf("unhealthy after %d checks, want 6", n)
	}
	step(nil)
	step(nil)
	if r := st.next(t); !r.healthy {
		t.Fatalf("report %+v, want healthy", r)
	}
	if n := g.count(hp); n != 8 {
		t.Errorf("healthy after %d checks, want 8 (two successes)", n)
	}
	if checks(t, s, typeIndexTCP, outcomeTimeout) != 4 || checks(t, s, typeIndexTCP, outcomeError) != 1 {
		t.Errorf("timeouts %v, errors %v counted, want 4 and 1",
			checks(t, s, typeIndexTCP, outcomeTimeout), checks(t, s, typeIndexTCP, outcomeError))
	}
}

// TestTCPTimeout: a connect that does not complete is a timeout, after
// TCPTimeout.
func TestTCPTimeout(t *testing.T) {
	g := newGatedDial("192.0.2.1:80")
	st := newStore(Target{Service: svcA, Address: Address{IP: "192.0.2.1", Port: 80}, Healthy: true})
	s := start(t, st, Config{Interval: 10 * time.Millisecond, TCPTimeout: 5 * time.Millisecond, Dial: g.Dial,
		UnhealthyAfter: 1})
	if r := st.next(t); r.healthy {
		t.Fatalf("report %+v", r)
	}
	if checks(t, s, typeIndexTCP, outcomeTimeout) < 1 {
		t.Error("no timeout counted")
	}
}

// TestNotChecked: NONE instances, instances with an unknown checker type
// and instances of services this node does not own are never checked.
func TestNotChecked(t *testing.T) {
	srv := listenTCP(t, "127.0.0.1:0")
	mine := srv.address("mine")
	none := Address{IP: "127.0.0.1", Port: closedPort(t), Cluster: "none"}
	mysql := Address{IP: "127.0.0.1", Port: none.Port, Cluster: "mysql"}
	other := Address{IP: "127.0.0.1", Port: closedPort(t) + 0, Cluster: "other"}
	g := newGatedDial()
	st := newStore(
		Target{Service: svcA, Address: mine, Healthy: true},
		Target{Service: svcA, Address: none, Healthy: true, Checker: Checker{Type: TypeNone}},
		Target{Service: svcA, Address: mysql, Healthy: true, Checker: Checker{Type: "MYSQL"}},
		Target{Service: svcB, Address: other, Healthy: true},
	)
	log, buf := newLogger(hclog.Warn)
	var owns sync.Map
	s := start(t, st, Config{Interval: 10 * time.Millisecond, Dial: g.Dial, Logger: log,
		Owns: func(svc naming.Service) bool {
			n, _ := owns.LoadOrStore(svc, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			return svc == svcA
		}})
	eventually(t, "5 checks", func() bool { return checks(t, s, typeIndexTCP, outcomeSuccess) >= 5 })
	if n := g.count(hostPort(Target{Address: none})) + g.count(hostPort(Target{Address: other})); n != 0 {
		t.Errorf("%d checks of NONE, MYSQL or not owned instances", n)
	}
	if n := st.calls.Load(); n != 0 {
		t.Errorf("%d reports", n)
	}
	if got := gauge(t, s.m.targets); got != 1 {
		t.Errorf("targets gauge %v, want 1", got)
	}
	// Owns is asked once per service per round, and only for services
	// with instances to check.
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, _ := owns.Load(svcA)
	b, _ := owns.Load(svcB)
	if a.(*atomic.Int64).Load() != b.(*atomic.Int64).Load() {
		t.Errorf("Owns asked %d times for a (3 targets), %d for b (1)", a.(*atomic.Int64).Load(), b.(*atomic.Int64).Load())
	}
	if n := buf.count("unknown checker type"); n != 1 {
		t.Errorf("%d warnings of the unknown type, want 1 (once a minute)", n)
	}
}

// TestOnlyChanges: over many rounds, only changes are reported, once each.
func TestOnlyChanges(t *testing.T) {
	srv := listenTCP(t, "127.0.0.1:0")
	up, upUnhealthy := srv.address("up"), srv.address("up-unhealthy")
	down := Address{IP: "127.0.0.1", Port: closedPort(t), Cluster: "down"}
	st := newStore(
		Target{Service: svcA, Address: up, Healthy: true},
		Target{Service: svcA, Address: upUnhealthy, Healthy: false},
		Target{Service: svcA, Address: down, Healthy: false},
	)
	s := start(t, st, Config{Interval: 10 * time.Millisecond})
	eventually(t, "10 rounds", func() bool { return allChecks(t, s) >= 30 })
	if n := st.calls.Load(); n != 1 {
		t.Fatalf("%d reports over 10 rounds, want 1", n)
	}
	if r := st.next(t); r != (report{svcA, upUnhealthy, true}) {
		t.Errorf("report %+v", r)
	}
	if got := metrictest.CounterValue(t, s.m.changes[1]); got != 1 {
		t.Errorf("changes{healthy=true} %v", got)
	}
}

// TestReportRetried: a failed Report is retried at the next check, until
// it goes through; the failures are logged at most once per interval.
func TestReportRetried(t *testing.T) {
	srv := listenTCP(t, "127.0.0.1:0")
	const n = 50
	var targets []Target
	for i := range n {
		targets = append(targets, Target{Service: svcA, Address: srv.address(fmt.Sprint("c", i)), Healthy: false})
	}
	st := newStore(targets...)
	var quorum atomic.Bool
	st.fail = func(report) error {
		if !quorum.Load() {
			return fmt.Errorf("proposing set_health: %w", errNoQuorum)
		}
		return nil
	}
	log, buf := newLogger(hclog.Warn)
	const interval = 50 * time.Millisecond
	began := time.Now()
	s := start(t, st, Config{Interval: interval, Logger: log})
	eventually(t, "4 rounds of failed reports", func() bool { return metrictest.CounterValue(t, s.m.reportFails) >= 4*n })
	quorum.Store(true)
	for range n {
		if r := st.next(t); !r.healthy {
			t.Fatalf("report %+v", r)
		}
	}
	// A round makes n failures; the warnings come at most once per
	// interval.
	most := int(time.Since(began)/interval) + 1
	fails := int(metrictest.CounterValue(t, s.m.reportFails))
	if lines := buf.count("reporting a health change failed"); lines < 1 || lines > most {
		t.Errorf("%d warnings of %d failed reports, want 1 to %d (one per interval)", lines, fails, most)
	}
	for _, tg := range targets {
		if !st.healthy(t, svcA, tg.Address) {
			t.Errorf("%s still unhealthy", tg.Address.Cluster)
		}
	}
	// Applied: no more reports.
	calls := st.calls.Load()
	checked := allChecks(t, s)
	eventually(t, "2 more rounds", func() bool { return allChecks(t, s) >= checked+2*n })
	if more := st.calls.Load() - calls; more != 0 {
		t.Errorf("%d reports after every change was applied", more)
	}
}

// TestBoundedConcurrency: with MaxConcurrent 4, slow checks of 20 instances
// never have more than 4 in flight at the server.
func TestBoundedConcurrency(t *testing.T) {
	var inFlight, most atomic.Int64
	gate := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		inFlight.Add(-1) // before the answer: the checker's slot is still held
	}))
	t.Cleanup(srv.Close)
	var targets []Target
	for i := range 20 {
		targets = append(targets, Target{Service: svcA, Address: httpAddress(t, srv, fmt.Sprint("c", i)), Healthy: true,
			Checker: Checker{Type: TypeHTTP}})
	}
	st := newStore(targets...)
	s := start(t, st, Config{Interval: 10 * time.Millisecond, HTTPTimeout: time.Minute, MaxConcurrent: 4})
	for range 60 {
		eventually(t, "4 checks in flight", func() bool { return inFlight.Load() == 4 })
		gate <- struct{}{}
	}
	if m := most.Load(); m != 4 {
		t.Errorf("at most %d checks in flight, want 4", m)
	}
	if checks(t, s, typeIndexHTTP, outcomeSuccess) < 50 {
		t.Errorf("%v checks done", checks(t, s, typeIndexHTTP, outcomeSuccess))
	}
	if metrictest.CounterValue(t, s.m.late) == 0 {
		t.Error("no late round counted, though the workers could not keep up")
	}
}

// TestForgotten: targets no longer listed are forgotten at the next round,
// and what a check in flight finds for one is not reported.
func TestForgotten(t *testing.T) {
	srv := listenTCP(t, "127.0.0.1:0")
	var targets []Target
	for i := range 100 {
		targets = append(targets, Target{Service: svcA, Address: srv.address(fmt.Sprint("c", i)), Healthy: true})
	}
	st := newStore(targets...)
	s := start(t, st, Config{Interval: 10 * time.Millisecond})
	eventually(t, "100 targets", func() bool { return gauge(t, s.m.targets) == 100 })
	st.set(targets[:10]...)
	eventually(t, "10 targets", func() bool { return gauge(t, s.m.targets) == 10 })
	s.mu.Lock()
	n := len(s.states)
	s.mu.Unlock()
	if n != 10 {
		t.Errorf("%d states kept for 10 targets", n)
	}

	// A check in flight when its target goes.
	st.set()
	eventually(t, "no targets", func() bool { return gauge(t, s.m.targets) == 0 })
	g := newGatedDial("192.0.2.1:80")
	gone := Target{Service: svcB, Address: Address{IP: "192.0.2.1", Port: 80}, Healthy: false}
	st2 := newStore(gone)
	s2 := start(t, st2, Config{Interval: 10 * time.Millisecond, TCPTimeout: time.Minute, Dial: g.Dial})
	<-g.entered
	st2.set()
	eventually(t, "the target forgotten", func() bool {
		s2.mu.Lock()
		defer s2.mu.Unlock()
		return len(s2.states) == 0
	})
	g.release <- nil // a success: a change from unhealthy, but the target is gone
	eventually(t, "the check counted", func() bool { return checks(t, s2, typeIndexTCP, outcomeSuccess) == 1 })
	if err := s2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := st2.calls.Load(); n != 0 {
		t.Errorf("%d reports for a forgotten target", n)
	}
}

// TestStop: Stop cancels checks and Reports in flight, and waits for them.
func TestStop(t *testing.T) {
	g := newGatedDial("192.0.2.1:80")
	st := newStore(Target{Service: svcA, Address: Address{IP: "192.0.2.1", Port: 80}, Healthy: true})
	s := build(t, st, Config{Interval: 10 * time.Millisecond, TCPTimeout: time.Hour, Dial: g.Dial})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := st.calls.Load(); n != 0 {
		t.Errorf("%d reports of a check cancelled by Stop", n)
	}
	if n := allChecks(t, s); n != 0 {
		t.Errorf("%v checks counted; a check cancelled by Stop says nothing", n)
	}

	// A Report in flight gets its context cancelled.
	srv := listenTCP(t, "127.0.0.1:0")
	st = newStore(Target{Service: svcA, Address: srv.address("c"), Healthy: false})
	entered := make(chan struct{})
	s = build(t, st, Config{Interval: 10 * time.Millisecond})
	s.cfg.Report = func(ctx context.Context, _ naming.Service, _ Address, _ bool) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-entered
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metrictest.CounterValue(t, s.m.reportFails); got != 0 {
		t.Errorf("a Report cancelled by Stop counted as failed")
	}
}

// TestLifecycle: New refuses a config without its functions or with
// negative values; Start and Stop follow the usual rules; the metrics
// register.
func TestLifecycle(t *testing.T) {
	st := newStore()
	for _, cfg := range []Config{
		{Report: st.Report},
		{Targets: st.Targets},
		{Targets: st.Targets, Report: st.Report, Interval: -1},
		{Targets: st.Targets, Report: st.Report, MaxConcurrent: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	reg := prometheus.NewRegistry()
	s := build(t, st, Config{Metrics: reg})
	if s.cfg.Interval != DefaultInterval || s.cfg.TCPTimeout != DefaultTCPTimeout || s.cfg.HTTPTimeout != DefaultHTTPTimeout ||
		s.cfg.MaxConcurrent != DefaultMaxConcurrent || s.cfg.HealthyAfter != 1 || s.cfg.UnhealthyAfter != 3 {
		t.Errorf("defaults %+v", s.cfg)
	}
	if _, err := New(Config{Targets: st.Targets, Report: st.Report, Metrics: reg}); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 7 {
		t.Errorf("%d metric families (%v), want 7", len(families), err)
	}
	ctx := context.Background()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := s.Start(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v", err)
	}
	s = build(t, st, Config{})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestSpread: the phases of many targets spread over the interval.
func TestSpread(t *testing.T) {
	st := newStore()
	s := build(t, st, Config{Interval: time.Second})
	var targets []Target
	for i := range 10000 {
		targets = append(targets, Target{Service: svcA, Address: Address{IP: "10.0.0.1", Port: 1 + i%60000, Cluster: strconv.Itoa(i)}})
	}
	start := time.Now()
	s.plan(targets, 0, start, false)
	var buckets [10]int
	for _, j := range s.queue {
		d := j.at.Sub(start)
		if d < 0 || d >= time.Second {
			t.Fatalf("due %v into a 1 s round", d)
		}
		buckets[d/(100*time.Millisecond)]++
	}
	for i, n := range buckets {
		if n < 800 || n > 1200 {
			t.Errorf("%d checks due in the %dth tenth of the interval, want about 1000", n, i+1)
		}
	}
	if len(s.queue) != 10000 {
		t.Errorf("%d checks planned", len(s.queue))
	}
}

// httpAddress is srv's address as a target's, in cluster.
func httpAddress(t testing.TB, srv *httptest.Server, cluster string) Address {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return Address{IP: host, Port: p, Cluster: cluster}
}

// TestSlots: a round's checks start in slotsPerRound bursts spread over the
// interval, not all at once, nor one wake-up per check.
func TestSlots(t *testing.T) {
	const n = 1000
	const interval = 500 * time.Millisecond
	var targets []Target
	for i := range n {
		targets = append(targets, Target{Service: svcA, Address: Address{IP: "192.0.2.1", Port: 80, Cluster: strconv.Itoa(i)},
			Healthy: true})
	}
	st := newStore(targets...)
	var mu sync.Mutex
	var first, last time.Time
	var dials int
	done := make(chan struct{})
	dial := func(context.Context, string, string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		dials++
		now := time.Now()
		if dials == 1 {
			first = now
		}
		if dials == n {
			last = now
			close(done)
		}
		a, b := net.Pipe()
		_ = b.Close()
		return a, nil
	}
	s := build(t, st, Config{Interval: interval, Dial: dial})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	s.startWorkers(ctx, &wg)
	defer func() {
		cancel()
		wg.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	s.runRound(ctx, time.Now(), timer, false) // one round, as the dispatcher runs it
	<-done
	if slots := s.slots.Load(); slots < slotsPerRound*9/10 || slots > slotsPerRound {
		t.Errorf("a round's %d checks started in %d slots, want about %d", n, slots, slotsPerRound)
	}
	mu.Lock()
	span := last.Sub(first)
	mu.Unlock()
	if span < interval*7/10 {
		t.Errorf("a round's checks started within %v, want them spread over the %v interval", span, interval)
	}
}
