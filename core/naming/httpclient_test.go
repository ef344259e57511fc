package naming

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"
)

func httpInst(ip string, port int) Instance {
	return Instance{IP: ip, Port: port, Weight: 1, Healthy: true, Enabled: true}
}

func TestHTTPClientID(t *testing.T) {
	for _, c := range []struct {
		ip   string
		port int
	}{{"10.0.0.1", 8080}, {"::1", 80}, {"host-a", 0}} {
		id := HTTPClientID(c.ip, c.port)
		ip, port, ok := ParseHTTPClientID(id)
		if !ok || ip != c.ip || port != c.port {
			t.Errorf("ParseHTTPClientID(%q) = %q, %d, %v", id, ip, port, ok)
		}
	}
	if got := HTTPClientID("10.0.0.1", 8080); got != "10.0.0.1:8080#true" {
		t.Errorf("HTTPClientID = %q, want Nacos's ip:port#true", got)
	}
	for _, id := range []string{"1700000000000_10.0.0.1_5000", "10.0.0.1#true", "10.0.0.1:x#true"} {
		if _, _, ok := ParseHTTPClientID(id); ok {
			t.Errorf("ParseHTTPClientID(%q) accepted it", id)
		}
	}
}

// TestRegisterHTTP: one client per ip:port, one instance per service, seen
// by every reader and replicated like a connection's; it goes with its last
// instance.
func TestRegisterHTTP(t *testing.T) {
	ctx := context.Background()
	r, clock, events := clientEvents(t)
	id := HTTPClientID("10.0.0.1", 80)

	in := httpInst("10.0.0.1", 80)
	in.Ephemeral = false // the registry makes it ephemeral
	if err := r.RegisterHTTP(ctx, "", svcA, in); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientChanged{ClientID: id})
	if err := r.RegisterHTTP(ctx, "", svcB, httpInst("10.0.0.1", 80)); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcB}, ClientChanged{ClientID: id})
	d, ok := r.Client(id)
	if !ok || len(d.Services) != 2 || d.Revision != 2 || d.Owner != "" {
		t.Fatalf("client %s = %+v, %v; want one local client with both services", id, d, ok)
	}
	got := d.Services[svcA][0]
	if !got.Ephemeral || got.ID != "10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@a" || got.Cluster != DefaultCluster {
		t.Errorf("stored %+v, want it normalized and ephemeral", got)
	}
	if ids := r.HTTPClients(); !slices.Equal(ids, []string{id}) {
		t.Errorf("HTTPClients = %v", ids)
	}
	state, _ := r.HTTPClient(id)
	if len(state.Beats) != 2 || !state.Beats[0].Last.Equal(clock.Now()) {
		t.Errorf("beats %+v, want both registered now", state.Beats)
	}

	// Another cluster of the same address replaces the instance.
	other := httpInst("10.0.0.1", 80)
	other.Cluster = "c2"
	if err := r.RegisterHTTP(ctx, "", svcA, other); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientChanged{ClientID: id})
	if d, _ := r.Client(id); len(d.Services[svcA]) != 1 || d.Services[svcA][0].Cluster != "c2" {
		t.Errorf("after re-registering: %+v", d.Services[svcA])
	}

	// Deregistering ignores the cluster; the last instance takes the client.
	if err := r.DeregisterHTTP(ctx, svcA, "10.0.0.1", 80); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientChanged{ClientID: id})
	if err := r.DeregisterHTTP(ctx, svcA, "10.0.0.1", 80); err != nil {
		t.Fatalf("deregistering again: %v", err)
	}
	if err := r.DeregisterHTTP(ctx, svcB, "10.0.0.1", 80); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcB}, ClientRemoved{ClientID: id})
	if _, ok := r.Client(id); ok || len(r.HTTPClients()) != 0 {
		t.Error("the client outlived its last instance")
	}
	if err := r.DeregisterHTTP(ctx, svcB, "10.0.0.9", 1); err != nil {
		t.Fatalf("deregistering an unknown client: %v", err)
	}
}

func TestRegisterHTTPValidates(t *testing.T) {
	ctx := context.Background()
	r, _, _ := clientEvents(t)
	bad := httpInst("10.0.0.1", 70000)
	checkInvalid(t, "port", r.RegisterHTTP(ctx, "", svcA, bad), "port")
	checkInvalid(t, "beat port", r.RegisterHTTP(ctx, "beat", svcA, bad), "beat.port")
	checkInvalid(t, "ip", r.DeregisterHTTP(ctx, svcA, "", 80), "ip")
	_, _, err := r.BeatHTTP(ctx, Service{Name: "a@@b"}, "10.0.0.1", 80)
	checkInvalid(t, "serviceName", err, "serviceName")
	if n := len(r.HTTPClients()); n != 0 {
		t.Errorf("%d clients after refusals", n)
	}
}

func TestRegisterHTTPOnAReplicaIsRefused(t *testing.T) {
	ctx := context.Background()
	r, _, _ := clientEvents(t)
	id := HTTPClientID("10.0.0.1", 80)
	if _, err := r.Apply(ctx, []ClientData{{ID: id, Owner: "10.0.0.2:8848", Revision: 1,
		Services: map[Service][]Instance{svcA: {inst("10.0.0.1", 80)}}}}); err != nil {
		t.Fatal(err)
	}
	var owned *OwnedElsewhereError
	if err := r.RegisterHTTP(ctx, "", svcA, httpInst("10.0.0.1", 80)); !errors.As(err, &owned) || owned.Owner != "10.0.0.2:8848" {
		t.Fatalf("registering on a replica: %v, want OwnedElsewhereError", err)
	}
	if _, _, err := r.BeatHTTP(ctx, svcA, "10.0.0.1", 80); !errors.As(err, &owned) {
		t.Fatalf("beating a replica: %v", err)
	}
	if len(r.HTTPClients()) != 0 {
		t.Error("a replica is listed among this node's HTTP clients")
	}
}

func TestBeatHTTP(t *testing.T) {
	ctx := context.Background()
	r, clock, events := clientEvents(t)
	id := HTTPClientID("10.0.0.1", 80)
	if _, found, err := r.BeatHTTP(ctx, svcA, "10.0.0.1", 80); found || err != nil {
		t.Fatalf("beat of nothing: found=%v err=%v", found, err)
	}
	in := httpInst("10.0.0.1", 80)
	in.Healthy = false // the v1 SDK registers healthy=false unless told
	if err := r.RegisterHTTP(ctx, "", svcA, in); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientChanged{ClientID: id})
	if _, found, _ := r.BeatHTTP(ctx, svcB, "10.0.0.1", 80); found {
		t.Fatal("a beat found an instance of another service")
	}

	clock.now = clock.now.Add(time.Second)
	got, found, err := r.BeatHTTP(ctx, svcA, "10.0.0.1", 80)
	if err != nil || !found || !got.Healthy {
		t.Fatalf("beat: %+v, %v, %v", got, found, err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientChanged{ClientID: id})
	state, _ := r.HTTPClient(id)
	if !state.Beats[0].Last.Equal(clock.now) || !state.Beats[0].Instance.Healthy {
		t.Errorf("after a beat: %+v", state.Beats[0])
	}
	// A beat of a healthy instance changes nothing anyone sees.
	if _, _, err := r.BeatHTTP(ctx, svcA, "10.0.0.1", 80); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterHTTP(ctx, "", svcB, httpInst("10.0.0.2", 80)); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcB}, ClientChanged{ClientID: HTTPClientID("10.0.0.2", 80)})
}

// TestHealthChangesAreConditional: the checker's decisions apply only if no
// beat came since it read the state.
func TestHealthChangesAreConditional(t *testing.T) {
	ctx := context.Background()
	r, clock, events := clientEvents(t)
	id := HTTPClientID("10.0.0.1", 80)
	if err := r.RegisterHTTP(ctx, "", svcA, httpInst("10.0.0.1", 80)); err != nil {
		t.Fatal(err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientChanged{ClientID: id})
	state, _ := r.HTTPClient(id)
	read := state.Beats[0].Last

	clock.now = clock.now.Add(time.Second)
	if _, _, err := r.BeatHTTP(ctx, svcA, "10.0.0.1", 80); err != nil {
		t.Fatal(err)
	}
	if changed, err := r.SetHealthy(ctx, id, svcA, false, read); changed || err != nil {
		t.Fatalf("SetHealthy after a newer beat: %v, %v", changed, err)
	}
	if gone, err := r.ExpireInstance(ctx, id, svcA, read); gone || err != nil {
		t.Fatalf("ExpireInstance after a newer beat: %v, %v", gone, err)
	}

	state, _ = r.HTTPClient(id)
	read = state.Beats[0].Last
	if changed, err := r.SetHealthy(ctx, id, svcA, false, read); !changed || err != nil {
		t.Fatalf("SetHealthy: %v, %v", changed, err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientChanged{ClientID: id})
	// (The view of a service whose every instance is unhealthy shows them
	// healthy: the protection threshold.)
	var info serviceInfoJSON
	if err := json.Unmarshal(r.View(svcA, ViewFilter{}), &info); err != nil || len(info.Hosts) != 1 || !info.ReachProtectionThreshold {
		t.Fatalf("view after SetHealthy(false): %+v %v", info, err)
	}
	if d, _ := r.Client(id); d.Services[svcA][0].Healthy {
		t.Fatal("still healthy")
	}
	if changed, _ := r.SetHealthy(ctx, id, svcA, false, read); changed {
		t.Error("marking an unhealthy instance unhealthy changed it")
	}
	if gone, err := r.ExpireInstance(ctx, id, svcA, read); !gone || err != nil {
		t.Fatalf("ExpireInstance: %v, %v", gone, err)
	}
	expect(t, events, ServiceChanged{Service: svcA}, ClientRemoved{ClientID: id})
	if gone, err := r.ExpireInstance(ctx, id, svcA, read); gone || err != nil {
		t.Fatalf("ExpireInstance of a gone client: %v, %v", gone, err)
	}
}

func TestSetHealthyOfAConnection(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "c")
	h.register(t, "c", svcA, inst("10.0.0.1", 80))
	h.connect(t, "d") // a healthy one, below the protection threshold
	h.register(t, "d", svcA, inst("10.0.0.2", 80))
	h.expectChanged(t, svcA, svcA)
	if changed, err := h.SetHealthy(ctx, "c", svcA, false, time.Time{}); !changed || err != nil {
		t.Fatalf("SetHealthy: %v, %v", changed, err)
	}
	h.expectChanged(t, svcA)
	if v := h.view(t, svcA, ViewFilter{}); v.Hosts[0].Healthy {
		t.Error("still healthy")
	}
	if _, err := h.SetHealthy(ctx, "nobody", svcA, false, time.Time{}); !errors.Is(err, ErrClientNotFound) {
		t.Errorf("SetHealthy of an unknown client: %v", err)
	}
}

// TestSubscribeHTTP: a UDP subscriber is recorded with its address and
// expiry, kept out of the subscribers push serves over connections, renewed
// by each poll, and lapses.
func TestSubscribeHTTP(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	clock := &fakeClock{now: time.Unix(1000, 0)}
	h.now = clock.Now
	id := HTTPClientID("10.0.0.7", 55000)

	if err := h.SubscribeHTTP(svcA, "10.0.0.7", 55000, Subscription{Clusters: "DEFAULT", App: "app"}); err != nil {
		t.Fatal(err)
	}
	if subs := h.Subscribers(svcA, nil); len(subs) != 0 {
		t.Errorf("Subscribers lists the UDP subscriber: %+v", subs)
	}
	if subs := h.Subscribers(svcA, map[string]struct{}{id: {}}); len(subs) != 0 {
		t.Errorf("Subscribers(only) lists the UDP subscriber: %+v", subs)
	}
	want := []Subscriber{{ClientID: id, Subscription: Subscription{Clusters: "DEFAULT", App: "app", Addr: "10.0.0.7:55000"}}}
	if subs := h.UDPSubscribers(svcA); len(subs) != 1 || subs[0].ClientID != want[0].ClientID || subs[0].Addr != want[0].Addr ||
		subs[0].Clusters != "DEFAULT" || subs[0].App != "app" {
		t.Errorf("UDPSubscribers = %+v, want %+v", subs, want)
	}
	state, _ := h.HTTPClient(id)
	if len(state.Leases) != 1 || !state.Leases[0].Expires.Equal(clock.now.Add(DefaultUDPSubscriberTTL)) {
		t.Fatalf("leases %+v", state.Leases)
	}
	first := state.Leases[0].Expires

	clock.now = clock.now.Add(5 * time.Second)
	if err := h.SubscribeHTTP(svcA, "10.0.0.7", 55000, Subscription{Clusters: "DEFAULT", App: "app"}); err != nil {
		t.Fatal(err)
	}
	if gone, err := h.ExpireSubscription(ctx, id, svcA, first); gone || err != nil {
		t.Fatalf("expiring a renewed subscription: %v, %v", gone, err)
	}
	state, _ = h.HTTPClient(id)
	if gone, err := h.ExpireSubscription(ctx, id, svcA, state.Leases[0].Expires); !gone || err != nil {
		t.Fatalf("ExpireSubscription: %v, %v", gone, err)
	}
	if subs := h.UDPSubscribers(svcA); len(subs) != 0 || h.Stats().Subscribers != 0 {
		t.Errorf("after expiry: %+v, stats %+v", subs, h.Stats())
	}
	if len(h.HTTPClients()) != 0 {
		t.Error("the subscriber's client outlived its subscription")
	}
	h.expectNoChangeBefore(t, svcB) // subscribing pushed and changed nothing

	for _, c := range []struct {
		ip    string
		port  int
		sub   Subscription
		field string
	}{
		{"", 55000, Subscription{}, "clientIP"},
		{"not-an-ip", 55000, Subscription{}, "clientIP"},
		{"0.0.0.0", 55000, Subscription{}, "clientIP"},
		{"224.0.0.1", 55000, Subscription{}, "clientIP"},
		{"255.255.255.255", 55000, Subscription{}, "clientIP"},
		{"10.0.0.7", 0, Subscription{}, "udpPort"},
		{"10.0.0.7", 65536, Subscription{}, "udpPort"},
		{"10.0.0.7", 55000, Subscription{Clusters: "a b"}, "clusters"},
		{"10.0.0.7", 55000, Subscription{App: "a\x00"}, "app"},
	} {
		checkInvalid(t, c, h.SubscribeHTTP(svcA, c.ip, c.port, c.sub), c.field)
	}
}

// TestIPv6UDPSubscriber: an IPv6 subscriber's address is one a socket can
// dial: [ip]:port.
func TestIPv6UDPSubscriber(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.SubscribeHTTP(svcA, "::1", 55001, Subscription{}); err != nil {
		t.Fatal(err)
	}
	if subs := h.UDPSubscribers(svcA); len(subs) != 1 || subs[0].Addr != "[::1]:55001" {
		t.Fatalf("subscribers %+v, want one at [::1]:55001", subs)
	}
}

func TestInstanceAndUpdate(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.connect(t, "grpc")
	h.register(t, "grpc", svcA, inst("10.0.0.1", 80))
	h.expectChanged(t, svcA)
	if err := h.RegisterHTTP(ctx, "", svcA, httpInst("10.0.0.2", 81)); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)

	got, err := h.Instance(svcA, "10.0.0.2", 81, "")
	if err != nil || got.IP != "10.0.0.2" || got.Port != 81 {
		t.Fatalf("Instance = %+v, %v", got, err)
	}
	for _, c := range []struct {
		ip      string
		port    int
		cluster string
	}{{"10.0.0.2", 82, ""}, {"10.0.0.3", 81, ""}, {"10.0.0.2", 81, "other"}} {
		if _, err := h.Instance(svcA, c.ip, c.port, c.cluster); !errors.Is(err, ErrInstanceNotFound) {
			t.Errorf("Instance(%v) = %v, want ErrInstanceNotFound", c, err)
		}
	}
	if _, err := h.Instance(svcB, "10.0.0.2", 81, ""); !errors.Is(err, ErrInstanceNotFound) {
		t.Errorf("Instance of an unknown service: %v", err)
	}
	_, err = h.Instance(svcA, "10.0.0.2", 81, "bad cluster")
	checkInvalid(t, "cluster", err, "clusterName")

	// An update reaches a connection's instance as well as an HTTP client's.
	weight, disabled := 5.0, false
	md := map[string]string{"k": "v"}
	if err := h.UpdateInstance(ctx, svcA, "10.0.0.1", 80, "", InstanceUpdate{Weight: &weight, Enabled: &disabled, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	md["k"] = "changed by the caller"
	d, _ := h.Client("grpc")
	if in := d.Services[svcA][0]; in.Weight != 5 || in.Enabled || in.Metadata["k"] != "v" || !in.Healthy {
		t.Errorf("after update: %+v", in)
	}
	if v := h.view(t, svcA, ViewFilter{}); len(v.Hosts) != 1 {
		t.Errorf("a disabled instance is in the view: %+v", v.Hosts)
	}
	// Nil fields keep their values.
	if err := h.UpdateInstance(ctx, svcA, "10.0.0.2", 81, "DEFAULT", InstanceUpdate{Weight: &weight}); err != nil {
		t.Fatal(err)
	}
	h.expectChanged(t, svcA)
	if in, _ := h.Instance(svcA, "10.0.0.2", 81, ""); in.Weight != 5 || !in.Enabled {
		t.Errorf("after a weight update: %+v", in)
	}

	before := h.snapshot(svcA)
	tooHeavy := 10001.0
	checkInvalid(t, "weight", h.UpdateInstance(ctx, svcA, "10.0.0.2", 81, "", InstanceUpdate{Weight: &tooHeavy}), "weight")
	checkInvalid(t, "metadata", h.UpdateInstance(ctx, svcA, "10.0.0.2", 81, "", InstanceUpdate{
		Metadata: map[string]string{MetaHeartbeatTimeout: "soon"}}), "metadata."+MetaHeartbeatTimeout)
	if err := h.UpdateInstance(ctx, svcA, "10.0.0.9", 81, "", InstanceUpdate{Weight: &weight}); !errors.Is(err, ErrInstanceNotFound) {
		t.Errorf("update of nothing: %v", err)
	}
	if after := h.snapshot(svcA); !maps.EqualFunc(before.views, after.views, func(a, b string) bool { return a == b }) {
		t.Error("a refused update changed the registry")
	}
}

func TestGroupedNameView(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(t, "c")
	h.register(t, "c", svcA, inst("10.0.0.1", 80))
	if v := h.view(t, svcA, ViewFilter{}); v.Name != "a" {
		t.Errorf("gRPC view name %q", v.Name)
	}
	v := h.view(t, svcA, ViewFilter{GroupedName: true, Clusters: "DEFAULT"})
	if v.Name != "DEFAULT_GROUP@@a" || v.GroupName != "DEFAULT_GROUP" || v.Clusters != "DEFAULT" ||
		len(v.Hosts) != 1 || v.Hosts[0].ServiceName != "DEFAULT_GROUP@@a" || v.CacheMillis != CacheMillis {
		t.Errorf("HTTP view %+v", v)
	}
}

func TestHeartbeatDurations(t *testing.T) {
	in := Instance{Metadata: map[string]string{MetaHeartbeatTimeout: "3000", MetaIPDeleteTimeout: "99999999999999999"}}
	interval, timeout, del := in.Heartbeat()
	if interval != 5*time.Second || timeout != 3*time.Second || del <= 0 {
		t.Errorf("Heartbeat() = %v, %v, %v", interval, timeout, del)
	}
}

// TestUDPSubscriberTTL: push.udp.expiry sets how long a poll keeps a UDP
// subscriber subscribed.
func TestUDPSubscriberTTL(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	r := newHarness(t, clock.Now)
	r.udpTTL = NewRegistry(Config{UDPSubscriberTTL: 3 * time.Second}).udpTTL
	if err := r.SubscribeHTTP(svcA, "10.0.0.7", 55000, Subscription{}); err != nil {
		t.Fatal(err)
	}
	state, _ := r.HTTPClient(HTTPClientID("10.0.0.7", 55000))
	if len(state.Leases) != 1 || !state.Leases[0].Expires.Equal(clock.now.Add(3*time.Second)) {
		t.Fatalf("leases %+v, want one expiring 3s from now", state.Leases)
	}
}
