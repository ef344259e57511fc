package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestQuantilesAreWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 1000, 100000} {
		var h Histogram
		values := make([]time.Duration, n)
		for i := range values {
			// Log-uniform from 1 µs to 10 s, like latencies.
			values[i] = time.Duration(math.Exp(rng.Float64()*math.Log(1e7)) * 1e3)
			h.Record(values[i])
		}
		slices.Sort(values)
		for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
			want, got := exactQuantile(values, q), h.Quantile(q)
			if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/128 {
				t.Errorf("n=%d q=%v: got %v, exact %v (off by %.2f%%)", n, q, got, want, rel*100)
			}
		}
		if s := h.Summary(); s.Min != values[0] || s.Max != values[n-1] || s.Count != uint64(n) {
			t.Errorf("n=%d: summary %+v, want min %v max %v", n, s, values[0], values[n-1])
		}
	}
}

func TestSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for v := range 200 {
		h.Record(time.Duration(v))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.005, 0}, {0.5, 99}, {0.6, 119}, {1, 199}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestBucketsCoverTheRangeInOrder(t *testing.T) {
	prev := -1
	for v := int64(0); v < maxValue; v = v*11/10 + 1 {
		b := bucketOf(v)
		if b < prev || b >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d (of %d buckets)", v, b, prev, numBuckets)
		}
		if hi := bucketHigh(b); hi < v || bucketOf(hi) != b {
			t.Fatalf("bucket %d of %d ends at %d", b, v, hi)
		}
		prev = b
	}
}

func TestEdgeValues(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Summary() != (Summary{}) {
		t.Error("an empty histogram reports figures")
	}
	h.Record(-time.Second)
	h.Record(time.Duration(math.MaxInt64))
	if h.Quantile(0) != 0 {
		t.Errorf("a negative duration counts as %v, want 0", h.Quantile(0))
	}
	if got := h.Quantile(1); got != maxValue {
		t.Errorf("a huge duration counts as %v, want %v", got, time.Duration(maxValue))
	}
}

func TestShift(t *testing.T) {
	s := Summary{Count: 2, Min: 600 * time.Millisecond, P50: 700 * time.Millisecond, P99: 900 * time.Millisecond, Max: time.Second}
	got := s.Shift(500 * time.Millisecond)
	if got.Min != 100*time.Millisecond || got.P50 != 200*time.Millisecond || got.P99 != 400*time.Millisecond || got.Max != 500*time.Millisecond || got.Count != 2 {
		t.Errorf("Shift = %+v", got)
	}
	if (Summary{}).Shift(time.Second) != (Summary{}) {
		t.Error("an empty summary shifted")
	}
}

func TestSeriesIsSafeForConcurrentUse(t *testing.T) {
	s := NewSeries("op")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				if i%10 == 0 {
					s.Fail([]string{"timeout", "refused"}[w%2])
				} else {
					s.OK(time.Duration(i) * time.Microsecond)
				}
				_ = s.Latency()
			}
		}()
	}
	wg.Wait()
	ok, failed := s.Counts()
	errs := s.Errors()
	if ok != 7200 || failed != 800 || errs["timeout"] != 400 || errs["refused"] != 400 {
		t.Errorf("ok %d failed %d errors %v", ok, failed, errs)
	}
	if n := s.Latency().Count(); n != 7200 {
		t.Errorf("latency has %d values, want 7200", n)
	}
	s.FailN("none", 0)
	if _, ok := s.Errors()["none"]; ok {
		t.Error("FailN(0) recorded a kind")
	}
}
