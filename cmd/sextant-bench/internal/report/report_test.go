package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
)

func sample() *Result {
	s := stats.NewSeries("register")
	for i := 1; i <= 100; i++ {
		s.OK(time.Duration(i) * time.Millisecond)
	}
	s.FailN("timeout", 3)
	r := &Result{
		Scenario: "register",
		Tool:     "sextant-bench test",
		Started:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Params:   Params{{"connections", 100}, {"duration", 30 * time.Second}, {"prefix", ""}},
		Targets:  []Target{{HTTP: "127.0.0.1:8848", GRPC: "127.0.0.1:9848", Version: "unknown"}},
		Series:   []Series{FromSeries(s, 2*time.Second), FromSeries(stats.NewSeries("connect"), 0)},
		Figures:  []Figure{{"instances held", 12345, "instances"}, {"push p99 beyond merge window", 3.14159, "ms"}},
		Checks:   []Check{{"registry holds everything", false, "1 service differs"}},
		Process:  &Process{PID: 7, Before: Sample{RSSBytes: 10 << 20, CPUSeconds: 1}, After: Sample{RSSBytes: 20 << 20, CPUSeconds: 3.5}},
		Notes:    []string{"a note"},
	}
	r.ElapsedSeconds, r.MeasuredSeconds = 3, 2
	r.TotalErrors()
	return r
}

func TestFromSeries(t *testing.T) {
	s := sample().Series[0]
	if s.OK != 100 || s.Errors["timeout"] != 3 || s.Rate != 50 {
		t.Errorf("series %+v", s)
	}
	if l := s.Latency; l == nil || l.P50 < 49.6 || l.P50 > 50.4 || l.Max != 100 || l.Min != 1 {
		t.Errorf("latency %+v", s.Latency)
	}
	if c := sample().Series[1]; c.Latency != nil || c.Rate != 0 {
		t.Errorf("an empty, unrated series has %+v", c)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sample()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !regexp.MustCompile(`register\s+100\s+3\s+50\.0\s+1\.00\s+50\.\d\d\s`).MatchString(out) {
		t.Errorf("no register row with 100 ok, 3 errors, 50/s, min 1 ms and p50 50 ms:\n%s", out)
	}
	for _, want := range []string{
		"== register  (sextant-bench test, started 2026-01-02T03:04:05Z)",
		"target   127.0.0.1:8848  (gRPC 127.0.0.1:9848, version unknown)",
		`params   connections=100 duration=30s prefix=""`,
		"2.00s measured, 3.00s in all",
		"rate/s",
		"12,345 instances",
		"3.14 ms",
		"FAIL  registry holds everything: 1 service differs",
		"register: timeout",
		"RSS  10.0 MiB -> 20.0 MiB",
		"CPU  1.00s -> 3.50s (2.50s used)",
		"note: a note",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestJSONKeepsParameterOrderAndRoundTrips(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sample()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"params": {
    "connections": 100,
    "duration": "30s",
    "prefix": ""
  }`) {
		t.Errorf("params not in order:\n%s", b.String())
	}
	var back Result
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Params.Get("duration") != "30s" || back.Params[0].Name != "connections" || back.Params.Get("missing") != nil {
		t.Errorf("params back: %+v", back.Params)
	}
	if back.Errors["register: timeout"] != 3 || back.SeriesNamed("register").Latency.Max != 100 {
		t.Errorf("result back: %+v", back)
	}
	if v, ok := back.FigureNamed("instances held"); !ok || v != 12345 {
		t.Errorf("figure back: %v %v", v, ok)
	}
	b.Reset()
	if err := WriteJSON(&b, sample(), sample()); err != nil {
		t.Fatal(err)
	}
	var many []Result
	if err := json.Unmarshal(b.Bytes(), &many); err != nil || len(many) != 2 {
		t.Errorf("two results: %d, %v", len(many), err)
	}
}

func TestFailed(t *testing.T) {
	r := sample()
	if !r.Failed() {
		t.Error("a failed check does not fail the result")
	}
	r.Checks[0].OK = true
	if r.Failed() {
		t.Error("a result with successes and passing checks failed")
	}
	r.Primary = "register"
	if r.Failed() {
		t.Error("a result whose primary series had successes failed")
	}
	r.Series = []Series{{Name: "connect", OK: 3}, {Name: "register", Errors: map[string]int64{"refused (error 503)": 3}}}
	if !r.Failed() {
		t.Error("a result whose primary series had no success did not fail")
	}
	r.Series = nil
	if !r.Failed() {
		t.Error("a result without its primary series did not fail")
	}
}

func TestThousands(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		d    int
		want string
	}{{0, 0, "0"}, {999, 0, "999"}, {1000, 0, "1,000"}, {1234567.891, 1, "1,234,567.9"}, {-12345, 0, "-12,345"}} {
		if got := thousands(tc.v, tc.d); got != tc.want {
			t.Errorf("thousands(%v, %d) = %q, want %q", tc.v, tc.d, got, tc.want)
		}
	}
}
