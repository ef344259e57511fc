package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1clients "github.com/nacos-group/nacos-sdk-go/clients"
	v1naming "github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	v1constant "github.com/nacos-group/nacos-sdk-go/common/constant"
	v1vo "github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/core/cluster"
)

// The clients of the HTTP API (Nacos 1.x) in a cluster: each is served by
// the node rendezvous hashing of its id (ip:port#true) picks among the UP
// members; a write reaching another node is forwarded there (core/forward).

// fastBeats runs the beat checks every 100 ms.
var fastBeats = []string{"SEXTANT_HEALTH_CHECK_INTERVAL=100ms"}

// withMembersEnv starts n nodes listing each other with --members, with env.
func withMembersEnv(t *testing.T, n int, env []string) *testCluster {
	c := &testCluster{ports: servertest.FreePorts(t, n), nodes: make([]*servertest.Server, n)}
	c.opts = func(int) servertest.Options {
		return servertest.Options{Args: []string{"--members", strings.Join(c.addresses(), ",")}, Env: env}
	}
	for i := range n {
		c.start(t, i)
	}
	return c
}

// responsible returns the node rendezvous hashing makes responsible for the
// HTTP client ip:80 among members (their HTTP addresses).
func responsible(ip string, members []string) string {
	return cluster.Rendezvous(ip+":80#true", members)
}

// call sends an HTTP API request to srv (its parameters in the body, or
// the query of a GET or DELETE) and returns the status and body.
func call(srv *servertest.Server, method, path string, form url.Values) (int, string, error) {
	target, body := "http://"+srv.HTTPAddr()+path, form.Encode()
	if method == http.MethodGet || method == http.MethodDelete { // parameters in the query
		if body != "" {
			target += "?" + body
		}
		body = ""
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), err
}

// registerRaw registers ip:80 in svc with a bare HTTP request to srv.
func registerRaw(t *testing.T, srv *servertest.Server, svc, ip string, md map[string]string) {
	t.Helper()
	form := url.Values{"serviceName": {svc}, "ip": {ip}, "port": {"80"}, "ephemeral": {"true"}}
	if md != nil {
		raw, _ := json.Marshal(md)
		form.Set("metadata", string(raw))
	}
	if code, body, err := call(srv, http.MethodPost, "/nacos/v1/ns/instance", form); err != nil || code != http.StatusOK || body != "ok" {
		t.Fatalf("registering %s through %s: %d %q %v", ip, srv.HTTPAddr(), code, body, err)
	}
}

// beatRaw sends the beat a 1.x client sends for ip:80 in svc (with the
// instance in its body) to srv.
func beatRaw(srv *servertest.Server, svc, ip string, md map[string]string) (int, string, error) {
	raw, _ := json.Marshal(map[string]any{"ip": ip, "port": 80, "serviceName": "DEFAULT_GROUP@@" + svc, "cluster": "DEFAULT",
		"weight": 1, "metadata": md})
	return call(srv, http.MethodPut, "/nacos/v1/ns/instance/beat", url.Values{"serviceName": {svc}, "beat": {string(raw)}})
}

// listed returns the IPs srv lists in svc (instance/list, healthy or not).
func listed(srv *servertest.Server, svc string) (map[string]bool, error) {
	code, body, err := call(srv, http.MethodGet, "/nacos/v1/ns/instance/list", url.Values{"serviceName": {svc}})
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("instance/list: %d %s", code, body)
	}
	var info struct {
		Hosts []struct {
			IP string `json:"ip"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, h := range info.Hosts {
		out[h.IP] = true
	}
	return out, nil
}

// awaitListed waits until every one of servers lists exactly want in svc.
func awaitListed(t *testing.T, servers []*servertest.Server, svc string, want []string) {
	t.Helper()
	deadline := time.Now().Add(nacostest.AwaitTimeout)
	for _, srv := range servers {
		for {
			got, err := listed(srv, svc)
			if err == nil && len(got) == len(want) && !slices.ContainsFunc(want, func(ip string) bool { return !got[ip] }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %d instances of %s (%v), want %d", srv.HTTPAddr(), len(got), svc, err, len(want))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// sumMetric adds up a series over servers.
func sumMetric(t *testing.T, servers []*servertest.Server, series string) float64 {
	t.Helper()
	total := 0.0
	for _, s := range servers {
		total += s.Metric(t, series)
	}
	return total
}

// awaitMetric waits until cond holds of a series on srv.
func awaitMetric(t *testing.T, srv *servertest.Server, series string, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(nacostest.AwaitTimeout)
	for {
		v := srv.Metric(t, series)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s = %v, not as awaited", srv.HTTPAddr(), series, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const (
	responsibleSeries    = `sextant_forward_http_clients{state="responsible"}`
	notResponsibleSeries = `sextant_forward_http_clients{state="not_responsible"}`
)

// TestHTTPClientsRegisterThroughAnyNode: HTTP registrations sent to each of
// three nodes — bare requests, and the v1 SDK (1.1.4), which picks a server
// at random for each request — are applied on the node responsible for each
// client, listed by every node, and held by their responsible node alone.
func TestHTTPClientsRegisterThroughAnyNode(t *testing.T) {
	t.Parallel()
	c := withMembersEnv(t, 3, fastBeats)
	awaitNodes(t, c.nodes[0], c.addresses())
	const svc = "http-anywhere"
	var want []string
	for i := range 30 {
		ip := fmt.Sprintf("10.20.0.%d", i)
		registerRaw(t, c.nodes[i%3], svc, ip, nil)
		want = append(want, ip)
	}

	sdk := newV1Cluster(t, c.nodes)
	for i := range 12 {
		ip := fmt.Sprintf("10.21.0.%d", i)
		if ok, err := sdk.RegisterInstance(v1vo.RegisterInstanceParam{Ip: ip, Port: 80, ServiceName: svc, Weight: 1, Enable: true,
			Healthy: true, Ephemeral: true}); err != nil || !ok {
			t.Fatalf("the v1 SDK registering %s: %v %v", ip, ok, err)
		}
		want = append(want, ip)
		t.Cleanup(func() {
			_, _ = sdk.DeregisterInstance(v1vo.DeregisterInstanceParam{Ip: ip, Port: 80, ServiceName: svc, Ephemeral: true})
		})
	}
	awaitListed(t, c.nodes, svc, want)

	forwarded := sumMetric(t, c.nodes, `sextant_forward_writes_total{op="register",route="forwarded"}`)
	if forwarded == 0 {
		t.Fatal("no registration was forwarded")
	}
	t.Logf("%v of %d registrations were forwarded to the node responsible for their client", forwarded, len(want))
	// Each node holds its share of the clients, and no other.
	for i, srv := range c.nodes {
		share := 0
		for _, ip := range want {
			if responsible(ip, c.addresses()) == c.addresses()[i] {
				share++
			}
		}
		awaitMetric(t, srv, responsibleSeries, func(v float64) bool { return v == float64(share) })
		if v := srv.Metric(t, notResponsibleSeries); v != 0 {
			t.Fatalf("%s holds %v clients it is not responsible for", srv.HTTPAddr(), v)
		}
	}

	// Deregistered through a node that is not responsible: gone everywhere.
	gone := want[0]
	via := c.nodes[0]
	for _, srv := range c.nodes {
		if responsible(gone, c.addresses()) != srv.HTTPAddr() {
			via = srv
		}
	}
	form := url.Values{"serviceName": {svc}, "ip": {gone}, "port": {"80"}, "ephemeral": {"true"}}
	if code, body, err := call(via, http.MethodDelete, "/nacos/v1/ns/instance", form); err != nil || code != http.StatusOK {
		t.Fatalf("deregistering through %s: %d %q %v", via.HTTPAddr(), code, body, err)
	}
	awaitListed(t, c.nodes, svc, want[1:])
}

// newV1Cluster returns a v1 SDK naming client that knows every one of
// servers. Its logger is global and its goroutines outlive the test (one
// test of the package uses it): its directory goes when the test ends,
// after the cleanups registered later (its deregistrations, which stop its
// beats).
func newV1Cluster(t *testing.T, servers []*servertest.Server) interface {
	RegisterInstance(v1vo.RegisterInstanceParam) (bool, error)
	DeregisterInstance(v1vo.DeregisterInstanceParam) (bool, error)
} {
	t.Helper()
	v1Dir, err := os.MkdirTemp("", "sextant-cluster-v1sdk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(v1Dir) })
	var client v1naming.INamingClient
	var configs []v1constant.ServerConfig
	for _, s := range servers {
		configs = append(configs, v1constant.ServerConfig{IpAddr: "127.0.0.1", Port: uint64(s.HTTPPort)})
	}
	client, err = v1clients.NewNamingClient(v1vo.NacosClientParam{
		ClientConfig: &v1constant.ClientConfig{TimeoutMs: 5000, NotLoadCacheAtStart: true, UpdateCacheWhenEmpty: true,
			LogDir: v1Dir, CacheDir: v1Dir, LogLevel: "error"},
		ServerConfigs: configs,
	})
	if err != nil {
		t.Fatalf("creating a v1 naming client: %v", err)
	}
	return client
}

// beater beats for HTTP clients as a 1.x client does, each to one node, and
// records the beats that failed.
type beater struct {
	svc    string
	md     map[string]string
	every  time.Duration
	mu     sync.Mutex
	failed int
	stops  map[string]context.CancelFunc
	wg     sync.WaitGroup
}

func newBeater(t *testing.T, svc string, md map[string]string, every time.Duration) *beater {
	b := &beater{svc: svc, md: md, every: every, stops: map[string]context.CancelFunc{}}
	t.Cleanup(b.stopAll)
	return b
}

// start beats for ip to whichever node target returns at each beat.
func (b *beater) start(ip string, target func() *servertest.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	b.mu.Lock()
	b.stops[ip] = cancel
	b.mu.Unlock()
	b.wg.Go(func() {
		ticker := time.NewTicker(b.every)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			code, body, err := beatRaw(target(), b.svc, ip, b.md)
			if err != nil || code != http.StatusOK || !strings.Contains(body, `"code":10200`) {
				b.mu.Lock()
				b.failed++
				b.mu.Unlock()
			}
		}
	})
}

func (b *beater) stop(ip string) {
	b.mu.Lock()
	cancel := b.stops[ip]
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (b *beater) stopAll() {
	b.mu.Lock()
	for _, cancel := range b.stops {
		cancel()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// absences watches the lists of servers and records, for each IP, the
// longest time it was missing from one since the watch began.
type absences struct {
	mu      sync.Mutex
	longest map[string]time.Duration
	cancel  context.CancelFunc
	done    chan struct{}
}

func watchAbsences(t *testing.T, servers []*servertest.Server, svc string, ips []string) *absences {
	ctx, cancel := context.WithCancel(context.Background())
	a := &absences{longest: map[string]time.Duration{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		missingSince := map[string]time.Time{} // by server/ip
		for ctx.Err() == nil {
			for _, srv := range servers {
				got, err := listed(srv, svc)
				if err != nil {
					continue
				}
				now := time.Now()
				for _, ip := range ips {
					key := srv.HTTPAddr() + "/" + ip
					if got[ip] {
						delete(missingSince, key)
						continue
					}
					since, ok := missingSince[key]
					if !ok {
						missingSince[key], since = now, now
					}
					a.mu.Lock()
					a.longest[ip] = max(a.longest[ip], now.Sub(since))
					a.mu.Unlock()
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(a.stop)
	return a
}

func (a *absences) stop() {
	a.cancel()
	<-a.done
}

// worst returns the longest absence of any of ips, and whose.
func (a *absences) worst(ips []string) (time.Duration, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var d time.Duration
	var who string
	for _, ip := range ips {
		if a.longest[ip] > d {
			d, who = a.longest[ip], ip
		}
	}
	return d, who
}

// TestKillingTheOwnerOfHTTPClients: node 1, responsible for a third of 30
// HTTP clients that keep beating another node, is killed (SIGKILL). Their
// instances stay listed by the survivors — never missing longer than
// maxAbsence — as the survivors responsible for them now adopt them, and
// beat-check them: one that stops beating then goes after its delete
// timeout.
func TestKillingTheOwnerOfHTTPClients(t *testing.T) {
	t.Parallel()
	const maxAbsence = 2 * time.Second
	c := withMembersEnv(t, 3, fastBeats)
	awaitNodes(t, c.nodes[0], c.addresses())
	const svc = "http-kill"
	md := map[string]string{"preserved.heart.beat.interval": "300", "preserved.heart.beat.timeout": "3000",
		"preserved.ip.delete.timeout": "6000"}
	victim, survivors := c.nodes[0], c.nodes[1:]
	var all, orphans []string
	b := newBeater(t, svc, md, 300*time.Millisecond)
	for i := range 30 {
		ip := fmt.Sprintf("10.22.0.%d", i)
		all = append(all, ip)
		if responsible(ip, c.addresses()) == victim.HTTPAddr() {
			orphans = append(orphans, ip)
		}
		// Registered and beaten through a survivor: the victim's clients
		// reach it forwarded.
		via := survivors[i%2]
		registerRaw(t, via, svc, ip, md)
		b.start(ip, func() *servertest.Server { return via })
	}
	if len(orphans) == 0 {
		t.Fatal("the victim is responsible for no client")
	}
	awaitListed(t, c.nodes, svc, all)
	awaitMetric(t, victim, responsibleSeries, func(v float64) bool { return v == float64(len(orphans)) })

	watch := watchAbsences(t, survivors, svc, all)
	killed := time.Now()
	victim.Kill()
	// The survivors adopt the victim's clients.
	deadline := time.Now().Add(nacostest.AwaitTimeout)
	for sumMetric(t, survivors, responsibleSeries) != float64(len(all)) {
		if time.Now().After(deadline) {
			t.Fatalf("the survivors are responsible for %v clients, want %d", sumMetric(t, survivors, responsibleSeries), len(all))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the survivors hold all %d clients %v after the kill", len(all), time.Since(killed).Round(time.Millisecond))
	// Longer than the client expiry (2 s), after which the victim's
	// replicas would have gone had nobody adopted them.
	time.Sleep(expiry + 2*time.Second)
	awaitListed(t, survivors, svc, all)
	adopted := sumMetric(t, survivors, `sextant_forward_handoffs_total{step="adopted_replica"}`)
	if adopted < float64(len(orphans)) {
		t.Fatalf("%v clients adopted from replicas, want the victim's %d", adopted, len(orphans))
	}
	worst, who := watch.worst(all)
	watch.stop()
	t.Logf("the victim's %d clients stayed listed; the longest absence of any client from a survivor's list: %v (%s)",
		len(orphans), worst.Round(time.Millisecond), who)
	if worst > maxAbsence {
		t.Fatalf("%s was missing from a survivor's list for %v, more than %v", who, worst, maxAbsence)
	}
	// The new owner checks the beats: an orphan that stops beating goes
	// after its delete timeout (6 s).
	silent := orphans[0]
	b.stop(silent)
	stopped := time.Now()
	awaitListed(t, survivors, svc, slices.DeleteFunc(slices.Clone(all), func(ip string) bool { return ip == silent }))
	t.Logf("an adopted client that stopped beating left after %v (delete timeout 6s)", time.Since(stopped).Round(time.Millisecond))
}

// handoffSteps lists srv's non-zero handoff counters.
func handoffSteps(t *testing.T, srv *servertest.Server) string {
	t.Helper()
	var out []string
	for _, step := range []string{"released", "handed_over", "returned", "uncertain", "adopted", "adopted_replica", "kept", "rehomed", "notice_dropped"} {
		if v := srv.Metric(t, `sextant_forward_handoffs_total{step="`+step+`"}`); v != 0 {
			out = append(out, fmt.Sprintf("%s=%v", step, v))
		}
	}
	return strings.Join(out, " ")
}

// TestAJoiningNodeTakesItsShareOfHTTPClients: a fourth node joins three
// serving 80 beating HTTP clients (through cluster.conf). It takes over the
// clients rendezvous hashing gives it — about a quarter, and exactly the
// ones computed — and no other client moves; every node lists every
// instance throughout.
func TestAJoiningNodeTakesItsShareOfHTTPClients(t *testing.T) {
	t.Parallel()
	c, conf := withClusterConf(t, 4, "")
	c.nodes[3].Stop()
	three := c.addresses()[:3]
	writeClusterConf(t, conf, three)
	for _, srv := range c.nodes[:3] { // each reads the file on its own
		awaitNodes(t, srv, three)
	}

	const svc = "http-join"
	md := map[string]string{"preserved.heart.beat.interval": "1000"}
	b := newBeater(t, svc, md, time.Second)
	var all []string
	for i := range 80 {
		ip := fmt.Sprintf("10.23.0.%d", i)
		all = append(all, ip)
		via := c.nodes[i%3]
		registerRaw(t, via, svc, ip, md)
		next := i
		b.start(ip, func() *servertest.Server { // round the first three
			next++
			return c.nodes[next%3]
		})
	}
	awaitListed(t, c.nodes[:3], svc, all)
	for i, srv := range c.nodes[:3] {
		share := 0
		for _, ip := range all {
			if responsible(ip, three) == three[i] {
				share++
			}
		}
		awaitMetric(t, srv, responsibleSeries, func(v float64) bool { return v == float64(share) })
	}
	watch := watchAbsences(t, c.nodes[:3], svc, all)

	writeClusterConf(t, conf, c.addresses())
	fourth := c.start(t, 3)
	awaitNodes(t, c.nodes[0], c.addresses())
	var mine []string
	for _, ip := range all {
		before, after := responsible(ip, three), responsible(ip, c.addresses())
		if after == before {
			continue
		}
		if after != fourth.HTTPAddr() {
			t.Fatalf("rendezvous moves %s from %s to %s, not to the joining node", ip, before, after)
		}
		mine = append(mine, ip)
	}
	joined := time.Now()
	awaitMetric(t, fourth, responsibleSeries, func(v float64) bool { return v == float64(len(mine)) })
	t.Logf("the joining node holds its %d clients %v after it was ready", len(mine), time.Since(joined).Round(time.Millisecond))
	for i, srv := range c.nodes[:3] {
		share := 0
		for _, ip := range all {
			if responsible(ip, c.addresses()) == three[i] {
				share++
			}
		}
		awaitMetric(t, srv, responsibleSeries, func(v float64) bool { return v == float64(share) })
		awaitMetric(t, srv, notResponsibleSeries, func(v float64) bool { return v == 0 })
	}
	// Most moves are a handover (released or handed over by the old owner,
	// adopted by the new). A joining node that sees an old owner DOWN for a
	// moment (its first health reports time out on a loaded machine) adopts
	// that owner's replicas instead, as it would a dead node's. Either way,
	// no client may be taken or given up twice.
	adopted := fourth.Metric(t, `sextant_forward_handoffs_total{step="adopted"}`) +
		fourth.Metric(t, `sextant_forward_handoffs_total{step="adopted_replica"}`)
	given := sumMetric(t, c.nodes[:3], `sextant_forward_handoffs_total{step="released"}`) +
		sumMetric(t, c.nodes[:3], `sextant_forward_handoffs_total{step="handed_over"}`)
	want := float64(len(all)) / 4
	t.Logf("moved %d of %d clients to the joining node (1/4 = %.0f): %v adopted there, %v given up by the others; the joining node's steps: %s",
		len(mine), len(all), want, adopted, given, handoffSteps(t, fourth))
	if math.Abs(float64(len(mine))-want) > 4*math.Sqrt(want) {
		t.Fatalf("%d of %d clients moved, want about %.0f", len(mine), len(all), want)
	}
	if adopted > float64(len(mine)) || given > float64(len(mine)) || adopted == 0 {
		t.Fatalf("%v adopted and %v given up, want the %d moved clients at most once each", adopted, given, len(mine))
	}
	time.Sleep(time.Second)
	awaitListed(t, c.nodes, svc, all)
	b.stopAll() // before the fourth node, started last, stops first
	watch.stop()
	worst, who := watch.worst(all)
	t.Logf("the longest absence of a client from one of the three nodes' lists during the join: %v (%s)", worst.Round(time.Millisecond), who)
	if worst > 2*time.Second {
		t.Fatalf("%s was missing for %v during the join", who, worst)
	}
}
