package persistent_test

import (
	"fmt"
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

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/core/healthcheck"
)

// checkMargin is what a change of health may take beyond the check that
// finds it: the Raft write, every node applying it, the push, and this
// test's polling, on a loaded machine.
const checkMargin = 3 * time.Second

// TestServerHealthChecks: the server checks persistent instances as their
// cluster says. An instance of a cluster given an HTTP checker (PUT
// /nacos/v1/ns/cluster, on its check port rather than the instance's) is
// healthy while its target answers the expected code; when the target
// answers 500 it turns unhealthy within the check interval and the HTTP
// timeout, as every node lists it and as a gRPC subscriber (the Go SDK) is
// pushed, and healthy again when the target answers 200. An instance of a
// cluster without a definition is checked with TCP: unhealthy when nothing
// listens, healthy when something does again. Its health cannot be set by
// hand while the server checks it; once its cluster's checker is NONE, it
// can, and every node shows what the operator set.
func TestServerHealthChecks(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	const svc = "persistent-health"

	// The HTTP target, and a TCP one.
	var status atomic.Int64
	status.Store(http.StatusOK)
	var checked atomic.Int64 // checks with the configured path and header
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && r.Header.Get("X-Check") == "sextant" {
			checked.Add(1)
			w.WriteHeader(int(status.Load()))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(target.Close)
	targetPort := target.Listener.Addr().(*net.TCPAddr).Port
	tcp := listenTCP(t, "127.0.0.1:0")
	tcpPort := tcp.port()
	// The HTTP instance's own port: nothing listens there, so a check of it
	// (rather than of the check port) would fail.
	webPort := servertest.FreePorts(t, 1)[0]
	webAddr, tcpAddr := "127.0.0.1:"+strconv.Itoa(webPort), "127.0.0.1:"+strconv.Itoa(tcpPort)

	subscriber := nacostest.NewClient(t, c.nodes[0], "")
	watcher := nacostest.Subscribe(t, subscriber, vo.SubscribeParam{ServiceName: svc})

	// The TCP instance creates the service; its cluster, DEFAULT, has no
	// definition: TCP, on its port.
	if status, body, err := formCall(http.MethodPost, c.nodes[1].HTTPAddr(), "/nacos/v1/ns/instance", url.Values{"serviceName": {svc},
		"ip": {"127.0.0.1"}, "port": {strconv.Itoa(tcpPort)}, "ephemeral": {"false"}}); err != nil || status != http.StatusOK {
		t.Fatalf("registering %s: %d %q %v", tcpAddr, status, body, err)
	}
	for i := range 3 {
		awaitList(t, c.nodes[i].HTTPAddr(), svc, healthIs(map[string]bool{tcpAddr: true}))
	}
	// The cluster web checks GET /health on the target's port.
	const checker = `{"type":"HTTP","path":"/health","headers":"X-Check:sextant","expectedResponseCode":200}`
	if status, body, err := formCall(http.MethodPut, c.nodes[2].HTTPAddr(), "/nacos/v1/ns/cluster", url.Values{"serviceName": {svc},
		"clusterName": {"web"}, "healthChecker": {checker}, "checkPort": {strconv.Itoa(targetPort)},
		"useInstancePort4Check": {"false"}}); err != nil || status != http.StatusOK || body != "ok" {
		t.Fatalf("PUT cluster: %d %q %v", status, body, err)
	}
	if status, body, err := formCall(http.MethodPost, c.nodes[0].HTTPAddr(), "/nacos/v1/ns/instance", url.Values{"serviceName": {svc},
		"ip": {"127.0.0.1"}, "port": {strconv.Itoa(webPort)}, "clusterName": {"web"}, "ephemeral": {"false"}}); err != nil || status != http.StatusOK {
		t.Fatalf("registering %s: %d %q %v", webAddr, status, body, err)
	}
	healthy := map[string]bool{webAddr: true, tcpAddr: true}
	awaitHealth(t, c, watcher, svc, healthy, 0)
	// Checked by HTTP, on the check port; every node answers the checker.
	awaitCond(t, "an HTTP check of the target", func() string {
		if checked.Load() == 0 {
			return "no check reached /health with the header"
		}
		return ""
	})
	for i := range 3 {
		_, body, err := formCall(http.MethodGet, c.nodes[i].HTTPAddr(), "/nacos/v1/ns/service", url.Values{"serviceName": {svc}})
		if err != nil || !strings.Contains(body, `{"name":"web","healthChecker":`+checker) ||
			!strings.Contains(body, `{"name":"DEFAULT","healthChecker":{"type":"TCP"}`) {
			t.Errorf("GET service on node %d: %s %v", i+1, body, err)
		}
	}
	// The server checks it: its health cannot be set by hand.
	if status, body, err := formCall(http.MethodPut, c.nodes[1].HTTPAddr(), "/nacos/v1/ns/health/instance", url.Values{"serviceName": {svc},
		"ip": {"127.0.0.1"}, "port": {strconv.Itoa(webPort)}, "clusterName": {"web"}, "healthy": {"false"}}); err != nil ||
		status != http.StatusBadRequest || !strings.Contains(body, "healthChecker") {
		t.Errorf("PUT health of a checked instance: %d %q %v", status, body, err)
	}

	httpBound := healthcheck.DefaultInterval + healthcheck.DefaultHTTPTimeout + checkMargin
	status.Store(http.StatusInternalServerError)
	healthy[webAddr] = false
	awaitHealth(t, c, watcher, svc, healthy, httpBound)
	status.Store(http.StatusOK)
	healthy[webAddr] = true
	awaitHealth(t, c, watcher, svc, healthy, httpBound)

	// TCP: nothing listens, then something does again.
	tcpBound := healthcheck.DefaultInterval + healthcheck.DefaultTCPTimeout + checkMargin
	tcp.close()
	healthy[tcpAddr] = false
	awaitHealth(t, c, watcher, svc, healthy, tcpBound)
	listenTCP(t, tcpAddr)
	healthy[tcpAddr] = true
	awaitHealth(t, c, watcher, svc, healthy, tcpBound)

	// NONE: the operator sets the health, and it stays what they set.
	if status, body, err := formCall(http.MethodPut, c.nodes[0].HTTPAddr(), "/nacos/v1/ns/cluster", url.Values{"serviceName": {svc},
		"clusterName": {"web"}, "healthChecker": {`{"type":"NONE"}`}, "checkPort": {"0"},
		"useInstancePort4Check": {"true"}}); err != nil || status != http.StatusOK {
		t.Fatalf("PUT cluster NONE: %d %q %v", status, body, err)
	}
	// The node answering the next request may not have applied the new
	// checker yet: it refuses until it has.
	awaitCond(t, "a manual health change", func() string {
		status, body, err := formCall(http.MethodPut, c.nodes[2].HTTPAddr(), "/nacos/v2/ns/health/instance", url.Values{"serviceName": {svc},
			"ip": {"127.0.0.1"}, "port": {strconv.Itoa(webPort)}, "clusterName": {"web"}, "healthy": {"false"}})
		if err != nil || status != http.StatusOK {
			return fmt.Sprintf("%d %s %v", status, body, err)
		}
		return ""
	})
	healthy[webAddr] = false
	awaitHealth(t, c, watcher, svc, healthy, 0)
}

// awaitHealth waits until every node lists the instances of svc with the
// health given (by ip:port) and the subscriber is pushed them so; with
// bound > 0, each must see it within bound of the call.
func awaitHealth(t *testing.T, c *cluster, w *nacostest.Watcher, svc string, want map[string]bool, bound time.Duration) {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, 4)
	errs := make([]error, 4)
	for i := range 3 {
		wg.Go(func() {
			errs[i] = pollList(c.nodes[i].HTTPAddr(), svc, healthIs(want))
			took[i] = time.Since(start)
		})
	}
	wg.Go(func() {
		_, errs[3] = w.Wait(fmt.Sprintf("health %v", want), func(is []model.Instance) bool {
			if len(is) != len(want) {
				return false
			}
			for _, in := range is {
				if h, ok := want[fmt.Sprintf("%s:%d", in.Ip, in.Port)]; !ok || h != in.Healthy {
					return false
				}
			}
			return true
		})
		took[3] = time.Since(start)
	})
	wg.Wait()
	for i, err := range errs {
		who := fmt.Sprintf("node %d", i+1)
		if i == 3 {
			who = "the subscriber"
		}
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if bound > 0 && took[i] > bound {
			t.Errorf("%s saw health %v after %v, more than %v", who, want, took[i].Round(time.Millisecond), bound)
		}
	}
	t.Logf("health %v seen by every node after %v and pushed after %v", want,
		max(took[0], took[1], took[2]).Round(time.Millisecond), took[3].Round(time.Millisecond))
}

// healthIs is a condition: exactly the instances of want are listed, each
// persistent and with the health given.
func healthIs(want map[string]bool) func(map[string]host) string {
	return func(hosts map[string]host) string {
		if len(hosts) != len(want) {
			return "listed " + describe(hosts)
		}
		for a, h := range want {
			got, ok := hosts[a]
			switch {
			case !ok:
				return a + " is not listed; listed: " + describe(hosts)
			case got.Ephemeral:
				return a + " is listed as ephemeral"
			case got.Healthy != h:
				return fmt.Sprintf("%s is listed with healthy=%v", a, got.Healthy)
			}
		}
		return ""
	}
}

// pollList is awaitList for any goroutine: it reports a timeout as an error.
func pollList(addr, svc string, ok func(map[string]host) string) error {
	deadline := time.Now().Add(awaitTimeout)
	for {
		hosts, err := list(addr, svc)
		why := ""
		if err != nil {
			why = err.Error()
		} else if why = ok(hosts); why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s, %s: not so within %v: %s", addr, svc, awaitTimeout, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// awaitCond waits until cond returns "" (what is still wrong otherwise).
func awaitCond(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, awaitTimeout, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// formCall sends a form to a node's HTTP API (in the query for GET) and
// returns the status and the body of the answer.
func formCall(method, addr, path string, form url.Values) (int, string, error) {
	client := http.Client{Timeout: 10 * time.Second}
	u := "http://" + addr + path
	var body io.Reader
	if method == http.MethodGet {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// tcpTarget accepts connections and closes them at once, until closed.
type tcpTarget struct {
	l    net.Listener
	done chan struct{}
	once sync.Once
}

// listenTCP starts a TCP target on addr, closed when the test ends.
func listenTCP(t *testing.T, addr string) *tcpTarget {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tt := &tcpTarget{l: l, done: make(chan struct{})}
	go func() {
		defer close(tt.done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	t.Cleanup(tt.close)
	return tt
}

func (tt *tcpTarget) port() int { return tt.l.Addr().(*net.TCPAddr).Port }

// close stops the target and waits for its accept loop to end.
func (tt *tcpTarget) close() {
	tt.once.Do(func() {
		_ = tt.l.Close()
		<-tt.done
	})
}
