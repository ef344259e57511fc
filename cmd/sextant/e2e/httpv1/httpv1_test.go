package httpv1_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1model "github.com/nacos-group/nacos-sdk-go/model"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	v1vo "github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
)

// v1Register registers an ephemeral, enabled, healthy instance with the v1
// SDK, which then beats for it.
func v1Register(t *testing.T, c interface {
	RegisterInstance(v1vo.RegisterInstanceParam) (bool, error)
}, p v1vo.RegisterInstanceParam) {
	t.Helper()
	p.Enable, p.Healthy, p.Ephemeral = true, true, true
	if p.Weight == 0 {
		p.Weight = 1
	}
	if ok, err := c.RegisterInstance(p); err != nil || !ok {
		t.Fatalf("registering %s:%d to %s: ok=%v err=%v", p.Ip, p.Port, p.ServiceName, ok, err)
	}
}

// subscribeWatcher records what a v1 subscription's callback was given.
type subscribeWatcher struct {
	mu     sync.Mutex
	latest []v1model.SubscribeService
	calls  int
}

func (w *subscribeWatcher) addresses() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, len(w.latest))
	for i, s := range w.latest {
		out[i] = fmt.Sprintf("%s:%d", s.Ip, s.Port)
	}
	slices.Sort(out)
	return out
}

// TestV1RegisterListSubscribeDeregister: the v1 SDK's life cycle of an
// instance, and a v1 subscriber (which polls instance/list) seeing it.
func TestV1RegisterListSubscribeDeregister(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	provider, consumer := nacostest.NewV1Client(t, srv.HTTPAddr()), nacostest.NewV1Client(t, srv.HTTPAddr())

	v1Register(t, provider, v1vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 8080, Weight: 2.5, ClusterName: "c1",
		ServiceName: svc, Metadata: map[string]string{"version": "1.0"}})

	s, err := consumer.GetService(v1vo.GetServiceParam{ServiceName: svc})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "DEFAULT_GROUP@@"+svc || s.CacheMillis != 10000 || len(s.Hosts) != 1 {
		t.Fatalf("GetService = %+v", s)
	}
	want := v1model.Instance{InstanceId: "10.0.0.1#8080#c1#DEFAULT_GROUP@@" + svc, Ip: "10.0.0.1", Port: 8080, Weight: 2.5,
		Metadata: map[string]string{"version": "1.0"}, ClusterName: "c1", ServiceName: "DEFAULT_GROUP@@" + svc,
		Enable: true, Healthy: true, Ephemeral: true}
	if got := s.Hosts[0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("listed instance:\n got %+v\nwant %+v", got, want)
	}
	healthy, err := consumer.SelectInstances(v1vo.SelectInstancesParam{ServiceName: svc, HealthyOnly: true})
	if err != nil || len(healthy) != 1 || healthy[0].Ip != "10.0.0.1" {
		t.Fatalf("SelectInstances(healthy) = %+v, %v", healthy, err)
	}

	// Subscribe: the v1 SDK polls instance/list (every cacheMillis) and calls
	// back on a change.
	w := &subscribeWatcher{}
	if err := consumer.Subscribe(&v1vo.SubscribeParam{ServiceName: svc, SubscribeCallback: func(ss []v1model.SubscribeService, err error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.latest, w.calls = ss, w.calls+1
	}}); err != nil {
		t.Fatal(err)
	}
	v1Register(t, provider, v1vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 8080, ServiceName: svc})
	eventually(t, "the subscriber sees the second instance", func() bool {
		return slices.Equal(w.addresses(), []string{"10.0.0.1:8080", "10.0.0.2:8080"})
	}, func() string { return fmt.Sprint(w.addresses()) })

	ok, err := provider.DeregisterInstance(v1vo.DeregisterInstanceParam{Ip: "10.0.0.1", Port: 8080, ServiceName: svc, Ephemeral: true})
	if err != nil || !ok {
		t.Fatalf("deregister: ok=%v err=%v", ok, err)
	}
	// Gone from the server at once...
	if code, body := get(t, srv, "/nacos/v1/ns/instance/list", url.Values{"serviceName": {svc}}); code != 200 ||
		strings.Contains(body, "10.0.0.1") || !strings.Contains(body, "10.0.0.2") {
		t.Fatalf("list after deregister: %d %s", code, body)
	}
	// ...and from the subscriber at its next poll.
	eventually(t, "the subscriber sees the deregistration", func() bool {
		return slices.Equal(w.addresses(), []string{"10.0.0.2:8080"})
	}, func() string { return fmt.Sprint(w.addresses()) })
}

// TestBeatsStop: an instance whose client stops beating goes unhealthy after
// its heartbeat timeout and away after its delete timeout (shortened in its
// metadata to 2 s and 4 s), pushed to a gRPC subscriber each time; when the
// beats come back, their body registers it again.
func TestBeatsStop(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	gate := newBeatGate(t, srv.HTTPAddr())
	silent, steady := nacostest.NewV1Client(t, gate.addr()), nacostest.NewV1Client(t, srv.HTTPAddr())
	w := nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: svc})
	md := map[string]string{"preserved.heart.beat.interval": "500", "preserved.heart.beat.timeout": "2000",
		"preserved.ip.delete.timeout": "4000"}
	v1Register(t, silent, v1vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, Metadata: md})
	// A second instance that keeps beating: below the protection threshold,
	// a service whose every instance is unhealthy is shown all healthy.
	v1Register(t, steady, v1vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 80, ServiceName: svc, Metadata: md})
	at := func(is []model.Instance, ip string) (model.Instance, bool) {
		for _, in := range is {
			if in.Ip == ip {
				return in, true
			}
		}
		return model.Instance{}, false
	}
	w.Await(t, "both instances, healthy", func(is []model.Instance) bool {
		a, okA := at(is, "10.0.0.1")
		b, okB := at(is, "10.0.0.2")
		return len(is) == 2 && okA && okB && a.Healthy && b.Healthy
	})
	eventually(t, "a beat through the gate", func() bool { return gate.beats.Load() > 0 }, func() string { return "none" })

	gate.blocked.Store(true)
	blocked := time.Now()
	w.Await(t, "10.0.0.1 unhealthy", func(is []model.Instance) bool {
		a, okA := at(is, "10.0.0.1")
		b, okB := at(is, "10.0.0.2")
		return okA && okB && !a.Healthy && b.Healthy
	})
	unhealthy := time.Since(blocked)
	if code, body := get(t, srv, "/nacos/v1/ns/instance", url.Values{"serviceName": {svc}, "ip": {"10.0.0.1"}, "port": {"80"}}); code != 200 ||
		!strings.Contains(body, `"healthy":false`) {
		t.Errorf("GET /instance of the silent one: %d %s", code, body)
	}
	w.Await(t, "10.0.0.1 gone", func(is []model.Instance) bool {
		_, okA := at(is, "10.0.0.1")
		b, okB := at(is, "10.0.0.2")
		return !okA && okB && b.Healthy
	})
	gone := time.Since(blocked)
	// The last beat came up to one interval (0.5 s) before the gate closed;
	// the checker runs every 0.1 s, pushes merge for 20 ms.
	if unhealthy < 1400*time.Millisecond || unhealthy > 3500*time.Millisecond {
		t.Errorf("unhealthy %v after the beats stopped, want about 2 s", unhealthy)
	}
	if gone < 3400*time.Millisecond || gone > 5500*time.Millisecond {
		t.Errorf("gone %v after the beats stopped, want about 4 s", gone)
	}
	t.Logf("unhealthy after %v, gone after %v", unhealthy.Round(time.Millisecond), gone.Round(time.Millisecond))

	// The SDK still beats, with the instance in the beat: it comes back.
	gate.blocked.Store(false)
	w.Await(t, "10.0.0.1 registered again by its beats", func(is []model.Instance) bool {
		a, okA := at(is, "10.0.0.1")
		return len(is) == 2 && okA && a.Healthy && a.Metadata["preserved.heart.beat.timeout"] == "2000"
	})
}

// TestHTTPInstancePushedToGRPC: an instance registered over HTTP is pushed
// to a gRPC subscriber within the merge window, every field intact.
func TestHTTPInstancePushedToGRPC(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	w := nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: svc})
	provider := nacostest.NewV1Client(t, srv.HTTPAddr())

	start := time.Now()
	v1Register(t, provider, v1vo.RegisterInstanceParam{Ip: "10.1.2.3", Port: 8080, ServiceName: svc, ClusterName: "c-1",
		Weight: 2.5, Metadata: map[string]string{"version": "1.2", "zone": "a"}})
	got := w.AwaitCount(t, 1)[0]
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("pushed %v after the registration; the merge window is 20 ms", elapsed)
	}
	want := model.Instance{
		InstanceId:                "10.1.2.3#8080#c-1#DEFAULT_GROUP@@" + svc,
		Ip:                        "10.1.2.3",
		Port:                      8080,
		Weight:                    2.5,
		Healthy:                   true,
		Enable:                    true,
		Ephemeral:                 true,
		ClusterName:               "c-1",
		ServiceName:               "DEFAULT_GROUP@@" + svc,
		Metadata:                  map[string]string{"version": "1.2", "zone": "a"},
		InstanceHeartBeatInterval: 5000,
		IpDeleteTimeout:           30000,
		InstanceHeartBeatTimeOut:  15000,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pushed instance:\n got %+v\nwant %+v", got, want)
	}

	// An update over HTTP is pushed too.
	if ok, err := provider.UpdateInstance(v1vo.UpdateInstanceParam{Ip: "10.1.2.3", Port: 8080, ClusterName: "c-1", ServiceName: svc,
		Ephemeral: true, Weight: 7, Enable: true, Metadata: map[string]string{"version": "2"}}); err != nil || !ok {
		t.Fatalf("update: ok=%v err=%v", ok, err)
	}
	w.Await(t, "weight 7 and the new metadata", func(is []model.Instance) bool {
		return len(is) == 1 && is[0].Weight == 7 && reflect.DeepEqual(is[0].Metadata, map[string]string{"version": "2"})
	})
}

// TestGRPCInstanceListedOverHTTP: an instance registered over gRPC is listed
// over HTTP with the same fields.
func TestGRPCInstanceListedOverHTTP(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	grpc := nacostest.NewClient(t, srv, "")
	nacostest.Register(t, grpc, vo.RegisterInstanceParam{Ip: "10.0.0.7", Port: 9090, ServiceName: svc, ClusterName: "c-2",
		Weight: 3, Metadata: map[string]string{"zone": "b"}})
	viaGRPC, err := grpc.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: svc})
	if err != nil || len(viaGRPC) != 1 {
		t.Fatalf("over gRPC: %+v, %v", viaGRPC, err)
	}

	s, err := nacostest.NewV1Client(t, srv.HTTPAddr()).GetService(v1vo.GetServiceParam{ServiceName: svc})
	if err != nil || len(s.Hosts) != 1 {
		t.Fatalf("over HTTP: %+v, %v", s, err)
	}
	g, h := viaGRPC[0], s.Hosts[0]
	if h.InstanceId != g.InstanceId || h.Ip != g.Ip || h.Port != g.Port || h.Weight != g.Weight || h.Healthy != g.Healthy ||
		h.Enable != g.Enable || h.Ephemeral != g.Ephemeral || h.ClusterName != g.ClusterName || h.ServiceName != g.ServiceName ||
		!reflect.DeepEqual(h.Metadata, g.Metadata) {
		t.Fatalf("the same instance differs:\nHTTP %+v\ngRPC %+v", h, g)
	}
	if h.InstanceId != "10.0.0.7#9090#c-2#DEFAULT_GROUP@@"+svc || h.Weight != 3 || h.ClusterName != "c-2" || h.Metadata["zone"] != "b" {
		t.Fatalf("listed %+v", h)
	}
}

// TestPersistentInstances: the 2.x SDK registers a persistent instance
// (Ephemeral: false) over the HTTP API, its own path for them; it is
// listed as persistent, stays after the SDK client is gone, and the SDK
// deregisters it.
func TestPersistentInstances(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	param := vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, Weight: 1, Enable: true, Healthy: true, Ephemeral: false}
	client := nacostest.NewClient(t, srv, "")
	// A fresh standalone node elects itself Raft leader within a second or
	// two; until then a persistent write answers 503, which the SDK retries.
	if ok, err := client.RegisterInstance(param); !ok || err != nil {
		t.Fatalf("registering a persistent instance: ok=%v err=%v", ok, err)
	}
	client.CloseClient()
	code, body := get(t, srv, "/nacos/v1/ns/instance/list", url.Values{"serviceName": {svc}})
	if code != 200 || !strings.Contains(body, `"ip":"10.0.0.1"`) || !strings.Contains(body, `"ephemeral":false`) {
		t.Fatalf("list after the SDK closed: %d %s", code, body)
	}
	ok, err := nacostest.NewClient(t, srv, "").DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, Ephemeral: false})
	if !ok || err != nil {
		t.Fatalf("deregistering it: ok=%v err=%v", ok, err)
	}
	if code, body := get(t, srv, "/nacos/v1/ns/instance/list", url.Values{"serviceName": {svc}}); code != 200 || strings.Contains(body, "10.0.0.1") {
		t.Fatalf("list after deregistering: %d %s", code, body)
	}
}

// TestV2API: the same endpoints under /nacos/v2/ns answer in the envelope.
func TestV2API(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	base := "http://" + srv.HTTPAddr() + "/nacos/v2/ns/instance"
	resp, err := http.PostForm(base, url.Values{"serviceName": {svc}, "ip": {"10.0.0.1"}, "port": {"80"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	var envelope struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Name  string `json:"name"`
			Hosts []struct {
				IP string `json:"ip"`
			} `json:"hosts"`
		} `json:"data"`
	}
	code, body := get(t, srv, "/nacos/v2/ns/instance/list", url.Values{"serviceName": {svc}})
	if err := json.Unmarshal([]byte(body), &envelope); err != nil || code != 200 || envelope.Code != 0 || envelope.Message != "success" ||
		envelope.Data.Name != "DEFAULT_GROUP@@"+svc || len(envelope.Data.Hosts) != 1 {
		t.Fatalf("v2 list: %d %s (%v)", code, body, err)
	}
	code, body = get(t, srv, "/nacos/v2/ns/instance/list", url.Values{})
	if code != 400 || !strings.Contains(body, `"code":10000`) || !strings.Contains(body, "serviceName") {
		t.Fatalf("v2 list without serviceName: %d %s", code, body)
	}
}
