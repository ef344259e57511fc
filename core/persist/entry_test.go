package persist

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/naming"
)

// TestEncodeDecode: every op comes out of the log as it went in.
func TestEncodeDecode(t *testing.T) {
	ops := []Op{
		PutInstance{Service: svcA, Instance: Instance{IP: "::1", Port: 80, Cluster: "c", Weight: 0.25, Healthy: true,
			Metadata: map[string]string{"a&b": "<x>\n", "ü": "\u2028"}}, Expect: ExpectAbsent},
		PutInstance{Service: naming.Service{Name: "n"}, Instance: Instance{IP: "h"}},
		RemoveInstance{Service: svcD, IP: "10.0.0.1", Port: 65535, Cluster: "DEFAULT"},
		SetHealth{Service: svcA, IP: "10.0.0.1", Port: 1, Healthy: false},
		SetHealth{Service: svcA, IP: "10.0.0.1", Port: 1, Healthy: true},
		PutService{Service: svcB, Definition: ServiceDefinition{ProtectThreshold: 1, Metadata: map[string]string{"k": "v"},
			Selector: naming.Selector{Type: "label", Expression: "CONSUMER.label.a = PROVIDER.label.a & CONSUMER.label.b = PROVIDER.label.b"}},
			Expect: ExpectPresent},
		PutService{Service: svcB},
		RemoveService{Service: svcB},
		PutNamespace{Namespace: Namespace{ID: "dev", Name: "Dev", Description: "d"}},
		RemoveNamespace{ID: "dev"},
	}
	data := encode(t, ops...)
	t.Logf("%s", data)
	if bytes.Contains(data, []byte(`\u0026`)) {
		t.Error("HTML escaping makes entries longer")
	}
	got, err := decode(data, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ops) {
		t.Fatalf("%d ops decoded, want %d", len(got), len(ops))
	}
	for i, d := range got {
		if d.err != nil || !reflect.DeepEqual(d.op, ops[i]) {
			t.Errorf("op %d:\n got %#v (%v)\nwant %#v", i, d.op, d.err, ops[i])
		}
	}
}

// TestBatchOpsIndependent: the ops of an entry apply in order, each on the
// state the ones before it left; one refused leaves the others applied.
func TestBatchOpsIndependent(t *testing.T) {
	h := newHarness(t, Config{})
	a1, a2 := inst("10.0.0.1", 80), inst("10.0.0.2", 80)
	bad := inst("10.0.0.3", 80)
	bad.Port = -1
	results := h.apply(t,
		PutInstance{Service: svcA, Instance: a1},
		PutInstance{Service: svcA, Instance: bad},
		PutInstance{Service: svcA, Instance: a2},
		RemoveInstance{Service: svcA, IP: a1.IP, Port: a1.Port},
		RemoveInstance{Service: svcA, IP: a1.IP, Port: a1.Port}, // removed by the op before
		SetHealth{Service: svcA, IP: a2.IP, Port: a2.Port, Healthy: false},
		PutService{Service: svcB},
		RemoveService{Service: svcB},
		PutNamespace{Namespace: Namespace{ID: "dev", Name: "Dev"}, Expect: ExpectAbsent},
		PutNamespace{Namespace: Namespace{ID: "dev", Name: "Dev 2"}, Expect: ExpectAbsent}, // created by the op before
	)
	wantFields := []string{"", "port", "", "", "", "", "", "", "", ""}
	for i, err := range results {
		switch {
		case i == 4 || i == 9:
			if err == nil {
				t.Errorf("op %d applied", i)
			}
		case field(err) != wantFields[i] || (wantFields[i] == "" && err != nil):
			t.Errorf("op %d: %v, want field %q", i, err, wantFields[i])
		}
	}
	sick := a2
	sick.Healthy = false
	if got := h.Instances(svcA); !reflect.DeepEqual(got, []Instance{sick}) {
		t.Errorf("instances %+v", got)
	}
	if ns, _ := h.Namespace("dev"); ns.Name != "Dev" {
		t.Errorf("namespace %+v", ns)
	}
	if len(h.changes) != 1 {
		t.Fatalf("%d changes, want one for the entry", len(h.changes))
	}
	want := Change{Index: 1, Services: []naming.Service{svcA, svcB}, Namespaces: []string{"dev"}}
	if !reflect.DeepEqual(h.changes[0], want) {
		t.Errorf("change %+v, want %+v", h.changes[0], want)
	}
}

// TestEntryRefused: an entry that cannot be read is refused whole, and
// changes nothing but the index.
func TestEntryRefused(t *testing.T) {
	good := `{"op":"put_instance","service":{"namespace":"","group":"","name":"a"},"instance":{"ip":"10.0.0.1","port":80,"cluster":"","weight":1,"healthy":true,"enabled":true}}`
	for name, data := range map[string]string{
		"empty":              "",
		"null":               "null",
		"an array":           "[]",
		"leading space":      ` {"v":1,"ops":[]}`,
		"not JSON":           "{v:1}",
		"truncated":          `{"v":1,"ops":[` + good,
		"no version":         `{"ops":[` + good + `]}`,
		"a later version":    `{"v":2,"ops":[` + good + `]}`,
		"data after":         `{"v":1,"ops":[` + good + `]}{}`,
		"an unknown field":   `{"v":1,"ops":[` + good + `],"x":1}`,
		"unknown op field":   `{"v":1,"ops":[{"op":"remove_service","service":{"name":"a"},"zone":1}]}`,
		"a port of text":     `{"v":1,"ops":[{"op":"remove_instance","address":{"ip":"10.0.0.1","port":"80"}}]}`,
		"a port not integer": `{"v":1,"ops":[{"op":"remove_instance","address":{"ip":"10.0.0.1","port":8e1}}]}`,
		"a huge weight":      `{"v":1,"ops":[{"op":"put_instance","instance":{"ip":"10.0.0.1","weight":1e999}}]}`,
		"too many ops":       `{"v":1,"ops":[` + strings.Repeat(good+",", 3) + good + `]}`,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{MaxOpsPerEntry: 3})
			h.must(t, PutService{Service: svcB})
			before, changes := stateBytes(t, h.FSM), len(h.changes)
			r := h.applyData([]byte(data))
			if !errors.Is(r.Err, ErrBadEntry) || r.Results != nil {
				t.Fatalf("response %+v, want ErrBadEntry", r)
			}
			t.Log(r.Err)
			if r.Index != h.index || h.Index() != h.index {
				t.Errorf("index %d, FSM at %d; want %d", r.Index, h.Index(), h.index)
			}
			if !bytes.Equal(before, stateBytes(t, h.FSM)) || len(h.changes) != changes {
				t.Error("the state changed")
			}
		})
	}
}

// TestOpUnreadable: an op of an unknown name, or without a part its name
// requires, is refused alone.
func TestOpUnreadable(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.applyData([]byte(`{"v":1,"ops":[` +
		`{"op":"put_instances"},` +
		`{"op":"put_instance","service":{"namespace":"","group":"","name":"a"}},` +
		`{"op":"set_health","service":{"namespace":"","group":"","name":"a"},"address":{"ip":"10.0.0.1","port":80,"cluster":""}},` +
		`{"op":"put_service","service":{"namespace":"","group":"","name":"a"},"expect":"maybe"},` +
		`{"op":"put_service","service":{"namespace":"","group":"","name":"a"}},` +
		`{"op":"remove_namespace"}` +
		`]}`))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := []string{"op", "instance", "healthy", "expect", "", ""}
	for i, err := range r.Results {
		if field(err) != want[i] {
			t.Errorf("op %d: %v, want field %q", i, err, want[i])
		}
	}
	if !errors.Is(r.Results[5], ErrPublicNamespace) {
		t.Errorf("remove_namespace without an id: %v", r.Results[5])
	}
	if _, ok := h.Service(svcA); !ok {
		t.Error("the valid op was not applied")
	}
}

func TestEmptyEntry(t *testing.T) {
	h := newHarness(t, Config{})
	if r := h.applyData(encode(t)); r.Err != nil || len(r.Results) != 0 {
		t.Errorf("response %+v", r)
	}
	if len(h.changes) != 0 {
		t.Error("a change was reported")
	}
}

// TestApplyBatch: ApplyBatch applies as Apply does, skips other log types,
// and reports one change for the batch.
func TestApplyBatch(t *testing.T) {
	entries := [][]Op{
		{PutNamespace{Namespace: Namespace{ID: "dev", Name: "Dev"}}, PutService{Service: svcD}},
		{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}},
		{PutInstance{Service: svcA, Instance: Instance{IP: "bad ip"}}},
		{RemoveService{Service: svcD}, PutInstance{Service: svcB, Instance: inst("10.0.0.1", 80)}},
	}
	one := newHarness(t, Config{})
	var want []Response
	for _, ops := range entries {
		want = append(want, one.applyData(encode(t, ops...)))
	}

	batch := newHarness(t, Config{})
	var logs []*raft.Log
	index := uint64(0)
	for i, ops := range entries {
		if i == 2 {
			index++
			logs = append(logs, &raft.Log{Index: index, Type: raft.LogConfiguration, Data: []byte("x")})
		}
		index++
		logs = append(logs, &raft.Log{Index: index, Type: raft.LogCommand, Data: encode(t, ops...)})
	}
	got := batch.ApplyBatch(logs)
	if len(got) != len(logs) || got[2] != nil {
		t.Fatalf("responses %+v", got)
	}
	got = append(got[:2], got[3:]...)
	for i := range want {
		r := got[i].(Response)
		if len(r.Results) != len(want[i].Results) {
			t.Fatalf("entry %d: %+v, want %+v", i, r, want[i])
		}
		for j := range r.Results {
			if (r.Results[j] == nil) != (want[i].Results[j] == nil) {
				t.Errorf("entry %d op %d: %v, want %v", i, j, r.Results[j], want[i].Results[j])
			}
		}
	}
	if !bytes.Equal(stateBytes(t, one.FSM), stateBytes(t, batch.FSM)) {
		t.Error("a batch left another state than its entries one by one")
	}
	wantChange := Change{Index: 5, Services: []naming.Service{svcD, svcA, svcB}, Namespaces: []string{"dev"}}
	if len(batch.changes) != 1 || !reflect.DeepEqual(batch.changes[0], wantChange) {
		t.Errorf("changes %+v, want [%+v]", batch.changes, wantChange)
	}
	if batch.Index() != 5 {
		t.Errorf("index %d", batch.Index())
	}
	if r := batch.Apply(&raft.Log{Index: 6, Type: raft.LogNoop}); r != nil {
		t.Errorf("a no-op log: %v", r)
	}
}
