package servertest

import (
	"testing"
	"time"
)

// pollInterval is how long Eventually sleeps between two looks.
const pollInterval = 10 * time.Millisecond

// Eventually polls cond until it holds, failing the test once timeout has
// passed with cond's last description of what it saw.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s; last saw: %s", timeout, what, seen)
		}
		time.Sleep(pollInterval)
	}
}
