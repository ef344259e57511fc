// Package pace spaces a benchmark's operations in time: on an open-loop
// schedule at a fixed rate, or back to back when there is no rate.
//
// With a rate, operation k is due at start + k/rate whether or not earlier
// ones have finished, and its latency should be measured from that due time:
// a server that stalls then shows its stall in every operation that waited
// for it, instead of hiding it by slowing the load down (coordinated
// omission).
package pace

import (
	"context"
	"sync/atomic"
	"time"
)

// Pacer hands out the due times of operations. It is safe for concurrent use.
type Pacer struct {
	start    time.Time
	interval float64 // nanoseconds between operations; 0 means no limit
	next     atomic.Int64
}

// New returns a pacer whose first operation is due at start; rate is in
// operations per second, and rate ≤ 0 means no limit.
func New(rate float64, start time.Time) *Pacer {
	p := &Pacer{start: start}
	if rate > 0 {
		p.interval = float64(time.Second) / rate
	}
	return p
}

// Limited reports whether the pacer has a rate.
func (p *Pacer) Limited() bool { return p.interval > 0 }

// Due returns the due time of the next operation and takes its turn. Without
// a rate it is now.
func (p *Pacer) Due() time.Time {
	if p.interval == 0 {
		return time.Now()
	}
	k := p.next.Add(1) - 1
	return p.start.Add(time.Duration(float64(k) * p.interval))
}

// Wait takes the next turn, sleeps until it is due and returns its due time.
// It fails with ctx's error when ctx ends first, and at once with
// context.DeadlineExceeded when the turn is due after ctx's deadline.
func (p *Pacer) Wait(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	due := p.Due()
	if deadline, ok := ctx.Deadline(); ok && due.After(deadline) {
		return time.Time{}, context.DeadlineExceeded
	}
	d := time.Until(due)
	if d <= 0 {
		return due, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return due, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}
