package membership

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
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

// logBuffer is a logger's output, which a test can wait on.
type logBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newLogger() (hclog.Logger, *logBuffer) {
	lb := &logBuffer{changed: make(chan struct{})}
	return hclog.New(&hclog.LoggerOptions{Output: lb, Level: hclog.Debug}), lb
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns how many lines hold s.
func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

// await waits for a line holding s.
func (l *logBuffer) await(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		l.mu.Lock()
		found, changed := strings.Contains(l.b.String(), s), l.changed
		l.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no log line says %q; the log:\n%s", s, l)
		}
	}
}

// watching runs p.Watch as self until the test ends; the lists come on the
// channel.
func watching(t *testing.T, p Provider, self string) <-chan []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lists := make(chan []string, 100)
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, self, func(m []string) { lists <- m }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v after its context was cancelled, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return after its context was cancelled")
		}
	})
	return lists
}

func next(t *testing.T, lists <-chan []string) []string {
	t.Helper()
	select {
	case l := <-lists:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no member list within 5s")
		return nil
	}
}

func expectList(t *testing.T, lists <-chan []string, want ...string) {
	t.Helper()
	if got := next(t, lists); !slices.Equal(got, want) {
		t.Fatalf("members %q, want %q", got, want)
	}
}

func expectNone(t *testing.T, lists <-chan []string) {
	t.Helper()
	select {
	case l := <-lists:
		t.Fatalf("an unexpected update %q", l)
	default:
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
	logger, logs := newLogger()
	lists := watching(t, &Poller{Read: src.Read, Interval: tick, Source: "test", Logger: logger}, "10.0.0.1:8848")
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")

	src.awaitReads(t, 3) // the same content, read again
	expectNone(t, lists)

	src.set("# reordered, a duplicate, a comment\n10.0.0.1\n10.0.0.2:8848\n10.0.0.1:8848\n", nil)
	src.awaitReads(t, 3) // a new content, the same list
	expectNone(t, lists)

	src.set("10.0.0.1:8848\n10.0.0.2\n10.0.0.3\n", nil)
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848")
	if logs.count("[WARN]") != 0 {
		t.Errorf("warnings for a well-formed source:\n%s", logs)
	}
}

func TestPollerCountsSelfIn(t *testing.T) {
	src := newSource("10.0.0.2\n10.0.0.3\n")
	logger, logs := newLogger()
	// A bare ip means this node's port.
	lists := watching(t, &Poller{Read: src.Read, Interval: tick, Logger: logger}, "10.0.0.1:9000")
	expectList(t, lists, "10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000")
	logs.await(t, "this node is not in the member list; counting it in, as Nacos does")
	src.awaitReads(t, 3)
	if n := logs.count("this node is not in the member list"); n != 1 {
		t.Errorf("the missing self was logged %d times for one content, want once", n)
	}
}

func TestPollerKeepsTheLastGoodList(t *testing.T) {
	noLeaks(t)
	src := newSource("10.0.0.1:8848\n10.0.0.2:8848\n")
	logger, logs := newLogger()
	lists := watching(t, &Poller{Read: src.Read, Interval: tick, Source: "test", Logger: logger}, "10.0.0.1:8848")
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")

	src.set("", errors.New("the source is down"))
	src.awaitReads(t, 5)
	expectNone(t, lists)
	if n := logs.count("cannot read the member list; keeping the last good one"); n != 1 {
		t.Errorf("a lasting failure was warned about %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "the source is down") {
		t.Errorf("the failure's error is not logged:\n%s", logs)
	}

	src.set("# nothing but comments\n", nil)
	logs.await(t, "the member list can be read again")
	logs.await(t, "the member list is empty; keeping the last good one")
	src.set("\n  \n", nil)
	src.awaitReads(t, 3)
	src.set("garbage here\n", nil)
	logs.await(t, `line 1: \"garbage here\"`)
	src.awaitReads(t, 3)
	expectNone(t, lists)
	if n := logs.count("skipping a malformed entry"); n != 1 {
		t.Errorf("one malformed line was logged %d times, want once per content:\n%s", n, logs)
	}

	src.set("10.0.0.1:8848\n10.0.0.3:8848\n", nil)
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.3:8848")
}

func TestPollerStartsAloneWhenTheSourceFails(t *testing.T) {
	src := newSource("")
	src.set("", errors.New("down"))
	lists := watching(t, &Poller{Read: src.Read, Interval: tick}, "10.0.0.1:8848")
	expectList(t, lists, "10.0.0.1:8848")
	src.set("10.0.0.1:8848\n10.0.0.2:8848\n", nil)
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")
}

func TestPollerRefusesWhatCannotWork(t *testing.T) {
	read := newSource("10.0.0.1").Read
	for _, tc := range []struct {
		name string
		p    Poller
		self string
		want string
	}{
		{"bad self", Poller{Read: read, Interval: tick}, "not an address", "this node's address"},
		{"no read", Poller{Interval: tick}, "10.0.0.1:8848", "Poller.Read is nil"},
		{"no interval", Poller{Read: read}, "10.0.0.1:8848", "interval 0s is not positive"},
	} {
		err := tc.p.Watch(context.Background(), tc.self, func([]string) { t.Errorf("%s: an update", tc.name) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Watch = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
