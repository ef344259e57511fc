package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sextantd/sextant/core/cluster"
)

const (
	livenessPath  = "/nacos/v1/console/health/liveness"
	readinessPath = "/nacos/v1/console/health/readiness"
	statePath     = "/nacos/v1/console/server/state"
	nodesPath     = "/nacos/v1/core/cluster/nodes"
	metricsPath   = "/metrics"
)

func TestLiveness(t *testing.T) {
	for _, ready := range []bool{true, false} {
		h := handler(Config{Ready: func() bool { return ready }})
		rec := do(h, http.MethodGet, livenessPath)
		// Liveness does not depend on readiness.
		assertResponse(t, rec, http.StatusOK, "", "OK")
	}
}

func TestReadiness(t *testing.T) {
	var ready atomic.Bool
	var calls atomic.Int32
	h := handler(Config{Ready: func() bool {
		calls.Add(1)
		return ready.Load()
	}})

	steps := []struct {
		ready    bool
		wantCode int
		wantBody string
	}{
		{false, http.StatusServiceUnavailable, "server is not ready\n"},
		{false, http.StatusServiceUnavailable, "server is not ready\n"},
		{true, http.StatusOK, "OK"},
		{true, http.StatusOK, "OK"},
		// Readiness is asked on every request, so it can go back.
		{false, http.StatusServiceUnavailable, "server is not ready\n"},
	}
	for i, s := range steps {
		ready.Store(s.ready)
		rec := do(h, http.MethodGet, readinessPath)
		assertResponse(t, rec, s.wantCode, "", s.wantBody)
		if got := calls.Load(); got != int32(i+1) {
			t.Errorf("step %d: Ready called %d times in all, want %d", i, got, i+1)
		}
	}
}

func TestServerState(t *testing.T) {
	member := func(addr string, state cluster.State, self bool) cluster.Member {
		return cluster.Member{Address: addr, State: state, Self: self}
	}
	tests := []struct {
		name    string
		version string
		members []cluster.Member
		want    string
	}{
		{
			name:    "no members",
			version: "1.2.3",
			want:    `{"standalone_mode":"standalone","version":"1.2.3"}` + "\n",
		},
		{
			name:    "only self",
			version: "1.2.3",
			members: []cluster.Member{member("10.0.0.1:8848", cluster.Up, true)},
			want:    `{"standalone_mode":"standalone","version":"1.2.3"}` + "\n",
		},
		{
			name:    "two members",
			version: "2.0.0-rc1",
			members: []cluster.Member{
				member("10.0.0.1:8848", cluster.Up, true),
				member("10.0.0.2:8848", cluster.Up, false),
			},
			want: `{"standalone_mode":"cluster","version":"2.0.0-rc1"}` + "\n",
		},
		{
			name:    "peers down still make a cluster",
			version: "1.2.3",
			members: []cluster.Member{
				member("10.0.0.1:8848", cluster.Up, true),
				member("10.0.0.2:8848", cluster.Down, false),
				member("10.0.0.3:8848", cluster.Suspicious, false),
			},
			want: `{"standalone_mode":"cluster","version":"1.2.3"}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := handler(Config{
				Version: tt.version,
				Members: func() []cluster.Member { return tt.members },
			})
			rec := do(h, http.MethodGet, statePath)
			assertResponse(t, rec, http.StatusOK, "application/json", tt.want)
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sextant_httpapi_test_total",
		Help: "A counter the test owns.",
	})
	reg.MustRegister(counter)
	h := handler(Config{Gatherer: reg})

	for _, n := range []int{3, 4} {
		counter.Add(float64(n) - testCounterValue(t, counter))
		rec := do(h, http.MethodGet, metricsPath)
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200 (body %.200q)", rec.Code, rec.Body.String())
		}
		body := rec.Body.String()
		assertContains(t, "metrics", body, "# HELP sextant_httpapi_test_total A counter the test owns.\n")
		assertContains(t, "metrics", body, "# TYPE sextant_httpapi_test_total counter\n")
		// The value is gathered on each request, not when the server is built.
		assertContains(t, "metrics", body, "\nsextant_httpapi_test_total "+strconv.Itoa(n)+"\n")
	}
}

func testCounterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMetricsGathererError(t *testing.T) {
	h := handler(Config{Gatherer: prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return nil, errors.New("gather exploded")
	})})
	rec := do(h, http.MethodGet, metricsPath)
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
	assertContains(t, "body", rec.Body.String(), "gather exploded")
}

func TestPprof(t *testing.T) {
	type check struct {
		path string
		// cancel serves the request with its context already done, so that
		// the profile and trace endpoints return at once.
		cancel   bool
		wantBody func(string) bool
		wantDisp string // Content-Disposition
	}
	contains := func(s string) func(string) bool {
		return func(body string) bool { return strings.Contains(body, s) }
	}
	nonEmpty := func(body string) bool { return body != "" }
	checks := []check{
		{path: "/debug/pprof/", wantBody: contains("goroutine")},
		{path: "/debug/pprof/goroutine?debug=1", wantBody: contains("goroutine profile:")},
		{path: "/debug/pprof/heap?debug=1", wantBody: contains("heap profile:")},
		{path: "/debug/pprof/cmdline", wantBody: func(body string) bool { return body == strings.Join(os.Args, "\x00") }},
		{path: "/debug/pprof/symbol", wantBody: contains("num_symbols: 1")},
		{path: "/debug/pprof/profile?seconds=1", cancel: true, wantBody: nonEmpty, wantDisp: `attachment; filename="profile"`},
		{path: "/debug/pprof/trace?seconds=1", cancel: true, wantBody: nonEmpty, wantDisp: `attachment; filename="trace"`},
	}
	for _, enabled := range []bool{true, false} {
		h := handler(Config{Pprof: enabled})
		for _, c := range checks {
			name := "disabled"
			if enabled {
				name = "enabled"
			}
			t.Run(name+c.path, func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, c.path, nil)
				if c.cancel {
					ctx, cancel := context.WithCancel(context.Background())
					cancel()
					req = req.WithContext(ctx)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if !enabled {
					assertResponse(t, rec, http.StatusNotFound, "", "404 page not found\n")
					return
				}
				if rec.Code != http.StatusOK {
					t.Fatalf("status = %d, want 200 (body %.200q)", rec.Code, rec.Body.String())
				}
				if !c.wantBody(rec.Body.String()) {
					t.Errorf("unexpected body %.200q", rec.Body.String())
				}
				if got := rec.Header().Get("Content-Disposition"); got != c.wantDisp {
					t.Errorf("Content-Disposition = %q, want %q", got, c.wantDisp)
				}
			})
		}
	}
}

// TestUnknownPaths: paths outside /nacos/ and the console get 404; the
// /nacos/ paths no endpoint serves get 501 (fallback.go).
func TestUnknownPaths(t *testing.T) {
	paths := map[string]int{
		"/":                        http.StatusOK,    // the console
		"/nacos":                   http.StatusFound, // to the console
		"/console/nope.js":         http.StatusNotFound,
		"/favicon.ico":             http.StatusNotFound,
		"/nacos/v1/console/health": http.StatusNotImplemented,
		"/nacos/v1/console/health/liveness/extra": http.StatusNotImplemented,
		"/nacos/v1/core/cluster/nodes/":           http.StatusNotImplemented,
		"/nacos/v1/ns/instance":                   http.StatusNotImplemented, // no registry
		"/nacos/v2/console/health/liveness":       http.StatusNotImplemented,
		"/metrics/extra":                          http.StatusNotFound,
		"/debug/vars":                             http.StatusNotFound,
	}
	for _, pprofOn := range []bool{false, true} {
		h := handler(Config{Pprof: pprofOn})
		for p, want := range paths {
			rec := do(h, http.MethodGet, p)
			if rec.Code != want {
				t.Errorf("pprof=%v GET %s: status = %d, want %d", pprofOn, p, rec.Code, want)
			}
		}
	}
}

func TestMethods(t *testing.T) {
	paths := []string{livenessPath, readinessPath, statePath, nodesPath, metricsPath}
	tests := []struct {
		method    string
		wantCode  int
		wantAllow string
	}{
		{http.MethodGet, http.StatusOK, ""},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPut, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPatch, http.StatusMethodNotAllowed, "GET, HEAD"},
	}
	h := handler(Config{})
	for _, tt := range tests {
		for _, p := range paths {
			rec := do(h, tt.method, p)
			if rec.Code != tt.wantCode {
				t.Errorf("%s %s: status = %d, want %d", tt.method, p, rec.Code, tt.wantCode)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("%s %s: Allow = %q, want %q", tt.method, p, got, tt.wantAllow)
			}
		}
	}
}
