package remote

import (
	"sync/atomic"
	"testing"
	"time"
)

// newTestClock returns a clock of timeout that counts its expiries.
func newTestClock(t *testing.T, timeout time.Duration) (*writeClock, *atomic.Int32) {
	t.Helper()
	var expired atomic.Int32
	w := &writeClock{timeout: timeout, expire: func() { expired.Add(1) }}
	t.Cleanup(w.stop)
	return w, &expired
}

// Writes that each end in time never expire, however long they go on in
// all: the one timer follows the write in progress.
func TestWriteClockLetsTimelyWritesBe(t *testing.T) {
	const timeout = 100 * time.Millisecond
	w, expired := newTestClock(t, timeout)
	deadline := time.Now().Add(5 * timeout)
	for time.Now().Before(deadline) {
		w.begin()
		time.Sleep(timeout / 4) // each write takes a quarter of the timeout
		if w.end() {
			t.Fatal("a write that took a quarter of the timeout overran")
		}
	}
	if n := expired.Load(); n != 0 {
		t.Fatalf("expired %d times", n)
	}
}

// A write that stalls expires once, a timeout after it began (not after an
// earlier write), and ends reporting it; a stopped clock expires nothing.
func TestWriteClockExpiresAStalledWrite(t *testing.T) {
	const timeout = 40 * time.Millisecond
	w, expired := newTestClock(t, timeout)
	w.begin()
	w.end()
	time.Sleep(timeout / 2)
	start := time.Now()
	w.begin()
	waitFor(t, "the stalled write expired", func() bool { return expired.Load() == 1 })
	if took := time.Since(start); took < timeout {
		t.Errorf("expired %v after the write began, before the timeout %v", took, timeout)
	}
	if !w.end() {
		t.Error("the stalled write ended without overrunning")
	}
	w.begin() // the connection is being closed: nothing more expires
	time.Sleep(2 * timeout)
	if n := expired.Load(); n != 1 {
		t.Errorf("expired %d times, want once", n)
	}

	stopped, never := newTestClock(t, timeout)
	stopped.begin()
	stopped.stop()
	time.Sleep(2 * timeout)
	if never.Load() != 0 || stopped.end() {
		t.Error("a stopped clock expired a write")
	}
}
