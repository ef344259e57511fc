package naming

import (
	"context"
	"maps"
	"slices"
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
	expect(t, events, ServiceChanged{svcA}, ClientChanged{"local"})
	if v := r.LocalVersions(); len(v) != 1 || v[0] != (ClientVersion{"local", 1}) {
		t.Fatalf("versions %v", v)
	}
	if err := r.Disconnect(ctx, "local"); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{svcA}, ClientRemoved{"local"})
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
	expect(t, events, ServiceChanged{svcA}, ServiceChanged{svcB})
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
	if e := next(t, events); e != (ServiceChanged{svcB}) {
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
	need, err := r.Verify(ctx, owner, []ClientVersion{{"1", 1}, {"2", 5}, {"4", 1}})
	if err != nil {
		t.Fatal(err)
	}
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

	expired, err := r.Expire(ctx, clock.now.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(expired)
	// 1 was verified now; 2 and x were last vouched for a minute ago.
	if !slices.Equal(expired, []string{"2", "x"}) {
		t.Fatalf("expired %v", expired)
	}
}
