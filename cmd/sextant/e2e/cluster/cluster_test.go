// Package cluster_test runs clusters of real sextant processes on loopback
// and drives them with the official Nacos Go SDK.
package cluster_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

func TestMain(m *testing.M) { nacostest.Main(m) }

// expiry is the client expiry the test clusters run with.
const expiry = 2 * time.Second

// fast makes a cluster react in test time.
var fast = []string{
	"SEXTANT_PUSH_DELAY=20ms",
	"SEXTANT_CLUSTER_SYNC_DELAY=50ms",
	"SEXTANT_CLUSTER_SYNC_RETRY_DELAY=200ms",
	"SEXTANT_CLUSTER_VERIFY_INTERVAL=500ms",
	"SEXTANT_CLUSTER_REPORT_INTERVAL=500ms",
	"SEXTANT_CLUSTER_CLIENT_EXPIRY=" + expiry.String(),
}

// testCluster is n nodes started with the same membership.
type testCluster struct {
	ports []int
	nodes []*servertest.Server
	opts  func(i int) servertest.Options
}

func address(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func (c *testCluster) addresses() []string {
	out := make([]string, len(c.ports))
	for i, p := range c.ports {
		out[i] = address(p)
	}
	return out
}

// start starts node i (again).
func (c *testCluster) start(t *testing.T, i int) *servertest.Server {
	t.Helper()
	o := c.opts(i)
	o.Port = c.ports[i]
	// Members from a file or an address server are not known when the node
	// starts, so it is told which of them it is.
	o.Env = append(slices.Clone(fast), append(o.Env, "SEXTANT_CLUSTER_SELF="+address(c.ports[i]))...)
	c.nodes[i] = servertest.Start(t, o)
	return c.nodes[i]
}

// withMembers starts n nodes listing each other with --members, talking
// over grpctransport.
func withMembers(t *testing.T, n int) *testCluster { return withMembersOver(t, n, transports[0]) }

// withMembersOver starts n nodes listing each other with --members, talking
// over tr.
func withMembersOver(t *testing.T, n int, tr clusterTransport) *testCluster {
	c := &testCluster{ports: servertest.FreePorts(t, n), nodes: make([]*servertest.Server, n)}
	args := tr.args(t)
	c.opts = func(int) servertest.Options {
		return servertest.Options{Args: append(slices.Clone(args), "--members", strings.Join(c.addresses(), ","))}
	}
	for i := range n {
		c.start(t, i)
	}
	if logs := c.nodes[0].Logs(); !strings.Contains(logs, "transport plugin: plugin="+tr.name+" ") {
		t.Fatalf("node 1 does not run %s:\n%s", tr.name, logs)
	}
	return c
}

// withClusterConf starts n nodes sharing a Nacos cluster.conf that lists
// them all; extraConfig goes into the plugins block.
func withClusterConf(t *testing.T, n int, extraConfig string) (*testCluster, string) {
	c := &testCluster{ports: servertest.FreePorts(t, n), nodes: make([]*servertest.Server, n)}
	dir := t.TempDir()
	conf := filepath.Join(dir, "cluster.conf")
	writeClusterConf(t, conf, c.addresses())
	config := filepath.Join(dir, "sextant.hcl")
	hcl := "cluster {\n  membership = \"file\"\n}\nplugins {\n  file {\n    config {\n      path = \"" + conf + "\"\n      interval = \"200ms\"\n    }\n  }\n" + extraConfig + "}\n"
	if err := os.WriteFile(config, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	c.opts = func(int) servertest.Options { return servertest.Options{Args: []string{"--config", config}} }
	for i := range n {
		c.start(t, i)
	}
	return c, conf
}

func writeClusterConf(t *testing.T, path string, members []string) {
	t.Helper()
	body := "# the test cluster\n" + strings.Join(members, "\n") + "\n"
	if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// node is one member as /nacos/v1/core/cluster/nodes lists it.
type node struct {
	Address string
	State   string
}

func nodes(t *testing.T, srv *servertest.Server) []node {
	t.Helper()
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/nacos/v1/core/cluster/nodes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Data []node }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Data
}

// awaitNodes waits until srv lists exactly the members want, all UP.
func awaitNodes(t *testing.T, srv *servertest.Server, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(nacostest.AwaitTimeout)
	for {
		var up []string
		for _, n := range nodes(t, srv) {
			if n.State == "UP" {
				up = append(up, n.Address)
			}
		}
		slices.Sort(up)
		if slices.Equal(up, want) && len(nodes(t, srv)) == len(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lists %v, want %v all UP", srv.HTTPAddr(), nodes(t, srv), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	providerOnce sync.Once
	providerBin  string
	providerErr  error
)

// provider runs testdata/provider — an SDK client that knows the given
// servers and registers ip in svc — until the test ends or kill is called.
func provider(t *testing.T, servers []*servertest.Server, svc, ip string) (kill func()) {
	t.Helper()
	providerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sextant-provider")
		if err != nil {
			providerErr = err
			return
		}
		providerBin = filepath.Join(dir, "provider")
		if out, err := exec.Command("go", "build", "-o", providerBin, "./testdata/provider").CombinedOutput(); err != nil {
			providerErr = fmt.Errorf("building the provider: %v\n%s", err, out)
		}
	})
	if providerErr != nil {
		t.Fatal(providerErr)
	}
	var ports []string
	for _, s := range servers {
		ports = append(ports, strconv.Itoa(s.HTTPPort))
	}
	cmd := exec.Command(providerBin, "--servers", strings.Join(ports, ","), "--service", svc, "--ip", ip, "--dir", t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(func() {
		stdin.Close()
		kill()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "registered\n" {
		t.Fatalf("the provider said %q (%v)", line, err)
	}
	return kill
}

func hasIP(ip string) func([]model.Instance) bool {
	return func(is []model.Instance) bool {
		return slices.ContainsFunc(is, func(in model.Instance) bool { return in.Ip == ip })
	}
}

func lacksIP(ip string) func([]model.Instance) bool {
	return func(is []model.Instance) bool { return !hasIP(ip)(is) }
}

// replication checks a registration, a deregistration and a disconnection
// on node 1 reach a subscriber on node 3.
func replication(t *testing.T, c *testCluster) {
	const svc = "replicated"
	subscriber := nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[2], ""), vo.SubscribeParam{ServiceName: svc})
	provider, leaver := nacostest.NewClient(t, c.nodes[0], ""), nacostest.NewClient(t, c.nodes[0], "")
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.1.0.1", Port: 80, ServiceName: svc, Metadata: map[string]string{"from": "node-1"}})
	got := subscriber.Await(t, "the instance registered on node 1", hasIP("10.1.0.1"))
	if got[0].Metadata["from"] != "node-1" || got[0].ServiceName != "DEFAULT_GROUP@@"+svc {
		t.Fatalf("replicated instance %+v", got[0])
	}
	nacostest.Register(t, leaver, vo.RegisterInstanceParam{Ip: "10.1.0.2", Port: 80, ServiceName: svc})
	subscriber.Await(t, "the second instance", hasIP("10.1.0.2"))

	if ok, err := provider.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.1.0.1", Port: 80, ServiceName: svc, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("deregister: %v %v", ok, err)
	}
	subscriber.Await(t, "the deregistration", lacksIP("10.1.0.1"))
	leaver.CloseClient()
	subscriber.AwaitCount(t, 0)
}

func TestReplicationWithMembers(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, tr clusterTransport) {
		c := withMembersOver(t, 3, tr)
		awaitNodes(t, c.nodes[0], c.addresses())
		replication(t, c)
	})
}

func TestReplicationWithClusterConf(t *testing.T) {
	t.Parallel()
	c, _ := withClusterConf(t, 3, "")
	awaitNodes(t, c.nodes[1], c.addresses())
	replication(t, c)
}

// TestSwappedPlugins runs the cluster with the transport inside the server
// and the members from an address server: configuration only.
func TestSwappedPlugins(t *testing.T) {
	t.Parallel()
	ports := servertest.FreePorts(t, 3)
	list := ""
	for _, p := range ports {
		list += address(p) + "\n"
	}
	addressServer := newAddressServer(t, list)
	config := filepath.Join(t.TempDir(), "sextant.yaml")
	yaml := fmt.Sprintf("cluster:\n  membership: address-server\nplugins:\n  address-server:\n    config:\n      url: %s\n      interval: 200ms\n  grpctransport:\n    in_process: true\n", addressServer)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{ports: ports, nodes: make([]*servertest.Server, 3)}
	c.opts = func(int) servertest.Options { return servertest.Options{Args: []string{"--config", config}} }
	for i := range 3 {
		c.start(t, i)
	}
	awaitNodes(t, c.nodes[2], c.addresses())
	replication(t, c)
}

// TestAKilledNodesInstancesGoAndReconnectingProvidersComeBack kills node 1
// with SIGKILL: its instances leave the others' pushes within the client
// expiry, and a provider whose SDK knows every node reconnects elsewhere,
// registers again, and is seen again.
func TestAKilledNodesInstancesGoAndReconnectingProvidersComeBack(t *testing.T) {
	t.Parallel()
	overEachTransport(t, aKilledNodesInstancesGoAndReconnectingProvidersComeBack)
}

func aKilledNodesInstancesGoAndReconnectingProvidersComeBack(t *testing.T, tr clusterTransport) {
	c := withMembersOver(t, 3, tr)
	awaitNodes(t, c.nodes[1], c.addresses())
	const svc = "survivor"
	watcher := nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[2], ""), vo.SubscribeParam{ServiceName: svc})
	// Knows node 1 only (it never manages to reconnect).
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.2.0.1", Port: 80, ServiceName: svc})
	// Knows every node, and is connected to node 1.
	landOn(t, c, 0, func() func() { return provider(t, c.nodes, svc, "10.2.0.2") })
	watcher.Await(t, "both instances", func(is []model.Instance) bool { return hasIP("10.2.0.1")(is) && hasIP("10.2.0.2")(is) })

	killed := time.Now()
	c.nodes[0].Kill()
	watcher.Await(t, "the killed node's instance gone", lacksIP("10.2.0.1"))
	gone := time.Since(killed)
	t.Logf("the killed node's instance left the survivors' pushes after %v (expiry %v)", gone.Round(time.Millisecond), expiry)
	if gone > expiry+5*time.Second {
		t.Errorf("it took %v, far beyond the expiry of %v", gone, expiry)
	}
	watcher.Await(t, "the roaming provider back", hasIP("10.2.0.2"))
}

// landOn starts clients with start until one is connected to node i (the
// SDK picks its server at random); the others are stopped.
func landOn(t *testing.T, c *testCluster, i int, start func() (stop func())) {
	t.Helper()
	for range 30 {
		before := c.nodes[i].Metric(t, "sextant_connections")
		stop := start()
		for range 20 {
			if c.nodes[i].Metric(t, "sextant_connections") > before {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		stop()
	}
	t.Fatalf("no client landed on node %d", i+1)
}

// TestARestartedNodeLoadsTheRegistryBeforeItIsReady restarts node 1: once it
// reports ready it answers with every instance of the others, keeps what was
// registered on it while it loaded, and has forgotten its former life.
func TestARestartedNodeLoadsTheRegistryBeforeItIsReady(t *testing.T) {
	t.Parallel()
	overEachTransport(t, aRestartedNodeLoadsTheRegistryBeforeItIsReady)
}

func aRestartedNodeLoadsTheRegistryBeforeItIsReady(t *testing.T, tr clusterTransport) {
	c := withMembersOver(t, 3, tr)
	awaitNodes(t, c.nodes[0], c.addresses())
	const svc = "reloaded"
	var want []string
	for i := range 2 {
		provider := nacostest.NewClient(t, c.nodes[i+1], "")
		var batch []vo.RegisterInstanceParam
		for j := range 200 {
			ip := fmt.Sprintf("10.3.%d.%d", i, j)
			want = append(want, ip+":80")
			batch = append(batch, vo.RegisterInstanceParam{Ip: ip, Port: 80, Weight: 1, Enable: true, Healthy: true, Ephemeral: true})
		}
		if ok, err := provider.BatchRegisterInstance(vo.BatchRegisterInstanceParam{ServiceName: svc, Instances: batch}); err != nil || !ok {
			t.Fatalf("batch register: %v %v", ok, err)
		}
	}
	// Registered on node 1 by a client that dies with it: gone for good.
	killProvider := provider(t, c.nodes[:1], svc, "10.3.9.9")
	slices.Sort(want)
	watching := nacostest.NewClient(t, c.nodes[0], "")
	nacostest.Subscribe(t, watching, vo.SubscribeParam{ServiceName: svc}).AwaitCount(t, len(want)+1)
	watching.CloseClient() // a client reconnecting to the new node 1 would trip the SDK's own data race

	killProvider()
	c.nodes[0].Kill()
	c.start(t, 0) // returns once it reports ready
	got := nacostest.Addresses(selectAll(t, nacostest.NewClient(t, c.nodes[0], ""), svc))
	if !slices.Equal(got, want) {
		t.Fatalf("ready with %d instances, want the %d of the other nodes (and not the one of its dead client)", len(got), len(want))
	}
	// Registered on the restarted node: it stays, and reaches the others.
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.3.8.8", Port: 80, ServiceName: svc})
	nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[1], ""), vo.SubscribeParam{ServiceName: svc}).Await(t, "the new instance on node 2", hasIP("10.3.8.8"))
}

func selectAll(t *testing.T, client naming_client.INamingClient, svc string) []model.Instance {
	t.Helper()
	is, err := client.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: svc})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// TestANodeJoinsAndLeavesThroughClusterConf adds a fourth node to the
// cluster.conf of a running cluster: it joins, loads and serves; removed
// from the file, it leaves.
func TestANodeJoinsAndLeavesThroughClusterConf(t *testing.T) {
	t.Parallel()
	c, conf := withClusterConf(t, 4, "")
	// withClusterConf listed all four and started them; begin with three.
	c.nodes[3].Stop()
	three := c.addresses()[:3]
	writeClusterConf(t, conf, three)
	awaitNodes(t, c.nodes[0], three)

	const svc = "joining"
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.4.0.1", Port: 80, ServiceName: svc})
	writeClusterConf(t, conf, c.addresses())
	fourth := c.start(t, 3)
	awaitNodes(t, c.nodes[0], c.addresses())
	if got := nacostest.Addresses(selectAll(t, nacostest.NewClient(t, fourth, ""), svc)); !slices.Equal(got, []string{"10.4.0.1:80"}) {
		t.Fatalf("the joined node serves %v", got)
	}
	nacostest.Register(t, nacostest.NewClient(t, fourth, ""), vo.RegisterInstanceParam{Ip: "10.4.0.4", Port: 80, ServiceName: svc})
	nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[1], ""), vo.SubscribeParam{ServiceName: svc}).Await(t, "the fourth node's instance", hasIP("10.4.0.4"))

	writeClusterConf(t, conf, three)
	awaitNodes(t, c.nodes[0], three)
}

// newAddressServer serves list as Nacos's /nacos/serverlist does and
// returns its URL.
func newAddressServer(t *testing.T, list string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, list) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/nacos/serverlist"
}
