// Package stats records what a benchmark measures: latency histograms with
// bounded relative error and their percentiles, and named operation series
// with success and error counts.
package stats

import (
	"math"
	"math/bits"
	"time"
)

// subBucketBits sets the histogram's precision: each power of two is split
// into 2^subBucketBits buckets, so a recorded value is off by less than
// 1/2^subBucketBits (0.8%) of itself.
const subBucketBits = 7

const (
	subBuckets = 1 << subBucketBits
	// maxValue is the largest value kept as is (about 18 minutes in
	// nanoseconds); larger values are counted as maxValue.
	maxValue   = 1<<40 - 1
	numBuckets = (40-subBucketBits+1)*subBuckets + subBuckets
)

// Histogram counts durations in log-linear buckets. It uses a fixed 35 KB
// whatever it records. The zero value is empty and ready; it is not safe for
// concurrent use (see Recorder).
type Histogram struct {
	counts []uint64 // allocated on first use
	n      uint64
	sum    float64 // nanoseconds
	min    int64
	max    int64
}

// bucketOf returns the index of the bucket that holds v (0 ≤ v ≤ maxValue).
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBucketBits - 1
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketHigh returns the largest value that falls into bucket i.
func bucketHigh(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	shift := i/subBuckets - 1
	mantissa := int64(i%subBuckets + subBuckets)
	return (mantissa+1)<<shift - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := min(max(int64(d), 0), maxValue)
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Count is how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 ≤ q ≤ 1) by nearest rank: the smallest
// recorded value such that at least q of all values are at or below it, as
// the upper bound of its bucket (clamped to the exact minimum and maximum).
// It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketHigh(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Summary condenses the histogram into its usual figures.
func (h *Histogram) Summary() Summary {
	if h.n == 0 {
		return Summary{}
	}
	return Summary{
		Count: h.n,
		Min:   time.Duration(h.min),
		Mean:  time.Duration(h.sum / float64(h.n)),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   time.Duration(h.max),
	}
}

// Summary is a latency distribution in figures.
type Summary struct {
	Count uint64
	Min   time.Duration
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// Shift returns the summary with d subtracted from every latency figure, such
// as the latency beyond a configured delay. Percentiles commute with such a
// shift, so the result is exact.
func (s Summary) Shift(d time.Duration) Summary {
	if s.Count == 0 {
		return s
	}
	for _, p := range []*time.Duration{&s.Min, &s.Mean, &s.P50, &s.P90, &s.P99, &s.P999, &s.Max} {
		*p -= d
	}
	return s
}
