package persist

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
)

func TestPutCluster(t *testing.T) {
	httpDef := ClusterDefinition{Metadata: map[string]string{"zone": "eu"},
		Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/health", ExpectedCode: 200, CheckPort: 8081,
			Headers: map[string]string{"X-Token": "s3cret"}}}
	put := func(name string, d ClusterDefinition) Op {
		return PutCluster{Service: svcA, Cluster: name, Definition: d}
	}
	with := func(f func(*ClusterDefinition)) ClusterDefinition {
		d := httpDef
		d.Checker.Headers = map[string]string{"X-Token": "s3cret"}
		f(&d)
		return d
	}
	wantCluster := func(name string, want ClusterDefinition) func(*testing.T, *harness) {
		return func(t *testing.T, h *harness) {
			t.Helper()
			if got, ok := h.Cluster(svcA, name); !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("cluster %s: %+v %v, want %+v", name, got, ok, want)
			}
		}
	}
	tcp := ClusterDefinition{Checker: healthcheck.Checker{Type: healthcheck.TypeTCP}, UseInstancePort: true}
	runOpCases(t, []opCase{
		{name: "http", op: put("web", httpDef), check: wantCluster("web", httpDef)},
		{name: "defaults: the default cluster, TCP, no metadata", op: PutCluster{Service: naming.Service{Name: "a"},
			Definition: ClusterDefinition{UseInstancePort: true, Metadata: map[string]string{}}}, check: wantCluster("DEFAULT", tcp)},
		{name: "http defaults: code 200", op: put("web", with(func(d *ClusterDefinition) { d.Checker.ExpectedCode, d.Checker.Path = 0, "" })),
			check: wantCluster("web", with(func(d *ClusterDefinition) { d.Checker.Path = "" }))},
		{name: "none", op: put("", ClusterDefinition{Checker: healthcheck.Checker{Type: healthcheck.TypeNone}, UseInstancePort: true})},
		{name: "replace", setup: []Op{put("web", httpDef)}, op: put("web", tcp), check: wantCluster("web", tcp)},
		{name: "equal", setup: []Op{put("web", httpDef)}, op: put("web", with(func(*ClusterDefinition) {})), noChange: true},
		{name: "the check port kept with the instance's port", op: put("web", with(func(d *ClusterDefinition) { d.UseInstancePort = true })),
			check: func(t *testing.T, h *harness) {
				d, _ := h.Cluster(svcA, "web")
				if d.Checker.CheckPort != 8081 || d.HealthChecker().CheckPort != 0 {
					t.Errorf("stored %+v, checks with %+v", d, d.HealthChecker())
				}
			}},
		{name: "a service with instances", setup: []Op{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}}, op: put("web", httpDef)},
		{name: "at the clusters per service, replacing", cfg: Config{MaxClustersPerService: 1}, setup: []Op{put("web", httpDef)},
			op: put("web", tcp)},

		{name: "bad service", op: PutCluster{Service: naming.Service{Name: "a@@b"}, Definition: tcp}, field: "serviceName"},
		{name: "bad cluster name", op: put("a_b", tcp), field: "clusterName"},
		{name: "two cluster names", op: put("a,b", tcp), field: "clusterName"},
		{name: "long cluster name", op: put(strings.Repeat("c", 65), tcp), field: "clusterName"},
		{name: "bad type", op: put("web", ClusterDefinition{Checker: healthcheck.Checker{Type: "UDP"}, UseInstancePort: true}),
			field: "healthChecker.type"},
		{name: "lower-case type", op: put("web", ClusterDefinition{Checker: healthcheck.Checker{Type: "http"}, UseInstancePort: true}),
			field: "healthChecker.type"},
		{name: "relative path", op: put("web", with(func(d *ClusterDefinition) { d.Checker.Path = "health" })), field: "healthChecker.path"},
		{name: "absolute URL", op: put("web", with(func(d *ClusterDefinition) { d.Checker.Path = "http://evil/" })), field: "healthChecker.path"},
		{name: "code under 100", op: put("web", with(func(d *ClusterDefinition) { d.Checker.ExpectedCode = 99 })),
			field: "healthChecker.expectedResponseCode"},
		{name: "code over 599", op: put("web", with(func(d *ClusterDefinition) { d.Checker.ExpectedCode = 600 })),
			field: "healthChecker.expectedResponseCode"},
		{name: "a hop-by-hop header", op: put("web", with(func(d *ClusterDefinition) { d.Checker.Headers = map[string]string{"Connection": "x"} })),
			field: "healthChecker.headers"},
		{name: "a header value not UTF-8", op: put("web", with(func(d *ClusterDefinition) { d.Checker.Headers = map[string]string{"X-A": "\xff"} })),
			field: "healthChecker.headers"},
		{name: "a path on TCP", op: put("web", ClusterDefinition{Checker: healthcheck.Checker{Path: "/x"}, UseInstancePort: true}),
			field: "healthChecker.path"},
		{name: "port over 65535", op: put("web", with(func(d *ClusterDefinition) { d.Checker.CheckPort = 65536 })), field: "checkPort"},
		{name: "negative port", op: put("web", with(func(d *ClusterDefinition) { d.Checker.CheckPort = -1; d.UseInstancePort = true })),
			field: "checkPort"},
		{name: "no port to check", op: put("web", with(func(d *ClusterDefinition) { d.Checker.CheckPort = 0 })), field: "checkPort"},
		{name: "metadata over the limit", op: put("web", with(func(d *ClusterDefinition) { d.Metadata = bigMetadata(16 * 1024) })),
			field: "metadata", limit: naming.LimitMetadataBytes},
		{name: "metadata key empty", op: put("web", with(func(d *ClusterDefinition) { d.Metadata = map[string]string{"": "v"} })), field: "metadata"},
		{name: "metadata not UTF-8", op: put("web", with(func(d *ClusterDefinition) { d.Metadata = map[string]string{"k": "\xc3"} })), field: "metadata"},
		{name: "over the clusters per service", cfg: Config{MaxClustersPerService: 1}, setup: []Op{put("web", httpDef)},
			op: put("other", tcp), field: "clusterName", limit: LimitClustersPerService},
		{name: "over the services", cfg: Config{MaxServices: 1}, setup: []Op{PutService{Service: svcB}}, op: put("web", tcp),
			field: "serviceName", limit: LimitServices},
	})
}

// TestClusterLifetime: cluster definitions keep a service's entry, not its
// existence, and go with RemoveService.
func TestClusterLifetime(t *testing.T) {
	h := newHarness(t, Config{})
	web := PutCluster{Service: svcA, Cluster: "web", Definition: ClusterDefinition{Checker: healthcheck.Checker{Type: healthcheck.TypeNone},
		UseInstancePort: true}}
	h.must(t, PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}, web, RemoveInstance{Service: svcA, IP: "10.0.0.1", Port: 80})
	if got := h.Services(""); len(got) != 1 || got[0].Clusters != 1 || got[0].Defined || got[0].Instances != 0 {
		t.Fatalf("services %+v", got)
	}
	if st := h.Stats(); st != (Stats{Services: 1, Clusters: 1}) {
		t.Errorf("stats %+v", st)
	}
	// The instance comes back under the same checker.
	h.must(t, PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)})
	if d, ok := h.Cluster(svcA, "web"); !ok || d.Checker.Type != healthcheck.TypeNone {
		t.Errorf("cluster %+v %v", d, ok)
	}
	h.must(t, RemoveInstance{Service: svcA, IP: "10.0.0.1", Port: 80})
	// Clusters alone do not make the service exist for a create, nor for
	// an update.
	h.must(t, PutService{Service: svcA, Expect: ExpectAbsent})
	h.must(t, RemoveService{Service: svcA})
	if got := h.Services(""); len(got) != 0 || h.Clusters(svcA) != nil || h.Stats() != (Stats{}) {
		t.Errorf("after RemoveService: services %+v, clusters %+v, stats %+v", got, h.Clusters(svcA), h.Stats())
	}
	// A service of clusters alone is removed too, and refused when it has
	// instances.
	h.must(t, web)
	if err := h.apply(t, PutService{Service: svcA, Expect: ExpectPresent})[0]; err == nil {
		t.Error("an update of a service of clusters alone was applied")
	}
	h.must(t, PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)})
	if err := h.apply(t, RemoveService{Service: svcA})[0]; err == nil {
		t.Error("a service with instances was removed")
	}
	h.must(t, RemoveInstance{Service: svcA, IP: "10.0.0.1", Port: 80}, RemoveService{Service: svcA})
	if h.Stats() != (Stats{}) {
		t.Errorf("stats %+v", h.Stats())
	}
	// A namespace holding one is not empty.
	h.must(t, PutNamespace{Namespace: Namespace{ID: "dev", Name: "Dev"}}, PutCluster{Service: svcD, Definition: DefaultClusterDefinition()})
	if err := h.apply(t, RemoveNamespace{ID: "dev"})[0]; err == nil {
		t.Error("a namespace with a service of clusters alone was removed")
	}
}

// TestClusterReads: Clusters and AllClusters hand out copies.
func TestClusterReads(t *testing.T) {
	h := newHarness(t, Config{})
	populate(t, h)
	all := h.AllClusters()
	if len(all) != 3 || len(all[svcA]) != 1 || len(all[svcB]) != 0 {
		t.Fatalf("all clusters %+v", all)
	}
	delete(all[svcA], "c-2.x")
	got := h.Clusters(naming.Service{Name: "a"})
	if d := got["c-2.x"]; d.Checker.Type != healthcheck.TypeHTTP || d.HealthChecker().CheckPort != 8081 {
		t.Errorf("clusters of a: %+v", got)
	}
	delete(got, "c-2.x")
	if _, ok := h.Cluster(svcA, "c-2.x"); !ok {
		t.Error("a caller's map changed the state")
	}
	if d, ok := h.Cluster(svcD, ""); !ok || d.Checker.Type != healthcheck.TypeNone {
		t.Errorf("the default cluster of %s: %+v %v", svcD, d, ok)
	}
	if _, ok := h.Cluster(naming.Service{Name: "a@@b"}, "c"); ok {
		t.Error("a bad service has a cluster")
	}
	if h.Clusters(naming.Service{Name: ""}) != nil {
		t.Error("a bad service has clusters")
	}
	if c := DefaultClusterDefinition().HealthChecker(); !reflect.DeepEqual(c, healthcheck.DefaultChecker()) {
		t.Errorf("the default checks with %+v", c)
	}
}

// TestSnapshotVersions: a state without cluster definitions is written as
// version 1, which a member predating them reads; one with them as version
// 2; both are restored.
func TestSnapshotVersions(t *testing.T) {
	h := newHarness(t, Config{})
	h.must(t, PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)})
	v1 := snapshotBytes(t, h.FSM)
	// Written before cluster definitions existed, byte for byte.
	const old = `{"format":"sextant.persist","v":1,"index":1}` + "\n" +
		`{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"a"},"instances":[{"ip":"10.0.0.1","port":80,"cluster":"DEFAULT","weight":1,"healthy":true,"enabled":true}]}` + "\n" +
		`{"end":{"namespaces":0,"services":1,"instances":1}}` + "\n"
	if string(v1) != old {
		t.Errorf("a state without clusters snapshots as\n%s\nwant\n%s", v1, old)
	}
	g := newHarness(t, Config{})
	if err := restore(g.FSM, []byte(old)); err != nil || len(g.Instances(svcA)) != 1 {
		t.Fatalf("a version 1 snapshot: %v", err)
	}

	h.must(t, PutCluster{Service: svcA, Definition: ClusterDefinition{Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/h", CheckPort: 81}}})
	v2 := snapshotBytes(t, h.FSM)
	for _, want := range []string{`"v":2`, `"clusters":[{"name":"DEFAULT","checker":{"type":"HTTP","path":"/h","expectedCode":200},"checkPort":81,"useInstancePort":false}]`,
		`"clusters":1}}`} {
		if !bytes.Contains(v2, []byte(want)) {
			t.Errorf("the snapshot lacks %s:\n%s", want, v2)
		}
	}
	if err := restore(g.FSM, v2); err != nil {
		t.Fatal(err)
	}
	if d, ok := g.Cluster(svcA, ""); !ok || d.HealthChecker().CheckPort != 81 {
		t.Errorf("restored cluster %+v %v", d, ok)
	}
	// A version 2 stream need not hold clusters.
	if err := restore(g.FSM, bytes.Replace(v1, []byte(`"v":1`), []byte(`"v":2`), 1)); err != nil {
		t.Errorf("a version 2 snapshot without clusters: %v", err)
	}
	for name, data := range map[string]string{
		"bad checker":     strings.Replace(string(v2), `"type":"HTTP"`, `"type":"FTP"`, 1),
		"bad name":        strings.Replace(string(v2), `"name":"DEFAULT"`, `"name":"a b"`, 1),
		"no port":         strings.Replace(string(v2), `"checkPort":81`, `"checkPort":0`, 1),
		"a cluster twice": strings.Replace(string(v2), `"clusters":[{`, `"clusters":[{"name":"DEFAULT","checker":{"type":"TCP"},"checkPort":0,"useInstancePort":true},{`, 1),
		"wrong count":     strings.Replace(string(v2), `"clusters":1}}`, `"clusters":2}}`, 1),
		"count in v1":     strings.Replace(string(old), `"instances":1}}`, `"instances":1,"clusters":1}}`, 1),
	} {
		if err := restore(g.FSM, []byte(data)); err == nil {
			t.Errorf("%s: restored", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestPutClusterNotEncodable: what JSON cannot carry is refused by Encode,
// and by Validate for the writers that check first.
func TestPutClusterNotEncodable(t *testing.T) {
	l := New(Config{}).Limits()
	for name, op := range map[string]PutCluster{
		"metadata": {Service: svcA, Definition: ClusterDefinition{UseInstancePort: true, Metadata: map[string]string{"k": "\xff"}}},
		"header":   {Service: svcA, Definition: ClusterDefinition{UseInstancePort: true, Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Headers: map[string]string{"X-A": "\xff"}}}},
		"cluster":  {Service: svcA, Cluster: "\xff", Definition: DefaultClusterDefinition()},
	} {
		if _, err := Encode(op); err == nil {
			t.Errorf("%s: encoded", name)
		}
		if _, err := Validate(l, op); field(err) == "" {
			t.Errorf("%s: Validate = %v, want a refusal naming a field", name, err)
		}
	}
}
