package membership_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// source is what a Poller under test reads: its content or error, as the
// test sets them; it counts the reads.
type source struct {
	mu    sync.Mutex
	text  string
	err   error
	reads int
	read  chan struct{} // closed and replaced at each read
}

func newSource(text string) *source { return &source{text: text, read: make(chan struct{})} }

func (s *source) Read(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	close(s.read)
	s.read = make(chan struct{})
	if s.err != nil {
		return nil, s.err
	}
	return []byte(s.text), nil
}

func (s *source) set(text string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.text, s.err = text, err
}

// awaitReads waits until n more reads have happened.
func (s *source) awaitReads(t *testing.T, n int) {
	t.Helper()
	s.mu.Lock()
	target := s.reads + n
	s.mu.Unlock()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		reads, read := s.reads, s.read
		s.mu.Unlock()
		if reads >= target {
			return
		}
		select {
		case <-read:
		case <-deadline:
			t.Fatalf("the source was read %d times, want %d", reads, target)
		}
	}
}

const tick = 2 * time.Millisecond

// noLeaks fails t if goroutines it started outlive it (and its cleanups).
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestPollerReportsChangesOnly(t *testing.T) {
	noLeaks(t)
	src := newSource("10.0.0.2\n10.0.0.1:8848\n")
	logger, logs := membershiptest.NewLogger()
	lists := membershiptest.Watching(t, &membership.Poller{Read: src.Read, Interval: tick, Source: "test", Logger: logger}, "10.0.0.1:8848")
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")

	src.awaitReads(t, 3) // the same content, read again
	membershiptest.ExpectNone(t, lists)

	src.set("# reordered, a duplicate, a comment\n10.0.0.1\n10.0.0.2:8848\n10.0.0.1:8848\n", nil)
	src.awaitReads(t, 3) // a new content, the same list
	membershiptest.ExpectNone(t, lists)

	src.set("10.0.0.1:8848\n10.0.0.2\n10.0.0.3\n", nil)
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848")
	if logs.Count("[WARN]") != 0 {
		t.Errorf("warnings for a well-formed source:\n%s", logs)
	}
}

func TestPollerCountsSelfIn(t *testing.T) {
	src := newSource("10.0.0.2\n10.0.0.3\n")
	logger, logs := membershiptest.NewLogger()
	// A bare ip means this node's port.
	lists := membershiptest.Watching(t, &membership.Poller{Read: src.Read, Interval: tick, Logger: logger}, "10.0.0.1:9000")
	membershiptest.ExpectList(t, lists, "10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000")
	logs.Await(t, "this node is not in the member list; counting it in, as Nacos does", 1)
	src.awaitReads(t, 3)
	if n := logs.Count("this node is not in the member list"); n != 1 {
		t.Errorf("the missing self was logged %d times for one content, want once", n)
	}
}

func TestPollerKeepsTheLastGoodList(t *testing.T) {
	noLeaks(t)
	src := newSource("10.0.0.1:8848\n10.0.0.2:8848\n")
	logger, logs := membershiptest.NewLogger()
	lists := membershiptest.Watching(t, &membership.Poller{Read: src.Read, Interval: tick, Source: "test", Logger: logger}, "10.0.0.1:8848")
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")

	src.set("", errors.New("the source is down"))
	src.awaitReads(t, 5)
	membershiptest.ExpectNone(t, lists)
	if n := logs.Count("cannot read the member list; keeping the last good one"); n != 1 {
		t.Errorf("a lasting failure was warned about %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "the source is down") {
		t.Errorf("the failure's error is not logged:\n%s", logs)
	}

	src.set("# nothing but comments\n", nil)
	logs.Await(t, "the member list can be read again", 1)
	logs.Await(t, "the member list is empty; keeping the last good one", 1)
	src.set("\n  \n", nil)
	src.awaitReads(t, 3)
	src.set("garbage here\n", nil)
	logs.Await(t, `line 1: \"garbage here\"`, 1)
	src.awaitReads(t, 3)
	membershiptest.ExpectNone(t, lists)
	if n := logs.Count("skipping a malformed entry"); n != 1 {
		t.Errorf("one malformed line was logged %d times, want once per content:\n%s", n, logs)
	}

	src.set("10.0.0.1:8848\n10.0.0.3:8848\n", nil)
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.3:8848")
}

func TestPollerStartsAloneWhenTheSourceFails(t *testing.T) {
	src := newSource("")
	src.set("", errors.New("down"))
	lists := membershiptest.Watching(t, &membership.Poller{Read: src.Read, Interval: tick}, "10.0.0.1:8848")
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848")
	src.set("10.0.0.1:8848\n10.0.0.2:8848\n", nil)
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")
}

func TestPollerRefusesWhatCannotWork(t *testing.T) {
	read := newSource("10.0.0.1").Read
	for _, tc := range []struct {
		name string
		p    membership.Poller
		self string
		want string
	}{
		{"bad self", membership.Poller{Read: read, Interval: tick}, "not an address", "this node's address"},
		{"no read", membership.Poller{Interval: tick}, "10.0.0.1:8848", "Poller.Read is nil"},
		{"no interval", membership.Poller{Read: read}, "10.0.0.1:8848", "interval 0s is not positive"},
	} {
		err := tc.p.Watch(context.Background(), tc.self, func([]string) { t.Errorf("%s: an update", tc.name) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Watch = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
