package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/cluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen promptly.
const waitTimeout = 5 * time.Second

// recv returns the next value of ch, failing the test if none comes in time.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %T", *new(T))
		panic("unreachable")
	}
}

// eventually polls cond until it holds, failing the test if it does not in time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in time: %s", what)
		}
		runtime.Gosched()
	}
}

// logBuffer is a log output the test can read while the server writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (hclog.Logger, *logBuffer) {
	out := &logBuffer{}
	return hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Debug}), out
}

// withDefaults fills in whatever cfg leaves out so that New can run.
func withDefaults(cfg Config) Config {
	if cfg.Version == "" {
		cfg.Version = "9.9.9-test"
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.Members == nil {
		cfg.Members = func() []cluster.Member { return nil }
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return cfg
}

// handler returns the handler New builds, for use without a listener.
func handler(cfg Config) http.Handler {
	return New(withDefaults(cfg)).http.Handler
}

// do serves one request on h and returns the recorded response.
func do(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func assertResponse(t *testing.T, rec *httptest.ResponseRecorder, code int, contentType, body string) {
	t.Helper()
	if rec.Code != code {
		t.Errorf("status = %d, want %d (body %.200q)", rec.Code, code, rec.Body.String())
	}
	if got := rec.Header().Get("Content-Type"); contentType != "" && got != contentType {
		t.Errorf("Content-Type = %q, want %q", got, contentType)
	}
	if got := rec.Body.String(); got != body {
		t.Errorf("body = %.200q, want %q", got, body)
	}
}

func assertContains(t *testing.T, what, s, substr string) {
	t.Helper()
	if !strings.Contains(s, substr) {
		t.Errorf("%s does not contain %q:\n%.2000s", what, substr, s)
	}
}
