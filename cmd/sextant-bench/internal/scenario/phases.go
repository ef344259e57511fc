package scenario

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/pace"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// closeConcurrency bounds how many connections are closed at once.
const closeConcurrency = 64

var (
	// errNoConnection ends a measured phase early: every connection has dropped.
	errNoConnection = errors.New("no live connection left")
	// errNotConnected fails an operation whose connection was never set up.
	errNotConnected = errors.New("connection was not set up")
)

// mismatchError is an answer that contradicts what the run knows the server
// holds.
type mismatchError struct{ reason string }

func (e *mismatchError) Error() string { return "inconsistent answer: " + e.reason }

// kind names the class of err for the result.
func kind(err error) string {
	var m *mismatchError
	var k interface{ Kind() string } // an error that names its kind (httpwire.StatusError)
	switch {
	case errors.As(err, &k):
		return k.Kind()
	case errors.As(err, &m):
		return "inconsistent answer"
	case errors.Is(err, errNotConnected):
		return "not connected"
	}
	return wire.Kind(err)
}

// parallel runs fn(ctx, i) for every i in [0, n) on at most workers
// goroutines, starting none once ctx is done; skipped, if set, is told how
// many were never started.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int), skipped func(int)) {
	var next, started atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				started.Add(1)
				fn(ctx, i)
			}
		}()
	}
	wg.Wait()
	if left := n - int(started.Load()); left > 0 && skipped != nil {
		skipped(left)
	}
}

// live returns the connections that are open.
func live(conns []*wire.Conn) []*wire.Conn {
	var out []*wire.Conn
	for _, c := range conns {
		if c != nil && c.Err() == nil {
			out = append(out, c)
		}
	}
	return out
}

// anyLive picks a live connection for operation k, starting at conns[k % n].
func anyLive(conns []*wire.Conn, k int64) (*wire.Conn, error) {
	n := int64(len(conns))
	for j := range n {
		if c := conns[(k+j)%n]; c != nil && c.Err() == nil {
			return c, nil
		}
	}
	return nil, errNoConnection
}

// closeAll closes the connections, within the grace period, and counts in
// series those that had dropped before the run closed them.
func (r *run) closeAll(series *stats.Series, conns ...[]*wire.Conn) {
	r.Monitor.set("teardown", nil)
	var all []*wire.Conn
	for _, cs := range conns {
		for _, c := range cs {
			if c == nil {
				continue
			}
			if c.Err() != nil {
				series.Fail("dropped during the run")
			}
			all = append(all, c)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.Grace)
	defer cancel()
	parallel(ctx, len(all), closeConcurrency, func(_ context.Context, i int) { all[i].Close() }, func(n int) {
		r.note("%d connections were left open: closing them took longer than the grace period", n)
	})
}

// op is one measured operation; k numbers the operations of a phase from 0.
type op func(ctx context.Context, k int64) error

// warmingKey marks the context of an operation of the warm-up.
type warmingKey struct{}

// warmingUp reports whether the operation of ctx is one of the warm-up's,
// which drive does not record: an operation that counts more than its
// success or failure counts only when it is not.
func warmingUp(ctx context.Context) bool { return ctx.Value(warmingKey{}) != nil }

// drive runs the measured phase: Concurrency workers run fn, paced by Rate,
// first for Warmup (not recorded), then until Duration has passed or Count
// operations were measured. Each operation's latency is measured from its
// due time. No operation starts after the phase; those in flight end within
// Grace. It sets the run's measured time.
func (r *run) drive(series *stats.Series, count int64, fn op) {
	start := time.Now()
	warmEnd := start.Add(r.Warmup)
	end := warmEnd.Add(r.Duration)
	paceCtx, cancelPace := context.WithDeadline(context.Background(), end)
	defer cancelPace()
	opsCtx, cancelOps := context.WithDeadline(context.Background(), end.Add(r.Grace))
	defer cancelOps()

	if r.Warmup > 0 {
		r.Monitor.set("warm-up", nil)
		t := time.AfterFunc(r.Warmup, func() { r.Monitor.set("measure", series) })
		defer t.Stop()
	} else {
		r.Monitor.set("measure", series)
	}

	var measuring sync.Once
	pacer := pace.New(r.Rate, start)
	var next, measured, lastDone atomic.Int64
	var exhausted atomic.Bool
	var wg sync.WaitGroup
	for range r.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !exhausted.Load() {
				due, err := pacer.Wait(paceCtx)
				if err != nil {
					return
				}
				warming := due.Before(warmEnd)
				if !warming {
					measuring.Do(r.sampleMeasure)
					if count > 0 && measured.Add(1) > count {
						return
					}
				}
				ctx, cancel := context.WithTimeout(opsCtx, r.Timeout)
				if warming {
					ctx = context.WithValue(ctx, warmingKey{}, true)
				}
				err = fn(ctx, next.Add(1)-1)
				cancel()
				if errors.Is(err, errNoConnection) {
					exhausted.Store(true)
					return
				}
				if warming {
					continue
				}
				done := time.Now()
				if err != nil {
					series.Fail(kind(err))
				} else {
					series.OK(done.Sub(due))
				}
				storeMax(&lastDone, done.UnixNano())
			}
		}()
	}
	wg.Wait()
	if exhausted.Load() {
		r.note("the measured phase stopped early: %v", errNoConnection)
	}
	if last := time.Unix(0, lastDone.Load()); last.After(warmEnd) {
		r.measured = last.Sub(warmEnd)
	}
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}
