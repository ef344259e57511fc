package persist

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/naming"
)

// opCase is one op applied on a state set up by other ops: either applied
// (check then looks at the state) or refused (with the field, limit and
// errors named), leaving the state as it was.
type opCase struct {
	name  string
	cfg   Config
	setup []Op
	op    Op

	// A refusal: the field a *naming.InvalidError names, its limit, and
	// what the error must wrap. All empty: the op is applied.
	field string
	limit string
	is    []error

	// noChange: applied, but changing nothing (no OnChange).
	noChange bool
	check    func(t *testing.T, h *harness)
}

func runOpCases(t *testing.T, cases []opCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			if len(tc.setup) > 0 {
				h.must(t, tc.setup...)
			}
			before := stateBytes(t, h.FSM)
			changes := len(h.changes)
			refusal := tc.field != "" || tc.limit != "" || len(tc.is) > 0
			if _, err := Encode(tc.op); err != nil {
				// What JSON cannot carry cannot come from the log:
				// Validate refuses it for the writer.
				if _, verr := Validate(h.Limits(), tc.op); !refusal || field(verr) != tc.field {
					t.Fatalf("not encoded (%v); Validate: %v, want field %q", err, verr, tc.field)
				}
				return
			}
			err := h.apply(t, tc.op)[0]
			if !refusal {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				switch {
				case tc.noChange && len(h.changes) != changes:
					t.Errorf("a change was reported: %+v", h.changes[changes:])
				case tc.noChange && !bytes.Equal(before, stateBytes(t, h.FSM)):
					t.Error("the state changed")
				case !tc.noChange && len(h.changes) != changes+1:
					t.Errorf("%d changes reported, want 1", len(h.changes)-changes)
				}
				if tc.check != nil {
					tc.check(t, h)
				}
				return
			}
			if err == nil {
				t.Fatal("applied, want a refusal")
			}
			t.Logf("refused: %v", err)
			if got := field(err); got != tc.field {
				t.Errorf("field %q, want %q (%v)", got, tc.field, err)
			}
			if got := limitOf(err); got != tc.limit {
				t.Errorf("limit %q, want %q (%v)", got, tc.limit, err)
			}
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("%v does not wrap %v", err, target)
				}
			}
			if len(h.changes) != changes {
				t.Errorf("a change was reported: %+v", h.changes[changes:])
			}
			if after := stateBytes(t, h.FSM); !bytes.Equal(before, after) {
				t.Errorf("the state changed:\n%s\n%s", before, after)
			}
		})
	}
}

func wantInstances(svc naming.Service, want ...Instance) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		t.Helper()
		if got := h.Instances(svc); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("instances of %s:\n got %+v\nwant %+v", svc, got, want)
		}
	}
}

func bigMetadata(n int) map[string]string {
	return map[string]string{"k": strings.Repeat("v", n)}
}

func TestPutInstance(t *testing.T) {
	a1 := inst("10.0.0.1", 80)
	heavier := a1
	heavier.Weight = 5
	heavier.Metadata = map[string]string{"zone": "eu"}
	with := func(f func(*Instance)) Instance {
		in := a1
		f(&in)
		return in
	}
	put := func(in Instance) Op { return PutInstance{Service: svcA, Instance: in} }
	runOpCases(t, []opCase{
		{name: "new", op: put(a1), check: wantInstances(svcA, a1)},
		{name: "defaults", op: PutInstance{Service: naming.Service{Name: "a"}, Instance: with(func(i *Instance) {
			i.Cluster, i.Metadata = "", map[string]string{}
		})}, check: wantInstances(svcA, a1)},
		{name: "replace", setup: []Op{put(a1)}, op: put(heavier), check: wantInstances(svcA, heavier)},
		{name: "equal", setup: []Op{put(heavier)}, op: put(with(func(i *Instance) { i.Weight, i.Metadata = 5, map[string]string{"zone": "eu"} })), noChange: true},
		{name: "another cluster", setup: []Op{put(a1)}, op: put(with(func(i *Instance) { i.Cluster = "c2" })),
			check: wantInstances(svcA, a1, with(func(i *Instance) { i.Cluster = "c2" }))},
		{name: "ipv6 and host names", setup: []Op{put(with(func(i *Instance) { i.IP = "::1" }))}, op: put(with(func(i *Instance) { i.IP = "db-1.example" })),
			check: wantInstances(svcA, with(func(i *Instance) { i.IP = "::1" }), with(func(i *Instance) { i.IP = "db-1.example" }))},
		{name: "weight 0 and port 0", op: put(with(func(i *Instance) { i.Weight, i.Port = 0, 0 }))},
		{name: "absent, new", op: PutInstance{Service: svcA, Instance: a1, Expect: ExpectAbsent}},
		{name: "present, existing", setup: []Op{put(a1)}, op: PutInstance{Service: svcA, Instance: heavier, Expect: ExpectPresent}},

		{name: "no service name", op: PutInstance{Service: naming.Service{}, Instance: a1}, field: "serviceName"},
		{name: "bad namespace", op: PutInstance{Service: naming.Service{Namespace: "a b", Name: "a"}, Instance: a1}, field: "namespace"},
		{name: "@@ in the name", op: PutInstance{Service: naming.Service{Name: "G@@a"}, Instance: a1}, field: "serviceName"},
		{name: "long group", op: PutInstance{Service: naming.Service{Group: strings.Repeat("g", 513), Name: "a"}, Instance: a1},
			field: "groupName", limit: naming.LimitNameLength},
		{name: "no ip", op: put(with(func(i *Instance) { i.IP = "" })), field: "ip"},
		{name: "bad ip", op: put(with(func(i *Instance) { i.IP = "10.0.0.1:80" })), field: "ip"},
		{name: "ip with a control character", op: put(with(func(i *Instance) { i.IP = "fe80::1%\x1b" })), field: "ip"},
		{name: "negative port", op: put(with(func(i *Instance) { i.Port = -1 })), field: "port"},
		{name: "port over 65535", op: put(with(func(i *Instance) { i.Port = 65536 })), field: "port"},
		{name: "negative weight", op: put(with(func(i *Instance) { i.Weight = -1 })), field: "weight"},
		{name: "weight over 10000", op: put(with(func(i *Instance) { i.Weight = 10001 })), field: "weight"},
		{name: "bad cluster", op: put(with(func(i *Instance) { i.Cluster = "a_b" })), field: "clusterName"},
		{name: "metadata over the limit", op: put(with(func(i *Instance) { i.Metadata = bigMetadata(16 * 1024) })),
			field: "metadata", limit: naming.LimitMetadataBytes},
		{name: "metadata over a configured limit", cfg: Config{Limits: naming.Limits{MaxNameLength: 512, MaxMetadataBytes: 10}},
			op: put(with(func(i *Instance) { i.Metadata = bigMetadata(10) })), field: "metadata", limit: naming.LimitMetadataBytes},
		{name: "empty metadata key", op: put(with(func(i *Instance) { i.Metadata = map[string]string{"": "v"} })), field: "metadata"},
		{name: "bad heartbeat metadata", op: put(with(func(i *Instance) { i.Metadata = map[string]string{naming.MetaHeartbeatInterval: "x"} })),
			field: "metadata." + naming.MetaHeartbeatInterval},
		{name: "bad expect", op: PutInstance{Service: svcA, Instance: a1, Expect: 7}, field: "expect"},
		{name: "absent, existing", setup: []Op{put(a1)}, op: PutInstance{Service: svcA, Instance: heavier, Expect: ExpectAbsent},
			is: []error{ErrExists}},
		{name: "present, missing", op: PutInstance{Service: svcA, Instance: a1, Expect: ExpectPresent},
			is: []error{ErrNotFound, naming.ErrInstanceNotFound}},
		{name: "over the instances per service", cfg: Config{MaxInstancesPerService: 1}, setup: []Op{put(a1)},
			op: put(with(func(i *Instance) { i.Port = 81 })), field: "serviceName", limit: LimitInstancesPerService},
		{name: "replacing at the instances per service", cfg: Config{MaxInstancesPerService: 1}, setup: []Op{put(a1)},
			op: put(heavier), check: wantInstances(svcA, heavier)},
		{name: "over the instances", cfg: Config{MaxInstances: 1}, setup: []Op{put(a1)},
			op: PutInstance{Service: svcB, Instance: a1}, field: "ip", limit: LimitInstances},
		{name: "over the services", cfg: Config{MaxServices: 1}, setup: []Op{put(a1)},
			op: PutInstance{Service: svcB, Instance: a1}, field: "serviceName", limit: LimitServices},
		{name: "at the services, in one", cfg: Config{MaxServices: 1}, setup: []Op{put(a1)},
			op: put(with(func(i *Instance) { i.Port = 81 }))},
	})
}

func TestPutInstanceNonFinite(t *testing.T) {
	// Encode refuses what JSON cannot carry; Validate refuses it too, for
	// writers that check first.
	for _, w := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		op := PutInstance{Service: svcA, Instance: Instance{IP: "10.0.0.1", Port: 80, Weight: w}}
		if _, err := Encode(op); err == nil {
			t.Errorf("weight %v encoded", w)
		}
		if _, err := Validate(New(Config{}).Limits(), op); field(err) != "weight" {
			t.Errorf("weight %v: %v, want a refusal naming weight", w, err)
		}
	}
	// Invalid UTF-8 would become U+FFFD in JSON: Encode refuses it.
	if _, err := Encode(PutInstance{Service: svcA, Instance: Instance{IP: "10.0.0.1", Metadata: map[string]string{"k": "\xff"}}}); err == nil {
		t.Error("invalid UTF-8 encoded")
	}
	if _, err := Encode(PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80), Expect: 9}); err == nil {
		t.Error("an unknown expectation encoded")
	}
	if _, err := Encode(nil); err == nil {
		t.Error("a nil op encoded")
	}
}

func TestRemoveInstance(t *testing.T) {
	a1, a2 := inst("10.0.0.1", 80), inst("10.0.0.2", 80)
	remove := func(svc naming.Service, in Instance) Op {
		return RemoveInstance{Service: svc, IP: in.IP, Port: in.Port, Cluster: in.Cluster}
	}
	defined := PutService{Service: svcA, Definition: ServiceDefinition{ProtectThreshold: 0.5}}
	runOpCases(t, []opCase{
		{name: "one of two", setup: []Op{PutInstance{Service: svcA, Instance: a1}, PutInstance{Service: svcA, Instance: a2}},
			op: remove(svcA, a1), check: wantInstances(svcA, a2)},
		{name: "the last: the service goes", setup: []Op{PutInstance{Service: svcA, Instance: a1}},
			op: remove(svcA, a1), check: func(t *testing.T, h *harness) {
				if s := h.Services("public"); len(s) != 0 || h.Stats() != (Stats{}) {
					t.Errorf("services %+v, stats %+v", s, h.Stats())
				}
			}},
		{name: "the last of a defined service: it stays", setup: []Op{defined, PutInstance{Service: svcA, Instance: a1}},
			op: remove(svcA, a1), check: func(t *testing.T, h *harness) {
				want := []ServiceInfo{{Service: svcA, Defined: true, Definition: ServiceDefinition{ProtectThreshold: 0.5, Selector: naming.Selector{Type: "none"}}}}
				if s := h.Services(""); !reflect.DeepEqual(s, want) {
					t.Errorf("services %+v, want %+v", s, want)
				}
			}},
		{name: "the default cluster", setup: []Op{PutInstance{Service: svcA, Instance: a1}},
			op: RemoveInstance{Service: naming.Service{Name: "a"}, IP: a1.IP, Port: a1.Port}, check: wantInstances(svcA)},
		{name: "no service", op: remove(svcA, a1), is: []error{ErrNotFound, naming.ErrInstanceNotFound}},
		{name: "no such instance", setup: []Op{PutInstance{Service: svcA, Instance: a1}}, op: remove(svcA, a2),
			is: []error{ErrNotFound, naming.ErrInstanceNotFound}},
		{name: "another cluster", setup: []Op{PutInstance{Service: svcA, Instance: a1}},
			op: RemoveInstance{Service: svcA, IP: a1.IP, Port: a1.Port, Cluster: "c2"}, is: []error{ErrNotFound}},
		{name: "bad port", op: RemoveInstance{Service: svcA, IP: a1.IP, Port: 1 << 20}, field: "port"},
		{name: "bad ip", op: RemoveInstance{Service: svcA, IP: "a b", Port: 80}, field: "ip"},
		{name: "bad service", op: RemoveInstance{Service: naming.Service{Name: "x\x00"}, IP: a1.IP, Port: 80}, field: "serviceName"},
	})
}

func TestSetHealth(t *testing.T) {
	a1 := inst("10.0.0.1", 80)
	sick := a1
	sick.Healthy = false
	setup := []Op{PutInstance{Service: svcA, Instance: a1}}
	runOpCases(t, []opCase{
		{name: "unhealthy", setup: setup, op: SetHealth{Service: svcA, IP: a1.IP, Port: 80, Healthy: false}, check: wantInstances(svcA, sick)},
		{name: "healthy again", setup: []Op{PutInstance{Service: svcA, Instance: sick}},
			op: SetHealth{Service: svcA, IP: a1.IP, Port: 80, Cluster: "DEFAULT", Healthy: true}, check: wantInstances(svcA, a1)},
		{name: "no change", setup: setup, op: SetHealth{Service: svcA, IP: a1.IP, Port: 80, Healthy: true}, noChange: true},
		{name: "no such instance", setup: setup, op: SetHealth{Service: svcA, IP: a1.IP, Port: 81}, is: []error{ErrNotFound, naming.ErrInstanceNotFound}},
		{name: "no service", op: SetHealth{Service: svcB, IP: a1.IP, Port: 80}, is: []error{ErrNotFound}},
		{name: "bad cluster", op: SetHealth{Service: svcA, IP: a1.IP, Port: 80, Cluster: "!"}, field: "clusterName"},
	})
}

func TestPutService(t *testing.T) {
	def := ServiceDefinition{ProtectThreshold: 0.8, Metadata: map[string]string{"owner": "ops\nteam"},
		Selector: naming.Selector{Type: naming.SelectorLabel, Expression: "CONSUMER.label.zone = PROVIDER.label.zone"}}
	none := ServiceDefinition{Selector: naming.Selector{Type: naming.SelectorNone}}
	put := func(d ServiceDefinition) Op { return PutService{Service: svcA, Definition: d} }
	with := func(f func(*ServiceDefinition)) ServiceDefinition {
		d := def
		f(&d)
		return d
	}
	wantDef := func(want ServiceDefinition) func(*testing.T, *harness) {
		return func(t *testing.T, h *harness) {
			if got, ok := h.Service(svcA); !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("definition %+v %v, want %+v", got, ok, want)
			}
		}
	}
	runOpCases(t, []opCase{
		{name: "new", op: put(def), check: wantDef(def)},
		{name: "zero: selector none", op: put(ServiceDefinition{Metadata: map[string]string{}}), check: wantDef(none)},
		{name: "replace", setup: []Op{put(def)}, op: put(none), check: wantDef(none)},
		{name: "equal", setup: []Op{put(def)}, op: put(with(func(d *ServiceDefinition) {})), noChange: true},
		{name: "a service with instances", setup: []Op{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}}, op: put(def), check: wantDef(def)},
		{name: "label selector of any expression", op: put(with(func(d *ServiceDefinition) { d.Selector.Expression = " " }))},
		{name: "absent, new", op: PutService{Service: svcA, Definition: def, Expect: ExpectAbsent}, check: wantDef(def)},
		{name: "present, with instances", setup: []Op{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}},
			op: PutService{Service: svcA, Definition: def, Expect: ExpectPresent}, check: wantDef(def)},

		{name: "threshold NaN", op: put(with(func(d *ServiceDefinition) { d.ProtectThreshold = math.NaN() })), field: "protectThreshold"},
		{name: "threshold over 1", op: put(with(func(d *ServiceDefinition) { d.ProtectThreshold = 1.5 })), field: "protectThreshold"},
		{name: "threshold negative", op: put(with(func(d *ServiceDefinition) { d.ProtectThreshold = -0.1 })), field: "protectThreshold"},
		{name: "metadata over the limit", op: put(with(func(d *ServiceDefinition) { d.Metadata = bigMetadata(16 * 1024) })),
			field: "metadata", limit: naming.LimitMetadataBytes},
		{name: "metadata key empty", op: put(with(func(d *ServiceDefinition) { d.Metadata = map[string]string{"": "x"} })), field: "metadata"},
		{name: "metadata key of two lines", op: put(with(func(d *ServiceDefinition) { d.Metadata = map[string]string{"a\nb": "x"} })), field: "metadata"},
		{name: "metadata value not UTF-8", op: put(with(func(d *ServiceDefinition) { d.Metadata = map[string]string{"a": "line\n\xff"} })), field: "metadata"},
		{name: "metadata value with a control character", op: put(with(func(d *ServiceDefinition) { d.Metadata = map[string]string{"a": "\x1b[2J"} })), field: "metadata"},
		{name: "selector type", op: put(with(func(d *ServiceDefinition) { d.Selector.Type = "cmdb" })), field: "selector"},
		{name: "none with an expression", op: put(with(func(d *ServiceDefinition) { d.Selector.Type = "" })), field: "selector"},
		{name: "label expression", op: put(with(func(d *ServiceDefinition) { d.Selector.Expression = "CONSUMER.label.a = PROVIDER.label.b" })), field: "selector"},
		{name: "label expression too long", op: put(with(func(d *ServiceDefinition) { d.Selector.Expression = strings.Repeat(" ", 16*1024+1) })),
			field: "selector", limit: naming.LimitMetadataBytes},
		{name: "bad service", op: PutService{Service: naming.Service{Name: ""}, Definition: def}, field: "serviceName"},
		{name: "absent, defined", setup: []Op{put(def)}, op: PutService{Service: svcA, Definition: none, Expect: ExpectAbsent},
			is: []error{ErrExists, naming.ErrServiceExists}},
		{name: "absent, with instances", setup: []Op{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}},
			op: PutService{Service: svcA, Definition: def, Expect: ExpectAbsent}, is: []error{ErrExists, naming.ErrServiceExists}},
		{name: "present, missing", op: PutService{Service: svcA, Definition: def, Expect: ExpectPresent},
			is: []error{ErrNotFound, naming.ErrServiceNotFound}},
		{name: "over the services", cfg: Config{MaxServices: 1}, setup: []Op{PutService{Service: svcB}}, op: put(def),
			field: "serviceName", limit: LimitServices},
	})
}

func TestRemoveService(t *testing.T) {
	runOpCases(t, []opCase{
		{name: "defined", setup: []Op{PutService{Service: svcA}}, op: RemoveService{Service: svcA}, check: func(t *testing.T, h *harness) {
			if _, ok := h.Service(svcA); ok || h.Stats() != (Stats{}) {
				t.Errorf("still defined, or stats %+v", h.Stats())
			}
		}},
		{name: "defaults", setup: []Op{PutService{Service: svcA}}, op: RemoveService{Service: naming.Service{Name: "a"}}},
		{name: "with instances", setup: []Op{PutService{Service: svcA}, PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}},
			op: RemoveService{Service: svcA}, is: []error{naming.ErrServiceNotEmpty}},
		{name: "with instances, not defined", setup: []Op{PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}},
			op: RemoveService{Service: svcA}, is: []error{naming.ErrServiceNotEmpty}},
		{name: "missing", op: RemoveService{Service: svcA}, is: []error{ErrNotFound, naming.ErrServiceNotFound}},
		{name: "bad", op: RemoveService{Service: naming.Service{Namespace: "ü", Name: "a"}}, field: "namespace"},
	})
}

func TestPutNamespace(t *testing.T) {
	dev := Namespace{ID: "dev", Name: "Development", Description: "for\ndevelopers"}
	put := func(ns Namespace) Op { return PutNamespace{Namespace: ns} }
	with := func(f func(*Namespace)) Namespace {
		ns := dev
		f(&ns)
		return ns
	}
	runOpCases(t, []opCase{
		{name: "new", op: put(dev), check: func(t *testing.T, h *harness) {
			if got, ok := h.Namespace("dev"); !ok || got != dev {
				t.Errorf("namespace %+v %v", got, ok)
			}
			if got := h.Namespaces(); !reflect.DeepEqual(got, []Namespace{PublicNamespace, dev}) {
				t.Errorf("namespaces %+v", got)
			}
		}},
		{name: "replace", setup: []Op{put(dev)}, op: put(with(func(ns *Namespace) { ns.Name = "Dev" }))},
		{name: "equal", setup: []Op{put(dev)}, op: put(dev), noChange: true},
		{name: "id of 128 bytes", op: put(with(func(ns *Namespace) { ns.ID = strings.Repeat("a", 128) }))},
		{name: "absent, new", op: PutNamespace{Namespace: dev, Expect: ExpectAbsent}},
		{name: "present, existing", setup: []Op{put(dev)}, op: PutNamespace{Namespace: with(func(ns *Namespace) { ns.Name = "D" }), Expect: ExpectPresent}},

		{name: "public", op: put(with(func(ns *Namespace) { ns.ID = "public" })), is: []error{ErrPublicNamespace}},
		{name: "empty id is public", op: put(with(func(ns *Namespace) { ns.ID = "" })), is: []error{ErrPublicNamespace}},
		{name: "id with a dot", op: put(with(func(ns *Namespace) { ns.ID = "a.b" })), field: "namespaceId"},
		{name: "id too long", op: put(with(func(ns *Namespace) { ns.ID = strings.Repeat("a", 129) })), field: "namespaceId"},
		{name: "blank name", op: put(with(func(ns *Namespace) { ns.Name = " " })), field: "namespaceName"},
		{name: "name with @", op: put(with(func(ns *Namespace) { ns.Name = "a@b" })), field: "namespaceName"},
		{name: "name of two lines", op: put(with(func(ns *Namespace) { ns.Name = "a\nb" })), field: "namespaceName"},
		{name: "name too long", op: put(with(func(ns *Namespace) { ns.Name = strings.Repeat("n", 129) })), field: "namespaceName"},
		{name: "description too long", op: put(with(func(ns *Namespace) { ns.Description = strings.Repeat("d", 257) })), field: "namespaceDesc"},
		{name: "description not UTF-8", op: put(with(func(ns *Namespace) { ns.Description = "\xc3" })), field: "namespaceDesc"},
		{name: "absent, existing", setup: []Op{put(dev)}, op: PutNamespace{Namespace: dev, Expect: ExpectAbsent}, is: []error{ErrExists}},
		{name: "present, missing", op: PutNamespace{Namespace: dev, Expect: ExpectPresent}, is: []error{ErrNotFound}},
		{name: "over the namespaces", cfg: Config{MaxNamespaces: 1}, setup: []Op{put(with(func(ns *Namespace) { ns.ID = "other" }))},
			op: put(dev), field: "namespaceId", limit: LimitNamespaces},
	})
}

func TestRemoveNamespace(t *testing.T) {
	dev := PutNamespace{Namespace: Namespace{ID: "dev", Name: "Development"}}
	runOpCases(t, []opCase{
		{name: "empty", setup: []Op{dev}, op: RemoveNamespace{ID: "dev"}, check: func(t *testing.T, h *harness) {
			if _, ok := h.Namespace("dev"); ok {
				t.Error("still there")
			}
		}},
		{name: "services of other namespaces", setup: []Op{dev, PutService{Service: svcA}}, op: RemoveNamespace{ID: "dev"}},
		{name: "public", op: RemoveNamespace{ID: "public"}, is: []error{ErrPublicNamespace}},
		{name: "empty id", op: RemoveNamespace{}, is: []error{ErrPublicNamespace}},
		{name: "missing", op: RemoveNamespace{ID: "dev"}, is: []error{ErrNotFound}},
		{name: "bad id", op: RemoveNamespace{ID: "../etc"}, field: "namespaceId"},
		{name: "a defined service", setup: []Op{dev, PutService{Service: svcD}}, op: RemoveNamespace{ID: "dev"}, is: []error{ErrNamespaceNotEmpty}},
		{name: "a persistent instance", setup: []Op{dev, PutInstance{Service: svcD, Instance: inst("10.0.0.1", 80)}},
			op: RemoveNamespace{ID: "dev"}, is: []error{ErrNamespaceNotEmpty}},
	})
}

// TestValidateNormalizes: Validate returns the op as Apply stores it.
func TestValidateNormalizes(t *testing.T) {
	l := New(Config{}).Limits()
	op, err := Validate(l, PutInstance{Service: naming.Service{Name: "a"}, Instance: Instance{IP: "10.0.0.1", Port: 80, Metadata: map[string]string{}}})
	want := PutInstance{Service: svcA, Instance: Instance{IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT"}}
	if err != nil || !reflect.DeepEqual(op, want) {
		t.Errorf("Validate = %+v, %v; want %+v", op, err, want)
	}
	op, err = Validate(l, PutService{Service: svcA})
	if err != nil || op.(PutService).Definition.Selector.Type != naming.SelectorNone {
		t.Errorf("Validate = %+v, %v", op, err)
	}
	if _, err := Validate(l, nil); field(err) != "op" {
		t.Errorf("nil op: %v", err)
	}
}

func TestPointerOpsRefused(t *testing.T) {
	if _, err := Encode(&PutInstance{Service: svcA, Instance: inst("10.0.0.1", 80)}); err == nil {
		t.Error("a pointer to an op encoded")
	}
	if _, err := Validate(New(Config{}).Limits(), &RemoveService{Service: svcA}); field(err) != "op" {
		t.Errorf("Validate of a pointer: %v", err)
	}
}

// TestNamingInstance: the instance the registry mirrors has the ID naming
// gives an instance registered without one.
func TestNamingInstance(t *testing.T) {
	l := New(Config{}).Limits()
	for _, in := range []Instance{inst("10.0.0.1", 80), {IP: "::1", Port: 0, Cluster: "c-1", Weight: 2, Metadata: map[string]string{"k": "v"}}} {
		got := in.Naming(svcD)
		want, err := l.NormalizeInstance(svcD, "", naming.Instance{IP: in.IP, Port: in.Port, Cluster: in.Cluster, Weight: in.Weight,
			Healthy: in.Healthy, Enabled: in.Enabled, Metadata: in.Metadata})
		if err != nil || !reflect.DeepEqual(got, want) || got.Ephemeral {
			t.Errorf("Naming = %+v, want %+v (%v)", got, want, err)
		}
	}
}
