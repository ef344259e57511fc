package persist

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sextantd/sextant/core/naming"
)

// TestOnChange: one change per entry that changed something, naming the
// services and namespaces, reported outside the lock (reads in it work).
func TestOnChange(t *testing.T) {
	var got []Change
	var f *FSM
	f = New(Config{OnChange: func(c Change) {
		// Under the FSM's lock this would deadlock.
		for _, svc := range c.Services {
			f.Instances(svc)
			f.Service(svc)
		}
		f.Namespaces()
		c.Services = append([]naming.Service(nil), c.Services...)
		got = append(got, c)
	}})
	apply := func(index uint64, ops ...Op) {
		f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: encode(t, ops...)})
	}
	a1 := inst("10.0.0.1", 80)
	apply(1, PutInstance{Service: svcB, Instance: a1}, PutInstance{Service: svcA, Instance: a1}, PutInstance{Service: svcD, Instance: a1})
	apply(2, PutInstance{Service: svcA, Instance: a1})                        // the same: no change
	apply(3, RemoveService{Service: svcA}, SetHealth{Service: svcA, IP: "x"}) // refused: no change
	apply(4, SetHealth{Service: svcA, IP: a1.IP, Port: 80, Healthy: false}, PutNamespace{Namespace: Namespace{ID: "b", Name: "B"}},
		PutNamespace{Namespace: Namespace{ID: "a", Name: "A"}})
	apply(5, RemoveNamespace{ID: "a"}, PutService{Service: svcB})
	want := []Change{
		{Index: 1, Services: []naming.Service{svcD, svcA, svcB}},
		{Index: 4, Services: []naming.Service{svcA}, Namespaces: []string{"a", "b"}},
		{Index: 5, Services: []naming.Service{svcB}, Namespaces: []string{"a"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes\n got %+v\nwant %+v", got, want)
	}
}

// TestConcurrentReads: reads, snapshots and their persisting run while
// entries are applied (go test -race).
func TestConcurrentReads(t *testing.T) {
	h := newHarness(t, Config{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for !stop.Load() {
				svc := naming.Service{Name: fmt.Sprintf("s%d", r)}
				for _, in := range h.Instances(svc) {
					_ = in.Metadata["k"]
				}
				h.Service(svc)
				for _, s := range h.Services("") {
					_ = s.Definition.Metadata["k"]
				}
				h.Namespaces()
				h.Namespace("n1")
				h.Stats()
				h.Index()
			}
		})
	}
	persisted := make(chan raft.FSMSnapshot, 100)
	var restored atomic.Int64
	wg.Go(func() {
		for snap := range persisted {
			sink := &memSink{}
			if err := snap.Persist(sink); err != nil {
				t.Error(err)
				continue
			}
			snap.Release()
			if err := restore(New(Config{}), sink.Bytes()); err != nil {
				t.Errorf("a snapshot taken during Apply does not restore: %v", err)
			}
			restored.Add(1)
		}
	})
	for i := range 1000 {
		svc := naming.Service{Name: fmt.Sprintf("s%d", i%4)}
		in := inst(fmt.Sprintf("10.0.%d.%d", i%7, i%50), 80)
		in.Metadata = map[string]string{"k": fmt.Sprint(i)}
		h.must(t,
			PutInstance{Service: svc, Instance: in},
			PutService{Service: svc, Definition: ServiceDefinition{ProtectThreshold: float64(i%10) / 10, Metadata: map[string]string{"k": "v"}}},
			SetHealth{Service: svc, IP: in.IP, Port: 80, Healthy: i%3 == 0},
			PutNamespace{Namespace: Namespace{ID: fmt.Sprintf("n%d", i%3), Name: fmt.Sprint(i)}},
		)
		if i%5 == 0 {
			h.apply(t, RemoveInstance{Service: svc, IP: in.IP, Port: 80}, RemoveNamespace{ID: "n1"})
		}
		if i%50 == 0 {
			snap, err := h.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			persisted <- snap
		}
	}
	close(persisted)
	stop.Store(true)
	wg.Wait()
	if restored.Load() != 20 {
		t.Errorf("%d snapshots restored", restored.Load())
	}
}

// TestMetrics: refusals are counted by reason, and the counts are read
// when scraped.
func TestMetrics(t *testing.T) {
	h := newHarness(t, Config{MaxServices: 1})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.Metrics())
	h.apply(t,
		PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)},
		PutInstance{Service: svcA, Instance: Instance{IP: "10.0.0.1", Port: -1}},
		PutInstance{Service: svcB, Instance: inst("10.0.0.1", 80)},
		RemoveService{Service: svcB},
		RemoveService{Service: svcA},
		RemoveNamespace{ID: "public"},
		PutService{Service: svcA, Definition: ServiceDefinition{Metadata: bigMetadata(1 << 20)}},
		PutService{Service: svcA, Expect: ExpectAbsent},
	)
	h.applyData([]byte("garbage"))
	_ = restore(h.FSM, []byte("garbage"))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			got[name] = value(m)
		}
	}
	for name, want := range map[string]float64{
		"sextant_persist_refused_ops_total{invalid}":                   1,
		"sextant_persist_refused_ops_total{persist.max_services}":      1,
		"sextant_persist_refused_ops_total{not_found}":                 1,
		"sextant_persist_refused_ops_total{not_empty}":                 1,
		"sextant_persist_refused_ops_total{public_namespace}":          1,
		"sextant_persist_refused_ops_total{naming.max_metadata_bytes}": 1,
		"sextant_persist_refused_ops_total{exists}":                    1,
		"sextant_persist_refused_ops_total{bad_entry}":                 1,
		"sextant_persist_refused_ops_total{persist.max_namespaces}":    0,
		"sextant_persist_refused_ops_total{persist.max_instances}":     0,
		"sextant_persist_restore_failures_total":                       1,
		"sextant_persist_services":                                     1,
		"sextant_persist_instances":                                    1,
		"sextant_persist_defined_services":                             0,
		"sextant_persist_namespaces":                                   0,
		"sextant_persist_applied_index":                                2,
		"sextant_persist_refused_ops_total{persist.max_ops_per_entry}": -1, // not a series
	} {
		v, ok := got[name]
		switch {
		case want < 0 && ok:
			t.Errorf("%s exists", name)
		case want >= 0 && (!ok || v != want):
			t.Errorf("%s = %v (%v), want %v", name, v, ok, want)
		}
	}
}

func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestDeterministic: the same entries give the same state, whatever the
// order metadata maps were built in.
func TestDeterministic(t *testing.T) {
	var states [][]byte
	for range 3 {
		h := newHarness(t, Config{MaxInstancesPerService: 3})
		populate(t, h)
		for i := range 5 {
			h.apply(t, PutInstance{Service: svcB, Instance: inst(fmt.Sprintf("10.2.0.%d", i), 80)})
		}
		states = append(states, snapshotBytes(t, h.FSM))
	}
	for _, s := range states[1:] {
		if !bytes.Equal(s, states[0]) {
			t.Fatal("the same entries gave different snapshots")
		}
	}
}
