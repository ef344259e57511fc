// Package httpv1_test drives the real sextant binary over the HTTP Open API
// with the official Nacos Go SDK v1 (1.1.4, HTTP only), alongside the 2.x SDK
// (gRPC) for what crosses protocols. It must not import Sextant's proto
// package: the 2.x SDK registers the same protobuf message names.
package httpv1_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// awaitTimeout bounds every wait. The v1 SDK polls instance/list every
// cacheMillis (10 s), so what it sees may take that long.
const awaitTimeout = 20 * time.Second

// startServer runs a server whose pushes are fast (merge window 20 ms) and
// whose beat checker runs every 100 ms.
func startServer(t *testing.T) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Options{Env: []string{"SEXTANT_PUSH_DELAY=20ms", "SEXTANT_HEALTH_CHECK_INTERVAL=100ms"}})
}

// serviceName returns a service name unique to the test.
func serviceName(t *testing.T) string {
	return strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
}

// get calls the server's HTTP API and returns the status and body.
func get(t *testing.T, srv *servertest.Server, path string, params url.Values) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + srv.HTTPAddr() + path + "?" + params.Encode())
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// beatGate is a proxy in front of the server that can stop passing beats:
// a client behind it goes silent while it keeps running.
type beatGate struct {
	srv     *httptest.Server
	blocked atomic.Bool
	beats   atomic.Int64 // beats passed
}

func newBeatGate(t *testing.T, target string) *beatGate {
	t.Helper()
	g := &beatGate{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/instance/beat") {
			if g.blocked.Load() {
				http.Error(w, "beats blocked by the test", http.StatusServiceUnavailable)
				return
			}
			g.beats.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *beatGate) addr() string { return g.srv.Listener.Addr().String() }

// eventually polls cond every 50 ms until it holds, failing the test after
// awaitTimeout with what describe says.
func eventually(t *testing.T, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; %s", what, awaitTimeout, describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMain(m *testing.M) { nacostest.Main(m) }
