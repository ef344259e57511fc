package servertest

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records its message and ends
// the goroutine, as testing.T's does, without failing the test.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// eventually runs Eventually against a fatalRecorder and returns what it
// failed with, "" if nothing.
func eventually(timeout time.Duration, what string, cond func() (bool, string)) string {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(r, timeout, what, cond)
	}()
	<-done
	return r.fatal
}

// TestEventuallyReturnsOnceTheConditionHolds: cond is polled until it holds,
// and no longer.
func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	polls := 0
	fatal := eventually(time.Minute, "the third poll", func() (bool, string) {
		polls++
		return polls == 3, fmt.Sprintf("poll %d", polls)
	})
	if fatal != "" || polls != 3 {
		t.Fatalf("Eventually failed with %q after %d polls, want no failure after 3", fatal, polls)
	}
}

// TestEventuallyFailsWithTheLastThingSeen: past the timeout, the failure
// names the timeout, what was awaited and cond's last description.
func TestEventuallyFailsWithTheLastThingSeen(t *testing.T) {
	polls := 0
	fatal := eventually(50*time.Millisecond, "never", func() (bool, string) {
		polls++
		return false, fmt.Sprintf("poll %d", polls)
	})
	want := fmt.Sprintf("timed out after 50ms waiting until never; last saw: poll %d", polls)
	if polls < 2 || fatal != want {
		t.Fatalf("Eventually failed with %q after %d polls, want %q", fatal, polls, want)
	}
}
