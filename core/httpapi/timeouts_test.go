package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// shortLimit is the timeout under test; the others are waitTimeout, so that
// only the one under test can close a connection.
const shortLimit = 200 * time.Millisecond

// startLimited starts a server with cfg's limits, the ones left zero set to
// waitTimeout, and stops it when the test ends.
func startLimited(t *testing.T, cfg Config) *Server {
	t.Helper()
	for _, d := range []*time.Duration{&cfg.IdleTimeout, &cfg.ReadTimeout, &cfg.WriteTimeout} {
		if *d == 0 {
			*d = waitTimeout
		}
	}
	s := startServer(t, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

// dial opens a raw connection to s, closed when the test ends.
func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func write(t *testing.T, conn net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(conn, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// awaitClose reads conn until the server closes it, failing the test if it
// has not within waitTimeout, and returns what was read and how long after
// the call the close came.
func awaitClose(t *testing.T, r io.Reader, conn net.Conn) (string, time.Duration) {
	t.Helper()
	began := time.Now()
	if err := conn.SetReadDeadline(began.Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r) // nil at EOF
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v (read %q)", waitTimeout, b)
	}
	if err != nil {
		t.Fatalf("read: %v (after %q)", err, b)
	}
	return string(b), time.Since(began)
}

const liveness = "GET " + livenessPath + " HTTP/1.1\r\nHost: sextant\r\n"

func TestIdleKeepAliveConnectionIsClosed(t *testing.T) {
	s := startLimited(t, Config{IdleTimeout: shortLimit})
	conn := dial(t, s)
	r := bufio.NewReader(conn)
	// Two requests on the connection: it is kept alive between them...
	for range 2 {
		write(t, conn, liveness+"\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || resp.Close || string(body) != "OK" {
			t.Fatalf("response %d %q (close %v), %v; want a kept-alive 200 OK", resp.StatusCode, body, resp.Close, err)
		}
	}
	// ...and closed once idle for the timeout.
	rest, after := awaitClose(t, r, conn)
	if rest != "" {
		t.Errorf("read %q after the response, want nothing", rest)
	}
	// The server's idle clock started before ours; it cannot have stopped
	// much before the timeout.
	if after < shortLimit/2 {
		t.Errorf("closed %v after the response, before the idle timeout of %v", after, shortLimit)
	}
}

func TestSlowRequestIsCutOff(t *testing.T) {
	tests := []struct {
		name string
		sent string // and then nothing
	}{
		{"nothing", ""},
		{"half the headers", liveness},
		{"half the body", "POST " + livenessPath + " HTTP/1.1\r\nHost: sextant\r\nContent-Length: 1000\r\n\r\n0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startLimited(t, Config{ReadTimeout: shortLimit})
			conn := dial(t, s)
			write(t, conn, tt.sent)
			got, after := awaitClose(t, conn, conn)
			// An unfinished header gets no answer; an unfinished body the
			// handler's (POST is not allowed here) on a closing connection.
			if strings.Contains(tt.sent, "\r\n\r\n") {
				if !strings.HasPrefix(got, "HTTP/1.1 405 ") || !strings.Contains(got, "Connection: close\r\n") {
					t.Errorf("got %q, want 405 and Connection: close", got)
				}
			} else if got != "" {
				t.Errorf("got %q, want the connection closed without a response", got)
			}
			if after < shortLimit/2 {
				t.Errorf("closed after %v, before the read timeout of %v", after, shortLimit)
			}
		})
	}
}

func TestOversizedHeaderGets431(t *testing.T) {
	const limit = 4 << 10 // Go accepts 4 KiB more than the limit
	s := startLimited(t, Config{MaxHeaderBytes: limit})
	tests := []struct {
		size int // of one header's value
		want int
	}{
		{limit, http.StatusOK},
		{4 * limit, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		conn := dial(t, s)
		write(t, conn, liveness+"X-Big: "+strings.Repeat("x", tt.size)+"\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%d-byte header: %v", tt.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%d-byte header: status %d, want %d", tt.size, resp.StatusCode, tt.want)
		}
	}
}

func TestLimitsReachTheHTTPServer(t *testing.T) {
	s := New(withDefaults(Config{}))
	if got := s.http; got.IdleTimeout != DefaultIdleTimeout || got.ReadTimeout != DefaultReadTimeout ||
		got.WriteTimeout != DefaultWriteTimeout || got.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Errorf("zero limits: idle %v, read %v, write %v, header %d; want the defaults",
			got.IdleTimeout, got.ReadTimeout, got.WriteTimeout, got.MaxHeaderBytes)
	}
	s = New(withDefaults(Config{IdleTimeout: 1, ReadTimeout: 2, WriteTimeout: 3, MaxHeaderBytes: 4}))
	if got := s.http; got.IdleTimeout != 1 || got.ReadTimeout != 2 || got.WriteTimeout != 3 || got.MaxHeaderBytes != 4 {
		t.Errorf("limits set: idle %v, read %v, write %v, header %d; want 1ns, 2ns, 3ns, 4",
			got.IdleTimeout, got.ReadTimeout, got.WriteTimeout, got.MaxHeaderBytes)
	}
}
