package consensus

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkApply measures writes through 3 in-process nodes (real raft,
// real bolt log with fsync, the in-process mesh for a transport) with 64
// concurrent writers of 100-byte commands: all on the leader, or spread
// over the three nodes (two thirds forwarded). It reports writes/s and the
// p50 and p99 latency of Apply (a write that failed for want of a quorum,
// when a loaded machine makes a leader lose its lease, is retried and
// counted). Run with a fixed count, e.g.
// -benchtime=20000x, so that the cluster is built once.
func BenchmarkApply(b *testing.B) {
	for _, mode := range []string{"leader", "spread"} {
		b.Run(mode, func(b *testing.B) {
			c := newCluster(b)
			c.tune = func(cfg *Config) { // the LAN defaults
				cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout = 0, 0, 0, 0
				cfg.ApplyTimeout = 0
			}
			c.startAll(3)
			targets := []*testNode{c.leader()}
			if mode == "spread" {
				targets = append(targets, c.followers()...)
			}
			const writers = 64
			value := strings.Repeat("v", 100)
			latencies := make([][]time.Duration, writers)
			var next atomic.Int64
			var failed, retried atomic.Int64
			var firstErr atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				tn := targets[w%len(targets)]
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						cmd := []byte("set k" + strconv.FormatInt(i, 10) + " " + value)
						t0 := time.Now()
						_, err := tn.node.Apply(context.Background(), cmd)
						for errors.Is(err, ErrNoQuorum) { // a leader lost its lease: retry, as a client would
							retried.Add(1)
							_, err = tn.node.Apply(context.Background(), cmd)
						}
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
						}
						latencies[w] = append(latencies[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d writes failed, the first with: %v", n, firstErr.Load())
			}
			all := slices.Concat(latencies...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(retried.Load()), "retries")
			b.ReportMetric(0, "ns/op")
		})
	}
}
