package naming

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/sextantd/sextant/core/notify"
)

// newBenchRegistry returns a registry whose events are published to a bus
// with no subscribers (publishing is then free, as when nothing listens).
func newBenchRegistry(b *testing.B) *Registry {
	b.Helper()
	bus := notify.New(notify.Config{})
	return NewRegistry(Config{Limits: Limits{MaxNameLength: 512, MaxMetadataBytes: 16384, MaxBatchSize: 1000}, Bus: bus})
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
			if err := r.Register(ctx, id, svc, inst("10.0.0.1", i)); err != nil {
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
