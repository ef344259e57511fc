package persist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
)

// populate gives h a state of everything the FSM holds.
func populate(t testing.TB, h *harness) {
	t.Helper()
	meta := map[string]string{"version": "1.0", "note": "two\nlines\tand a tab", "ü": "ℕ"}
	h.must(t,
		PutNamespace{Namespace: Namespace{ID: "dev", Name: "Development", Description: "for\ndevelopers"}},
		PutNamespace{Namespace: Namespace{ID: "prod-1_a", Name: "Production"}},
		PutService{Service: svcA, Definition: ServiceDefinition{ProtectThreshold: 0.3, Metadata: meta,
			Selector: naming.Selector{Type: naming.SelectorLabel, Expression: "CONSUMER.label.zone = PROVIDER.label.zone"}}},
		PutService{Service: svcD},
		PutInstance{Service: svcA, Instance: Instance{IP: "10.0.0.1", Port: 80, Weight: 1, Healthy: true, Enabled: true, Metadata: meta}},
		PutInstance{Service: svcA, Instance: Instance{IP: "fe80::1%eth0", Port: 0, Cluster: "c-2.x", Weight: 0.5}},
		PutInstance{Service: svcA, Instance: Instance{IP: "db.example", Port: 65535, Weight: 10000, Enabled: true}},
		PutInstance{Service: svcB, Instance: inst("10.0.0.2", 8080)},
		PutInstance{Service: svcD, Instance: inst("10.0.0.3", 5432)},
		SetHealth{Service: svcD, IP: "10.0.0.3", Port: 5432, Healthy: false},
		PutCluster{Service: svcA, Cluster: "c-2.x", Definition: ClusterDefinition{Metadata: meta,
			Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/health?deep=1", ExpectedCode: 204, CheckPort: 8081,
				Headers: map[string]string{"X-Token": "s3cret", "Host": "a.example"}}}},
		PutCluster{Service: svcD, Definition: ClusterDefinition{Checker: healthcheck.Checker{Type: healthcheck.TypeNone}, UseInstancePort: true}},
		PutCluster{Service: svcClustersOnly, Cluster: "c1", Definition: DefaultClusterDefinition()},
	)
}

// svcClustersOnly has cluster definitions alone in populate's state.
var svcClustersOnly = naming.Service{Namespace: "dev", Group: "G", Name: "clusters-only"}

// reads is everything the FSM's reads return.
type reads struct {
	instances  map[naming.Service][]Instance
	defs       map[naming.Service]ServiceDefinition
	clusters   map[naming.Service]map[string]ClusterDefinition
	all        map[naming.Service]map[string]ClusterDefinition
	services   map[string][]ServiceInfo
	namespaces []Namespace
	stats      Stats
	index      uint64
}

func readAll(f *FSM) reads {
	r := reads{instances: map[naming.Service][]Instance{}, defs: map[naming.Service]ServiceDefinition{},
		clusters: map[naming.Service]map[string]ClusterDefinition{}, all: f.AllClusters(),
		services: map[string][]ServiceInfo{}, namespaces: f.Namespaces(), stats: f.Stats(), index: f.Index()}
	for _, ns := range append(r.namespaces, Namespace{ID: "other"}) {
		r.services[ns.ID] = f.Services(ns.ID)
		for _, s := range r.services[ns.ID] {
			r.instances[s.Service] = f.Instances(s.Service)
			if d, ok := f.Service(s.Service); ok {
				r.defs[s.Service] = d
			}
			r.clusters[s.Service] = f.Clusters(s.Service)
		}
	}
	return r
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := newHarness(t, Config{})
	populate(t, h)
	data := snapshotBytes(t, h.FSM)
	t.Logf("%s", data)

	g := newHarness(t, Config{})
	g.must(t, PutNamespace{Namespace: Namespace{ID: "gone", Name: "Gone"}}, PutInstance{Service: naming.Service{Name: "gone"}, Instance: inst("10.9.9.9", 1)})
	if err := restore(g.FSM, data); err != nil {
		t.Fatal(err)
	}
	if again := snapshotBytes(t, g.FSM); !bytes.Equal(again, data) {
		t.Errorf("a restored FSM snapshots otherwise:\n%s\n%s", data, again)
	}
	if got, want := readAll(g.FSM), readAll(h.FSM); !reflect.DeepEqual(got, want) {
		t.Errorf("a restored FSM reads otherwise:\n got %+v\nwant %+v", got, want)
	}
	if st := g.Stats(); st != (Stats{Namespaces: 2, Services: 4, Defined: 2, Instances: 5, Clusters: 3}) {
		t.Errorf("stats %+v", st)
	}
	// The change names what was there before and what is there now.
	last := g.changes[len(g.changes)-1]
	want := Change{Index: h.Index(), Restored: true, Services: []naming.Service{svcClustersOnly, svcD, {Namespace: "public", Group: "DEFAULT_GROUP", Name: "a"}, svcB,
		{Namespace: "public", Group: "DEFAULT_GROUP", Name: "gone"}}, Namespaces: []string{"dev", "gone", "prod-1_a"}}
	if !reflect.DeepEqual(last, want) {
		t.Errorf("change %+v, want %+v", last, want)
	}
	// Apply goes on from the restored state.
	g.index = g.Index()
	g.must(t, RemoveInstance{Service: svcB, IP: "10.0.0.2", Port: 8080}, PutInstance{Service: svcA, Instance: inst("10.0.0.9", 1)})
	h.must(t, RemoveInstance{Service: svcB, IP: "10.0.0.2", Port: 8080}, PutInstance{Service: svcA, Instance: inst("10.0.0.9", 1)})
	if !bytes.Equal(stateBytes(t, g.FSM), stateBytes(t, h.FSM)) {
		t.Error("the restored FSM applies otherwise")
	}
}

// TestSnapshotPointInTime: a snapshot holds the state it was taken at,
// however the state changes while it is persisted.
func TestSnapshotPointInTime(t *testing.T) {
	h := newHarness(t, Config{})
	populate(t, h)
	want := snapshotBytes(t, h.FSM)
	snap, err := h.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	h.must(t,
		PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)},
		PutInstance{Service: svcA, Instance: inst("10.0.0.7", 80)},
		RemoveInstance{Service: svcB, IP: "10.0.0.2", Port: 8080},
		SetHealth{Service: svcD, IP: "10.0.0.3", Port: 5432, Healthy: true},
		PutService{Service: svcA},
		PutService{Service: svcB},
		RemoveNamespace{ID: "prod-1_a"},
		PutNamespace{Namespace: Namespace{ID: "dev", Name: "Dev"}},
	)
	changed := snapshotBytes(t, h.FSM)
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want) {
		t.Errorf("the snapshot changed with the state:\n%s\nwant\n%s", sink.Bytes(), want)
	}
	if bytes.Equal(changed, want) {
		t.Error("the state did not change")
	}
	// A second generation: changes after a later snapshot copy again.
	snap2, _ := h.Snapshot()
	h.must(t, RemoveInstance{Service: svcA, IP: "10.0.0.7", Port: 80})
	sink2 := &memSink{}
	if err := snap2.Persist(sink2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink2.Bytes(), changed) {
		t.Error("the second snapshot changed with the state")
	}
}

func TestPersistFails(t *testing.T) {
	h := newHarness(t, Config{})
	populate(t, h)
	snap, _ := h.Snapshot()
	sink := &memSink{failAfter: 10}
	if err := snap.Persist(sink); err == nil || !sink.cancelled || sink.closed {
		t.Errorf("Persist = %v; cancelled %v, closed %v", err, sink.cancelled, sink.closed)
	}
}

// closeRecorder records that Restore closed its reader.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

// TestRestoreRefused: a snapshot that is truncated anywhere, or holds a bad
// record, is refused and leaves the state as it was.
func TestRestoreRefused(t *testing.T) {
	src := newHarness(t, Config{})
	populate(t, src)
	good := snapshotBytes(t, src.FSM)

	h := newHarness(t, Config{})
	h.must(t, PutInstance{Service: svcB, Instance: inst("10.1.1.1", 1)}, PutNamespace{Namespace: Namespace{ID: "keep", Name: "Keep"}})
	before, changes := snapshotBytes(t, h.FSM), len(h.changes)
	refused := func(name string, data []byte) {
		t.Helper()
		rc := &closeRecorder{Reader: bytes.NewReader(data)}
		err := h.Restore(rc)
		if err == nil {
			t.Fatalf("%s: restored", name)
		}
		if !rc.closed {
			t.Errorf("%s: not closed", name)
		}
		if !strings.HasPrefix(name, "truncated") {
			t.Logf("%s: %v", name, err)
		}
		if !bytes.Equal(before, snapshotBytes(t, h.FSM)) || len(h.changes) != changes {
			t.Fatalf("%s: the state changed", name)
		}
	}
	// Cut anywhere but the last newline (the end record is whole then).
	for n := range len(good) - 1 {
		refused(fmt.Sprintf("truncated at %d", n), good[:n])
	}

	lines := strings.SplitAfter(strings.TrimSuffix(string(good), "\n"), "\n")
	lines[len(lines)-1] += "\n"
	header, end := lines[0], lines[len(lines)-1]
	ns := `{"namespace":{"id":"x","name":"X"}}` + "\n"
	svc := func(rest string) string {
		return `{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"s"}` + rest + "}\n"
	}
	inst := `{"ip":"10.0.0.1","port":80,"cluster":"DEFAULT","weight":1,"healthy":true,"enabled":true}`
	ends := func(ns, svcs, insts int) string {
		return fmt.Sprintf(`{"end":{"namespaces":%d,"services":%d,"instances":%d}}`+"\n", ns, svcs, insts)
	}
	for name, data := range map[string]string{
		"no end":                strings.Join(lines[:len(lines)-1], ""),
		"a record missing":      header + strings.Join(lines[2:], ""),
		"a record twice":        strings.Join(lines[:2], "") + strings.Join(lines[1:], ""),
		"data after the end":    string(good) + "{}\n",
		"garbage after":         string(good) + "x",
		"another format":        strings.Replace(string(good), "sextant.persist", "other", 1),
		"another version":       strings.Replace(string(good), `"v":2`, `"v":3`, 1),
		"version 0":             strings.Replace(string(good), `"v":2`, `"v":0`, 1),
		"clusters in version 1": strings.Replace(string(good), `"v":2`, `"v":1`, 1),
		"not JSON":              "snapshot",
		"an unknown field":      header + `{"namespace":{"id":"x","name":"X"},"zone":1}` + "\n" + ends(1, 0, 0),
		"an empty record":       header + "{}\n" + ends(0, 0, 0),
		"two kinds in one":      header + `{"namespace":{"id":"x","name":"X"},"service":{"name":"s"}}` + "\n" + ends(1, 1, 0),
		"the end and more":      header + `{"namespace":{"id":"x","name":"X"},"end":{"namespaces":1,"services":0,"instances":0}}` + "\n",
		"the public ns":         header + `{"namespace":{"id":"public","name":"P"}}` + "\n" + ends(1, 0, 0),
		"a bad namespace":       header + `{"namespace":{"id":"x y","name":"X"}}` + "\n" + ends(1, 0, 0),
		"a namespace twice":     header + ns + ns + ends(2, 0, 0),
		"an empty service":      header + svc("") + ends(0, 1, 0),
		"a bad service":         header + `{"service":{"namespace":"public","group":"a@@b","name":"s"},"instances":[` + inst + `]}` + "\n" + ends(0, 1, 1),
		"a service twice":       header + svc(`,"instances":[`+inst+`]`) + svc(`,"instances":[`+inst+`]`) + ends(0, 2, 2),
		"a service, defaults":   header + svc(`,"instances":[`+inst+`]`) + `{"service":{"namespace":"","group":"","name":"s"},"definition":{"protectThreshold":0,"selector":{"type":"none"}}}` + "\n" + ends(0, 2, 1),
		"an instance twice":     header + svc(`,"instances":[`+inst+`,`+inst+`]`) + ends(0, 1, 2),
		"an instance, cluster defaulted": header + svc(`,"instances":[`+inst+`,`+strings.Replace(inst, `"DEFAULT"`, `""`, 1)+`]`) +
			ends(0, 1, 2),
		"a bad port":          header + svc(`,"instances":[`+strings.Replace(inst, "80", "80000", 1)+`]`) + ends(0, 1, 1),
		"a bad weight":        header + svc(`,"instances":[`+strings.Replace(inst, `"weight":1`, `"weight":-1`, 1)+`]`) + ends(0, 1, 1),
		"a bad threshold":     header + svc(`,"definition":{"protectThreshold":2,"selector":{"type":"none"}}`) + ends(0, 1, 0),
		"a bad selector":      header + svc(`,"definition":{"protectThreshold":0,"selector":{"type":"x"}}`) + ends(0, 1, 0),
		"metadata too large":  header + svc(`,"instances":[`+strings.Replace(inst, `}`, `,"metadata":{"k":"`+strings.Repeat("v", 16384)+`"}}`, 1)+`]`) + ends(0, 1, 1),
		"wrong counts":        header + ns + ends(2, 0, 0),
		"end counts of text":  header + `{"end":{"namespaces":"0"}}` + "\n",
		"a header of nothing": "{}\n" + end,
	} {
		refused(name, []byte(data))
	}
	if got := h.metrics.restores; got == nil {
		t.Fatal("no restore counter")
	}

	// What passes is restored, normalized.
	ok := header + `{"service":{"namespace":"","group":"","name":"s"},"instances":[` + strings.Replace(inst, `"DEFAULT"`, `""`, 1) + `]}` + "\n" + ends(0, 1, 1)
	if err := restore(h.FSM, []byte(ok)); err != nil {
		t.Fatal(err)
	}
	if got := h.Instances(naming.Service{Name: "s"}); len(got) != 1 || got[0].Cluster != "DEFAULT" {
		t.Errorf("instances %+v", got)
	}
}

func TestRestoreReadError(t *testing.T) {
	h := newHarness(t, Config{})
	populate(t, h)
	before := snapshotBytes(t, h.FSM)
	good := bytes.Clone(before)
	rc := io.NopCloser(io.MultiReader(bytes.NewReader(good[:len(good)/2]), errReader{}))
	if err := h.Restore(rc); err == nil || !errors.Is(err, errBroken) {
		t.Errorf("Restore = %v, want the read error", err)
	}
	if !bytes.Equal(before, snapshotBytes(t, h.FSM)) {
		t.Error("the state changed")
	}
}

var errBroken = errors.New("broken disk")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }
