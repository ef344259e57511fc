package persistent_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
)

// TestPersistentInstancesOnEveryNode: in a cluster of three, the Go SDK
// (which registers an Ephemeral: false instance over the HTTP Open API) and
// a raw gRPC client (PersistentInstanceRequest), each a client of a
// follower, register a persistent instance each, beside ephemeral ones of
// the same clients; every node lists them (instance/list and
// ServiceQueryRequest) as ephemeral=false, and an SDK subscriber of the
// third node is pushed them. When the clients leave, their ephemeral
// instances go — and an HTTP client's ephemeral instance whose beats never
// come expires — while the persistent ones stay on every node. A
// deregistration by address, from other clients, removes them.
func TestPersistentInstancesOnEveryNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	leader := c.awaitRaft()
	var followers []int
	for i := range 3 {
		if i != leader {
			followers = append(followers, i)
		}
	}
	sdkNode, rawNode := followers[0], followers[1]
	const svc = "persistent-listed"
	// The beat checker runs every 100 ms: with these timeouts an HTTP
	// client's instance that is never beaten is gone 3 s after it came,
	// past the cluster's client expiry (2 s). The persistent instances
	// carry them too, so that a checker taking them for an HTTP client's
	// would drop them as well.
	metadata := func(via string) map[string]string {
		return map[string]string{"via": via, "preserved.heart.beat.interval": "500", "preserved.heart.beat.timeout": "1000",
			"preserved.ip.delete.timeout": "3000"}
	}

	subscriber := nacostest.NewClient(t, c.nodes[leader], "")
	watcher := nacostest.Subscribe(t, subscriber, vo.SubscribeParam{ServiceName: svc})

	// The SDK, a client of one follower.
	const sdkPersistent, sdkEphemeral = "10.14.1.1:8080", "10.14.1.2:8080"
	sdk := nacostest.NewClient(t, c.nodes[sdkNode], "")
	if ok, err := sdk.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.14.1.1", Port: 8080, ServiceName: svc, Weight: 2,
		Enable: true, Healthy: true, Ephemeral: false, Metadata: metadata("sdk-http")}); err != nil || !ok {
		t.Fatalf("the SDK's persistent registration (over HTTP) on node %d: ok=%v err=%v", sdkNode+1, ok, err)
	}
	nacostest.Register(t, sdk, vo.RegisterInstanceParam{Ip: "10.14.1.2", Port: 8080, ServiceName: svc, Metadata: map[string]string{"via": "sdk-grpc"}})

	// A raw gRPC client of the other follower.
	const rawPersistent, rawEphemeral = "10.14.2.1:8080", "10.14.2.2:8080"
	raw, err := dial(c.nodes[rawNode].GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	if a, err := raw.registerPersistent(requestTimeout, svc, "10.14.2.1", 8080, metadata("grpc")); err != nil || a.ResultCode != 200 || a.Type != "InstanceResponse" {
		t.Fatalf("PersistentInstanceRequest on node %d: %v %v", rawNode+1, a, err)
	}
	if a, err := raw.registerEphemeral(svc, "10.14.2.2", 8080); err != nil || a.ResultCode != 200 {
		t.Fatalf("InstanceRequest (ephemeral) on node %d: %v %v", rawNode+1, a, err)
	}

	// An HTTP client's ephemeral instance, never beaten.
	const beatless = "10.14.3.1:8080"
	if status, body, err := httpRegister(c.nodes[rawNode].HTTPAddr(), svc, "10.14.3.1", 8080, true, metadata("http-ephemeral")); err != nil || status != http.StatusOK {
		t.Fatalf("POST instance (ephemeral) on node %d: %d %q %v", rawNode+1, status, body, err)
	}

	persistent := []string{sdkPersistent, rawPersistent}
	ephemeral := []string{sdkEphemeral, rawEphemeral, beatless}

	// Every node lists them, over HTTP and over gRPC.
	queriers := make([]*rawConn, 3)
	for i := range 3 {
		if queriers[i], err = dial(c.nodes[i].GRPCAddr()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(queriers[i].Close)
	}
	for i := range 3 {
		hosts := awaitList(t, c.nodes[i].HTTPAddr(), svc, both(persistentAt(persistent...), listedEphemeral(ephemeral...)))
		if h := hosts[rawPersistent]; h.Weight != 1 || h.Metadata["via"] != "grpc" || !h.Enabled || h.ClusterName != "DEFAULT" {
			t.Errorf("node %d lists %s as %+v", i+1, rawPersistent, h)
		}
		if h := hosts[sdkPersistent]; h.Weight != 2 || h.Metadata["via"] != "sdk-http" || !h.Enabled || h.ClusterName != "DEFAULT" {
			t.Errorf("node %d lists %s as %+v", i+1, sdkPersistent, h)
		}
		got, err := queriers[i].query(svc)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range persistent {
			if eph, ok := got[a]; !ok || eph {
				t.Errorf("node %d answers a ServiceQueryRequest with %v: want %s, not ephemeral", i+1, got, a)
			}
		}
	}

	// The subscriber, on the third node, is pushed them.
	pushed := watcher.Await(t, "the persistent and ephemeral instances", func(is []model.Instance) bool {
		return hasAll(is, append(slices.Clone(persistent), ephemeral...))
	})
	for _, in := range pushed {
		a := fmt.Sprintf("%s:%d", in.Ip, in.Port)
		if want := !slices.Contains(persistent, a); in.Ephemeral != want {
			t.Errorf("pushed %s with ephemeral=%v, want %v", a, in.Ephemeral, want)
		}
	}

	// The clients leave: their ephemeral instances go, and the never-beaten
	// one expires; the persistent ones stay, on every node.
	sdk.CloseClient()
	raw.Close()
	for i := range 3 {
		awaitList(t, c.nodes[i].HTTPAddr(), svc, both(absent(ephemeral...), persistentAt(persistent...)))
	}
	watcher.Await(t, "the persistent instances alone", func(is []model.Instance) bool {
		return len(is) == len(persistent) && hasAll(is, persistent)
	})

	// Deregistered by address, by other clients, on other nodes.
	other, err := dial(c.nodes[leader].GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	if a, err := other.deregisterPersistent(svc, "10.14.2.1", 8080); err != nil || a.ResultCode != 200 {
		t.Fatalf("deregistering %s on node %d: %v %v", rawPersistent, leader+1, a, err)
	}
	again := nacostest.NewClient(t, c.nodes[rawNode], "")
	if ok, err := again.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.14.1.1", Port: 8080, ServiceName: svc, Ephemeral: false}); err != nil || !ok {
		t.Fatalf("the SDK's deregistration of %s (over HTTP) on node %d: %v %v", sdkPersistent, rawNode+1, ok, err)
	}
	for i := range 3 {
		awaitList(t, c.nodes[i].HTTPAddr(), svc, absent(persistent...))
	}
	watcher.AwaitCount(t, 0)
}

// listedEphemeral is a condition: addrs are listed, as ephemeral instances.
func listedEphemeral(addrs ...string) func(map[string]host) string {
	return func(hosts map[string]host) string {
		for _, a := range addrs {
			h, ok := hosts[a]
			switch {
			case !ok:
				return a + " is not listed; listed: " + describe(hosts)
			case !h.Ephemeral:
				return a + " is listed as persistent"
			}
		}
		return ""
	}
}

// hasAll reports whether is holds every one of addrs (ip:port).
func hasAll(is []model.Instance, addrs []string) bool {
	have := nacostest.Addresses(is)
	for _, a := range addrs {
		if !slices.Contains(have, a) {
			return false
		}
	}
	return true
}
