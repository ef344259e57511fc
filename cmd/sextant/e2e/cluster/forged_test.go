package cluster_test

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
)

// Issue 11, "Peer input is input": what an attacker on the nodes' network
// did with a plain gRPC client of the cluster port, and what it gets now.

const forgedService = "forged"

// listIPs asks srv's HTTP API for the instances of service, as a 1.x
// client does: the answer must be 200 and valid JSON.
func listIPs(t *testing.T, srv *servertest.Server, service string) []string {
	t.Helper()
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/nacos/v1/ns/instance/list?serviceName=" + url.QueryEscape(service))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var view struct{ Hosts []struct{ IP string } }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &view) != nil {
		t.Fatalf("instance/list of %s on %s: %d %s", service, srv.HTTPAddr(), resp.StatusCode, body)
	}
	var ips []string
	for _, h := range view.Hosts {
		ips = append(ips, h.IP)
	}
	slices.Sort(ips)
	return ips
}

// awaitIPs polls srv until it lists exactly want for service.
func awaitIPs(t *testing.T, srv *servertest.Server, service string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(nacostest.AwaitTimeout)
	for got := listIPs(t, srv, service); !slices.Equal(got, want); got = listIPs(t, srv, service) {
		if time.Now().After(deadline) {
			t.Fatalf("%s lists %v for %s, want %v", srv.HTTPAddr(), got, service, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// realClient returns the client holding ip in the snapshot of the node f
// speaks to, taken as from.
func realClient(t *testing.T, f *forger, from, ip string) *clusterv1.Client {
	t.Helper()
	clients, err := f.snapshot(from)
	if err != nil {
		t.Fatalf("a snapshot as %s: %v", from, err)
	}
	for _, c := range clients {
		for _, s := range c.Services {
			for _, in := range s.Instances {
				if in.Ip == ip {
					return c
				}
			}
		}
	}
	t.Fatalf("no client holds %s in the snapshot", ip)
	return nil
}

var validNamespace = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// checkAllValid fails t unless every client of the snapshot holds what
// client input could: valid namespaces and names, weights and ports in
// range.
func checkAllValid(t *testing.T, clients []*clusterv1.Client) {
	t.Helper()
	printable := func(s string) bool { return !strings.ContainsFunc(s, unicode.IsControl) }
	for _, c := range clients {
		for _, s := range c.Services {
			if !validNamespace.MatchString(s.Namespace) || !printable(s.Group) || !printable(s.Name) {
				t.Errorf("client %q holds the service %q/%q@@%q", c.Id, s.Namespace, s.Group, s.Name)
			}
			for _, in := range s.Instances {
				if math.IsNaN(in.Weight) || in.Weight < 0 || in.Weight > 10000 || in.Port < 0 || in.Port > 65535 {
					t.Errorf("client %q holds %s:%d of weight %v in %s", c.Id, in.Ip, in.Port, in.Weight, s.Name)
				}
			}
		}
	}
}

// TestForgedPeerMessagesWithoutClusterAuth: a cluster without cluster.tls
// or cluster.secret. A forger cannot speak as a stranger, nor, speaking as
// a member, change another member's client, nor store anything client input
// could not hold; the nodes keep answering.
func TestForgedPeerMessagesWithoutClusterAuth(t *testing.T) {
	t.Parallel()
	c := withMembers(t, 3)
	addrs := c.addresses()
	awaitNodes(t, c.nodes[1], addrs)
	watcher := nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[1], ""), vo.SubscribeParam{ServiceName: forgedService})
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.5.0.1", Port: 80, ServiceName: forgedService})
	watcher.Await(t, "node 1's instance on node 2", hasIP("10.5.0.1"))
	f := newForger(t, c.ports[1], "")
	// Without authentication a member's address is all it takes to read.
	real := realClient(t, f, addrs[0], "10.5.0.1")

	// A stranger, or nobody: refused, naming the address.
	evil := &clusterv1.Sync{Changed: []*clusterv1.Client{forgedClient("evil", 1, "public", forgedService, forgedInstance("6.6.6.6", 6666, 100))},
		Removed: []string{real.Id}}
	for _, from := range []string{"evil:6666", "10.0.0.99:8848", ""} {
		err := f.sync(from, evil)
		if err == nil || from != "" && (!strings.Contains(err.Error(), from) || !strings.Contains(err.Error(), "not a member")) {
			t.Errorf("a sync as %q: %v, want a refusal naming the address", from, err)
		}
		if _, err := f.verify(from); err == nil {
			t.Errorf("an empty verification as %q was taken", from)
		}
		if _, err := f.snapshot(from); err == nil {
			t.Errorf("a snapshot as %q was served", from)
		}
	}
	if got := c.nodes[1].Metric(t, `sextant_cluster_refused_messages_total{kind="sync"}`); got != 2 {
		t.Errorf("node 2 counted %v refused syncs, want 2 (the transport refuses a stream without a sender itself)", got)
	}

	// Node 3's address, node 1's client: its id and revision with another
	// address, a verification asking nothing, an empty one, a removal.
	hijack := forgedClient(real.Id, real.Revision, "public", forgedService, forgedInstance("6.6.6.6", 6666, 100))
	if err := f.sync(addrs[2], &clusterv1.Sync{Changed: []*clusterv1.Client{hijack}}); err != nil {
		t.Fatalf("a sync as node 3: %v", err)
	}
	if need, err := f.verify(addrs[2], &clusterv1.Verify_Entry{Id: real.Id, Revision: real.Revision + 1}); err != nil || len(need) != 0 {
		t.Fatalf("a verification as node 3 of node 1's client: asked for %v, %v", need, err)
	}
	if _, err := f.verify(addrs[2]); err != nil {
		t.Fatal(err)
	}
	if err := f.sync(addrs[2], &clusterv1.Sync{Removed: []string{real.Id}}); err != nil {
		t.Fatal(err)
	}
	if got := c.nodes[1].Metric(t, `sextant_distro_refused_clients_total{reason="owner"}`); got != 3 {
		t.Errorf("node 2 counted %v refusals of another member's client, want 3", got)
	}
	time.Sleep(time.Second) // two verifications of node 1: nothing to repair
	if ips := listIPs(t, c.nodes[1], forgedService); !slices.Equal(ips, []string{"10.5.0.1"}) {
		t.Fatalf("node 2 lists %v, want node 1's instance alone", ips)
	}

	// What client input could not hold, from a member's address.
	valid := forgedInstance("10.6.0.3", 80, 1)
	garbage := &clusterv1.Client{Id: "forged-1", Revision: 1, Services: []*clusterv1.ServiceInstances{
		{Namespace: "public", Group: "DEFAULT_GROUP", Name: forgedService, Instances: []*clusterv1.Instance{
			forgedInstance("10.6.0.1", 80, math.NaN()), forgedInstance("10.6.0.2", -5, 1), valid}},
		{Namespace: "../../etc", Group: "DEFAULT_GROUP", Name: "passwd", Instances: []*clusterv1.Instance{valid}},
		{Namespace: "public", Group: "DEFAULT_GROUP", Name: "nul\x00name", Instances: []*clusterv1.Instance{valid}},
	}}
	if err := f.sync(addrs[2], &clusterv1.Sync{Changed: []*clusterv1.Client{garbage}}); err != nil {
		t.Fatalf("a sync with invalid instances: %v, want the valid rest applied", err)
	}
	for reason, want := range map[string]float64{"instance": 2, "service": 2} {
		if got := c.nodes[1].Metric(t, `sextant_distro_invalid_total{reason="`+reason+`"}`); got != want {
			t.Errorf("sextant_distro_invalid_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	clients, err := f.snapshot(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	checkAllValid(t, clients)
	if ips := listIPs(t, c.nodes[1], forgedService); slices.Contains(ips, "10.6.0.1") || slices.Contains(ips, "10.6.0.2") {
		t.Fatalf("node 2 lists %v", ips)
	}
	// Queries, subscriptions and pushes of the service go on.
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.5.0.2", Port: 80, ServiceName: forgedService})
	watcher.Await(t, "a later instance pushed", hasIP("10.5.0.2"))
	nacostest.Subscribe(t, nacostest.NewClient(t, c.nodes[1], ""), vo.SubscribeParam{ServiceName: forgedService}).
		Await(t, "a new subscriber's answer", hasIP("10.5.0.2"))
	for i, n := range c.nodes {
		if logs := n.Logs(); strings.Contains(logs, "panic") {
			t.Errorf("node %d panicked:\n%s", i+1, logs)
		}
	}
	if logs := c.nodes[1].Logs(); !strings.Contains(logs, "refused a message from an address that is not a member") ||
		!strings.Contains(logs, "refused clients a member may not change") || !strings.Contains(logs, "dropped what a member sent") {
		t.Errorf("node 2 did not log the refusals:\n%s", logs)
	}
}

// TestForgedPeerMessagesWithClusterSecret: with cluster.secret, a forger
// without it — none, or a wrong one — gets nothing: no snapshot (which
// returned every client), no sync, no verification, whatever member it
// claims to be. With the secret, the same forger reads (a control).
func TestForgedPeerMessagesWithClusterSecret(t *testing.T) {
	t.Parallel()
	const secret = "the secret of this cluster, 32 bytes or more"
	c := withStranger(t, func(int, string) []string { return []string{"SEXTANT_CLUSTER_SECRET=" + secret} })
	addrs := c.addresses()[:3]
	nacostest.Register(t, nacostest.NewClient(t, c.nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.5.0.1", Port: 80, ServiceName: forgedService})
	awaitIPs(t, c.nodes[1], forgedService, "10.5.0.1")
	real := realClient(t, newForger(t, c.ports[1], secret), addrs[0], "10.5.0.1")

	for _, wrong := range []string{"", "not the secret of this cluster, but as long"} {
		f := newForger(t, c.ports[1], wrong)
		if clients, err := f.snapshot(addrs[0]); err == nil {
			t.Errorf("secret %q: a snapshot of %d clients was served", wrong, len(clients))
		}
		if err := f.sync(addrs[0], &clusterv1.Sync{Changed: []*clusterv1.Client{
			forgedClient("evil", 1, "public", forgedService, forgedInstance("6.6.6.6", 6666, 100))}}); err == nil {
			t.Errorf("secret %q: a sync was taken", wrong)
		}
		if _, err := f.verify(addrs[0]); err == nil { // it would drop node 1's clients
			t.Errorf("secret %q: an empty verification as node 1 was taken", wrong)
		}
		if err := f.sync(addrs[0], &clusterv1.Sync{Removed: []string{real.Id}}); err == nil {
			t.Errorf("secret %q: a removal was taken", wrong)
		}
	}
	if ips := listIPs(t, c.nodes[1], forgedService); !slices.Equal(ips, []string{"10.5.0.1"}) {
		t.Fatalf("node 2 lists %v, want node 1's instance alone", ips)
	}
	if !strings.Contains(c.nodes[1].Logs(), "refused a caller on the cluster port") {
		t.Errorf("node 2 did not log the refusals:\n%s", c.nodes[1].Logs())
	}
}
