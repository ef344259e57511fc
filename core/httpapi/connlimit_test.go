package httpapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/tlsconfig"
	"github.com/sextantd/sextant/core/tlsconfig/tlstest"
)

// keepAlive sends a liveness request on conn and reads its answer, leaving
// the connection open and idle.
func keepAlive(t *testing.T, conn net.Conn, r *bufio.Reader) {
	t.Helper()
	write(t, conn, liveness+"\r\n")
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("liveness: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("liveness: %s (close %v), want a kept-alive 200", resp.Status, resp.Close)
	}
}

// awaitIdle waits until the server has n connections, none in a request.
func awaitIdle(t *testing.T, s *Server, n int) {
	t.Helper()
	eventually(t, "connections are idle", func() bool {
		s.limit.mu.Lock()
		defer s.limit.mu.Unlock()
		for c := range s.limit.conns {
			if c.busy {
				return false
			}
		}
		return len(s.limit.conns) == n
	})
}

// TestMaxConnectionsEvictsTheLongestIdle checks http.max_connections with
// idle keep-alive connections: a new connection is served, in place of the
// one idle longest.
func TestMaxConnectionsEvictsTheLongestIdle(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startLimited(t, Config{MaxConnections: 2, Metrics: reg})
	// The server marks a connection idle just after writing the response.
	oldest := dial(t, s)
	oldestR := bufio.NewReader(oldest)
	keepAlive(t, oldest, oldestR)
	awaitIdle(t, s, 1)
	newer := dial(t, s)
	newerR := bufio.NewReader(newer)
	keepAlive(t, newer, newerR)
	awaitIdle(t, s, 2)

	third := dial(t, s)
	keepAlive(t, third, bufio.NewReader(third))
	if rest, _ := awaitClose(t, oldestR, oldest); rest != "" {
		t.Errorf("the evicted connection read %q", rest)
	}
	keepAlive(t, newer, newerR) // still open
	if got := metrictest.CounterValue(t, s.limit.evicted); got != 1 {
		t.Errorf("%v connections evicted, want 1", got)
	}
	if got := s.limit.open(); got != 2 {
		t.Errorf("%d connections open, want 2", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, name := range []string{"sextant_http_connections_evicted_total", "sextant_http_connections_refused_total",
		"sextant_http_open_connections", "sextant_http_max_connections"} {
		if !names[name] {
			t.Errorf("metric %s is not registered", name)
		}
	}
}

// TestMaxConnectionsKeepsBusyOnes checks that a connection serving a request
// is never closed for a new one: with every place busy, the new connection is
// closed at accept, and counted; once the request ends, its connection can be
// replaced. Over TLS too, where the server's connections are TLS ones.
func TestMaxConnectionsKeepsBusyOnes(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[withTLS], func(t *testing.T) {
			g := newBlockingGatherer()
			cfg := Config{MaxConnections: 1, Gatherer: g}
			var clientTLS *tls.Config
			if withTLS {
				cfg.TLS, clientTLS = tlsConfigs(t)
			}
			s := startLimited(t, cfg)
			release := sync.OnceFunc(func() { close(g.release) })
			t.Cleanup(release) // before the server stops
			// dial connects and sends a request; nil if the server closed
			// the connection first (in the TLS handshake).
			dial := func(request string) net.Conn {
				var conn net.Conn
				var err error
				if withTLS {
					conn, err = tls.Dial("tcp", s.Addr().String(), clientTLS)
				} else {
					conn, err = net.Dial("tcp", s.Addr().String())
				}
				if err != nil {
					return nil
				}
				t.Cleanup(func() { _ = conn.Close() })
				if _, err := io.WriteString(conn, request); err != nil {
					return nil
				}
				return conn
			}

			busy := dial("GET /metrics HTTP/1.1\r\nHost: sextant\r\n\r\n")
			if busy == nil {
				t.Fatal("the first connection was refused")
			}
			recv(t, g.entered)
			if refused := dial(liveness + "\r\n"); refused != nil {
				// Closed with the request unread: EOF or a reset.
				if err := refused.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(refused)
				if ne, ok := errors.AsType[net.Error](err); len(got) > 0 || ok && ne.Timeout() {
					t.Errorf("a connection over the limit read %q (%v)", got, err)
				}
			}
			if got := metrictest.CounterValue(t, s.limit.refused); got != 1 {
				t.Errorf("%v connections refused, want 1", got)
			}

			release()
			resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
			if err != nil {
				t.Fatalf("the busy connection: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("the busy connection got %s", resp.Status)
			}
			awaitIdle(t, s, 1)
			next := dial(liveness + "\r\n")
			if next == nil {
				t.Fatal("a connection in place of an idle one was refused")
			}
			resp, err = http.ReadResponse(bufio.NewReader(next), nil)
			if err != nil {
				t.Fatalf("in place of an idle connection: %v", err)
			}
			resp.Body.Close()
			if got := metrictest.CounterValue(t, s.limit.evicted); got != 1 {
				t.Errorf("%v connections evicted, want 1", got)
			}
		})
	}
}

// tlsConfigs returns a server TLS configuration (HTTP/1.1) and a client's
// that trusts it.
func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "server CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	certs, err := tlsconfig.New(tlsconfig.Config{Files: tlsconfig.Files{CertFile: certFile, KeyFile: keyFile}, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return certs.ServerConfig("http/1.1"), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
}
