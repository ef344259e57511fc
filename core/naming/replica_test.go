package naming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/notify"
)

// clientEvents collects ClientChanged and ClientRemoved in order.
func clientEvents(t *testing.T) (*Registry, *fakeClock, chan any) {
	t.Helper()
	bus := notify.New(notify.Config{})
	events := make(chan any, 1024)
	for _, err := range []error{
		notify.Subscribe(bus, "test", func(e ClientChanged) { events <- e }),
		notify.Subscribe(bus, "test", func(e ClientRemoved) { events <- e }),
		notify.Subscribe(bus, "test", func(e ServiceChanged) { events <- e }),
		bus.Start(context.Background()),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = bus.Stop(context.Background()) })
	clock := &fakeClock{now: time.Unix(1000, 0)}
	return NewRegistry(Config{Limits: testLimits, Bus: bus, Now: clock.Now}), clock, events
}

func next(t *testing.T, events chan any) any {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return nil
	}
}

// expect takes len(want) events and checks they are want, in any order:
// events of different types travel on different queues.
func expect(t *testing.T, events chan any, want ...any) {
	t.Helper()
	var got []any
	for range want {
		got = append(got, next(t, events))
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

func TestLocalClientsAnnounceTheirChanges(t *testing.T) {
	ctx := context.Background()
	r, _, events := clientEvents(t)
	if err := r.Connect("local", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, "local", svcA, inst("10.0.0.1", 80)); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{svcA, CauseLocal}, ClientChanged{"local"})
	if v := r.LocalVersions(); len(v) != 1 || v[0] != (ClientVersion{"local", 1}) {
		t.Fatalf("versions %v", v)
	}
	if err := r.Disconnect(ctx, "local"); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{svcA, CauseLocal}, ClientRemoved{"local"})
}

func TestApplyReplicatedClients(t *testing.T) {
	ctx := context.Background()
	r, _, events := clientEvents(t)
	remote := ClientData{ID: "r1", Owner: "10.0.0.9:8848", Revision: 3, Services: map[Service][]Instance{
		svcA: {inst("10.0.1.1", 80)}, svcB: {inst("10.0.1.1", 81)},
	}}
	// Apply keeps the maps it is given: each call gets its own copy.
	fresh := func() ClientData {
		d := remote
		d.Services = maps.Clone(remote.Services)
		return d
	}
	if skipped, err := r.Apply(ctx, []ClientData{fresh()}); err != nil || skipped != nil {
		t.Fatal(skipped, err)
	}
	expect(t, events, ServiceChanged{svcA, CauseOwner}, ServiceChanged{svcB, CauseOwner})
	if d, ok := r.Client("r1"); !ok || d.Owner != "10.0.0.9:8848" || d.Revision != 3 || len(d.Services) != 2 {
		t.Fatalf("client r1: %+v %v", d, ok)
	}
	if v := r.LocalVersions(); len(v) != 0 {
		t.Fatalf("a replicated client counted as local: %v", v)
	}

	// The same data again changes nothing and tells nobody; a new revision
	// dropping a service changes just that one.
	if _, err := r.Apply(ctx, []ClientData{fresh()}); err != nil {
		t.Fatal(err)
	}
	remote.Revision, remote.Services = 4, map[Service][]Instance{svcA: {inst("10.0.1.1", 80)}}
	if _, err := r.Apply(ctx, []ClientData{fresh()}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, events); e != (ServiceChanged{svcB, CauseOwner}) {
		t.Fatalf("after dropping b: %#v", e)
	}

	// A client of this node is never overwritten.
	if err := r.Connect("mine", nil); err != nil {
		t.Fatal(err)
	}
	skipped, err := r.Apply(ctx, []ClientData{{ID: "mine", Owner: "10.0.0.9:8848", Services: map[Service][]Instance{svcA: {inst("6.6.6.6", 1)}}}})
	if err != nil || !slices.Equal(skipped, []string{"mine"}) {
		t.Fatalf("a local client was not skipped: %v %v", skipped, err)
	}
	if d, _ := r.Client("mine"); len(d.Services) != 0 {
		t.Fatalf("local client changed: %+v", d)
	}
}

func TestVerifyAndExpire(t *testing.T) {
	ctx := context.Background()
	r, clock, _ := clientEvents(t)
	const owner = "10.0.0.9:8848"
	data := func(id string, rev uint64) ClientData {
		return ClientData{ID: id, Owner: owner, Revision: rev, Services: map[Service][]Instance{svcA: {inst("10.0.2."+id, 80)}}}
	}
	if _, err := r.Apply(ctx, []ClientData{data("1", 1), data("2", 1), data("3", 1), {ID: "x", Owner: "other:8848", Revision: 1}}); err != nil {
		t.Fatal(err)
	}
	clock.now = clock.now.Add(time.Minute)
	res, err := r.Verify(ctx, owner, []ClientVersion{{"1", 1}, {"2", 5}, {"4", 1}}, ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	need := res.Need
	slices.Sort(need)
	if !slices.Equal(need, []string{"2", "4"}) {
		t.Fatalf("need %v, want the changed 2 and the unknown 4", need)
	}
	if _, ok := r.Client("3"); ok {
		t.Fatal("client 3, no longer on its owner's list, is still here")
	}
	if _, ok := r.Client("x"); !ok {
		t.Fatal("another owner's client was removed")
	}

	cutoff := clock.now.Add(-time.Second)
	exp, err := r.Expire(ctx, func(string) time.Time { return cutoff })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(exp.Clients)
	// 1 was verified now; 2 and x were last vouched for a minute ago.
	if !slices.Equal(exp.Clients, []string{"2", "x"}) {
		t.Fatalf("expired %v", exp.Clients)
	}
}

// TestExpireCutsOffEachOwnerAsToldAndReportsTheLosses: the cutoff is the
// caller's per owner (a zero time keeps them all), and the services that lose
// instances are reported with what they had.
func TestExpireCutsOffEachOwnerAsToldAndReportsTheLosses(t *testing.T) {
	ctx := context.Background()
	r, clock, events := clientEvents(t)
	const kept, gone = "10.0.0.8:8848", "10.0.0.9:8848"
	var replicas []ClientData
	for i := range 4 {
		owner := gone
		if i == 3 {
			owner = kept
		}
		replicas = append(replicas, ClientData{ID: fmt.Sprint("r", i), Owner: owner, Revision: 1,
			Services: map[Service][]Instance{svcA: {inst(fmt.Sprint("10.0.3.", i), 80)}, svcB: {inst(fmt.Sprint("10.0.4.", i), 80)}}})
	}
	if _, err := r.Apply(ctx, replicas); err != nil {
		t.Fatal(err)
	}
	if err := r.Connect("local", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, "local", svcA, inst("10.0.5.1", 80)); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{svcA, CauseOwner}, ServiceChanged{svcB, CauseOwner},
		ServiceChanged{svcA, CauseLocal}, ClientChanged{"local"})
	clock.now = clock.now.Add(time.Minute)
	exp, err := r.Expire(ctx, func(owner string) time.Time {
		if owner == kept {
			return time.Time{}
		}
		return clock.now
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(exp.Clients)
	if !slices.Equal(exp.Clients, []string{"r0", "r1", "r2"}) {
		t.Fatalf("expired %v, want the three of %s", exp.Clients, gone)
	}
	slices.SortFunc(exp.Losses, func(a, b ServiceLoss) int { return strings.Compare(a.Service.Name, b.Service.Name) })
	want := []ServiceLoss{{Service: svcA, Had: 5, Lost: 3}, {Service: svcB, Had: 4, Lost: 3}}
	if !slices.Equal(exp.Losses, want) {
		t.Fatalf("losses %+v, want %+v", exp.Losses, want)
	}
	if n, _ := r.CountInstances(svcA); n != 2 {
		t.Fatalf("%s has %d instances left, want 2", svcA, n)
	}
	// What expiry removes is this node's inference: each client's two services.
	for range 6 {
		if e := next(t, events); e.(ServiceChanged).Cause != CauseExpiry {
			t.Fatalf("expiry published %+v", e)
		}
	}
}

// TestEveryChangeSaysItsCause: push holds an empty push that an expiry
// caused, not one a client or its owner stated.
func TestEveryChangeSaysItsCause(t *testing.T) {
	ctx := context.Background()
	r, _, events := clientEvents(t)
	const owner = "10.0.0.9:8848"
	changed := func(want ChangeCause) {
		t.Helper()
		for {
			if e, ok := next(t, events).(ServiceChanged); ok {
				if e != (ServiceChanged{svcA, want}) {
					t.Fatalf("got %+v, want cause %s", e, want)
				}
				return
			}
		}
	}
	if _, err := r.Apply(ctx, []ClientData{{ID: "r1", Owner: owner, Revision: 1, Services: map[Service][]Instance{svcA: {inst("10.0.1.1", 80)}}}}); err != nil {
		t.Fatal(err)
	}
	changed(CauseOwner)
	if _, err := r.Verify(ctx, owner, nil, ReplicaOptions{}); err != nil { // r1 is no longer listed
		t.Fatal(err)
	}
	changed(CauseOwner)
	if err := r.Connect("local", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, "local", svcA, inst("10.0.0.1", 80)); err != nil {
		t.Fatal(err)
	}
	changed(CauseLocal)
	if err := r.Deregister(ctx, "local", svcA, inst("10.0.0.1", 80)); err != nil {
		t.Fatal(err)
	}
	changed(CauseLocal)
	if _, err := r.Apply(ctx, []ClientData{{ID: "r2", Owner: owner, Revision: 1, Services: map[Service][]Instance{svcA: {inst("10.0.1.2", 80)}}}}); err != nil {
		t.Fatal(err)
	}
	changed(CauseOwner)
	if err := r.Disconnect(ctx, "r2"); err != nil { // as a sync's removal does
		t.Fatal(err)
	}
	changed(CauseOwner)
	if _, err := r.Apply(ctx, []ClientData{{ID: "r3", Owner: owner, Revision: 1, Services: map[Service][]Instance{svcA: {inst("10.0.1.3", 80)}}}}); err != nil {
		t.Fatal(err)
	}
	changed(CauseOwner)
	if _, err := r.Expire(ctx, func(string) time.Time { return time.Now().Add(time.Hour) }); err != nil {
		t.Fatal(err)
	}
	changed(CauseExpiry)
}

// droppedReasons returns the dropped parts as "part service reason", sorted.
func droppedReasons(ds []Dropped) []string {
	var out []string
	for _, d := range ds {
		var invalid *InvalidError
		if !errors.As(d.Err, &invalid) {
			out = append(out, fmt.Sprintf("%s: not an InvalidError: %v", d.ClientID, d.Err))
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s %s", d.ClientID, d.Part, d.Service.Name, d.Reason()))
	}
	slices.Sort(out)
	return out
}

// TestApplyDropsWhatClientInputCouldNotHold: a replica goes through the
// naming rules client input does. Its invalid instances and services are
// dropped and reported; its valid ones are applied; nothing invalid is
// stored, and every view of what was applied encodes.
func TestApplyDropsWhatClientInputCouldNotHold(t *testing.T) {
	ctx := context.Background()
	r, _, _ := clientEvents(t)
	const owner = "10.0.0.9:8848"
	bad := func(f func(*Instance)) Instance {
		in := inst("10.0.9.9", 80)
		f(&in)
		return in
	}
	good := inst("10.0.1.1", 80)
	etc := Service{Namespace: "../../etc", Group: DefaultGroup, Name: "passwd"}
	nul := Service{Namespace: DefaultNamespace, Group: DefaultGroup, Name: "a\x00b"}
	bare := Service{Name: "bare"} // not in normal form: the owner's are
	svcs := map[Service][]Instance{
		svcA: {
			good,
			bad(func(in *Instance) { in.Weight = math.NaN() }),
			bad(func(in *Instance) { in.Weight = math.Inf(1) }),
			bad(func(in *Instance) { in.Port = -5 }),
			bad(func(in *Instance) { in.IP = "" }),
			bad(func(in *Instance) { in.ID = "x\x00y" }),
			bad(func(in *Instance) { in.Cluster = "../x" }),
			bad(func(in *Instance) { in.Ephemeral = false }),
			bad(func(in *Instance) { in.Metadata = map[string]string{MetaHeartbeatInterval: "-1"} }),
			{ID: "dup", IP: good.IP, Port: good.Port, Weight: 2, Enabled: true, Ephemeral: true, Cluster: good.Cluster},
		},
		svcB: {inst("10.0.1.2", 80)},
		etc:  {inst("10.0.1.3", 80)},
		nul:  {inst("10.0.1.4", 80)},
		bare: {inst("10.0.1.5", 80)},
	}
	res, err := r.ApplyReplicas(ctx, []ClientData{{ID: "r1", Owner: owner, Revision: 7, Services: svcs}}, ReplicaOptions{})
	if err != nil || res.Applied != 1 || len(res.Refused) != 0 {
		t.Fatalf("applied %d, refused %v, %v", res.Applied, res.Refused, err)
	}
	want := []string{"r1 instance a instance"}
	for range 8 {
		want = append(want, "r1 instance a instance")
	}
	want = append(want, "r1 service a\x00b service", "r1 service bare service", "r1 service passwd service")
	if got := droppedReasons(res.Invalid); !slices.Equal(got, want) {
		t.Fatalf("dropped %q,\nwant %q", got, want)
	}
	d, _ := r.Client("r1")
	if d.Revision != 7 || len(d.Services) != 2 || !slices.EqualFunc(d.Services[svcA], []Instance{good}, Instance.equal) || len(d.Services[svcB]) != 1 {
		t.Fatalf("held %+v, want the valid instances of a and b", d)
	}
	for _, svc := range []Service{svcA, svcB, etc, nul, bare} {
		if v := r.View(svc, ViewFilter{}); !json.Valid(v) {
			t.Fatalf("the view of %s does not encode: %s", svc, v)
		}
	}
	if st := r.Stats(); st.Instances != 2 || st.Services != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestApplyDropsAClientWithAnInvalidIDAndTheLimitsHold: a replica with an
// invalid id is dropped whole, the others of the call are applied; the
// per-client and per-service limits drop what is over them.
func TestApplyDropsAClientWithAnInvalidIDAndTheLimitsHold(t *testing.T) {
	ctx := context.Background()
	r, _, _ := clientEvents(t)
	const owner = "10.0.0.9:8848"
	one := map[Service][]Instance{svcA: {inst("10.0.1.1", 80)}}
	var clients []ClientData
	for _, id := range []string{"", "a\x00b", "\xff", strings.Repeat("x", maxClientIDBytes+1)} {
		clients = append(clients, ClientData{ID: id, Owner: owner, Revision: 1, Services: maps.Clone(one)})
	}
	clients = append(clients, ClientData{ID: "ok", Owner: owner, Revision: 1, Services: maps.Clone(one)})
	res, err := r.ApplyReplicas(ctx, clients, ReplicaOptions{})
	if err != nil || res.Applied != 1 || len(res.Invalid) != 4 {
		t.Fatalf("applied %d, dropped %v, %v", res.Applied, droppedReasons(res.Invalid), err)
	}
	for _, d := range res.Invalid {
		if d.Part != PartClient || d.Reason() != PartClient || d.Instances != 1 {
			t.Errorf("dropped %+v, want the whole client", d)
		}
	}
	if st := r.Stats(); st.Clients != 1 || st.Instances != 1 {
		t.Fatalf("stats %+v, want client ok alone", st)
	}

	limited := NewRegistry(Config{Limits: Limits{MaxNameLength: 512, MaxMetadataBytes: 1024, MaxBatchSize: 2, MaxServicesPerClient: 2},
		Bus: notify.New(notify.Config{})})
	svcC := Service{Namespace: DefaultNamespace, Group: DefaultGroup, Name: "c"}
	big := map[Service][]Instance{
		svcA: {inst("10.0.2.1", 80), inst("10.0.2.2", 80), inst("10.0.2.3", 80)},
		svcB: {inst("10.0.2.4", 80)},
		svcC: {inst("10.0.2.5", 80)},
		{Namespace: DefaultNamespace, Group: DefaultGroup, Name: strings.Repeat("n", 513)}: {inst("10.0.2.6", 80)},
		{Namespace: DefaultNamespace, Group: DefaultGroup, Name: "meta"}: {{ID: "m", IP: "10.0.2.7", Port: 80, Ephemeral: true,
			Cluster: DefaultCluster, Metadata: map[string]string{"k": strings.Repeat("v", 1024)}}},
	}
	res, err = limited.ApplyReplicas(ctx, []ClientData{{ID: "big", Owner: owner, Revision: 1, Services: big}}, ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"big instance a " + LimitBatchSize, "big instance meta " + LimitMetadataBytes,
		"big service c " + LimitServicesPerClient, "big service " + strings.Repeat("n", 513) + " " + LimitNameLength}
	if got := droppedReasons(res.Invalid); !slices.Equal(got, want) {
		t.Fatalf("dropped %q, want %q", got, want)
	}
	if d, _ := limited.Client("big"); len(d.Services) != 2 || len(d.Services[svcA]) != 2 || len(d.Services[svcB]) != 1 {
		t.Fatalf("held %+v: want the first two instances of a, and b", d.Services)
	}

	limited = NewRegistry(Config{Limits: Limits{MaxNameLength: 512, MaxMetadataBytes: 1024, MaxBatchSize: 10, MaxInstancesPerClient: 3},
		Bus: notify.New(notify.Config{})})
	three := map[Service][]Instance{
		svcA: {inst("10.0.3.1", 80), inst("10.0.3.2", 80)},
		svcB: {inst("10.0.3.3", 80), inst("10.0.3.4", 80)},
		svcC: {inst("10.0.3.5", 80)},
	}
	res, err = limited.ApplyReplicas(ctx, []ClientData{{ID: "many", Owner: owner, Revision: 1, Services: three}}, ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := droppedReasons(res.Invalid), []string{"many service b " + LimitInstancesPerClient}; !slices.Equal(got, want) {
		t.Fatalf("dropped %q, want %q", got, want)
	}
	if d, _ := limited.Client("many"); d.InstanceCount() != 3 || len(d.Services[svcB]) != 0 {
		t.Fatalf("held %+v: want a and c, the services in order that fit", d.Services)
	}
}

// TestAMemberMayNotChangeAnothersReplica: a replica belongs to the member
// that first sent it. Another member's sync, verification and removal of it
// are refused and change nothing; its owner's are applied.
func TestAMemberMayNotChangeAnothersReplica(t *testing.T) {
	ctx := context.Background()
	r, _, _ := clientEvents(t)
	const owner, other = "10.0.0.8:8848", "10.0.0.9:8848"
	members := ReplicaOptions{IsMember: func(a string) bool { return a == owner || a == other }}
	data := func(from, ip string, rev uint64) ClientData {
		return ClientData{ID: "r1", Owner: from, Revision: rev, Services: map[Service][]Instance{svcA: {inst(ip, 80)}}}
	}
	if res, err := r.ApplyReplicas(ctx, []ClientData{data(owner, "10.0.1.1", 3)}, members); err != nil || res.Applied != 1 {
		t.Fatal(res, err)
	}
	held, _ := r.Client("r1")

	// The same id and revision from another member: the attack of issue 11.
	res, err := r.ApplyReplicas(ctx, []ClientData{data(other, "6.6.6.6", 3)}, members)
	if err != nil || res.Applied != 0 || !slices.Equal(res.Refused, []RefusedClient{{ID: "r1", Reason: RefusedOwner, Owner: owner}}) {
		t.Fatalf("another member's sync: %+v, %v", res, err)
	}
	vres, err := r.Verify(ctx, other, []ClientVersion{{"r1", 9}}, members)
	if err != nil || len(vres.Need) != 0 || !slices.Equal(vres.Refused, []RefusedClient{{ID: "r1", Reason: RefusedOwner, Owner: owner}}) {
		t.Fatalf("another member's verification: %+v, %v", vres, err)
	}
	if _, err := r.Verify(ctx, other, nil, members); err != nil { // an empty one removes only other's
		t.Fatal(err)
	}
	if why, err := r.RemoveReplica(ctx, "r1", other); err != nil || why != RefusedOwner {
		t.Fatalf("another member's removal: %q, %v", why, err)
	}
	if now, _ := r.Client("r1"); !reflect.DeepEqual(now, held) {
		t.Fatalf("r1 is %+v, was %+v", now, held)
	}

	// A client of this node is refused to anyone.
	if err := r.Connect("mine", nil); err != nil {
		t.Fatal(err)
	}
	vres, err = r.Verify(ctx, owner, []ClientVersion{{"r1", 3}, {"mine", 1}}, members)
	if err != nil || len(vres.Need) != 0 || !slices.Equal(vres.Refused, []RefusedClient{{ID: "mine", Reason: RefusedLocal}}) {
		t.Fatalf("a verification listing this node's client: %+v, %v", vres, err)
	}
	if why, err := r.RemoveReplica(ctx, "mine", owner); err != nil || why != RefusedLocal {
		t.Fatalf("removing this node's client: %q, %v", why, err)
	}
	if _, ok := r.Client("mine"); !ok {
		t.Fatal("this node's client was removed")
	}

	// No owner, or one that is not a member: refused.
	for _, from := range []string{"", "6.6.6.6:6666"} {
		res, err := r.ApplyReplicas(ctx, []ClientData{{ID: "new", Owner: from, Revision: 1}}, members)
		if err != nil || !slices.Equal(res.Refused, []RefusedClient{{ID: "new", Reason: RefusedUnknownOwner}}) {
			t.Fatalf("owner %q: %+v, %v", from, res, err)
		}
	}

	// The owner's own word is applied.
	if res, err := r.ApplyReplicas(ctx, []ClientData{data(owner, "10.0.1.2", 4)}, members); err != nil || res.Applied != 1 {
		t.Fatal(res, err)
	}
	if why, err := r.RemoveReplica(ctx, "r1", owner); err != nil || why != "" {
		t.Fatalf("the owner's removal: %q, %v", why, err)
	}
	if _, ok := r.Client("r1"); ok {
		t.Fatal("r1 outlived its owner's removal")
	}
	// Gone, the id is free: the next member to send it owns it.
	if res, err := r.ApplyReplicas(ctx, []ClientData{data(other, "10.0.1.3", 1)}, members); err != nil || res.Applied != 1 {
		t.Fatal(res, err)
	}
	if d, _ := r.Client("r1"); d.Owner != other {
		t.Fatalf("r1 owned by %q after its removal, want %s", d.Owner, other)
	}
}

// TestAFormerMembersReplicaIsTakenOver: once a replica's owner has left the
// member table, the member that verifies or syncs it takes it over.
func TestAFormerMembersReplicaIsTakenOver(t *testing.T) {
	ctx := context.Background()
	r, _, events := clientEvents(t)
	const former, heir = "10.0.0.8:8848", "10.0.0.9:8848"
	isMember := map[string]bool{former: true, heir: true}
	opts := ReplicaOptions{IsMember: func(a string) bool { return isMember[a] }}
	if _, err := r.ApplyReplicas(ctx, []ClientData{{ID: "r1", Owner: former, Revision: 1,
		Services: map[Service][]Instance{svcA: {inst("10.0.1.1", 80)}}}}, opts); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{svcA, CauseOwner})

	isMember[former] = false
	vres, err := r.Verify(ctx, heir, []ClientVersion{{"r1", 1}}, opts)
	if err != nil || !slices.Equal(vres.Need, []string{"r1"}) || len(vres.Refused) != 0 {
		t.Fatalf("the heir's verification: %+v, %v; want r1 asked for", vres, err)
	}
	res, err := r.ApplyReplicas(ctx, []ClientData{{ID: "r1", Owner: heir, Revision: 1,
		Services: map[Service][]Instance{svcA: {inst("10.0.1.2", 80)}}}}, opts)
	if err != nil || res.Applied != 1 || len(res.Refused) != 0 {
		t.Fatalf("the heir's sync: %+v, %v", res, err)
	}
	if d, _ := r.Client("r1"); d.Owner != heir || d.Services[svcA][0].IP != "10.0.1.2" {
		t.Fatalf("r1 is %+v, want the heir's", d)
	}
	if n, _ := r.CountInstances(svcA); n != 1 {
		t.Fatalf("%d instances of a, want the heir's alone", n)
	}
	expect(t, events, ServiceChanged{svcA, CauseOwner}, ServiceChanged{svcA, CauseOwner})
}

// TestTheOwnerIndexFollowsEveryReplica: the index Verify reads holds each
// live replica under its owner, follows a move to another owner and a
// takeover, and keeps no empty entry once an owner's replicas are gone.
func TestTheOwnerIndexFollowsEveryReplica(t *testing.T) {
	ctx := context.Background()
	r, _, _ := clientEvents(t)
	const a, b = "10.0.0.8:8848", "10.0.0.9:8848"
	isMember := map[string]bool{a: true, b: true}
	opts := ReplicaOptions{IsMember: func(m string) bool { return isMember[m] }}
	replica := func(id, owner string) ClientData {
		return ClientData{ID: id, Owner: owner, Revision: 1, Services: map[Service][]Instance{svcA: {inst("10.0.3."+id, 80)}}}
	}
	if _, err := r.ApplyReplicas(ctx, []ClientData{replica("1", a), replica("2", a), replica("3", b)}, opts); err != nil {
		t.Fatal(err)
	}
	if err := r.Connect("local", nil); err != nil {
		t.Fatal(err)
	}
	index := func() map[string][]string {
		out := map[string][]string{}
		for owner, m := range r.owned {
			for id, c := range m {
				if c.owner != owner || r.clients[id] != c {
					t.Errorf("index entry %s/%s is not the registry's client", owner, id)
				}
				out[owner] = append(out[owner], id)
			}
			slices.Sort(out[owner])
		}
		return out
	}
	want := func(step string, w map[string][]string) {
		t.Helper()
		if got := index(); !maps.EqualFunc(got, w, slices.Equal) {
			t.Fatalf("%s: index %v, want %v", step, got, w)
		}
	}
	want("applied", map[string][]string{a: {"1", "2"}, b: {"3"}})

	if !r.MoveReplica("2", a, b) {
		t.Fatal("moving replica 2 to b")
	}
	want("2 moved to b", map[string][]string{a: {"1"}, b: {"2", "3"}})

	isMember[a] = false // b takes over a's last replica by syncing it
	if _, err := r.ApplyReplicas(ctx, []ClientData{replica("1", b)}, opts); err != nil {
		t.Fatal(err)
	}
	want("b took over 1", map[string][]string{b: {"1", "2", "3"}})

	if _, err := r.Verify(ctx, b, []ClientVersion{{"3", 1}}, opts); err != nil {
		t.Fatal(err)
	}
	want("b verified only 3", map[string][]string{b: {"3"}})
	if err := r.Disconnect(ctx, "3"); err != nil {
		t.Fatal(err)
	}
	want("all gone", map[string][]string{})
}

// TestAHeldReplicaSurvivesItsOwnersVerificationsUntilItExpires: a replica
// its owner moved to a node not known here (HoldForMove) is not removed by
// the owner's verifications, which no longer list it; it still expires, and
// only the owner's replica can be held.
func TestAHeldReplicaSurvivesItsOwnersVerificationsUntilItExpires(t *testing.T) {
	ctx := context.Background()
	r, clock, _ := clientEvents(t)
	const owner = "10.0.0.9:8848"
	data := func(id string) ClientData {
		return ClientData{ID: id, Owner: owner, Revision: 1, Services: map[Service][]Instance{svcA: {inst("10.0.4."+id, 80)}}}
	}
	if _, err := r.Apply(ctx, []ClientData{data("1"), data("2")}); err != nil {
		t.Fatal(err)
	}
	if r.HoldForMove("1", "10.0.0.8:8848") || r.HoldForMove("nope", owner) {
		t.Fatal("held a replica of another owner, or none")
	}
	if !r.HoldForMove("1", owner) {
		t.Fatal("the owner's replica was not held")
	}
	if _, err := r.Verify(ctx, owner, nil, ReplicaOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Client("1"); !ok {
		t.Fatal("the held replica was removed by its owner's verification")
	}
	if _, ok := r.Client("2"); ok {
		t.Fatal("a replica not held survived its owner's verification without it")
	}
	clock.now = clock.now.Add(time.Minute)
	exp, err := r.Expire(ctx, func(string) time.Time { return clock.now.Add(-time.Second) })
	if err != nil || !slices.Equal(exp.Clients, []string{"1"}) {
		t.Fatalf("expired %v (%v), want the held replica", exp.Clients, err)
	}
}
