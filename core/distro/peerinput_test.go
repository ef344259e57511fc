package distro

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
)

// The members of an inbound fixture: this node and two others.
const (
	inSelf  = "10.0.0.1:8848"
	inPeerA = "10.0.0.2:8848"
	inPeerB = "10.0.0.3:8848"
)

// inbound is one node taking what members send through its router, never
// started: its handlers run on the caller's goroutine.
type inbound struct {
	registry *naming.Registry
	cluster  *cluster.Cluster
	router   *cluster.Router
	distro   *Distro
	metrics  *prometheus.Registry
	logs     *logBuffer
}

func newInbound(t *testing.T) *inbound {
	t.Helper()
	in := &inbound{router: cluster.NewRouter(), metrics: prometheus.NewRegistry(), logs: &logBuffer{}}
	bus := notify.New(notify.Config{})
	in.registry = naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10}, Bus: bus})
	var err error
	in.cluster, err = cluster.New(cluster.Config{Self: inSelf, ReportInterval: time.Second, Transport: fuzzNoTransport{},
		Router: in.router, Bus: bus, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	in.distro, err = New(Config{Registry: in.registry, Cluster: in.cluster, Transport: fuzzNoTransport{}, Router: in.router, Bus: bus,
		SyncDelay: time.Second, RetryDelay: time.Second, CallTimeout: time.Second, VerifyInterval: time.Second,
		ClientExpiry: time.Second, SnapshotTimeout: time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: in.logs, Level: hclog.Info}), Metrics: in.metrics})
	if err != nil {
		t.Fatal(err)
	}
	in.distro.ready.Store(true)
	in.cluster.SetMembers([]string{inSelf, inPeerA, inPeerB})
	return in
}

func (in *inbound) sync(from string, msg *clusterv1.Sync) error {
	b, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = in.router.Handle(context.Background(), from, SyncKind, b)
	return err
}

func (in *inbound) verify(t *testing.T, from string, entries ...*clusterv1.Verify_Entry) []string {
	t.Helper()
	b, _ := proto.Marshal(&clusterv1.Verify{Entries: entries})
	raw, err := in.router.Handle(context.Background(), from, VerifyKind, b)
	if err != nil {
		t.Fatal(err)
	}
	var answer clusterv1.VerifyAnswer
	if err := proto.Unmarshal(raw, &answer); err != nil {
		t.Fatal(err)
	}
	return answer.Need
}

// metric returns the value of the counter name with the label value, 0 if
// there is none.
func (in *inbound) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	families, err := in.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// one is a client of id with the instances given of svc, at revision rev.
func one(id string, rev uint64, insts ...naming.Instance) *clusterv1.Client {
	return clientToProto(naming.ClientData{ID: id, Revision: rev, Services: map[naming.Service][]naming.Instance{svc: insts}}, "")
}

// TestInvalidInstancesAreDroppedAndCounted: what client input could not
// hold — weight NaN, port -5, a namespace ../../etc, a NUL in a name — is
// dropped from a member's sync, counted and logged (once in the log's
// interval); the valid rest of the same client is applied, and every query
// of the service answers.
func TestInvalidInstancesAreDroppedAndCounted(t *testing.T) {
	in := newInbound(t)
	nan, negative := instance("10.6.6.6"), instance("10.6.6.7")
	nan.Weight, negative.Port = math.NaN(), -5
	etc := naming.Service{Namespace: "../../etc", Group: "DEFAULT_GROUP", Name: "orders"}
	nul := naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "or\x00ders"}
	mixed := naming.ClientData{ID: "c1", Revision: 1, Services: map[naming.Service][]naming.Instance{
		svc: {instance("10.1.0.1"), nan, negative},
		etc: {instance("10.1.0.2")},
		nul: {instance("10.1.0.3")},
	}}
	for i := range 2 {
		if err := in.sync(inPeerA, &clusterv1.Sync{Changed: []*clusterv1.Client{clientToProto(mixed, ""), one("c\x00", 1, instance("10.1.0.4"))}}); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	d, ok := in.registry.Client("c1")
	if !ok || d.Owner != inPeerA || len(d.Services) != 1 || len(d.Services[svc]) != 1 || d.Services[svc][0].IP != "10.1.0.1" {
		t.Fatalf("c1 is %+v, want its valid instance alone", d)
	}
	if st := in.registry.Stats(); st.Clients != 1 || st.Instances != 1 {
		t.Fatalf("stats %+v: the client with an invalid id is held", st)
	}
	if v, err := in.registry.Query(svc, naming.ViewFilter{}); err != nil || !json.Valid(v) {
		t.Fatalf("query: %s, %v", v, err)
	}
	for _, s := range []naming.Service{etc, nul} {
		if v := in.registry.View(s, naming.ViewFilter{}); !json.Valid(v) || strings.Contains(string(v), "10.1.0.") {
			t.Fatalf("the view of %s: %s", s, v)
		}
	}
	for reason, want := range map[string]float64{naming.PartInstance: 4, naming.PartService: 4, naming.PartClient: 2} {
		if got := in.metric(t, "sextant_distro_invalid_total", reason); got != want {
			t.Errorf("sextant_distro_invalid_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if n := in.logs.count("dropped what a member sent"); n != 1 {
		t.Errorf("%d log lines about dropped input, want 1 (rate-limited):\n%s", n, in.logs.b.String())
	}
}

// TestAMemberMayChangeOnlyItsOwnClients: B reusing A's client's id and
// revision — the replacement verification never repaired — is refused, as
// are B's verification and removal of it; A's own are applied.
func TestAMemberMayChangeOnlyItsOwnClients(t *testing.T) {
	in := newInbound(t)
	if err := in.sync(inPeerA, &clusterv1.Sync{Changed: []*clusterv1.Client{one("a1", 3, instance("10.1.0.1"))}}); err != nil {
		t.Fatal(err)
	}
	held, _ := in.registry.Client("a1")

	if err := in.sync(inPeerB, &clusterv1.Sync{Changed: []*clusterv1.Client{one("a1", 3, instance("6.6.6.6")), one("b1", 1, instance("10.1.0.2"))}}); err != nil {
		t.Fatal(err)
	}
	if need := in.verify(t, inPeerB, &clusterv1.Verify_Entry{Id: "a1", Revision: 4}, &clusterv1.Verify_Entry{Id: "b1", Revision: 1}); len(need) != 0 {
		t.Fatalf("B's verification asked for %v", need)
	}
	if err := in.sync(inPeerB, &clusterv1.Sync{Removed: []string{"a1"}}); err != nil {
		t.Fatal(err)
	}
	if now, _ := in.registry.Client("a1"); !reflect.DeepEqual(now, held) {
		t.Fatalf("a1 is %+v, was %+v", now, held)
	}
	if b1, ok := in.registry.Client("b1"); !ok || b1.Owner != inPeerB {
		t.Fatalf("B's own client in the same sync: %+v %v", b1, ok)
	}
	if got := in.metric(t, "sextant_distro_refused_clients_total", string(naming.RefusedOwner)); got != 3 {
		t.Errorf("%v refusals counted, want 3 (sync, verification, removal)", got)
	}
	if !strings.Contains(in.logs.b.String(), "refused clients a member may not change") {
		t.Errorf("no log line about the refusal:\n%s", in.logs.b.String())
	}

	// An empty verification from B removes B's clients, not A's.
	in.verify(t, inPeerB)
	if _, ok := in.registry.Client("b1"); ok {
		t.Fatal("b1, no longer on B's list, is held")
	}
	if _, ok := in.registry.Client("a1"); !ok {
		t.Fatal("B's empty verification removed A's client")
	}
	// A's word goes.
	if need := in.verify(t, inPeerA, &clusterv1.Verify_Entry{Id: "a1", Revision: 4}); !slices.Equal(need, []string{"a1"}) {
		t.Fatalf("A's verification asked for %v, want a1", need)
	}
	if err := in.sync(inPeerA, &clusterv1.Sync{Removed: []string{"a1"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := in.registry.Client("a1"); ok {
		t.Fatal("A's removal of a1 was not applied")
	}

	// This node's own client is refused to everyone.
	if err := in.registry.Connect("mine", nil); err != nil {
		t.Fatal(err)
	}
	if err := in.sync(inPeerA, &clusterv1.Sync{Changed: []*clusterv1.Client{one("mine", 1, instance("6.6.6.6"))}, Removed: []string{"mine"}}); err != nil {
		t.Fatal(err)
	}
	if d, ok := in.registry.Client("mine"); !ok || d.Owner != "" || len(d.Services) != 0 {
		t.Fatalf("this node's client is %+v (%v)", d, ok)
	}
	if got := in.metric(t, "sextant_distro_refused_clients_total", string(naming.RefusedLocal)); got != 2 {
		t.Errorf("%v refusals of this node's client counted, want 2", got)
	}
}

// TestAFormerMembersClientsPassToTheMemberThatSendsThem: the owner of a
// replica changes through the member table only: once A has left it, B's
// verification asks for A's client and B's sync takes it over.
func TestAFormerMembersClientsPassToTheMemberThatSendsThem(t *testing.T) {
	in := newInbound(t)
	if err := in.sync(inPeerA, &clusterv1.Sync{Changed: []*clusterv1.Client{one("x", 1, instance("10.1.0.1"))}}); err != nil {
		t.Fatal(err)
	}
	in.cluster.SetMembers([]string{inSelf, inPeerB})
	if need := in.verify(t, inPeerB, &clusterv1.Verify_Entry{Id: "x", Revision: 1}); !slices.Equal(need, []string{"x"}) {
		t.Fatalf("B's verification asked for %v, want x", need)
	}
	if err := in.sync(inPeerB, &clusterv1.Sync{Changed: []*clusterv1.Client{one("x", 1, instance("10.1.0.2"))}}); err != nil {
		t.Fatal(err)
	}
	if d, _ := in.registry.Client("x"); d.Owner != inPeerB || d.Services[svc][0].IP != "10.1.0.2" {
		t.Fatalf("x is %+v, want B's", d)
	}
	// A, gone, is a stranger.
	if err := in.sync(inPeerA, &clusterv1.Sync{Removed: []string{"x"}}); !errors.Is(err, cluster.ErrNotMember) {
		t.Fatalf("a former member's sync: %v", err)
	}
}

// TestStrangersAreRefused: a sync, verification or snapshot request from
// an address outside the member table, or from none, is refused with an
// error naming it, counted, and changes nothing.
func TestStrangersAreRefused(t *testing.T) {
	in := newInbound(t)
	if err := in.sync(inPeerA, &clusterv1.Sync{Changed: []*clusterv1.Client{one("a1", 1, instance("10.1.0.1"))}}); err != nil {
		t.Fatal(err)
	}
	before := fuzzStateOf(in.registry)
	evil := instance("6.6.6.6")
	evil.Weight = 100
	forged := &clusterv1.Sync{Changed: []*clusterv1.Client{one("evil", 1, evil)}, Removed: []string{"a1"}}
	verify, _ := proto.Marshal(&clusterv1.Verify{})
	for _, from := range []string{"evil:6666", "", inSelf} {
		if err := in.sync(from, forged); !errors.Is(err, cluster.ErrNotMember) || !strings.Contains(err.Error(), from) {
			t.Errorf("a sync from %q: %v, want a refusal naming it", from, err)
		}
		if _, err := in.router.Handle(context.Background(), from, VerifyKind, verify); !errors.Is(err, cluster.ErrNotMember) {
			t.Errorf("a verification from %q: %v", from, err)
		}
		if err := in.router.Snapshot(context.Background(), from, func([]byte) error { return nil }); !errors.Is(err, cluster.ErrNotMember) {
			t.Errorf("a snapshot request from %q: %v", from, err)
		}
	}
	if after := fuzzStateOf(in.registry); !reflect.DeepEqual(before, after) {
		t.Fatalf("strangers changed the registry:\nbefore %+v\nafter  %+v", before, after)
	}
	for kind, want := range map[string]float64{SyncKind: 3, VerifyKind: 3, SnapshotKind: 3} {
		if got := in.metric(t, "sextant_cluster_refused_messages_total", kind); got != want {
			t.Errorf("sextant_cluster_refused_messages_total{kind=%q} = %v, want %v", kind, got, want)
		}
	}
}

// TestASnapshotsClientsOfStrangersAreRefused: a snapshot chunk's client
// whose owner is no member, or none, is not loaded.
func TestASnapshotsClientsOfStrangersAreRefused(t *testing.T) {
	in := newInbound(t)
	var clients []*clusterv1.Client
	for _, owner := range []string{"evil:6666", "", inPeerB} {
		c := one("of-"+owner, 1, instance("10.1.0.1"))
		c.Owner = owner
		clients = append(clients, c)
	}
	raw, _ := proto.Marshal(&clusterv1.SnapshotChunk{Clients: clients})
	var n atomic.Int64
	if err := in.distro.applyChunk(context.Background(), inPeerA, raw, &n); err != nil {
		t.Fatal(err)
	}
	if st := in.registry.Stats(); n.Load() != 1 || st.Clients != 1 {
		t.Fatalf("loaded %d clients, holds %+v: want B's alone", n.Load(), st)
	}
	if got := in.metric(t, "sextant_distro_refused_clients_total", string(naming.RefusedUnknownOwner)); got != 2 {
		t.Fatalf("%v refusals counted, want 2", got)
	}
}
