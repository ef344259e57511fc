package udppush_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1naming "github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	v1model "github.com/nacos-group/nacos-sdk-go/model"
	v1util "github.com/nacos-group/nacos-sdk-go/util"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	v1vo "github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// pollInterval is how often the v1 SDK polls a service it subscribes to:
// the cacheMillis the server answers (10 s), counted from the last time it
// learnt the service, by poll or push.
const pollInterval = 10 * time.Second

// pushedWithin is how soon after a change a v1 subscriber must have it for
// it to have come by push: the merge window and a wide margin, far below
// the poll interval.
const pushedWithin = 3 * time.Second

// v1Watcher records what a v1 SDK subscription's callback is given, and
// when.
type v1Watcher struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every call
	latest  []string      // "ip:port w=weight", sorted
	at      time.Time     // of the latest call
}

// subscribeV1 subscribes the v1 SDK client to svc.
func subscribeV1(t *testing.T, client v1naming.INamingClient, svc string) *v1Watcher {
	t.Helper()
	w := &v1Watcher{changed: make(chan struct{})}
	err := client.Subscribe(&v1vo.SubscribeParam{ServiceName: svc, SubscribeCallback: func(ss []v1model.SubscribeService, err error) {
		hosts := make([]string, 0, len(ss))
		for _, s := range ss {
			hosts = append(hosts, fmt.Sprintf("%s:%d w=%g", s.Ip, s.Port, s.Weight))
		}
		slices.Sort(hosts)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.latest, w.at = hosts, time.Now()
		close(w.changed)
		w.changed = make(chan struct{})
	}})
	if err != nil {
		t.Fatalf("subscribing to %s: %v", svc, err)
	}
	return w
}

// await waits until the callback was last given exactly hosts, and returns
// when it was.
func (w *v1Watcher) await(t *testing.T, hosts ...string) time.Time {
	t.Helper()
	deadline := time.After(awaitTimeout)
	for {
		w.mu.Lock()
		latest, at, changed := w.latest, w.at, w.changed
		w.mu.Unlock()
		if slices.Equal(latest, hosts) {
			return at
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the v1 subscriber was not given %v within %v; latest %v", hosts, awaitTimeout, latest)
		}
	}
}

// TestV1SDKSubscriberIsPushedOverUDP: the official Nacos Go SDK v1
// subscribes (it polls instance/list with its UDP receiver's port and
// clientIP, this machine's first non-loopback IPv4) and changes made by
// other clients — over HTTP with the v1 SDK, over gRPC with the 2.x SDK —
// reach its callback within the merge window and a margin, by push: far
// sooner than its next poll, and with no poll in between. The server counts
// each push delivered by pushudp, the SDK having acknowledged it.
//
// It needs no skip on a machine without a non-loopback IPv4: the SDK then
// sends clientIP empty, the server takes the caller's address (loopback)
// instead, and the SDK's receiver, listening on every address, is pushed
// there (checked in a network namespace holding only lo).
func TestV1SDKSubscriberIsPushedOverUDP(t *testing.T) {
	t.Parallel()
	srv := startServer(t)

	// Each provider makes three changes: an instance, a second one, the
	// first one gone.
	type provider struct {
		name string
		make func(t *testing.T, svc string) (add1, add2, remove1 func())
	}
	for _, p := range []provider{
		{"changes over HTTP with the v1 SDK", func(t *testing.T, svc string) (func(), func(), func()) {
			c := nacostest.NewV1Client(t, srv.HTTPAddr())
			reg := func(ip string) func() {
				return func() {
					if ok, err := c.RegisterInstance(v1vo.RegisterInstanceParam{Ip: ip, Port: 8080, Weight: 1, ServiceName: svc,
						Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
						t.Fatalf("v1 RegisterInstance %s: ok=%v err=%v", ip, ok, err)
					}
				}
			}
			return reg("10.0.0.1"), reg("10.0.0.2"), func() {
				if ok, err := c.DeregisterInstance(v1vo.DeregisterInstanceParam{Ip: "10.0.0.1", Port: 8080, ServiceName: svc,
					Ephemeral: true}); err != nil || !ok {
					t.Fatalf("v1 DeregisterInstance: ok=%v err=%v", ok, err)
				}
			}
		}},
		{"changes over gRPC with the 2.x SDK", func(t *testing.T, svc string) (func(), func(), func()) {
			// A connection has one instance per service: two clients.
			c1, c2 := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
			reg := func(c naming_client.INamingClient, ip string) func() {
				return func() { nacostest.Register(t, c, vo.RegisterInstanceParam{Ip: ip, Port: 8080, ServiceName: svc}) }
			}
			return reg(c1, "10.0.0.1"), reg(c2, "10.0.0.2"), func() {
				if ok, err := c1.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.0.0.1", Port: 8080, ServiceName: svc,
					Ephemeral: true}); err != nil || !ok {
					t.Fatalf("2.x DeregisterInstance: ok=%v err=%v", ok, err)
				}
			}
		}},
	} {
		t.Run(p.name, func(t *testing.T) {
			svc := serviceName(t)
			calls := srv.Metric(t, `sextant_plugin_calls_total{plugin="pushudp"}`)
			failed := srv.Metric(t, `sextant_plugin_errors_total{plugin="pushudp"}`)
			polls := newPollCounter(t, srv.HTTPAddr())
			w := subscribeV1(t, nacostest.NewV1Client(t, polls.addr()), svc)
			if n := polls.polls.Load(); n != 1 {
				t.Fatalf("the v1 SDK polled %d times to subscribe, want 1", n)
			}
			sub := v1Subscriber(t, srv, svc)
			t.Logf("the v1 SDK subscribes as %s", sub.ClientID)

			add1, add2, remove1 := p.make(t, svc)
			for _, step := range []struct {
				what   string
				change func()
				want   []string
			}{
				{"first instance", add1, []string{"10.0.0.1:8080 w=1"}},
				{"second instance", add2, []string{"10.0.0.1:8080 w=1", "10.0.0.2:8080 w=1"}},
				{"first instance gone", remove1, []string{"10.0.0.2:8080 w=1"}},
			} {
				before := polls.polls.Load()
				start := time.Now()
				step.change()
				latency := w.await(t, step.want...).Sub(start)
				if n := polls.polls.Load() - before; n != 0 {
					t.Errorf("%s: the subscriber polled %d times before it had the change: it may not have come by push", step.what, n)
				}
				if latency > pushedWithin {
					t.Errorf("%s: the subscriber had it %v after the change; pushed, it would within %v (it polls every %v)",
						step.what, latency, pushedWithin, pollInterval)
				}
				t.Logf("%s: at the subscriber %v after the change (merge window %v)", step.what, latency.Round(time.Millisecond), pushDelay)
			}
			// The server counts a batch once the plugin returns it: after the
			// SDK's ack, which may follow its callback.
			eventually(t, "pushudp handed the 3 changes", func() bool {
				return srv.Metric(t, `sextant_plugin_calls_total{plugin="pushudp"}`)-calls >= 3
			}, func() string {
				return fmt.Sprintf("%v batches", srv.Metric(t, `sextant_plugin_calls_total{plugin="pushudp"}`)-calls)
			})
			if got := srv.Metric(t, `sextant_plugin_errors_total{plugin="pushudp"}`) - failed; got != 0 {
				t.Errorf("pushudp reported %v pushes not acknowledged by the SDK", got)
			}
		})
	}
}

// v1Subscriber returns the UDP subscriber the v1 SDK's poll made: at its
// clientIP (util.LocalIP(), this machine's first non-loopback IPv4; the
// caller's address, loopback, when there is none) and its receiver's port,
// which it picks in 54951-55950.
func v1Subscriber(t *testing.T, srv *servertest.Server, svc string) subscriber {
	t.Helper()
	wantIP := v1util.LocalIP()
	if wantIP == "" {
		wantIP = "127.0.0.1"
	}
	subs := subscribers(t, srv, svc)
	if len(subs) != 1 || subs[0].IP != wantIP || subs[0].Port < 54951 || subs[0].Port > 55950 {
		t.Fatalf("subscribers of %s: %+v; want the v1 SDK's receiver at %s", svc, subs, wantIP)
	}
	return subs[0]
}
