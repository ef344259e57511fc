// Package gossip_test runs a cluster of real sextant processes whose members
// find each other by gossip (the gossip membership plugin, out of process),
// and drives it with the official Nacos Go SDK.
package gossip_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

func TestMain(m *testing.M) { nacostest.Main(m) }

// The bounds the test holds the cluster to, in memberlist's "local" profile
// (probe every 1s; a suspect is declared dead after SuspicionMult 3 ×
// log10(5 nodes) rounded up to 1 × 1s = 3s once another member confirms
// the suspicion, after at most 6 × that, 18s, alone).
const (
	// suspicion is the local profile's suspicion timeout in a cluster of
	// five, with a probe interval before it.
	suspicion = 4 * time.Second
	// maxSuspicion is its longest, unconfirmed, with a probe interval.
	maxSuspicion = 19 * time.Second
	// margin absorbs a loaded machine.
	margin = 5 * time.Second
	// expiryGoal bounds how long a dead node's clients' instances stay on
	// the others.
	expiryGoal = 15 * time.Second
)

// gossipPort is a node's gossip port: its HTTP port + 1002 by default.
func gossipPort(httpPort int) int { return httpPort + 1002 }

// freePorts finds n HTTP ports whose client gRPC, cluster and gossip ports
// are free, and clash with no other node's.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	for range 50 {
		ports := servertest.FreePorts(t, n)
		ok := true
		for _, p := range ports {
			g := gossipPort(p)
			clash := slices.ContainsFunc(ports, func(q int) bool { return g == q || g == q+1000 || g == q+1001 })
			if clash || !listenable(g) {
				ok = false
				break
			}
		}
		if ok {
			return ports
		}
	}
	t.Fatal("no free ports")
	return nil
}

// listenable reports whether port is free on 127.0.0.1, TCP and UDP.
func listenable(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// cluster is nodes started with one configuration: the gossip, through
// node 1's gossip address only.
type cluster struct {
	ports  []int
	nodes  []*servertest.Server
	config string
}

func address(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func (c *cluster) addresses(indexes ...int) []string {
	var out []string
	for _, i := range indexes {
		out = append(out, address(c.ports[i]))
	}
	return out
}

// start starts node i (again).
func (c *cluster) start(t *testing.T, i int) {
	t.Helper()
	c.nodes[i] = servertest.Start(t, servertest.Options{
		Port: c.ports[i],
		Args: []string{"--config", c.config},
		Env:  []string{"SEXTANT_CLUSTER_SELF=" + address(c.ports[i])},
	})
}

// newCluster starts n nodes whose only seed is node 1.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c := &cluster{ports: freePorts(t, n), nodes: make([]*servertest.Server, n)}
	c.config = filepath.Join(t.TempDir(), "sextant.hcl")
	hcl := fmt.Sprintf(`cluster {
  membership = "gossip"
}
plugins {
  gossip {
    config {
      seeds          = ["%s"]
      bind           = "127.0.0.1"
      profile        = "local"
      encrypt_key    = "%s"
      retry_interval = "500ms"
    }
  }
  grpctransport {
    in_process = true
  }
  pushudp {
    disabled = true
  }
}
`, address(gossipPort(c.ports[0])), base64.StdEncoding.EncodeToString(key))
	if err := os.WriteFile(c.config, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c.start(t, i)
	}
	return c
}

// node is one member as /nacos/v1/core/cluster/nodes lists it.
type node struct {
	Address string
	State   string
}

func nodes(srv *servertest.Server) ([]node, error) {
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/nacos/v1/core/cluster/nodes")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct{ Data []node }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	return body.Data, nil
}

// awaitNodes waits until every one of srvs satisfies ok, within d, and
// returns how long it took.
func awaitNodes(t *testing.T, srvs []*servertest.Server, d time.Duration, what string, ok func([]node) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for _, srv := range srvs {
		for {
			list, err := nodes(srv)
			if err == nil && ok(list) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not list %s within %v: %v (%v)", srv.HTTPAddr(), what, d, list, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// exactlyUp is a condition: the members are want, all UP.
func exactlyUp(want []string) func([]node) bool {
	want = slices.Sorted(slices.Values(want))
	return func(list []node) bool {
		var up []string
		for _, n := range list {
			if n.State == "UP" {
				up = append(up, n.Address)
			}
		}
		slices.Sort(up)
		return len(list) == len(want) && slices.Equal(up, want)
	}
}

// notUp is a condition: the member at addr is DOWN, or gone.
func notUp(addr string) func([]node) bool {
	return func(list []node) bool {
		return !slices.ContainsFunc(list, func(n node) bool { return n.Address == addr && n.State == "UP" })
	}
}

func hasIP(ip string) func([]model.Instance) bool {
	return func(is []model.Instance) bool {
		return slices.ContainsFunc(is, func(in model.Instance) bool { return in.Ip == ip })
	}
}

func lacksIPs(prefix string) func([]model.Instance) bool {
	return func(is []model.Instance) bool {
		return !slices.ContainsFunc(is, func(in model.Instance) bool { return strings.HasPrefix(in.Ip, prefix) })
	}
}

// TestFiveNodesGossip starts five nodes that know only node 1's gossip
// address: they form one cluster. Node 5, killed with SIGKILL, is DOWN on
// the others within the gossip's suspicion timeout, then gone from their
// member lists, and the instances of its clients leave them within the
// expiry goal; started again, it rejoins and is UP everywhere.
func TestFiveNodesGossip(t *testing.T) {
	const n = 5
	c := newCluster(t, n)
	all := c.addresses(0, 1, 2, 3, 4)
	took := awaitNodes(t, c.nodes, 30*time.Second, "the five members UP", exactlyUp(all))
	t.Logf("every node lists the five members UP %v after the last one started", took.Round(time.Millisecond))

	const svc = "gossiped"
	subscriber := nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[0], ""), vo.SubscribeParam{ServiceName: svc})
	provider := nacostest.NewClient(t, c.nodes[4], "") // knows node 5 only
	var batch []vo.RegisterInstanceParam
	for i := range 3 {
		batch = append(batch, vo.RegisterInstanceParam{Ip: fmt.Sprintf("10.5.0.%d", i+1), Port: 80, Weight: 1, Enable: true, Healthy: true, Ephemeral: true})
	}
	if ok, err := provider.BatchRegisterInstance(vo.BatchRegisterInstanceParam{ServiceName: svc, Instances: batch}); err != nil || !ok {
		t.Fatalf("batch register on node 5: %v %v", ok, err)
	}
	// One on node 2 too: a service that expiry empties is pushed empty only
	// after a grace, which is not what this test measures.
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[1], ""), vo.RegisterInstanceParam{Ip: "10.5.9.9", Port: 80, ServiceName: svc})
	subscriber.AwaitCount(t, 4)

	killed := time.Now()
	c.nodes[4].Kill()
	var gone time.Duration
	var goneErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, goneErr = subscriber.Wait("node 5's instances gone, node 2's there", func(is []model.Instance) bool {
			return lacksIPs("10.5.0.")(is) && hasIP("10.5.9.9")(is)
		})
		gone = time.Since(killed)
	})
	survivors := c.nodes[:4]
	awaitNodes(t, survivors, suspicion+margin, "node 5 DOWN", notUp(address(c.ports[4])))
	down := time.Since(killed)
	awaitNodes(t, survivors, maxSuspicion+margin, "the four survivors UP, and node 5 gone", exactlyUp(all[:4]))
	dropped := time.Since(killed)
	wg.Wait()
	t.Logf("after node 5 was killed: DOWN on every survivor after %v, gone from their member lists after %v, "+
		"its instances gone after %v", down.Round(time.Millisecond), dropped.Round(time.Millisecond), gone.Round(time.Millisecond))
	if goneErr != nil {
		t.Fatal(goneErr)
	}
	if gone > expiryGoal {
		t.Errorf("node 5's instances left after %v, beyond the goal of %v", gone, expiryGoal)
	}
	provider.CloseClient() // the SDK's reconnection to the new node 5 would race in the SDK itself

	restarted := time.Now()
	c.start(t, 4)
	took = awaitNodes(t, c.nodes, 30*time.Second, "the five members UP", exactlyUp(all))
	t.Logf("node 5, started again, was UP on every node %v after it started (%v after it was ready)",
		time.Since(restarted).Round(time.Millisecond), took.Round(time.Millisecond))
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[4], ""), vo.RegisterInstanceParam{Ip: "10.5.1.1", Port: 80, ServiceName: svc})
	subscriber.Await(t, "the instance registered on node 5 after it rejoined", hasIP("10.5.1.1"))
}
