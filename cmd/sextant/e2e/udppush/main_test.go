// Package udppush_test drives UDP push (issue #13) through the real sextant
// binary and its real plugin processes: 1.x clients that poll
// instance/list with a udpPort are pushed each change over UDP by the
// built-in pushudp plugin. The subscribers are the official Nacos Go SDK v1
// (1.1.4), which runs its own UDP receiver, and a raw one that speaks the
// datagrams itself; the changes come over HTTP (the v1 SDK, or plain
// requests) and over gRPC (the 2.x SDK). It must not import Sextant's proto
// package: the 2.x SDK registers the same protobuf message names.
package udppush_test

import (
	"encoding/json"
	"fmt"
	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/sextantproc"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// awaitTimeout bounds every wait for something that must happen.
const awaitTimeout = 15 * time.Second

// pushDelay is the merge window of the servers of this package.
const pushDelay = 100 * time.Millisecond

// startServer runs a server whose merge window is pushDelay and whose
// health checker (which also lets UDP subscriptions lapse) runs every
// 100 ms, with env added.
func startServer(t *testing.T, env ...string) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Options{Env: append([]string{
		"SEXTANT_PUSH_DELAY=" + pushDelay.String(), "SEXTANT_HEALTH_CHECK_INTERVAL=100ms"}, env...)})
}

// serviceName returns a service name unique to the test.
func serviceName(t *testing.T) string {
	return strings.NewReplacer("/", "-", "_", "-", " ", "-", ",", "").Replace(t.Name())
}

// pollCounter is a proxy in front of the server that counts the
// instance/list polls passing through it: a client behind it shows whether
// what it learnt came by a poll.
type pollCounter struct {
	srv   *httptest.Server
	polls atomic.Int64
}

func newPollCounter(t *testing.T, target string) *pollCounter {
	t.Helper()
	pc := &pollCounter{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	pc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/instance/list") {
			pc.polls.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(pc.srv.Close)
	return pc
}

func (pc *pollCounter) addr() string { return pc.srv.Listener.Addr().String() }

// call sends a request to the server's HTTP API and returns the status and
// body; params go in the query, or as the form body of a POST or PUT.
func call(t *testing.T, srv *servertest.Server, method, path string, params url.Values) (int, string) {
	t.Helper()
	code, body, err := tryCall(srv, method, path, params)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// tryCall is call for any goroutine.
func tryCall(srv *servertest.Server, method, path string, params url.Values) (int, string, error) {
	u := "http://" + srv.HTTPAddr() + path
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(params.Encode())
	} else {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp.StatusCode, string(b), nil
}

// register registers (or re-registers, a change when the weight differs)
// the HTTP API's ephemeral instance ip:port of svc with a plain request.
func register(t *testing.T, srv *servertest.Server, svc, ip string, port int, weight float64) {
	t.Helper()
	code, body := call(t, srv, http.MethodPost, "/nacos/v1/ns/instance", url.Values{"serviceName": {svc}, "ip": {ip},
		"port": {strconv.Itoa(port)}, "weight": {strconv.FormatFloat(weight, 'f', -1, 64)}, "ephemeral": {"true"}})
	if code != http.StatusOK || body != "ok" {
		t.Fatalf("registering %s:%d (weight %v) to %s: %d %s", ip, port, weight, svc, code, body)
	}
}

// subscriber is a subscriber of a service as the 2.x client API lists it.
type subscriber struct {
	ClientID string `json:"clientId"`
	IP       string `json:"ip"`
	Port     int    `json:"port"`
}

// subscribers returns the subscribers the server lists for svc.
func subscribers(t *testing.T, srv *servertest.Server, svc string) []subscriber {
	t.Helper()
	code, body := call(t, srv, http.MethodGet, "/nacos/v2/ns/client/service/subscriber/list", url.Values{"serviceName": {svc}})
	var answer struct {
		Code int          `json:"code"`
		Data []subscriber `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &answer); code != http.StatusOK || err != nil || answer.Code != 0 {
		t.Fatalf("subscriber list of %s: %d %s (%v)", svc, code, body, err)
	}
	return answer.Data
}

// subscribed reports whether the server lists the client id as a
// subscriber of svc.
func subscribed(t *testing.T, srv *servertest.Server, svc, clientID string) bool {
	t.Helper()
	return slices.ContainsFunc(subscribers(t, srv, svc), func(s subscriber) bool { return s.ClientID == clientID })
}

// eventually polls cond every 20 ms until it holds, failing the test after
// awaitTimeout with what describe says.
func eventually(t *testing.T, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; %s", what, awaitTimeout, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// process is a process seen in /proc.
type process struct {
	pid     int
	state   string // R, S, Z...
	cmdline []string
}

// children lists the processes whose parent is pid.
func children(pid int) []process {
	var out []process
	for _, c := range sextantproc.Children(pid) {
		out = append(out, process{pid: c.PID, state: c.State, cmdline: c.Cmdline})
	}
	return out
}

// plugin returns the server's live "sextant plugin NAME" process, if any.
func plugin(srv *servertest.Server, name string) (process, bool) {
	for _, p := range children(srv.PID()) {
		if len(p.cmdline) == 3 && p.cmdline[1] == "plugin" && p.cmdline[2] == name && p.state != "Z" {
			return p, true
		}
	}
	return process{}, false
}

func TestMain(m *testing.M) { nacostest.Main(m) }
