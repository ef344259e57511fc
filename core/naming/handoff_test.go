package naming

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAnHTTPClientMovesBetweenNodes: released by its owner it becomes a
// replica there with nothing pushed; adopted from what was released it is a
// client of the new node, its beat clock carried over; a third node
// re-homes its replica.
func TestAnHTTPClientMovesBetweenNodes(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	a, b, c := newHarness(t, clock.Now), newHarness(t, clock.Now), newHarness(t, clock.Now)
	ctx := context.Background()
	svc := Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "moving"}
	in := Instance{IP: "10.0.0.1", Port: 80, Weight: 2, Healthy: true, Enabled: true, Metadata: map[string]string{"k": "v"}}
	if err := a.RegisterHTTP(ctx, "", svc, in); err != nil {
		t.Fatal(err)
	}
	a.expectChanged(t, svc)
	id := HTTPClientID("10.0.0.1", 80)
	beatAt := clock.Now()
	data, _ := a.Client(id)
	data.Owner = "A"
	if _, err := c.Apply(ctx, []ClientData{data}); err != nil {
		t.Fatal(err)
	}
	c.expectChanged(t, svc)

	clock.now = clock.now.Add(3 * time.Second)
	h, ok := a.ReleaseHTTP(id, "B")
	if !ok || len(h.Instances) != 1 || h.Instances[0].Silent != 3*time.Second || h.Revision != data.Revision {
		t.Fatalf("released %+v %v", h, ok)
	}
	if d, _ := a.Client(id); d.Owner != "B" || d.InstanceCount() != 1 {
		t.Fatalf("after the release a holds %+v, want a replica of B's", d)
	}
	if len(a.HTTPClients()) != 0 || len(a.HTTPPublishers()) != 0 {
		t.Fatal("a released client is still an HTTP client of the node")
	}
	var owned *OwnedElsewhereError
	if _, _, err := a.BeatHTTP(ctx, svc, "10.0.0.1", 80); !errors.As(err, &owned) || owned.Owner != "B" {
		t.Fatalf("a beat on the former owner: %v", err)
	}
	a.expectNoChangeBefore(t, Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "marker"})
	if _, ok := a.ReleaseHTTP(id, "B"); ok {
		t.Fatal("released twice")
	}

	adopted, err := b.AdoptHTTP(ctx, id, &h)
	if err != nil || !adopted {
		t.Fatalf("adopt: %v %v", adopted, err)
	}
	b.expectChanged(t, svc)
	st, ok := b.HTTPClient(id)
	if !ok || len(st.Beats) != 1 || !st.Beats[0].Last.Equal(beatAt) || st.Beats[0].Instance.Weight != 2 || st.Beats[0].Instance.Metadata["k"] != "v" {
		t.Fatalf("the adopted client: %+v %v", st, ok)
	}
	if d, _ := b.Client(id); d.Owner != "" || d.Revision <= h.Revision {
		t.Fatalf("adopted as %+v, want a client of b's with a new revision", d)
	}
	if again, err := b.AdoptHTTP(ctx, id, &h); again || err != nil {
		t.Fatalf("adopting a client of this node again: %v %v", again, err)
	}

	if c.MoveReplica(id, "B", "C") {
		t.Fatal("re-homed a replica from a node that does not own it")
	}
	if !c.MoveReplica(id, "A", "B") {
		t.Fatal("the replica was not re-homed")
	}
	if d, _ := c.Client(id); d.Owner != "B" || d.InstanceCount() != 1 {
		t.Fatalf("re-homed replica %+v", d)
	}
}

// TestAdoptingFromAReplica: a node adopts the replica it holds (its owner
// is dead); with no replica and nothing given, there is nothing to adopt.
func TestAdoptingFromAReplica(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	b := newHarness(t, clock.Now)
	ctx := context.Background()
	svc := Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orphan"}
	id := HTTPClientID("10.0.0.2", 80)
	if adopted, err := b.AdoptHTTP(ctx, id, nil); adopted || err != nil {
		t.Fatalf("adopting nothing: %v %v", adopted, err)
	}
	in := Instance{ID: "10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@orphan", IP: "10.0.0.2", Port: 80, Weight: 1, Healthy: true, Enabled: true,
		Ephemeral: true, Cluster: DefaultCluster}
	if _, err := b.Apply(ctx, []ClientData{{ID: id, Owner: "A", Revision: 4, Services: map[Service][]Instance{svc: {in}}}}); err != nil {
		t.Fatal(err)
	}
	b.expectChanged(t, svc)
	adopted, err := b.AdoptHTTP(ctx, id, nil)
	if err != nil || !adopted {
		t.Fatalf("adopt: %v %v", adopted, err)
	}
	st, ok := b.HTTPClient(id)
	if !ok || len(st.Beats) != 1 || !st.Beats[0].Last.Equal(clock.Now()) {
		t.Fatalf("adopted from its replica: %+v, want its beats from now", st)
	}
	// The instances did not change: nothing to push.
	b.expectNoChangeBefore(t, Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "marker"})
}

// TestAdoptValidatesWhatItIsGiven: a handoff is input from another node,
// validated as a registration is.
func TestAdoptValidatesWhatItIsGiven(t *testing.T) {
	b := newHarness(t, nil)
	ctx := context.Background()
	svc := Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "s"}
	id := HTTPClientID("10.0.0.3", 80)
	good := Instance{IP: "10.0.0.3", Port: 80, Weight: 1}
	for name, h := range map[string]HTTPHandoff{
		"another address": {Instances: []HandoffInstance{{Service: svc, Instance: Instance{IP: "10.0.0.4", Port: 80, Weight: 1}}}},
		"two instances":   {Instances: []HandoffInstance{{Service: svc, Instance: good}, {Service: svc, Instance: good}}},
		"bad weight":      {Instances: []HandoffInstance{{Service: svc, Instance: Instance{IP: "10.0.0.3", Port: 80, Weight: -3}}}},
		"bad service":     {Instances: []HandoffInstance{{Service: Service{Name: "a@@b"}, Instance: good}}},
	} {
		var invalid *InvalidError
		if adopted, err := b.AdoptHTTP(ctx, id, &h); adopted || !errors.As(err, &invalid) {
			t.Errorf("%s: adopted=%v err=%v", name, adopted, err)
		}
	}
	if _, err := b.AdoptHTTP(ctx, "10.0.0.3:80", &HTTPHandoff{}); err == nil {
		t.Error("adopted a client whose id is not an HTTP client's")
	}
	if st := b.Stats(); st.Clients != 0 || st.Instances != 0 {
		t.Fatalf("refused handoffs left %+v", st)
	}
}

// TestASubscriberIsNotReleased: an HTTP client with only a UDP
// subscription lives where it polls.
func TestASubscriberIsNotReleased(t *testing.T) {
	a := newHarness(t, nil)
	svc := Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "s"}
	if err := a.SubscribeHTTP(svc, "10.0.0.5", 55000, Subscription{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.ReleaseHTTP(HTTPClientID("10.0.0.5", 55000), "B"); ok {
		t.Fatal("released a subscriber")
	}
	if len(a.HTTPPublishers()) != 0 {
		t.Fatal("a subscriber listed as a publisher")
	}
}
