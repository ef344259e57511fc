package httpwire

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// echo answers with the method, the query and the form it got; /big with a
// body larger than net/http buffers (chunked); /status/N with status N;
// /close with Connection: close; /slow after a while.
func echo(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch {
		case r.URL.Path == "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 100<<10))
		case strings.HasPrefix(r.URL.Path, "/status/"):
			http.Error(w, "refused", atoi(t, strings.TrimPrefix(r.URL.Path, "/status/")))
		case r.URL.Path == "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		case r.URL.Path == "/slow":
			time.Sleep(300 * time.Millisecond)
		default:
			_, _ = io.WriteString(w, r.Method+" "+r.URL.Query().Encode()+" "+r.PostForm.Encode()+" "+r.UserAgent())
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Error(err)
	}
	return n
}

func addr(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

func TestRequests(t *testing.T) {
	srv, conns := echo(t)
	c := New(addr(srv), 2, "bench/1")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var dialled int
	c.Dial(ctx, func(_ time.Duration, err error) {
		if err != nil {
			t.Error(err)
		}
		dialled++
	})
	if dialled != 2 {
		t.Fatalf("dialled %d connections, want 2", dialled)
	}

	form := AppendParam(AppendParam(nil, "serviceName", "g@@s v"), "metadata", `{"k":"v&w=1%"}`)
	body, err := c.Do(ctx, Request{Method: "PUT", Path: "/x?ip=10.0.0.1&port=80", Form: form})
	want := "PUT ip=10.0.0.1&port=80 " + url.Values{"serviceName": {"g@@s v"}, "metadata": {`{"k":"v&w=1%"}`}}.Encode() + " bench/1"
	if err != nil || string(body) != want {
		t.Fatalf("PUT: %q, %v; want %q", body, err, want)
	}
	if body, err := c.Do(ctx, Request{Method: "POST", Path: "/x"}); err != nil || string(body) != "POST   bench/1" {
		t.Errorf("POST without a form: %q, %v", body, err)
	}
	if body, err := c.Do(ctx, Request{Method: "GET", Path: "/big"}); err != nil || len(body) != 100<<10 {
		t.Errorf("chunked: %d bytes, %v", len(body), err)
	}
	_, err = c.Do(ctx, Request{Method: "GET", Path: "/status/404"})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.Kind() != "HTTP 404" || se.Body != "refused\n" {
		t.Errorf("404: %v", err)
	}
	// Many requests, concurrently, on the two connections.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if body, err := c.Do(ctx, Request{Method: "GET", Path: "/x?a=1"}); err != nil || string(body) != "GET a=1  bench/1" {
					t.Errorf("GET: %q, %v", body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections opened, want the 2 kept alive", n)
	}
	// Connection: close is followed.
	if body, err := c.Do(ctx, Request{Method: "GET", Path: "/close"}); err != nil || string(body) != "bye" {
		t.Errorf("close: %q, %v", body, err)
	}
	if _, err := c.Do(ctx, Request{Method: "GET", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
}

// TestStaleConnection: a connection the server closed while it was idle is
// replaced, and the request succeeds.
func TestStaleConnection(t *testing.T) {
	srv, conns := echo(t)
	c := New(addr(srv), 1, "")
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Do(ctx, Request{Method: "GET", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	if body, err := c.Do(ctx, Request{Method: "GET", Path: "/x?b=2"}); err != nil || !strings.HasPrefix(string(body), "GET b=2") {
		t.Fatalf("after the server closed the connection: %q, %v", body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestErrors(t *testing.T) {
	srv, _ := echo(t)
	c := New(addr(srv), 1, "")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, Request{Method: "GET", Path: "/slow"}); !errors.Is(err, context.DeadlineExceeded) || wire.Kind(err) != "timeout" {
		t.Errorf("slow answer: %v (%s), want a timeout", err, wire.Kind(err))
	}
	// The slot is usable again.
	if _, err := c.Do(context.Background(), Request{Method: "GET", Path: "/x"}); err != nil {
		t.Errorf("after a timeout: %v", err)
	}
	c.Close()
	if _, err := c.Do(context.Background(), Request{Method: "GET", Path: "/x"}); wire.Kind(err) != "connection dropped" {
		t.Errorf("after Close: %v", err)
	}

	srv.Close()
	down := New(addr(srv), 1, "")
	defer down.Close()
	if _, err := down.Do(context.Background(), Request{Method: "GET", Path: "/x"}); wire.Kind(err) != "unreachable" {
		t.Errorf("no server: %v (%s)", err, wire.Kind(err))
	}
}

func TestAppendParam(t *testing.T) {
	in := url.Values{"a b": {"c&d=e"}, "é": {"+/?%#@@"}, "x": {""}}
	var b []byte
	for _, k := range []string{"a b", "x", "é"} {
		b = AppendParam(b, k, in.Get(k))
	}
	got, err := url.ParseQuery(string(b))
	if err != nil || got.Encode() != in.Encode() {
		t.Errorf("%s parses as %v (%v), want %v", b, got, err, in)
	}
}
