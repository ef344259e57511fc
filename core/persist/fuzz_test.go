package persist

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
)

// FuzzApply applies arbitrary bytes as a log entry to a populated FSM. It
// must never panic; the response must have one result per op; the state
// must stay valid (a snapshot of it restores, to the same bytes, and its
// counts are right); and another FSM applying the same entry must reach the
// same state.
func FuzzApply(f *testing.F) {
	seeds := [][]Op{
		{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}},
		{PutInstance{Service: naming.Service{Namespace: "dev", Name: "x"}, Instance: Instance{IP: "::1", Port: 65535, Cluster: "c.1",
			Weight: 0.5, Metadata: map[string]string{"k": "v\nw", naming.MetaHeartbeatInterval: "1000"}}, Expect: ExpectAbsent}},
		{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80), Expect: ExpectPresent}, RemoveInstance{Service: svcA, IP: "10.0.0.1", Port: 80}},
		{RemoveInstance{Service: svcB, IP: "10.0.0.2", Port: 8080}, RemoveService{Service: svcB}},
		{SetHealth{Service: svcD, IP: "10.0.0.3", Port: 5432, Healthy: true}},
		{PutService{Service: svcA, Definition: ServiceDefinition{ProtectThreshold: 1, Metadata: map[string]string{"a": "b"},
			Selector: naming.Selector{Type: "label", Expression: "CONSUMER.label.a = PROVIDER.label.a"}}}},
		{PutService{Service: svcB, Expect: ExpectAbsent}, RemoveService{Service: svcD}},
		{PutNamespace{Namespace: Namespace{ID: "dev", Name: "D", Description: "x"}, Expect: ExpectPresent}, RemoveNamespace{ID: "prod-1_a"}},
		{RemoveNamespace{ID: "dev"}, PutNamespace{Namespace: Namespace{ID: "new", Name: "N"}}},
		{PutCluster{Service: svcB, Cluster: "web", Definition: ClusterDefinition{Metadata: map[string]string{"k": "v"},
			Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/h?x=1", ExpectedCode: 503, CheckPort: 9000,
				Headers: map[string]string{"Host": "h", "X-A": "1\t2"}}}}},
		{PutCluster{Service: svcA, Cluster: "c-2.x", Definition: DefaultClusterDefinition()}, RemoveService{Service: svcClustersOnly}},
		{PutCluster{Service: naming.Service{Name: "new"}, Definition: ClusterDefinition{Checker: healthcheck.Checker{Type: healthcheck.TypeNone},
			UseInstancePort: true}}, RemoveInstance{Service: svcD, IP: "10.0.0.3", Port: 5432}, RemoveService{Service: svcD}},
		{},
	}
	for _, ops := range seeds {
		f.Add(encode(f, ops...))
	}
	for _, s := range []string{
		"", "{}", `{"v":1}`, `{"v":1,"ops":null}`, `{"v":1,"ops":[{}]}`, `{"v":1,"ops":[{"op":"put_instance","instance":{}}]}`,
		`{"v":1,"ops":[{"op":"set_health","address":{"ip":"10.0.0.1","port":80},"healthy":false}]}`,
		`{"v":1,"ops":[{"op":"put_instance","service":{"name":"a"},"instance":{"ip":"fe80::1%\u001b","port":1,"weight":1e308}}]}`,
		`{"v":1,"ops":[{"op":"put_service","service":{"name":"a"},"definition":{"protectThreshold":-0,"metadata":{"":""},"selector":{"type":"none","expression":"x"}}}]}`,
		`{"v":1,"ops":[{"op":"put_namespace","namespace":{"id":"\ud800","name":"\u0000"}}]}`,
		`{"v":1,"ops":[{"op":"put_cluster","service":{"name":"a"}}]}`,
		`{"v":1,"ops":[{"op":"put_cluster","service":{"name":"a"},"cluster":{"name":"x,y","checker":{"type":"tcp"},"checkPort":0,"useInstancePort":false}}]}`,
		`{"v":1,"ops":[{"op":"put_cluster","service":{"name":"a"},"cluster":{"name":"","checker":{"type":"HTTP","path":"health","expectedCode":99,"headers":{"Connection":"x","a|b":"\u0000"}},"checkPort":-1,"useInstancePort":true,"metadata":{"":""}}}]}`,
		`{"v":1,"ops":[{"op":"put_cluster","service":{"name":"a"},"cluster":{"name":"c","checker":{"type":"NONE","path":"/x"},"checkPort":70000,"useInstancePort":true}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := newHarness(t, Config{MaxInstancesPerService: 4, MaxServices: 6, MaxNamespaces: 3, MaxOpsPerEntry: 64}),
			newHarness(t, Config{MaxInstancesPerService: 4, MaxServices: 6, MaxNamespaces: 3, MaxOpsPerEntry: 64})
		populate(t, a)
		populate(t, b)
		r := a.applyData(data)
		if r.Err == nil {
			ops, err := decode(data, 64)
			if err != nil || len(r.Results) != len(ops) {
				t.Fatalf("%d results for %d ops (%v)", len(r.Results), len(ops), err)
			}
		} else if r.Results != nil {
			t.Fatal("results for a refused entry")
		}
		checkInvariants(t, a.FSM)

		snap := snapshotBytes(t, a.FSM)
		restored := New(Config{})
		if err := restore(restored, snap); err != nil {
			t.Fatalf("the state after the entry does not restore: %v\n%s", err, snap)
		}
		if again := snapshotBytes(t, restored); !bytes.Equal(again, snap) {
			t.Fatalf("a restored state snapshots otherwise:\n%s\n%s", snap, again)
		}
		b.ApplyBatch([]*raft.Log{{Index: a.index, Type: raft.LogCommand, Data: data}})
		if !bytes.Equal(snapshotBytes(t, b.FSM), snap) {
			t.Fatal("the same entry gave another state")
		}
	})
}

// checkInvariants checks what the state holds against its counts and
// limits.
func checkInvariants(t *testing.T, f *FSM) {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	instances, defined, clusters := 0, 0, 0
	for svc, e := range f.st.services {
		if !e.defined && len(e.instances) == 0 && len(e.clusters) == 0 {
			t.Errorf("%s is held empty", svc)
		}
		if len(e.clusters) > f.counts.clustersPerService {
			t.Errorf("%s has %d clusters", svc, len(e.clusters))
		}
		for name, d := range e.clusters {
			if got, err := checkClusterDefinition(f.limits, d); err != nil || !got.equal(d) {
				t.Errorf("%s: cluster %s held as %+v, not normalized (%+v, %v)", svc, name, d, got, err)
			}
		}
		clusters += len(e.clusters)
		if len(e.instances) > f.counts.instancesPerService {
			t.Errorf("%s has %d instances", svc, len(e.instances))
		}
		for a, in := range e.instances {
			if in.Address() != a {
				t.Errorf("%s: instance %+v under %v", svc, in, a)
			}
		}
		instances += len(e.instances)
		if e.defined {
			defined++
		}
	}
	if instances != f.st.instances || defined != f.st.defined || clusters != f.st.clusters {
		t.Errorf("counted %d instances, %d defined, %d clusters; held %d, %d, %d", instances, defined, clusters,
			f.st.instances, f.st.defined, f.st.clusters)
	}
	if len(f.st.services) > f.counts.services || len(f.st.namespaces) > f.counts.namespaces {
		t.Errorf("%d services, %d namespaces", len(f.st.services), len(f.st.namespaces))
	}
}
