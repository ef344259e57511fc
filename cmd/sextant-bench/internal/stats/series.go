package stats

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder is a Histogram safe for concurrent use.
type Recorder struct {
	mu sync.Mutex
	h  Histogram
}

// Record adds one duration.
func (r *Recorder) Record(d time.Duration) {
	r.mu.Lock()
	r.h.Record(d)
	r.mu.Unlock()
}

// Snapshot returns a copy of what was recorded so far.
func (r *Recorder) Snapshot() *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Histogram{n: r.h.n, sum: r.h.sum, min: r.h.min, max: r.h.max}
	if r.h.counts != nil {
		c.counts = append([]uint64(nil), r.h.counts...)
	}
	return &c
}

// Series counts the outcomes of one kind of operation (a register call, a
// push received): the latency of each success and the errors by kind. It is
// safe for concurrent use.
type Series struct {
	name    string
	ok      atomic.Int64
	latency Recorder

	mu     sync.Mutex
	errors map[string]int64
}

// NewSeries returns an empty series.
func NewSeries(name string) *Series {
	return &Series{name: name, errors: make(map[string]int64)}
}

// Name is the series' name.
func (s *Series) Name() string { return s.name }

// OK records a success that took d.
func (s *Series) OK(d time.Duration) {
	s.ok.Add(1)
	s.latency.Record(d)
}

// Fail records a failure of the given kind (such as "timeout").
func (s *Series) Fail(kind string) { s.FailN(kind, 1) }

// FailN records n failures of the given kind.
func (s *Series) FailN(kind string, n int64) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.errors[kind] += n
	s.mu.Unlock()
}

// Counts returns the successes and failures so far.
func (s *Series) Counts() (ok, failed int64) {
	s.mu.Lock()
	for _, n := range s.errors {
		failed += n
	}
	s.mu.Unlock()
	return s.ok.Load(), failed
}

// Errors returns the failures so far by kind.
func (s *Series) Errors() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.errors)
}

// Latency returns a snapshot of the successes' latency.
func (s *Series) Latency() *Histogram { return s.latency.Snapshot() }
