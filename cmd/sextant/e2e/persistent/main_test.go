// Package persistent_test drives persistent instances (Nacos's
// ephemeral=false, issue #14) through real sextant processes: registered by
// the official Go SDK v2 (which sends them over the HTTP Open API) and by a
// raw gRPC client (PersistentInstanceRequest), written through the Raft
// store, listed and pushed by every node, kept when their clients leave,
// kept through the kill of the Raft leader and the restart of a standalone
// node, refused with 503 without a quorum while reads and ephemeral
// registrations go on, and checked by the server as their cluster's health
// checker (TCP, HTTP, NONE) says. It must not import Sextant's proto
// package: the 2.x SDK registers the same protobuf message names, so the raw
// client speaks through the SDK's own generated stubs.
package persistent_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

func TestMain(m *testing.M) { nacostest.Main(m) }

// applyTimeout is raft.apply_timeout on every server of this package: a
// persistent write without a quorum fails within it.
const applyTimeout = 2 * time.Second

// awaitTimeout bounds every wait for a state that must come.
const awaitTimeout = 20 * time.Second

// env makes the servers react in test time.
var env = []string{
	"SEXTANT_PUSH_DELAY=20ms",
	"SEXTANT_PUSH_RETRY_DELAY=200ms",
	"SEXTANT_CLUSTER_SYNC_DELAY=50ms",
	"SEXTANT_CLUSTER_SYNC_RETRY_DELAY=200ms",
	"SEXTANT_CLUSTER_VERIFY_INTERVAL=500ms",
	"SEXTANT_CLUSTER_REPORT_INTERVAL=500ms",
	"SEXTANT_CLUSTER_CLIENT_EXPIRY=2s",
	"SEXTANT_HEALTH_CHECK_INTERVAL=100ms",
	"SEXTANT_RAFT_APPLY_TIMEOUT=" + applyTimeout.String(),
	// A server built with -race, and each of its plugin processes, would
	// sleep a second as it exits (the race detector's default).
	"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
}

// cluster is three sextant nodes listing each other with --members, each
// with a data directory of its own that outlives its processes.
type cluster struct {
	t      *testing.T
	ports  []int
	dirs   []string
	nodes  []*servertest.Server
	former [][]*servertest.Server // each node's processes before the running one

	stopping sync.Once
}

func address(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// startCluster starts three nodes and waits until their Raft has a leader
// and three voters; it shows the nodes' logs of note if the test fails.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	servertest.Binary(t) // built before anything is timed
	c := &cluster{t: t, ports: servertest.FreePorts(t, 3), nodes: make([]*servertest.Server, 3), former: make([][]*servertest.Server, 3)}
	for range 3 {
		c.dirs = append(c.dirs, t.TempDir())
	}
	t.Cleanup(c.showLogs)
	for i := range 3 {
		c.start(i)
	}
	c.awaitRaft()
	return c
}

func (c *cluster) addr(i int) string { return address(c.ports[i]) }

func (c *cluster) addresses() []string {
	out := make([]string, len(c.ports))
	for i := range c.ports {
		out[i] = c.addr(i)
	}
	return out
}

// start starts node i (again, on its port and data directory) and returns
// once it reports ready.
func (c *cluster) start(i int) *servertest.Server {
	c.t.Helper()
	if c.nodes[i] != nil {
		c.former[i] = append(c.former[i], c.nodes[i])
	}
	c.nodes[i] = servertest.Start(c.t, servertest.Options{
		Port:    c.ports[i],
		DataDir: c.dirs[i],
		Args:    []string{"--members", strings.Join(c.addresses(), ",")},
		Env:     append(slices.Clone(env), "SEXTANT_CLUSTER_SELF="+c.addr(i)),
	})
	// Cleanups run last first: this one, before any node's own, stops the
	// nodes at once rather than one after the other (their own cleanups
	// then find them stopped, and check how they exited).
	c.t.Cleanup(func() { c.stopping.Do(c.stopAll) })
	return c.nodes[i]
}

func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n != nil {
			wg.Go(func() { _ = n.Stop() })
		}
	}
	wg.Wait()
}

// kill ends node i with SIGKILL, as a crash would.
func (c *cluster) kill(i int) { c.nodes[i].Kill() }

func (c *cluster) running(i int) bool {
	select {
	case <-c.nodes[i].Exited():
		return false
	default:
		return true
	}
}

// awaitRaft waits until exactly one running node is the Raft leader, it
// counts every node a voter, and every running node knows a leader; it
// returns the leader.
func (c *cluster) awaitRaft() int {
	c.t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for {
		leader, why := c.raftSettled()
		if why == "" {
			return leader
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("raft did not settle within %v: %s", awaitTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// raftSettled says why the running nodes' Raft is not settled ("" when it
// is: one leader with three voters, known to all).
func (c *cluster) raftSettled() (leader int, why string) {
	leader = -1
	for i := range c.nodes {
		if !c.running(i) {
			continue
		}
		m, err := scrape(c.nodes[i].HTTPAddr())
		if err != nil {
			return -1, fmt.Sprintf("node %d: %v", i+1, err)
		}
		if m[`sextant_raft_leader_known`] != 1 {
			return -1, fmt.Sprintf("node %d knows no leader", i+1)
		}
		if m[`sextant_raft_state{state="Leader"}`] == 1 {
			if leader >= 0 {
				return -1, fmt.Sprintf("nodes %d and %d both say they lead", leader+1, i+1)
			}
			leader = i
			if v := m[`sextant_raft_servers{suffrage="voter"}`]; v != 3 {
				return -1, fmt.Sprintf("the leader, node %d, counts %v voters", i+1, v)
			}
		}
	}
	if leader < 0 {
		return -1, "no node says it leads"
	}
	return leader, ""
}

// leader returns the running node whose metrics say it leads (-1: none).
func (c *cluster) leader() int {
	for i := range c.nodes {
		if !c.running(i) {
			continue
		}
		if m, err := scrape(c.nodes[i].HTTPAddr()); err == nil && m[`sextant_raft_state{state="Leader"}`] == 1 {
			return i
		}
	}
	return -1
}

// showLogs shows every process's log lines of note when the test failed.
func (c *cluster) showLogs() {
	if !c.t.Failed() {
		return
	}
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		for life, p := range c.former[i] {
			c.t.Logf("node %d (%s), process %d of %d (ended), log lines of note:\n%s", i+1, c.addr(i), life+1, len(c.former[i])+1, notable(p.Logs()))
		}
		c.t.Logf("node %d (%s), latest process, log lines of note:\n%s", i+1, c.addr(i), notable(n.Logs()))
	}
}

// notable keeps the log lines that tell what Raft and the cluster did.
func notable(logs string) string {
	var out []string
	for line := range strings.Lines(logs) {
		for _, word := range []string{"raft", "persist", "leader", "member state", "snapshot", "ERROR", "WARN", "panic", "DATA RACE"} {
			if strings.Contains(line, word) {
				out = append(out, strings.TrimRight(line, "\n"))
				break
			}
		}
	}
	if len(out) > 120 {
		out = append([]string{fmt.Sprintf("... %d lines before", len(out)-120)}, out[len(out)-120:]...)
	}
	return strings.Join(out, "\n")
}

// scrape reads a server's /metrics: each series as written there, labels
// included, and its value.
func scrape(addr string) (map[string]float64, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// host is an instance as instance/list answers it.
type host struct {
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	Metadata    map[string]string `json:"metadata"`
}

func (h host) addr() string { return h.IP + ":" + strconv.Itoa(h.Port) }

// list returns the instances a node answers GET /nacos/v1/ns/instance/list
// with for svc (public namespace, DEFAULT_GROUP), keyed by ip:port.
func list(addr, svc string) (map[string]host, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/nacos/v1/ns/instance/list?" + url.Values{"serviceName": {svc}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("instance/list of %s on %s: %s %s", svc, addr, resp.Status, body)
	}
	var info struct {
		Name  string `json:"name"`
		Hosts []host `json:"hosts"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("instance/list of %s on %s: %v: %s", svc, addr, err, body)
	}
	if info.Name != "DEFAULT_GROUP@@"+svc {
		return nil, fmt.Errorf("instance/list of %s on %s names %q", svc, addr, info.Name)
	}
	out := make(map[string]host, len(info.Hosts))
	for _, h := range info.Hosts {
		if _, dup := out[h.addr()]; dup {
			return nil, fmt.Errorf("instance/list of %s on %s lists %s twice", svc, addr, h.addr())
		}
		out[h.addr()] = h
	}
	return out, nil
}

// awaitList waits until the instance/list of svc on addr satisfies ok,
// which returns what is still wrong ("" when nothing is), and returns it.
func awaitList(t *testing.T, addr, svc string, ok func(map[string]host) string) map[string]host {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for {
		hosts, err := list(addr, svc)
		why := ""
		if err != nil {
			why = err.Error()
		} else if why = ok(hosts); why == "" {
			return hosts
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, %s: not so within %v: %s", addr, svc, awaitTimeout, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// persistentAt is a condition: addrs are listed, as persistent instances.
func persistentAt(addrs ...string) func(map[string]host) string {
	return func(hosts map[string]host) string {
		for _, a := range addrs {
			h, ok := hosts[a]
			switch {
			case !ok:
				return a + " is not listed; listed: " + describe(hosts)
			case h.Ephemeral:
				return a + " is listed as ephemeral"
			}
		}
		return ""
	}
}

// absent is a condition: none of addrs is listed.
func absent(addrs ...string) func(map[string]host) string {
	return func(hosts map[string]host) string {
		for _, a := range addrs {
			if _, ok := hosts[a]; ok {
				return a + " is still listed"
			}
		}
		return ""
	}
}

// both is a condition met when a and b are.
func both(a, b func(map[string]host) string) func(map[string]host) string {
	return func(hosts map[string]host) string {
		if why := a(hosts); why != "" {
			return why
		}
		return b(hosts)
	}
}

func describe(hosts map[string]host) string {
	var out []string
	for a, h := range hosts {
		out = append(out, fmt.Sprintf("%s(ephemeral=%v)", a, h.Ephemeral))
	}
	slices.Sort(out)
	return "[" + strings.Join(out, " ") + "]"
}

// httpRegister registers an instance with POST /nacos/v1/ns/instance on
// addr and returns the status and body of the answer.
func httpRegister(addr, svc, ip string, port int, ephemeral bool, metadata map[string]string) (int, string, error) {
	form := url.Values{"serviceName": {svc}, "ip": {ip}, "port": {strconv.Itoa(port)}, "ephemeral": {strconv.FormatBool(ephemeral)},
		"weight": {"1"}, "healthy": {"true"}, "enable": {"true"}}
	if metadata != nil {
		md, err := json.Marshal(metadata)
		if err != nil {
			return 0, "", err
		}
		form.Set("metadata", string(md))
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.PostForm("http://"+addr+"/nacos/v1/ns/instance", form)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}
