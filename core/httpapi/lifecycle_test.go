package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

// newClient returns a client without kept-alive connections, so that no
// client goroutine outlives a request.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

type response struct {
	code int
	body string
	err  error
}

func get(c *http.Client, method, url string) response {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return response{err: err}
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(body), err: err}
}

// startServer starts a server on a loopback port of the system's choosing.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s := New(withDefaults(cfg))
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func dialRefused(addr string) bool {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	_ = conn.Close()
	return false
}

// blockingGatherer blocks every Gather until released, so that a /metrics
// request stays in progress as long as the test wants.
type blockingGatherer struct {
	entered chan struct{}
	release chan struct{}
}

func newBlockingGatherer() *blockingGatherer {
	return &blockingGatherer{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *blockingGatherer) Gather() ([]*dto.MetricFamily, error) {
	g.entered <- struct{}{}
	<-g.release
	return prometheus.NewRegistry().Gather()
}

func TestStartStop(t *testing.T) {
	log, out := newLogger()
	s := startServer(t, Config{Logger: log})

	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("Addr() = %T, want *net.TCPAddr", s.Addr())
	}
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) || addr.Port == 0 {
		t.Errorf("Addr() = %v, want 127.0.0.1 and a chosen port", addr)
	}
	assertContains(t, "log", out.String(), "HTTP listening: addr="+addr.String())

	c := newClient()
	base := "http://" + addr.String()
	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string
	}{
		{http.MethodGet, livenessPath, http.StatusOK, "OK"},
		{http.MethodHead, livenessPath, http.StatusOK, ""}, // no body for HEAD
		{http.MethodGet, readinessPath, http.StatusOK, "OK"},
		{http.MethodPost, livenessPath, http.StatusMethodNotAllowed, "Method Not Allowed\n"},
		{http.MethodGet, "/nope", http.StatusNotFound, "404 page not found\n"},
	}
	for _, tt := range tests {
		r := get(c, tt.method, base+tt.path)
		if r.err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, r.err)
		}
		if r.code != tt.wantCode || r.body != tt.wantBody {
			t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, r.code, r.body, tt.wantCode, tt.wantBody)
		}
	}

	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !dialRefused(addr.String()) {
		t.Error("port still accepts connections after Stop")
	}
	// A clean stop is not reported as a failure.
	if l := out.String(); strings.Contains(l, "HTTP server stopped") {
		t.Errorf("clean stop logged as an error:\n%s", l)
	}
	goleak.VerifyNone(t)
}

func TestStartAddrInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	s := New(withDefaults(Config{Addr: taken.Addr().String()}))
	err = s.Start(context.Background())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a taken port = %v, want EADDRINUSE", err)
	}
	if !strings.HasPrefix(err.Error(), "HTTP listener: ") {
		t.Errorf("Start error %q does not say which listener failed", err)
	}
	// Stopping a server that never started returns at once.
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop after failed Start: %v", err)
	}
}

// TestStopWaitsForRequests checks that Stop stops accepting connections at
// once but lets a request in progress finish.
func TestStopWaitsForRequests(t *testing.T) {
	g := newBlockingGatherer()
	s := startServer(t, Config{Gatherer: g})
	addr := s.Addr().String()

	resps := make(chan response, 1)
	go func() { resps <- get(newClient(), http.MethodGet, "http://"+addr+metricsPath) }()
	recv(t, g.entered)

	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	eventually(t, "listener closed", func() bool { return dialRefused(addr) })

	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v with a request in progress", err)
	default:
	}
	close(g.release)

	if r := recv(t, resps); r.err != nil || r.code != http.StatusOK {
		t.Errorf("request in progress during Stop = %d, %v; want 200", r.code, r.err)
	}
	if err := recv(t, stopped); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// TestStopDeadline checks that Stop gives up on requests in progress when
// its context is done: it closes their connections and reports why.
func TestStopDeadline(t *testing.T) {
	g := newBlockingGatherer()
	s := startServer(t, Config{Gatherer: g})
	addr := s.Addr().String()
	defer close(g.release) // let the abandoned handler finish

	resps := make(chan response, 1)
	go func() { resps <- get(newClient(), http.MethodGet, "http://"+addr+metricsPath) }()
	recv(t, g.entered)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(ctx) }()
	if err := recv(t, stopped); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with a done context = %v, want context.Canceled", err)
	}
	// The handler is still blocked, so the client only gets an answer
	// because Stop closed its connection.
	if r := recv(t, resps); r.err == nil {
		t.Errorf("abandoned request got %d %q, want a connection error", r.code, r.body)
	}
	if !dialRefused(addr) {
		t.Error("port still accepts connections after Stop")
	}
}

// TestServeFailureLogged checks that the server reports a listener that
// fails under it, rather than failing silently.
func TestServeFailureLogged(t *testing.T) {
	log, out := newLogger()
	s := startServer(t, Config{Logger: log})
	_ = s.lis.Close()
	eventually(t, "failure logged", func() bool {
		l := out.String()
		return strings.Contains(l, "[ERROR] HTTP server stopped") && strings.Contains(l, "use of closed network connection")
	})
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
}
