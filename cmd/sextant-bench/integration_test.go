package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
)

func TestMain(m *testing.M) {
	// The suite serves its ceiling as "<this program> serve-ceiling": in
	// these tests, this test binary.
	if len(os.Args) > 1 && os.Args[1] == "serve-ceiling" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	servertest.Main(m)
}

// bench runs the tool with args and --json against srv and decodes its result.
func bench(t *testing.T, srv *servertest.Server, args ...string) *report.Result {
	t.Helper()
	args = append(args, "--target", srv.HTTPAddr(), "--json", "--quiet", "--setup-timeout", "20s", "--grace", "5s")
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	var res report.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("sextant-bench %s: exit %d, output is not a result: %v\n%s\n%s", strings.Join(args, " "), code, err, out.String(), errOut.String())
	}
	if code != 0 || len(res.Errors) > 0 {
		t.Errorf("sextant-bench %s: exit %d, errors %v, notes %v", args[0], code, res.Errors, res.Notes)
	}
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("%s: check %q failed: %s", args[0], c.Name, c.Detail)
		}
	}
	if res.Process == nil || res.Process.PID != srv.PID() || res.Process.After.RSSBytes <= 0 || res.Process.After.CPUSeconds < res.Process.Before.CPUSeconds {
		t.Errorf("%s: server process %+v, want samples of pid %d", args[0], res.Process, srv.PID())
	}
	if res.Generator == nil || res.Generator.PID != os.Getpid() {
		t.Errorf("%s: load generator process %+v", args[0], res.Generator)
	}
	if len(res.Targets) != 1 || res.Targets[0].Version == "" || res.Params.Get("seed") == nil {
		t.Errorf("%s: targets %+v, params %v", args[0], res.Targets, res.Params)
	}
	for _, s := range res.Series {
		if l := s.Latency; l != nil && !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("%s: series %s has unordered latencies %+v", args[0], s.Name, l)
		}
	}
	return &res
}

// series returns the named series, failing the test when it is missing.
func series(t *testing.T, r *report.Result, name string) report.Series {
	t.Helper()
	s := r.SeriesNamed(name)
	if s == nil {
		t.Fatalf("%s: no series %q", r.Scenario, name)
	}
	return *s
}

func figure(t *testing.T, r *report.Result, name string) float64 {
	t.Helper()
	v, ok := r.FigureNamed(name)
	if !ok {
		t.Fatalf("%s: no figure %q", r.Scenario, name)
	}
	return v
}

// awaitMetric waits until the server's series has the value want.
func awaitMetric(t *testing.T, srv *servertest.Server, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := srv.Metric(t, series); got != want; got = srv.Metric(t, series) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", series, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// persistent-register on a server of its own: its instances outlive the run,
// and the other scenarios count the server's instances.
func TestPersistentRegisterAgainstSextant(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	r := bench(t, srv, "persistent-register", "--connections", "4", "--services", "5", "--count", "50")
	if reg := series(t, r, "register"); reg.OK != 50 || reg.Rate <= 0 || reg.Latency == nil {
		t.Errorf("register %+v, want 50 persistent registrations at a rate", reg)
	}
	// Each was a new instance written through the Raft store, none tied to a connection.
	awaitMetric(t, srv, "sextant_instances", 50)
}

func TestScenariosAgainstSextant(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Env: []string{"SEXTANT_PUSH_DELAY=20ms"}})

	t.Run("register", func(t *testing.T) {
		r := bench(t, srv, "register", "--connections", "20", "--instances", "5", "--services", "10")
		if reg := series(t, r, "register"); reg.OK != 100 || reg.Rate <= 0 || r.MeasuredSeconds <= 0 {
			t.Errorf("register %+v over %vs, want 100 registrations at a rate", reg, r.MeasuredSeconds)
		}
		if held := figure(t, r, "instances held"); held != 100 {
			t.Errorf("%v instances held, want 100", held)
		}
		if len(r.Checks) != 1 {
			t.Errorf("checks %+v, want the registry check", r.Checks)
		}
	})

	t.Run("register --hold keeps the instances", func(t *testing.T) {
		const hold = 1500 * time.Millisecond
		start := time.Now()
		done := make(chan *report.Result, 1)
		go func() {
			var r *report.Result
			defer func() { done <- r }() // also when bench fails the test
			r = bench(t, srv, "register", "--connections", "4", "--instances", "5", "--services", "5", "--hold", hold.String())
		}()
		awaitMetric(t, srv, "sextant_instances", 20)
		r := <-done
		if r == nil {
			t.FailNow()
		}
		if took := time.Since(start); took < hold || r.Params.Get("hold") != hold.String() {
			t.Errorf("the run took %s with params %v, want at least the hold of %s", took, r.Params, hold)
		}
		awaitMetric(t, srv, "sextant_instances", 0)
	})

	t.Run("query", func(t *testing.T) {
		r := bench(t, srv, "query", "--duration", "1s", "--connections", "4", "--services", "10", "--instances", "3", "--verify-every", "1")
		if q := series(t, r, "query"); q.OK == 0 || q.Rate <= 0 {
			t.Errorf("query %+v", q)
		}
		if p := series(t, r, "populate"); p.OK != 30 {
			t.Errorf("populate %+v, want 30 registrations", p)
		}
	})

	t.Run("push", func(t *testing.T) {
		r := bench(t, srv, "push", "--subscribers", "20", "--services", "2", "--merge-window", "20ms", "--count", "3")
		if p := series(t, r, "push"); p.OK != 60 || p.Latency == nil {
			t.Errorf("push %+v, want 3 rounds × 20 subscribers", p)
		}
		if f := series(t, r, "first push"); f.OK != 20 {
			t.Errorf("first push %+v", f)
		}
		if l := series(t, r, "last subscriber"); l.OK != 3 || l.Latency.Max < series(t, r, "push").Latency.Max {
			t.Errorf("last subscriber %+v", l)
		}
		if got := figure(t, r, "push p99 beyond merge window"); math.Abs(got-(series(t, r, "push").Latency.P99-20)) > 1e-6 {
			t.Errorf("p99 beyond the window %v, p99 %v", got, series(t, r, "push").Latency.P99)
		}
		if n := figure(t, r, "pushes received"); n < 80 {
			t.Errorf("%v pushes received, want at least 80", n)
		}
	})

	t.Run("churn", func(t *testing.T) {
		r := bench(t, srv, "churn", "--duration", "1s", "--providers", "10", "--subscribers", "3", "--services", "2")
		if c := series(t, r, "change"); c.OK == 0 {
			t.Errorf("change %+v", c)
		}
		if len(r.Checks) != 2 {
			t.Errorf("checks %+v, want the registry and the subscribers' views", r.Checks)
		}
		if figure(t, r, "pushes received (churn and settling)") == 0 {
			t.Error("no push received")
		}
	})

	t.Run("visibility", func(t *testing.T) {
		r := bench(t, srv, "visibility", "--count", "3", "--merge-window", "20ms")
		if s := series(t, r, "visible same node"); s.OK != 3 {
			t.Errorf("visible same node %+v", s)
		}
	})

	t.Run("http-register", func(t *testing.T) {
		r := bench(t, srv, "http-register", "--clients", "20", "--instances", "5", "--services", "10", "--concurrency", "8")
		if reg := series(t, r, "register"); reg.OK != 100 || reg.Rate <= 0 || reg.Latency == nil {
			t.Errorf("register %+v, want 100 registrations at a rate", reg)
		}
		if c := series(t, r, "connect"); c.OK != 8 {
			t.Errorf("connect %+v, want the 8 keep-alive connections", c)
		}
		if held := figure(t, r, "instances held"); held != 100 {
			t.Errorf("%v instances held, want 100", held)
		}
		if len(r.Checks) != 1 || figure(t, r, "server CPU per register") <= 0 {
			t.Errorf("checks %+v, figures %+v", r.Checks, r.Figures)
		}
		// Teardown deregistered them (the server has no connection whose
		// end would).
		if d := series(t, r, "deregister"); d.OK != 100 {
			t.Errorf("deregister %+v", d)
		}
		awaitMetric(t, srv, "sextant_instances", 0)
	})

	t.Run("http-register, rounds beyond the first change the weight", func(t *testing.T) {
		r := bench(t, srv, "http-register", "--clients", "4", "--instances", "2", "--services", "2", "--count", "20")
		if reg := series(t, r, "register"); reg.OK != 20 {
			t.Errorf("register %+v", reg)
		}
		if held := figure(t, r, "instances held"); held != 8 {
			t.Errorf("%v instances held, want 8", held)
		}
		awaitMetric(t, srv, "sextant_instances", 0)
	})

	for _, writer := range []string{"grpc", "http"} {
		t.Run("udp-push, changes over "+writer, func(t *testing.T) {
			r := bench(t, srv, "udp-push", "--subscribers", "20", "--merge-window", "20ms", "--count", "3", "--writer", writer, "--repoll", "500ms")
			p := series(t, r, "push")
			if p.OK != 60 || p.Latency == nil || len(p.Errors) != 0 {
				t.Errorf("push %+v, want 3 rounds × 20 subscribers", p)
			}
			if f := series(t, r, "first push"); f.OK != 20 {
				t.Errorf("first push %+v", f)
			}
			if l := series(t, r, "last subscriber"); l.OK != 3 || l.Latency.Max < p.Latency.Max {
				t.Errorf("last subscriber %+v", l)
			}
			// Computed from each latency less the window: within the
			// histogram's error of the p99 less the window.
			if got := figure(t, r, "push p99 beyond merge window"); got < 0 || math.Abs(got-(p.Latency.P99-20)) > 0.01*p.Latency.P99+0.5 {
				t.Errorf("p99 beyond the window %v, p99 %v", got, p.Latency.P99)
			}
			// Every subscriber polled, stayed subscribed by polling again, and
			// acknowledged each datagram: one push per round and subscriber,
			// each acknowledged.
			if polled := figure(t, r, "subscribers polled"); polled != 20 {
				t.Errorf("%v subscribers polled", polled)
			}
			if rp := series(t, r, "repoll"); rp.OK == 0 || len(rp.Errors) != 0 {
				t.Errorf("repoll %+v", rp)
			}
			d, acks := figure(t, r, "datagrams received"), figure(t, r, "acks sent")
			if d < 80 || acks != d || figure(t, r, "lost (a subscriber not pushed a round within merge window + timeout)") != 0 {
				t.Errorf("%v datagrams, %v acks; figures %+v", d, acks, r.Figures)
			}
			if figure(t, r, "datagrams/s in the measured phase") <= 0 || figure(t, r, "server CPU per push (per subscriber pushed)") <= 0 {
				t.Errorf("figures %+v", r.Figures)
			}
			if len(r.Checks) != 2 {
				t.Errorf("checks %+v, want the datagrams' and the services' names", r.Checks)
			}
			if writer == "http" {
				if d := series(t, r, "deregister"); d.OK != 1 {
					t.Errorf("deregister %+v", d)
				}
			}
		})
	}

	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("beats, full beats %v", full), func(t *testing.T) {
			args := []string{"beats", "--clients", "200", "--services", "4", "--interval", "200ms", "--duration", "1s"}
			if full {
				args = append(args, "--full-beats")
			}
			r := bench(t, srv, args...)
			if reg := series(t, r, "register"); reg.OK != 200 {
				t.Errorf("register %+v, want each client registered", reg)
			}
			// 1,000 beats/s offered for a second; the race detector slows both sides.
			b := series(t, r, "beat")
			if b.OK < 500 || b.Rate <= 0 || b.Latency == nil {
				t.Errorf("beat %+v", b)
			}
			if got := figure(t, r, "offered beats/s"); got != 1000 {
				t.Errorf("offered %v beats/s, want 1000", got)
			}
			if got := figure(t, r, "beats answered 10200"); got != 100 {
				t.Errorf("%v%% of the beats answered 10200", got)
			}
			// Beats are sent on a schedule, not after the previous answer: a
			// client whose answer enabling light beats is still on its way
			// (the race detector and a loaded CI) beats in full once more.
			light := figure(t, r, "light beats (without the beat JSON)")
			if full && light != 0 || !full && light < 95 {
				t.Errorf("%v%% light beats with --full-beats=%v", light, full)
			}
			if figure(t, r, "instances kept alive") != 200 || figure(t, r, "server CPU per beat") <= 0 || len(r.Checks) != 1 {
				t.Errorf("figures %+v, checks %+v", r.Figures, r.Checks)
			}
			if s := series(t, r, "re-register"); s.OK != 0 {
				t.Errorf("re-register %+v: the server lost instances", s)
			}
			awaitMetric(t, srv, "sextant_instances", 0)
		})
	}
}

func TestSuiteSmoke(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if code := run([]string{"suite", "--server", servertest.Binary(t), "--out", dir, "--profile", "smoke", "--quiet"}, &out, io.Discard); code != 0 {
		t.Fatalf("suite exit %d:\n%s", code, out.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Server    string
		Headlines []struct {
			Name  string
			Value float64
		}
		Ceiling []struct {
			Scenario    string
			SextantRate float64 `json:"sextant_per_s"`
			CeilingRate float64 `json:"ceiling_per_s"`
			Throughput  float64 `json:"throughput_ratio"`
		}
		Results []report.Result
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.Server, "sextant ") || len(rep.Results) != 12 {
		t.Errorf("server %q, %d results", rep.Server, len(rep.Results))
	}
	names := map[string]float64{}
	for _, h := range rep.Headlines {
		names[h.Name] = h.Value
	}
	// By default the server runs its pushrpc and pushudp plugins as
	// processes of their own.
	// register and query ran against the ceiling too, which is not in
	// Sextant's figures.
	if len(rep.Ceiling) != 2 || rep.Ceiling[0].Scenario != "register" || rep.Ceiling[1].Scenario != "query" {
		t.Errorf("ceiling ratios %+v", rep.Ceiling)
	}
	for _, r := range rep.Ceiling {
		if r.SextantRate <= 0 || r.CeilingRate <= 0 || r.Throughput != r.SextantRate/r.CeilingRate {
			t.Errorf("ratio %+v", r)
		}
	}
	for _, want := range []string{"idle RSS, 3 processes added up", "idle RSS, one process", "registrations/s", "queries/s",
		"HTTP registrations/s", "beats/s (1000 offered)", "server CPU per beat",
		"register throughput, Sextant ÷ ceiling", "query throughput, Sextant ÷ ceiling"} {
		if names[want] <= 0 {
			t.Errorf("headline %q = %v", want, names[want])
		}
	}
	if _, ok := names["UDP push p99 beyond merge window (10 subscribers, window 20ms)"]; !ok {
		t.Errorf("no UDP push headline in %v", names)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "bench.txt"))
	if err != nil || !strings.Contains(string(txt), "registrations/s") || !strings.Contains(string(txt), "Sextant ÷ ceiling") || !bytes.Equal(txt, out.Bytes()) {
		t.Errorf("bench.txt (%v) is not what was printed", err)
	}
}
