package remote

import (
	"sync"
	"time"
)

// writeClock bounds each write of one connection by a timeout with a single
// timer for the connection instead of one per write (two timer changes a
// write were 2–3 % of a push's CPU, measured). The timer is armed when a
// write starts and none is; when it fires it expires the write in progress
// if that began a timeout ago or more, or is set again for it, or stays off
// between writes.
type writeClock struct {
	timeout time.Duration
	expire  func() // called once, without mu, when a write overruns

	mu      sync.Mutex
	timer   *time.Timer
	armed   bool
	start   time.Time // of the write in progress; zero between writes
	expired bool      // a write overran
	stopped bool      // the connection is closed
}

// begin marks the start of a write.
func (w *writeClock) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start = time.Now()
	if w.armed || w.expired || w.stopped {
		return
	}
	w.armed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(w.timeout, w.fire)
	} else {
		w.timer.Reset(w.timeout)
	}
}

// end marks the end of the write begun last, and reports whether it
// overran the timeout.
func (w *writeClock) end() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start = time.Time{}
	return w.expired
}

// stop turns the timer off for good: the connection is closed.
func (w *writeClock) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (w *writeClock) fire() {
	w.mu.Lock()
	if w.start.IsZero() || w.expired || w.stopped {
		w.armed = false
		w.mu.Unlock()
		return
	}
	if left := w.timeout - time.Since(w.start); left > 0 {
		w.timer.Reset(left)
		w.mu.Unlock()
		return
	}
	w.expired, w.armed = true, false
	w.mu.Unlock()
	w.expire()
}
