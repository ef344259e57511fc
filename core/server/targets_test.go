package server

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// TestPersistentTargets: each persistent instance is checked with its
// cluster's checker, on the check port unless the cluster uses the
// instance's port, and with Nacos's TCP check when its cluster has no
// definition; NONE is listed as such (the scheduler skips it).
func TestPersistentTargets(t *testing.T) {
	fsm := persist.New(persist.Config{})
	svc := naming.Service{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "db"}
	other := naming.Service{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "other"}
	in := func(ip string, port int, cluster string) persist.Instance {
		return persist.Instance{IP: ip, Port: port, Cluster: cluster, Weight: 1, Healthy: true, Enabled: true}
	}
	data, err := persist.Encode(
		persist.PutInstance{Service: svc, Instance: in("10.0.0.1", 80, "DEFAULT")},
		persist.PutInstance{Service: svc, Instance: in("10.0.0.2", 81, "web")},
		persist.PutInstance{Service: svc, Instance: in("10.0.0.3", 82, "own")},
		persist.PutInstance{Service: svc, Instance: in("10.0.0.4", 83, "manual")},
		persist.PutInstance{Service: other, Instance: in("10.0.0.5", 84, "web")},
		persist.SetHealth{Service: svc, IP: "10.0.0.2", Port: 81, Cluster: "web", Healthy: false},
		persist.PutCluster{Service: svc, Cluster: "web", Definition: persist.ClusterDefinition{
			Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/health", CheckPort: 9000, Headers: map[string]string{"X-A": "1"}}}},
		persist.PutCluster{Service: svc, Cluster: "own", Definition: persist.ClusterDefinition{
			Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/h", CheckPort: 9000}, UseInstancePort: true}},
		persist.PutCluster{Service: svc, Cluster: "manual", Definition: persist.ClusterDefinition{
			Checker: healthcheck.Checker{Type: healthcheck.TypeNone}, UseInstancePort: true}},
		persist.PutCluster{Service: svc, Cluster: "unused", Definition: persist.DefaultClusterDefinition()},
	)
	if err != nil {
		t.Fatal(err)
	}
	resp := fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}).(persist.Response)
	for i, err := range resp.Results {
		if err != nil || resp.Err != nil {
			t.Fatalf("op %d: %v (%v)", i, err, resp.Err)
		}
	}
	got := persistentTargets(fsm)
	slices.SortFunc(got, func(a, b healthcheck.Target) int { return strings.Compare(a.Address.IP, b.Address.IP) })
	want := []healthcheck.Target{
		{Service: svc, Address: healthcheck.Address{IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT"}, Healthy: true,
			Checker: healthcheck.DefaultChecker()},
		{Service: svc, Address: healthcheck.Address{IP: "10.0.0.2", Port: 81, Cluster: "web"}, Healthy: false,
			Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/health", ExpectedCode: 200, CheckPort: 9000,
				Headers: map[string]string{"X-A": "1"}}},
		{Service: svc, Address: healthcheck.Address{IP: "10.0.0.3", Port: 82, Cluster: "own"}, Healthy: true,
			Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/h", ExpectedCode: 200}},
		{Service: svc, Address: healthcheck.Address{IP: "10.0.0.4", Port: 83, Cluster: "manual"}, Healthy: true,
			Checker: healthcheck.Checker{Type: healthcheck.TypeNone}},
		// Another service's cluster of the same name has no definition.
		{Service: other, Address: healthcheck.Address{IP: "10.0.0.5", Port: 84, Cluster: "web"}, Healthy: true,
			Checker: healthcheck.DefaultChecker()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets:\n got %+v\nwant %+v", got, want)
	}
}
