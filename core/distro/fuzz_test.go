package distro

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
)

// The messages FuzzInbound feeds Distro, by kind%3; a verification of kind
// 1 finds the node still loading its snapshot.
const (
	fuzzSync = iota
	fuzzVerify
	fuzzChunk
)

const (
	fuzzSelf  = "10.0.0.1:8848"
	fuzzPeer  = "10.0.0.2:8848"
	fuzzThird = "10.0.0.3:8848" // a member too
)

// fuzzLimits are the registry's limits in FuzzInbound.
var fuzzLimits = naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10}

// fuzzMember reports whether an address is another member in FuzzInbound.
func fuzzMember(a string) bool { return a == fuzzPeer || a == fuzzThird }

// fuzzNoTransport is a transport that reaches nobody.
type fuzzNoTransport struct{}

func (fuzzNoTransport) Call(context.Context, string, string, []byte) ([]byte, error) {
	return nil, errors.New("no transport")
}

func (fuzzNoTransport) Snapshot(context.Context, string, func([]byte) error) error {
	return errors.New("no transport")
}

// fuzzState is every client the registry holds, with the counts.
type fuzzState struct {
	Stats   naming.Stats
	Clients map[string]naming.ClientData
}

func fuzzStateOf(r *naming.Registry) fuzzState {
	s := fuzzState{Stats: r.Stats(), Clients: map[string]naming.ClientData{}}
	r.EachClient(func(d naming.ClientData) bool {
		s.Clients[d.ID] = d
		return true
	})
	return s
}

func fuzzSameInstance(a, b naming.Instance) bool {
	return a.ID == b.ID && a.IP == b.IP && a.Port == b.Port && math.Float64bits(a.Weight) == math.Float64bits(b.Weight) &&
		a.Healthy == b.Healthy && a.Enabled == b.Enabled && a.Ephemeral == b.Ephemeral && a.Cluster == b.Cluster &&
		maps.Equal(a.Metadata, b.Metadata)
}

// fuzzSameServices reports whether a client holds want's instances, a NaN
// weight being equal to itself; services without instances are not held.
func fuzzSameServices(got, want map[naming.Service][]naming.Instance) bool {
	n := 0
	for svc, insts := range want {
		if len(insts) == 0 {
			continue
		}
		n++
		if !slices.EqualFunc(got[svc], insts, fuzzSameInstance) {
			return false
		}
	}
	return len(got) == n
}

// fuzzValidID is the rule for a replicated client's id: text of 1 to 256
// bytes, valid UTF-8 without control characters.
func fuzzValidID(id string) bool {
	if id == "" || len(id) > 256 || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return false
		}
	}
	return true
}

// fuzzValid normalizes what a member sent for a client as client input
// would be; ok says whether all of it would have been taken (each service
// valid and in normal form, each instance valid and ephemeral, no address
// twice, a batch at most).
func fuzzValid(services map[naming.Service][]naming.Instance) (normalized map[naming.Service][]naming.Instance, ok bool) {
	normalized, ok = map[naming.Service][]naming.Instance{}, true
	for svc, insts := range services {
		if len(insts) == 0 {
			continue
		}
		if norm, err := fuzzLimits.NormalizeService(svc); err != nil || norm != svc || len(insts) > fuzzLimits.MaxBatchSize {
			ok = false
		}
		for _, in := range insts {
			norm, err := fuzzLimits.NormalizeInstance(svc, "", in)
			if err != nil || !norm.Ephemeral || slices.ContainsFunc(normalized[svc], func(o naming.Instance) bool {
				return o.IP == norm.IP && o.Port == norm.Port && o.Cluster == norm.Cluster
			}) {
				ok = false
				continue
			}
			normalized[svc] = append(normalized[svc], norm)
		}
	}
	return normalized, ok
}

func fuzzInstance(ip string) naming.Instance {
	return naming.Instance{IP: ip, Port: 80, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, Cluster: naming.DefaultCluster}
}

var fuzzOrders = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}

// fuzzClient is a client with an instance of svc, changed by change.
func fuzzClient(id, owner string, svc naming.Service, change func(*naming.Instance)) naming.ClientData {
	in := naming.Instance{ID: "10.0.0.5#80#DEFAULT#DEFAULT_GROUP@@orders", IP: "10.0.0.5", Port: 80, Weight: 1,
		Healthy: true, Enabled: true, Ephemeral: true, Cluster: "DEFAULT"}
	if change != nil {
		change(&in)
	}
	return naming.ClientData{ID: id, Owner: owner, Revision: 3, Services: map[naming.Service][]naming.Instance{svc: {in}, {Name: "empty"}: {}}}
}

// fuzzEncode encodes clients as a sync with removed, or a snapshot chunk
// (both are field 1 of Clients).
func fuzzEncode(chunk bool, clients []naming.ClientData, removed ...string) []byte {
	var cs []*clusterv1.Client
	for _, c := range clients {
		cs = append(cs, clientToProto(c, fuzzSelf))
	}
	var b []byte
	if chunk {
		b, _ = proto.Marshal(&clusterv1.SnapshotChunk{Clients: cs})
	} else {
		b, _ = proto.Marshal(&clusterv1.Sync{Changed: cs, Removed: removed})
	}
	return b
}

// fuzzMessage builds a sync (or snapshot chunk) of one client with one
// instance.
func fuzzMessage(chunk bool, id, owner string, weight float64, metadata map[string]string, removed ...string) []byte {
	c := fuzzClient(id, owner, fuzzOrders, func(in *naming.Instance) { in.Weight, in.Metadata = weight, metadata })
	return fuzzEncode(chunk, []naming.ClientData{c}, removed...)
}

// FuzzInbound feeds raw bytes, as a member sends them, to Distro's decoders
// and what they decode to the registry: a sync or a verification (through
// the router, as the transport delivers them), or a snapshot chunk.
//
// Nothing panics. A message from an address that is not another member, or
// that does not decode, is refused and changes nothing. A client of this
// node is never changed, nor another member's replica. An applied client is
// held owned by its sender (the owner a chunk names), with what client
// input could have held of it: all of it, normalized, when all of it was
// valid; nothing that was not. Everything the registry holds passes the
// naming rules and every view of it encodes. A verification asks for
// exactly the listed clients the sender owns at another revision, or that
// nobody holds, and removes the sender's replicas not listed.
func FuzzInbound(f *testing.F) {
	verify, _ := proto.Marshal(&clusterv1.Verify{Entries: []*clusterv1.Verify_Entry{{Id: "r1", Revision: 1}, {Id: "local", Revision: 1}, {Id: "new", Revision: 9}}})
	verifyOther, _ := proto.Marshal(&clusterv1.Verify{Entries: []*clusterv1.Verify_Entry{{Id: "r1", Revision: 2}, {Id: "r1", Revision: 1}}})
	good := new(metadataEncoder).encode(map[string]string{"version": "1.0"})
	badMetadata, _ := proto.Marshal(&clusterv1.Sync{Changed: []*clusterv1.Client{{Id: "c1", Services: []*clusterv1.ServiceInstances{
		{Name: "s", Instances: []*clusterv1.Instance{{Id: "i1", Metadata: good[:3]}}}}}}})
	mixed := fuzzEncode(false, []naming.ClientData{{ID: "c2", Revision: 1, Services: map[naming.Service][]naming.Instance{
		fuzzOrders: {fuzzInstance("10.0.0.7"), {IP: "10.0.0.8", Port: 80, Weight: math.NaN(), Ephemeral: true}, fuzzInstance("10.0.0.7")},
		{Namespace: "public", Group: "DEFAULT_GROUP", Name: "ok"}:   {fuzzInstance("10.0.0.9")},
		{Namespace: "../../etc", Group: "DEFAULT_GROUP", Name: "x"}: {fuzzInstance("10.0.0.10")},
	}}})
	for _, seed := range []struct {
		kind    uint8
		from    string
		payload []byte
	}{
		{fuzzSync, fuzzPeer, fuzzMessage(false, "c1", "", 1, map[string]string{"version": "1.2", "zone": "", "": "empty key", "ünï": strings.Repeat("v", 300)})},
		{fuzzSync, fuzzPeer, fuzzMessage(false, "r1", "", 0.5, nil, "r1", "local", "gone")},
		{fuzzSync, fuzzThird, fuzzMessage(false, "r1", "", 1, nil, "r1")},
		{fuzzSync, fuzzPeer, fuzzMessage(false, "local", "", 1, nil)},
		{fuzzSync, fuzzPeer, fuzzMessage(false, "c1", "", math.Inf(1), map[string]string{"k": "\x1b[2J"})},
		{fuzzSync, fuzzPeer, badMetadata},
		{fuzzSync, fuzzPeer, []byte{0xff, 0xff, 0xff, 0xff}},
		{fuzzSync, fuzzPeer, nil},
		// Issue 11: NaN weight, a namespace ../../etc, a NUL in a name,
		// port -5, a client id with a NUL; a stranger, no sender, and
		// another member reusing r1's id and revision.
		{fuzzSync, fuzzPeer, fuzzMessage(false, "c1", "", math.NaN(), nil)},
		{fuzzSync, fuzzPeer, fuzzEncode(false, []naming.ClientData{fuzzClient("c1", "", naming.Service{Namespace: "../../etc", Group: "DEFAULT_GROUP", Name: "orders"}, nil)})},
		{fuzzSync, fuzzPeer, fuzzEncode(false, []naming.ClientData{fuzzClient("c1", "", naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "a\x00b"}, nil)})},
		{fuzzSync, fuzzPeer, fuzzEncode(false, []naming.ClientData{fuzzClient("c1", "", fuzzOrders, func(in *naming.Instance) { in.Port = -5 })})},
		{fuzzSync, fuzzPeer, fuzzEncode(false, []naming.ClientData{fuzzClient("c\x00", "", fuzzOrders, nil), fuzzClient("c3", "", fuzzOrders, nil)})},
		{fuzzSync, fuzzPeer, mixed},
		{fuzzSync, "evil:6666", fuzzMessage(false, "c1", "", 100, nil, "r1")},
		{fuzzSync, "", fuzzMessage(false, "c1", "", 1, nil)},
		{fuzzSync, fuzzSelf, fuzzMessage(false, "c1", "", 1, nil)},
		{fuzzSync, fuzzThird, fuzzEncode(false, []naming.ClientData{{ID: "r1", Revision: 1, Services: map[naming.Service][]naming.Instance{fuzzOrders: {fuzzInstance("6.6.6.6")}}}})},
		{fuzzVerify, fuzzPeer, verify},
		{fuzzVerify + 3, fuzzPeer, verify},
		{fuzzVerify + 3, fuzzPeer, verifyOther},
		{fuzzVerify + 3, fuzzPeer, nil},
		{fuzzVerify + 3, fuzzThird, nil},
		{fuzzVerify + 3, fuzzThird, verify},
		{fuzzVerify + 3, "evil:6666", nil},
		{fuzzVerify + 3, fuzzPeer, []byte{0x0a, 0x80}},
		{fuzzChunk, fuzzPeer, fuzzMessage(true, "c1", fuzzPeer, 1, map[string]string{"version": "1.0"})},
		{fuzzChunk, fuzzPeer, fuzzMessage(true, "c1", fuzzSelf, 1, nil)},
		{fuzzChunk, fuzzPeer, fuzzMessage(true, "c1", "", 1, nil)},
		{fuzzChunk, fuzzPeer, fuzzMessage(true, "c1", "evil:6666", 1, nil)},
		{fuzzChunk, fuzzPeer, fuzzMessage(true, "local", fuzzPeer, 1, nil)},
		{fuzzChunk, fuzzPeer, fuzzMessage(true, "r1", fuzzThird, -1, nil)},
		{fuzzChunk, fuzzPeer, fuzzMessage(true, "c1", fuzzThird, math.NaN(), nil)},
		{fuzzChunk, fuzzPeer, badMetadata},
	} {
		f.Add(seed.kind, seed.from, seed.payload)
	}
	f.Fuzz(func(t *testing.T, kind uint8, from string, payload []byte) {
		ctx := context.Background()
		bus := notify.New(notify.Config{})
		registry := naming.NewRegistry(naming.Config{Limits: fuzzLimits, Bus: bus})
		// Before Distro subscribes, publishing needs no running bus.
		if err := registry.Connect("local", nil); err != nil {
			t.Fatal(err)
		}
		if err := registry.Register(ctx, "local", naming.Service{Name: "orders"}, fuzzInstance("10.0.0.4")); err != nil {
			t.Fatal(err)
		}
		if _, err := registry.Apply(ctx, []naming.ClientData{{ID: "r1", Owner: fuzzPeer, Revision: 1,
			Services: map[naming.Service][]naming.Instance{fuzzOrders: {fuzzInstance("10.0.0.6")}}}}); err != nil {
			t.Fatal(err)
		}
		router := cluster.NewRouter()
		logger := hclog.NewNullLogger()
		members, err := cluster.New(cluster.Config{Self: fuzzSelf, ReportInterval: time.Second, Transport: fuzzNoTransport{},
			Router: router, Bus: bus, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		members.SetMembers([]string{fuzzSelf, fuzzPeer, fuzzThird})
		d, err := New(Config{Registry: registry, Cluster: members, Transport: fuzzNoTransport{}, Router: router, Bus: bus,
			SyncDelay: time.Second, RetryDelay: time.Second, CallTimeout: time.Second, VerifyInterval: time.Second,
			ClientExpiry: time.Second, SnapshotTimeout: time.Second, Logger: logger, Metrics: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		d.ready.Store(kind%3 != fuzzVerify || kind >= 3) // kind 1: a verification of a node still loading

		before := fuzzStateOf(registry)
		var answer []byte
		switch kind % 3 {
		case fuzzSync:
			answer, err = router.Handle(ctx, from, SyncKind, payload)
		case fuzzVerify:
			answer, err = router.Handle(ctx, from, VerifyKind, payload)
		case fuzzChunk:
			var n atomic.Int64
			err = d.applyChunk(ctx, from, payload, &n)
		}
		after := fuzzStateOf(registry)
		fuzzCheckHeld(t, registry, after)
		if err != nil {
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("kind %d from %s: refused (%v) but changed the registry:\nbefore %+v\nafter  %+v", kind%3, from, err, before, after)
			}
			return
		}
		if kind%3 != fuzzChunk && !fuzzMember(from) {
			t.Fatalf("kind %d from %q, not a member, was taken", kind%3, from)
		}
		if !reflect.DeepEqual(before.Clients["local"], after.Clients["local"]) {
			t.Fatalf("kind %d from %s changed this node's client: %+v, was %+v", kind%3, from, after.Clients["local"], before.Clients["local"])
		}

		switch kind % 3 {
		case fuzzSync, fuzzChunk:
			fuzzCheckApplied(t, kind%3 == fuzzChunk, from, payload, before, after)
		case fuzzVerify:
			var msg clusterv1.Verify
			var ans clusterv1.VerifyAnswer
			if err := proto.Unmarshal(payload, &msg); err != nil {
				t.Fatalf("a verification that does not decode (%v) was taken", err)
			}
			if err := proto.Unmarshal(answer, &ans); err != nil {
				t.Fatalf("the answer to a verification does not decode: %v", err)
			}
			if !d.Ready() {
				if len(ans.Need) != 0 || !reflect.DeepEqual(before, after) {
					t.Fatalf("a loading node answered %v, or changed the registry", ans.Need)
				}
				return
			}
			listed := map[string]uint64{}
			for _, e := range msg.Entries {
				listed[e.Id] = e.Revision
			}
			var want []string
			for id, rev := range listed {
				if prev, held := before.Clients[id]; !held || prev.Owner == from && prev.Revision != rev {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			need := slices.Clone(ans.Need)
			slices.Sort(need)
			if !slices.Equal(need, want) {
				t.Fatalf("verification of %v answered %q, want %q", listed, ans.Need, want)
			}
			for id, prev := range before.Clients {
				_, isListed := listed[id]
				_, still := after.Clients[id]
				if prev.Owner == from && !isListed && still || (prev.Owner != from || isListed) && !still {
					t.Fatalf("client %q of %q, listed %v by %s: still held %v", id, prev.Owner, isListed, from, still)
				}
			}
		}
	})
}

// fuzzCheckHeld fails t unless everything the registry holds passes the
// naming rules, and every view of it encodes.
func fuzzCheckHeld(t *testing.T, registry *naming.Registry, held fuzzState) {
	t.Helper()
	for id, c := range held.Clients {
		if !fuzzValidID(id) {
			t.Fatalf("the registry holds a client with the invalid id %q", id)
		}
		normalized, ok := fuzzValid(c.Services)
		if !ok || !fuzzSameServices(normalized, c.Services) {
			t.Fatalf("the registry holds client %q with what client input could not hold: %+v", id, c.Services)
		}
		for svc := range c.Services {
			for _, filter := range []naming.ViewFilter{{}, {HealthyOnly: true, GroupedName: true}} {
				if v := registry.View(svc, filter); !json.Valid(v) {
					t.Fatalf("the view of %s does not encode: %q", svc, v)
				}
			}
		}
	}
}

// fuzzCheckApplied checks a sync or chunk taken from from against the
// registry before and after.
func fuzzCheckApplied(t *testing.T, chunk bool, from string, payload []byte, before, after fuzzState) {
	t.Helper()
	var sync clusterv1.Sync
	var snapshot clusterv1.SnapshotChunk
	var clients []*clusterv1.Client
	if !chunk {
		if err := proto.Unmarshal(payload, &sync); err != nil {
			t.Fatalf("a sync that does not decode (%v) was taken", err)
		}
		clients = sync.Changed
	} else {
		if err := proto.Unmarshal(payload, &snapshot); err != nil {
			t.Fatalf("a chunk that does not decode (%v) was taken", err)
		}
		clients = snapshot.Clients
	}
	// The clients applied, the last of each id winning; a sync's removals
	// follow. A replica keeps the member it was created for.
	applied := map[string]naming.ClientData{}
	owners := map[string]string{}
	for id, prev := range before.Clients {
		owners[id] = prev.Owner
	}
	for _, c := range clients {
		if chunk && c.Owner == fuzzSelf {
			continue // this node's client of a former life: not even decoded
		}
		data, err := new(decoder).client(c)
		if err != nil {
			t.Fatalf("a message with a client that does not decode (%v) was taken", err)
		}
		if !chunk {
			data.Owner = from
		}
		if !fuzzMember(data.Owner) || !fuzzValidID(data.ID) {
			continue // refused, or dropped
		}
		if owner, held := owners[data.ID]; held && owner != data.Owner {
			continue // this node's client, or another member's
		}
		owners[data.ID] = data.Owner
		applied[data.ID] = data
	}
	for id, want := range applied {
		if !chunk && slices.Contains(sync.Removed, id) {
			if _, held := after.Clients[id]; held {
				t.Fatalf("client %q synced and removed by %s is still held", id, from)
			}
			continue
		}
		got, held := after.Clients[id]
		if !held || got.Owner != want.Owner || got.Revision != want.Revision {
			t.Fatalf("client %q applied as %+v (held %v), want %+v", id, got, held, want)
		}
		normalized, whole := fuzzValid(want.Services)
		if whole && !fuzzSameServices(got.Services, normalized) {
			t.Fatalf("valid client %q applied as %+v, want %+v", id, got.Services, normalized)
		}
		for svc, insts := range got.Services { // what is held was sent
			for _, in := range insts {
				if !slices.ContainsFunc(normalized[svc], func(o naming.Instance) bool { return fuzzSameInstance(in, o) }) {
					t.Fatalf("client %q holds %+v in %s, which was not sent", id, in, svc)
				}
			}
		}
	}
	for _, id := range sync.Removed {
		if _, ok := applied[id]; ok {
			continue
		}
		prev, held := before.Clients[id]
		_, still := after.Clients[id]
		if held && (prev.Owner == from) == still {
			t.Fatalf("client %q of %q removed by %s: still held %v", id, prev.Owner, from, still)
		}
	}
	for id := range before.Clients {
		if _, ok := applied[id]; !ok && !slices.Contains(sync.Removed, id) && !reflect.DeepEqual(before.Clients[id], after.Clients[id]) {
			t.Fatalf("client %q, not in the message, changed", id)
		}
	}
	for id := range after.Clients {
		if _, ok := before.Clients[id]; !ok {
			if _, ok := applied[id]; !ok {
				t.Fatalf("client %q, never applied, is held", id)
			}
		}
	}
}
