package wire_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"
)

// notifyOf decodes a NotifySubscriberRequest's body and checks the fields
// that name the service.
func notifyOf(t *testing.T, r *serverRequest, svc svcRef) serviceInfo {
	t.Helper()
	var b struct {
		Module      string `json:"module"`
		ServiceName string `json:"serviceName"`
		GroupName   string `json:"groupName"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("push body: %v: %s", err, r.Body)
	}
	info := infoOf(t, r.Body)
	if b.Module != "naming" || b.ServiceName != svc.name || b.GroupName != svc.group {
		t.Errorf("push names module %q service %q group %q, want naming, %q, %q", b.Module, b.ServiceName, b.GroupName, svc.name, svc.group)
	}
	if info.Name != svc.name || info.GroupName != svc.group {
		t.Errorf("pushed serviceInfo name %q groupName %q, want the bare name %q and group %q", info.Name, info.GroupName, svc.name, svc.group)
	}
	if info.CacheMillis != 10000 {
		t.Errorf("pushed serviceInfo cacheMillis %d, want 10000", info.CacheMillis)
	}
	return info
}

// TestPushOverStream checks what a subscriber's stream is pushed as another
// connection registers, changes and deregisters an instance.
func TestPushOverStream(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := svcRef{"", "shop", "orders"}
	sub := setUp(t, srv, typeNotify)
	pub := setUp(t, srv)

	r := sub.call(t, "SubscribeServiceRequest", svc.with(map[string]any{"subscribe": true, "clusters": ""}), map[string]string{"app": "wire-test"})
	if r.Type != "SubscribeServiceResponse" || r.ResultCode != 200 || r.RequestID != r.SentID {
		t.Fatalf("subscribe: %s", r)
	}
	if got := infoOf(t, r.Body); got.Name != svc.name || got.GroupName != svc.group || len(got.Hosts) != 0 || got.CacheMillis != 10000 {
		t.Errorf("subscribe answered %s", got.raw)
	}

	var pushes []serviceInfo
	first := notifyOf(t, sub.mustNext(t, typeNotify), svc)
	if len(first.Hosts) != 0 {
		t.Errorf("push to the new subscriber: want no hosts, got %s", describe(first.Hosts))
	}
	pushes = append(pushes, first)

	inst := instance("10.0.0.1", 8080)
	inst["clusterName"] = "c1"
	inst["weight"] = 1.5
	inst["metadata"] = map[string]string{"version": "1"}
	pub.register(t, svc, inst)
	got := notifyOf(t, sub.mustNext(t, typeNotify), svc)
	want := host{
		InstanceID: "10.0.0.1#8080#c1#shop@@orders", IP: "10.0.0.1", Port: 8080, Weight: 1.5,
		Healthy: true, Enabled: true, Ephemeral: true, ClusterName: "c1", ServiceName: "shop@@orders",
		Metadata: map[string]string{"version": "1"},
	}
	if len(got.Hosts) != 1 || !equalHost(got.Hosts[0], want) {
		t.Errorf("push after register:\n got %s\nwant [%+v]", describe(got.Hosts), want)
	}
	pushes = append(pushes, got)

	changed := maps.Clone(inst)
	changed["weight"] = 3.0
	pub.register(t, svc, changed)
	got = notifyOf(t, sub.mustNext(t, typeNotify), svc)
	if len(got.Hosts) != 1 || got.Hosts[0].Weight != 3 {
		t.Errorf("push after re-register with weight 3: got %s", describe(got.Hosts))
	}
	pushes = append(pushes, got)

	pub.deregister(t, svc, changed)
	got = notifyOf(t, sub.mustNext(t, typeNotify), svc)
	if len(got.Hosts) != 0 {
		t.Errorf("push after deregister: want no hosts, got %s", describe(got.Hosts))
	}
	pushes = append(pushes, got)

	for i := 1; i < len(pushes); i++ {
		if pushes[i].LastRefTime <= pushes[i-1].LastRefTime {
			t.Errorf("push %d has lastRefTime %d, not after push %d's %d", i, pushes[i].LastRefTime, i-1, pushes[i-1].LastRefTime)
		}
	}
	requireIncreasingIDs(t, "subscriber", sub.history())
	if n := sub.count(typeNotify); n != len(pushes) {
		t.Errorf("subscriber was pushed %d times, want %d", n, len(pushes))
	}
}

func equalHost(a, b host) bool {
	return a.InstanceID == b.InstanceID && a.IP == b.IP && a.Port == b.Port && a.Weight == b.Weight &&
		a.Healthy == b.Healthy && a.Enabled == b.Enabled && a.Ephemeral == b.Ephemeral &&
		a.ClusterName == b.ClusterName && a.ServiceName == b.ServiceName && maps.Equal(a.Metadata, b.Metadata)
}

// TestRequestIDsIncreasePerConnection checks that the server's requests on
// one connection carry strictly increasing requestIds even when pushes for
// many services reach it at once.
func TestRequestIDsIncreasePerConnection(t *testing.T) {
	t.Parallel()
	const services = 40
	srv := startServer(t)
	sub := setUp(t, srv, typeNotify)
	pub := setUp(t, srv)
	svcs := make([]svcRef, services)
	for i := range svcs {
		svcs[i] = svcRef{"", "DEFAULT_GROUP", fmt.Sprintf("burst-%02d", i)}
		sub.subscribe(t, svcs[i])
	}
	for range svcs {
		sub.mustNext(t, typeNotify)
	}
	var wg sync.WaitGroup
	for i, svc := range svcs {
		wg.Go(func() {
			r, err := pub.request("InstanceRequest", svc.with(map[string]any{"type": "registerInstance", "instance": instance("10.2.0.1", 1000+i)}), nil)
			if err != nil || r.Type != "InstanceResponse" || r.ResultCode != 200 {
				t.Errorf("register %s: %v %s", svc.name, err, r)
			}
		})
	}
	wg.Wait()
	for range svcs {
		sub.mustNext(t, typeNotify)
	}
	requireIncreasingIDs(t, "subscriber of "+strconv.Itoa(services)+" services", sub.history())
}

// TestUnansweredPushIsRetried checks that a push the subscriber does not
// acknowledge (no answer, or a failure answer) is sent again after the retry
// delay, and no more once it is acknowledged.
func TestUnansweredPushIsRetried(t *testing.T) {
	t.Parallel()
	const pushTimeout, retryDelay = 300 * time.Millisecond, 200 * time.Millisecond
	srv := startServer(t,
		"SEXTANT_PUSH_TIMEOUT="+pushTimeout.String(),
		"SEXTANT_PUSH_RETRY_DELAY="+retryDelay.String(),
	)
	for _, tc := range []struct {
		name string
		// answer is the result code the subscriber answers the first push
		// with; 0 for no answer.
		answer int
		// minGap is the least time between the push and its retry.
		minGap time.Duration
	}{
		// The push is sent before the client receives it, so allow for that.
		{"no answer", 0, pushTimeout + retryDelay - 100*time.Millisecond},
		{"failure answer", 500, retryDelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc := svcRef{"", "DEFAULT_GROUP", "retried-" + strconv.Itoa(tc.answer)}
			sub := setUp(t, srv) // answers pushes by hand
			pub := setUp(t, srv)
			sub.subscribe(t, svc)
			if err := sub.answer(sub.mustNext(t, typeNotify), 200); err != nil {
				t.Fatal(err)
			}

			pub.register(t, svc, instance("10.0.0.5", 5000))
			first := sub.mustNext(t, typeNotify)
			firstInfo := notifyOf(t, first, svc)
			if len(firstInfo.Hosts) != 1 {
				t.Fatalf("push after register: got %s", describe(firstInfo.Hosts))
			}
			if tc.answer != 0 {
				if err := sub.answer(first, tc.answer); err != nil {
					t.Fatal(err)
				}
			}

			retry := sub.mustNext(t, typeNotify)
			if gap := retry.At.Sub(first.At); gap < tc.minGap {
				t.Errorf("retried %s after the push, sooner than %s", gap, tc.minGap)
			}
			retryInfo := notifyOf(t, retry, svc)
			if retryInfo.LastRefTime != firstInfo.LastRefTime || string(retryInfo.RawHosts) != string(firstInfo.RawHosts) {
				t.Errorf("retry carries other data than the push:\npush  %s\nretry %s", firstInfo.raw, retryInfo.raw)
			}
			if err := sub.answer(retry, 200); err != nil {
				t.Fatal(err)
			}
			requireIncreasingIDs(t, "subscriber", sub.history())

			// Acknowledged: nothing more comes, however long a retry would take.
			if extra, ok := sub.next(typeNotify, 3*(pushTimeout+retryDelay)); ok {
				t.Errorf("pushed again after acknowledging (requestId %s, %s after the retry): %s",
					extra.ID, extra.At.Sub(retry.At), extra.Body)
			}
		})
	}
}
