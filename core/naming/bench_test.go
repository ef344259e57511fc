package naming

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/sextantd/sextant/core/notify"
)

// newBenchRegistry returns a registry with the server's default limits
// (core/config), whose events are published to a bus with no subscribers
// (publishing is then free, as when nothing listens).
func newBenchRegistry(b *testing.B) *Registry {
	b.Helper()
	bus := notify.New(notify.Config{})
	return NewRegistry(Config{Limits: Limits{MaxNameLength: 512, MaxMetadataBytes: 16384, MaxBatchSize: 1000,
		MaxServicesPerClient: 1000, MaxInstancesPerClient: 10000, MaxSubscriptionsPerClient: 5000, MaxClustersPerFilter: 64}, Bus: bus})
}

// BenchmarkRegister registers instances from many clients over 100 services,
// in parallel.
func BenchmarkRegister(b *testing.B) {
	r := newBenchRegistry(b)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := "client-" + strconv.FormatInt(next.Add(1), 10)
		if err := r.Connect(id, nil); err != nil {
			b.Error(err)
			return
		}
		i := 0
		for pb.Next() {
			svc := Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "svc-" + strconv.Itoa(i%100)}
			if err := r.Register(ctx, id, svc, inst("10.0.0.1", i%65536)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkRegisterNewServices measures registrations that each add a
// service to their client, as sextant-bench register does: a client has up
// to 600 services, then the next client begins.
func BenchmarkRegisterNewServices(b *testing.B) {
	r := newBenchRegistry(b)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var id string
		i := 0
		for pb.Next() {
			if i%600 == 0 {
				id = "client-" + strconv.FormatInt(next.Add(1), 10)
				if err := r.Connect(id, nil); err != nil {
					b.Error(err)
					return
				}
			}
			svc := Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "svc-" + strconv.Itoa(i%600)}
			if err := r.Register(ctx, id, svc, inst("10.0.0.1", i%65536)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkViewEncode measures encoding a service's view after every change.
func BenchmarkViewEncode(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			r := newBenchRegistry(b)
			ctx := context.Background()
			for i := range n {
				id := "c" + strconv.Itoa(i)
				if err := r.Connect(id, nil); err != nil {
					b.Fatal(err)
				}
				in := inst(fmt.Sprintf("10.0.%d.%d", i/256, i%256), 8080)
				in.Metadata = map[string]string{"version": "1.0.0", "zone": "eu-1a"}
				if err := r.Register(ctx, id, svcA, in); err != nil {
					b.Fatal(err)
				}
			}
			e := r.lookup(svcA)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.mu.Lock()
				e.touch(r.now()) // a new revision: the next View encodes
				e.mu.Unlock()
				r.View(svcA, ViewFilter{})
			}
		})
	}
}

// BenchmarkViewCached measures reading an unchanged service's view.
func BenchmarkViewCached(b *testing.B) {
	r := newBenchRegistry(b)
	if err := r.Connect("c", nil); err != nil {
		b.Fatal(err)
	}
	if err := r.Register(context.Background(), "c", svcA, inst("10.0.0.1", 80)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.View(svcA, ViewFilter{})
		}
	})
}

// BenchmarkMemoryPerInstance measures the heap the registry holds per
// instance: 10,000 clients (connections, with the labels the Nacos SDKs
// declare) register 10 instances each, each in another of 1,000 services, as
// `sextant-bench register --connections 10000 --instances 10 --services 1000`
// does. Every request is decoded from its JSON body, as the gRPC front end
// decodes it, so no string or map is shared unless the registry shares it.
// It reports the live heap after a collection, before and after, per
// instance (the clients' own cost included).
func BenchmarkMemoryPerInstance(b *testing.B) {
	shapes := []struct {
		name     string
		metadata string // the instance's metadata field, as sent
	}{
		{"metadata=none", ``},
		{"metadata=empty", `,"metadata":{}`},
		{"metadata=common", `,"metadata":{"version":"1.0.0","zone":"eu-1a","preserved.register.source":"SPRING_CLOUD"}`},
	}
	for _, shape := range shapes {
		b.Run(shape.name, func(b *testing.B) {
			var perInstance float64
			for b.Loop() {
				b.StopTimer()
				before := liveHeap()
				b.StartTimer()
				r := buildMemRegistry(b, shape.metadata)
				b.StopTimer()
				perInstance = float64(liveHeap()-before) / float64(memInstances)
				runtime.KeepAlive(r)
				b.StartTimer()
			}
			b.ReportMetric(perInstance, "bytes/instance")
		})
	}
}

// The shape of BenchmarkMemoryPerInstance's registry.
const (
	memClients   = 10000
	memPerClient = 10
	memServices  = 1000
	memInstances = memClients * memPerClient
)

// buildMemRegistry returns BenchmarkMemoryPerInstance's registry, each
// instance with the metadata field given (as JSON, with its leading comma).
func buildMemRegistry(tb testing.TB, metadata string) *Registry {
	tb.Helper()
	ctx := context.Background()
	r := NewRegistry(Config{Limits: Limits{MaxNameLength: 512, MaxMetadataBytes: 16384, MaxBatchSize: 1000}, Bus: notify.New(notify.Config{})})
	for c := range memClients {
		id := fmt.Sprintf("1764000000000_10.%d.%d.%d_%d", c>>16, c>>8&0xff, c&0xff, 40000+c%20000)
		var labels map[string]string
		if err := json.Unmarshal([]byte(`{"source":"sdk","module":"naming","AppName":"bench"}`), &labels); err != nil {
			tb.Fatal(err)
		}
		if err := r.Connect(id, labels); err != nil {
			tb.Fatal(err)
		}
		for j := range memPerClient {
			body := fmt.Sprintf(`{"namespace":"public","groupName":"DEFAULT_GROUP","serviceName":"bench-svc-%05d",`+
				`"instance":{"ip":"10.%d.%d.%d","port":%d,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT"%s}}`,
				(c*memPerClient+j)%memServices, c>>16, c>>8&0xff, c&0xff, 50000+j, metadata)
			var req benchInstanceRequest
			if err := json.Unmarshal([]byte(body), &req); err != nil {
				tb.Fatal(err)
			}
			svc := Service{Namespace: req.Namespace, Group: req.GroupName, Name: req.ServiceName}
			in := req.Instance
			inst := Instance{IP: in.IP, Port: in.Port, Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled,
				Ephemeral: in.Ephemeral, Cluster: in.ClusterName, Metadata: in.Metadata}
			if err := r.Register(ctx, id, svc, inst); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return r
}

// benchInstanceRequest is an InstanceRequest's body, as core/remote decodes it.
type benchInstanceRequest struct {
	Namespace   string `json:"namespace"`
	GroupName   string `json:"groupName"`
	ServiceName string `json:"serviceName"`
	Instance    struct {
		IP          string            `json:"ip"`
		Port        int               `json:"port"`
		Weight      float64           `json:"weight"`
		Healthy     bool              `json:"healthy"`
		Enabled     bool              `json:"enabled"`
		Ephemeral   bool              `json:"ephemeral"`
		ClusterName string            `json:"clusterName"`
		Metadata    map[string]string `json:"metadata"`
	} `json:"instance"`
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
