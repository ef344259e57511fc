package main

import (
	"bytes"
	"encoding/json"
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

func TestMain(m *testing.M) { servertest.Main(m) }

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
		Results []report.Result
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.Server, "sextant ") || len(rep.Results) != 7 {
		t.Errorf("server %q, %d results", rep.Server, len(rep.Results))
	}
	names := map[string]float64{}
	for _, h := range rep.Headlines {
		names[h.Name] = h.Value
	}
	for _, want := range []string{"idle RSS, 2 processes added up", "idle RSS, one process", "registrations/s", "queries/s"} {
		if names[want] <= 0 {
			t.Errorf("headline %q = %v", want, names[want])
		}
	}
	txt, err := os.ReadFile(filepath.Join(dir, "bench.txt"))
	if err != nil || !strings.Contains(string(txt), "registrations/s") || !bytes.Equal(txt, out.Bytes()) {
		t.Errorf("bench.txt (%v) is not what was printed", err)
	}
}
