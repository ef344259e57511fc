package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/plugins/grpctransport/tlstest"
)

// withStranger is a cluster of three nodes, 0 to 2, started with the
// environment env(i, the node's address) each, and room for a fourth, the
// stranger, whose member list names them all and itself, but theirs not it.
func withStranger(t *testing.T, env func(i int, self string) []string) *testCluster {
	c := &testCluster{ports: servertest.FreePorts(t, 4), nodes: make([]*servertest.Server, 4)}
	c.opts = func(i int) servertest.Options {
		members := c.addresses()
		if i < 3 {
			members = members[:3]
		}
		return servertest.Options{Args: []string{"--members", strings.Join(members, ",")}, Env: env(i, address(c.ports[i]))}
	}
	for i := range 3 {
		c.start(t, i)
	}
	awaitNodes(t, c.nodes[0], c.addresses()[:3])
	return c
}

// strangerIsRefused starts node 3, registers an instance on it, and checks
// that it never reaches the others: a later registration on node 0 does,
// without it. The others log that they refused a caller.
func strangerIsRefused(t *testing.T, c *testCluster) {
	t.Helper()
	const svc = "guarded"
	watchers := []*nacostest.Watcher{
		nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[1], ""), vo.SubscribeParam{ServiceName: svc}),
		nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[2], ""), vo.SubscribeParam{ServiceName: svc}),
	}
	stranger := c.start(t, 3)
	nacostest.Register(t, nacostest.NewClient(t, stranger, ""), vo.RegisterInstanceParam{Ip: "10.66.6.6", Port: 80, ServiceName: svc})
	nacostest.Subscribe(t, nacostest.NewClient(t, stranger, ""), vo.SubscribeParam{ServiceName: svc}).
		Await(t, "the stranger's instance on the stranger", hasIP("10.66.6.6"))
	// Syncs are retried every 200ms, verifications sent every 500ms.
	time.Sleep(2 * time.Second)

	nacostest.Register(t, nacostest.NewClient(t, c.nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.1.1.1", Port: 80, ServiceName: svc})
	for i, w := range watchers {
		got := w.Await(t, fmt.Sprintf("node 0's instance on node %d", i+1), hasIP("10.1.1.1"))
		if hasIP("10.66.6.6")(got) {
			t.Errorf("node %d has the stranger's instance: %s", i+1, nacostest.Describe(got))
		}
	}
	for i, n := range c.nodes[:3] {
		if !strings.Contains(n.Logs(), "refused a caller on the cluster port") {
			t.Errorf("node %d did not log that it refused the stranger:\n%s", i, n.Logs())
		}
	}
}

// TestClusterTLS: three nodes with certificates of the cluster's CA
// replicate as ever; a fourth, whose certificate comes from another CA,
// cannot write into their registry.
func TestClusterTLS(t *testing.T) {
	t.Parallel()
	ca, other := tlstest.NewCA(t, "cluster"), tlstest.NewCA(t, "stranger")
	dir := t.TempDir()
	c := withStranger(t, func(i int, self string) []string {
		signer := ca
		if i == 3 {
			signer = other // it trusts the cluster's CA, so it talks to the others
		}
		caFile, certFile, keyFile := signer.Files(t, dir, fmt.Sprint("node", i), []string{self}, ca)
		return []string{"SEXTANT_CLUSTER_TLS_CA_FILE=" + caFile, "SEXTANT_CLUSTER_TLS_CERT_FILE=" + certFile, "SEXTANT_CLUSTER_TLS_KEY_FILE=" + keyFile}
	})
	replication(t, c)
	strangerIsRefused(t, c)
	if logs := c.nodes[0].Logs(); strings.Contains(logs, "the cluster port accepts any caller") {
		t.Errorf("a node with cluster.tls warned that its cluster port accepts any caller:\n%s", logs)
	}
}

// TestClusterSecret: three nodes sharing cluster.secret replicate as ever;
// a fourth with another secret cannot write into their registry.
func TestClusterSecret(t *testing.T) {
	t.Parallel()
	c := withStranger(t, func(i int, _ string) []string {
		if i == 3 {
			return []string{"SEXTANT_CLUSTER_SECRET=not the secret of this cluster, but as long"}
		}
		return []string{"SEXTANT_CLUSTER_SECRET=the secret of this cluster, 32 bytes or more"}
	})
	replication(t, c)
	strangerIsRefused(t, c)
}

// TestClusterWithoutAuthenticationWarns: a node of a cluster with neither
// cluster.tls nor cluster.secret says its cluster port is open.
func TestClusterWithoutAuthenticationWarns(t *testing.T) {
	t.Parallel()
	c := withMembers(t, 1)
	const warning = "the cluster port accepts any caller: set cluster.tls or cluster.secret"
	deadline := time.Now().Add(nacostest.AwaitTimeout)
	for !strings.Contains(c.nodes[0].Logs(), warning) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning %q:\n%s", warning, c.nodes[0].Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
