package wire_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/cmd/internal/sextantproc"
)

// startWithOpenFiles runs a server whose open-file limit, soft and hard, is
// nofile: a shell script sets it and execs the binary, so the test's own
// limit is left alone.
func startWithOpenFiles(t *testing.T, nofile int, env ...string) *servertest.Server {
	t.Helper()
	bin := servertest.Binary(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "sextant-nofile")
	body := fmt.Sprintf("#!/bin/sh\nulimit -n %d || exit 1\nexec '%s' \"$@\"\n", nofile, bin)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	p, err := sextantproc.Start(script, sextantproc.Options{DataDir: dataDir, Env: append([]string{"SEXTANT_PUSH_DELAY=20ms"}, env...)})
	if err != nil {
		t.Fatalf("starting sextant with %d open files: %v", nofile, err)
	}
	s := &servertest.Server{Process: p, DataDir: dataDir}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("server did not stop cleanly: %v\n%s", err, s.Logs())
		}
	})
	return s
}

// probeHealth asks for liveness and readiness n times each, on a new
// connection every time (a prober's own, needing a descriptor of the
// server), and fails the test unless every answer is 200 within a second.
// It stops at the third failure.
func probeHealth(t *testing.T, srv *servertest.Server, n int) {
	t.Helper()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	for i := range n {
		for _, path := range []string{"liveness", "readiness"} {
			resp, err := client.Get("http://" + srv.HTTPAddr() + "/nacos/v1/console/health/" + path)
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("probe %d of %s: %v", i, path, statusOrErr(resp, err))
				if failed++; failed == 3 {
					return
				}
			}
		}
	}
}

func statusOrErr(resp *http.Response, err error) any {
	if err != nil {
		return err
	}
	return resp.Status
}

// idleHTTP opens n HTTP/1.1 connections that each make one keep-alive
// request and then stay open, idle; it returns how many got an answer. They
// are closed when the test ends.
func idleHTTP(t *testing.T, srv *servertest.Server, n int) int {
	t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		conns    []net.Conn
		answered int
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	sem := make(chan struct{}, 50)
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := net.DialTimeout("tcp", srv.HTTPAddr(), 2*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("GET /nacos/v1/console/health/liveness HTTP/1.1\r\nHost: sextant\r\n\r\n")); err != nil {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return
			}
			resp.Body.Close()
			_ = c.SetDeadline(time.Time{})
			mu.Lock()
			answered++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return answered
}

// TestOpenFileLimit runs the server with 400 open files, so that the client
// gRPC port takes 200 connections (remote.max_connections derived from the
// limit) and the HTTP port 100 (http.max_connections, half of what is left).
// With the gRPC port full, and then 1000 idle keep-alive connections on the
// HTTP port as well, liveness and readiness keep answering on new
// connections and the gRPC connections keep working.
func TestOpenFileLimit(t *testing.T) {
	const nofile, grpcMax, httpMax = 400, 200, 100
	srv := startWithOpenFiles(t, nofile)
	if got := srv.Metric(t, "sextant_remote_max_connections"); got != grpcMax {
		t.Fatalf("sextant_remote_max_connections = %v, want %d for %d open files", got, grpcMax, nofile)
	}

	// Fill the gRPC port with set-up connections.
	svc := svcRef{"", "DEFAULT_GROUP", "at-the-ceiling"}
	// Every connection answers detection probes: the test outlasts
	// remote.idle_timeout.
	watcher := setUp(t, srv, typeNotify, typeDetection)
	watcher.subscribe(t, svc)
	watcher.mustNext(t, typeNotify)
	conns := []*rawConn{watcher}
	for len(conns) < grpcMax+1 {
		c, err := tryDial(t, srv)
		if err != nil {
			break
		}
		c.autoAnswer(typeDetection)
		c.openStream(t, true)
		conns = append(conns, c)
	}
	if len(conns) != grpcMax {
		t.Fatalf("%d gRPC connections were served, want %d", len(conns), grpcMax)
	}
	if _, err := tryDial(t, srv); err == nil {
		t.Fatal("a gRPC connection over the limit was served")
	}
	if n := srv.Metric(t, "sextant_remote_connections_refused_total"); n < 2 {
		t.Errorf("%v gRPC connections refused, want at least 2", n)
	}

	t.Run("gRPC port full", func(t *testing.T) {
		probeHealth(t, srv, 50)
		checkGRPC(t, conns, watcher, svc, 1)
	})

	t.Run("and 1000 idle HTTP connections", func(t *testing.T) {
		if answered := idleHTTP(t, srv, 1000); answered != 1000 {
			t.Errorf("%d of 1000 HTTP connections were answered", answered)
		}
		probeHealth(t, srv, 50)
		checkGRPC(t, conns, watcher, svc, 2)
		if got := srv.Metric(t, "sextant_http_max_connections"); got != httpMax {
			t.Errorf("sextant_http_max_connections = %v, want %d", got, httpMax)
		}
		if got := srv.Metric(t, "sextant_http_open_connections"); got > httpMax {
			t.Errorf("sextant_http_open_connections = %v, over the limit %d", got, httpMax)
		}
		if got := srv.Metric(t, "sextant_http_connections_evicted_total"); got < 900 {
			t.Errorf("sextant_http_connections_evicted_total = %v, want at least 900", got)
		}
	})
	if strings.Contains(srv.Logs(), "too many open files") {
		t.Errorf("the server ran out of descriptors:\n%s", srv.Tail())
	}
}

// checkGRPC checks that the open gRPC connections are served: each answers a
// health check, and a registration on the last is pushed to watcher with
// hosts instances.
func checkGRPC(t *testing.T, conns []*rawConn, watcher *rawConn, svc svcRef, hosts int) {
	t.Helper()
	for _, c := range conns {
		c.mustCall(t, "HealthCheckRequest", map[string]any{}, "HealthCheckResponse")
		if c.streamClosed() {
			t.Fatalf("connection %s: the stream ended", c.id)
		}
	}
	conns[len(conns)-hosts].register(t, svc, instance("10.0.0.1", 1000+hosts))
	if name, got := pushedService(t, watcher.mustNext(t, typeNotify)); name != svc.name || got != hosts {
		t.Errorf("push after register: %s with %d hosts, want %d", name, got, hosts)
	}
}
