package udppush_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestRawSubscriberIsPushedAndAcks: a subscriber that polled once with its
// udpPort is pushed each change of the service over UDP after the merge
// window — plain JSON while small, gzipped over 1 KiB — with the 1.x form of
// the ServiceInfo; its acks settle every push.
func TestRawSubscriberIsPushedAndAcks(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	sub := newRawSubscriber(t, srv, svc, true)
	if info := sub.poll(t); info.Name != "DEFAULT_GROUP@@"+svc || len(info.Hosts) != 0 || info.CacheMillis != 10000 {
		t.Fatalf("first poll: %+v", info)
	}

	// A small push: one instance.
	start := time.Now()
	register(t, srv, svc, "10.0.0.1", 8080, 2.5)
	got := sub.await(t, "a push of the instance", currentIs("10.0.0.1:8080 w=2.5"))
	d := got[len(got)-1]
	if latency := d.at.Sub(start); latency < pushDelay || latency > pushDelay+2*time.Second {
		t.Errorf("pushed %v after the change; want the merge window (%v) and little more", latency, pushDelay)
	}
	if d.gzipped || d.plain > 1024 || d.Type != "dom" || d.ref <= 0 {
		t.Errorf("small push: gzipped %v, %d bytes of JSON, type %q, lastRefTime %d", d.gzipped, d.plain, d.Type, d.ref)
	}
	want := host{InstanceID: "10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@" + svc, IP: "10.0.0.1", Port: 8080, Weight: 2.5,
		Healthy: true, Enabled: true, Ephemeral: true, ClusterName: "DEFAULT", ServiceName: "DEFAULT_GROUP@@" + svc, Metadata: map[string]string{}}
	if h := d.info.Hosts[0]; d.info.Name != "DEFAULT_GROUP@@"+svc || h.InstanceID != want.InstanceID || h.IP != want.IP ||
		h.Port != want.Port || h.Weight != want.Weight || !h.Healthy || !h.Enabled || !h.Ephemeral ||
		h.ClusterName != want.ClusterName || h.ServiceName != want.ServiceName || len(h.Metadata) != 0 {
		t.Errorf("pushed %+v\nwant name DEFAULT_GROUP@@%s with %+v", d.info, svc, want)
	}
	if !d.from.Addr().IsLoopback() {
		t.Errorf("pushed from %s", d.from)
	}

	// A large push: 30 more instances make the JSON well over 1 KiB.
	var wantHosts []string
	wantHosts = append(wantHosts, "10.0.0.1:8080 w=2.5")
	for i := range 30 {
		ip := fmt.Sprintf("10.0.1.%d", i)
		register(t, srv, svc, ip, 9000, 1)
		wantHosts = append(wantHosts, ip+":9000 w=1")
	}
	slices.Sort(wantHosts)
	got = sub.await(t, "a push of the 31 instances", currentIs(wantHosts...))
	last := got[len(got)-1]
	if !last.gzipped || last.plain <= 1024 || last.size >= last.plain {
		t.Errorf("large push: gzipped %v, %d bytes received for %d bytes of JSON", last.gzipped, last.size, last.plain)
	}
	refs := map[int64]int{}
	for _, d := range got {
		if d.gzipped != (d.plain > 1024) {
			t.Errorf("a push of %d bytes of JSON was gzipped: %v; want gzip exactly over 1024", d.plain, d.gzipped)
		}
		refs[d.ref]++
	}
	// Pushes come in order (a resend, unacknowledged in 100 ms, may follow
	// a newer push).
	var newest int64
	for i, d := range got {
		if refs[d.ref] > 1 && slices.IndexFunc(got, func(e datagram) bool { return e.ref == d.ref }) < i {
			continue // a resend
		}
		if d.info.LastRefTime < newest {
			t.Errorf("push %d carries an older view (lastRefTime %d) than one before it (%d): %s", i, d.info.LastRefTime, newest, describe(got))
		}
		newest = max(newest, d.info.LastRefTime)
	}

	// Every push was acknowledged: the server counts each as delivered.
	eventually(t, "every push counted delivered", func() bool {
		return srv.Metric(t, `sextant_pushes_total{result="ok"}`) == float64(len(refs))
	}, func() string {
		return fmt.Sprintf("%v pushes ok, %v failed; %d pushes received (%d datagrams)", srv.Metric(t, `sextant_pushes_total{result="ok"}`),
			srv.Metric(t, `sextant_pushes_total{result="failed"}`), len(refs), len(got))
	})
	if n := srv.Metric(t, `sextant_plugin_errors_total{plugin="pushudp"}`); n != 0 {
		t.Errorf("pushudp reported %v targets not delivered", n)
	}
	t.Logf("%d pushes in %d datagrams; the last %d bytes gzipped from %d", len(refs), len(got), last.size, last.plain)
}

// TestLapsedSubscriberIsNotPushed: with push.udp.expiry 2s, a subscriber
// that stopped polling is dropped 2 s after its last poll and pushed nothing
// more, while one that keeps polling is still pushed.
func TestLapsedSubscriberIsNotPushed(t *testing.T) {
	t.Parallel()
	const expiry = 2 * time.Second
	srv := startServer(t, "SEXTANT_PUSH_UDP_EXPIRY="+expiry.String())
	svc := serviceName(t)
	lapsing, polling := newRawSubscriber(t, srv, svc, true), newRawSubscriber(t, srv, svc, true)
	polledAt := time.Now()
	lapsing.poll(t)
	polling.poll(t)
	polling.keepPolling(t, 300*time.Millisecond)

	// Both are subscribed: both are pushed the first change.
	register(t, srv, svc, "10.0.0.1", 8080, 1)
	lapsing.await(t, "the first change", currentIs("10.0.0.1:8080 w=1"))
	polling.await(t, "the first change", currentIs("10.0.0.1:8080 w=1"))

	// The one that stopped polling lapses.
	eventually(t, "the silent subscriber dropped", func() bool {
		return !subscribed(t, srv, svc, lapsing.clientID())
	}, func() string { return fmt.Sprint(subscribers(t, srv, svc)) })
	lapsed := time.Since(polledAt)
	if lapsed < expiry || lapsed > expiry+2*time.Second {
		t.Errorf("the silent subscriber was dropped %v after its poll; push.udp.expiry is %v", lapsed, expiry)
	}
	if !subscribed(t, srv, svc, polling.clientID()) {
		t.Fatalf("the polling subscriber %s was dropped too: %v", polling.clientID(), subscribers(t, srv, svc))
	}

	before := len(lapsing.datagrams())
	register(t, srv, svc, "10.0.0.1", 8080, 2)
	got := polling.await(t, "the change after the lapse", currentIs("10.0.0.1:8080 w=2"))
	// A push to the lapsed one would have gone in the same batch, and been
	// resent 100 and 500 ms later if lost: a second is plenty.
	time.Sleep(time.Until(got[len(got)-1].at.Add(time.Second)))
	if late := lapsing.datagrams()[before:]; len(late) > 0 {
		t.Errorf("the lapsed subscriber was pushed %s", describe(late))
	}
	t.Logf("dropped %v after its last poll", lapsed.Round(time.Millisecond))
}

// TestUnackedPushIsResent: a subscriber that never acknowledges gets each
// push four times with the same lastRefTime — sent, then resent 100 ms,
// 500 ms and 2 s later — and no more with it; the plugin then gives up,
// and the server pushes the subscriber again after push.retry_delay (1 s)
// with the data current then, under a new lastRefTime.
func TestUnackedPushIsResent(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	silent := newRawSubscriber(t, srv, svc, false)
	silent.poll(t)
	silent.keepPolling(t, time.Second) // subscribed throughout

	register(t, srv, svc, "10.0.0.1", 8080, 1)
	got := silent.await(t, "four sends of the push", func(ds []datagram) bool { return len(ds) >= 4 })
	first := got[0]
	schedule := []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}
	for i, d := range got[:4] {
		if d.ref != first.ref || !slices.Equal(d.info.hosts(), []string{"10.0.0.1:8080 w=1"}) {
			t.Fatalf("send %d: %s; want the same push four times", i, describe(got[:4]))
		}
		if at := d.at.Sub(first.at); at < schedule[i]-50*time.Millisecond || at > schedule[i]+time.Second {
			t.Errorf("send %d came %v after the first; the schedule says %v", i, at, schedule[i])
		}
	}

	// The server's retry: a new push, after the plugin gave up (3.5 s after
	// the first send) and push.retry_delay (1 s).
	got = silent.await(t, "the server's retry", func(ds []datagram) bool {
		return slices.ContainsFunc(ds, func(d datagram) bool { return d.ref != first.ref })
	})
	i := slices.IndexFunc(got, func(d datagram) bool { return d.ref != first.ref })
	retry := got[i]
	if i != 4 {
		t.Errorf("%d datagrams with lastRefTime %d before the retry, want 4: %s", i, first.ref, describe(got))
	}
	if at := retry.at.Sub(first.at); retry.ref < first.ref || at < 4500*time.Millisecond-50*time.Millisecond ||
		!slices.Equal(retry.info.hosts(), first.info.hosts()) {
		t.Errorf("the retry came %v after the first send with lastRefTime %d (first %d) and %v", at, retry.ref, first.ref, retry.info.hosts())
	}
	if n := srv.Metric(t, `sextant_plugin_errors_total{plugin="pushudp"}`); n < 1 {
		t.Errorf("pushudp reported %v targets not delivered, want the unacknowledged one", n)
	}
	t.Logf("sends at %v; the server's retry %v after the first", func() []time.Duration {
		var out []time.Duration
		for _, d := range got[:4] {
			out = append(out, d.at.Sub(first.at).Round(time.Millisecond))
		}
		return out
	}(), retry.at.Sub(first.at).Round(time.Millisecond))
}
