// Package membershiptest is the conformance kit of membership plugins, and
// helpers for testing a membership.Provider in process.
//
// Run drives a plugin the way the Sextant server does — through go-plugin,
// over gRPC — and checks that it keeps the contract of sdk/membership:
//
//	func TestConformance(t *testing.T) {
//		membershiptest.Run(t, membershiptest.Options{
//			Plugin: &Plugin, // or Binary: a path, to run the built plugin
//			Config: map[string]any{"members": []any{"10.0.0.2:8848"}},
//		})
//	}
//
// The helpers test a provider's Go API directly: Watching watches it and
// returns the lists it reports, which Next, ExpectList and ExpectNone take;
// NewLogger gives a logger whose output a test can wait on.
//
// Like a plugin, this package imports nothing under core/.
package membershiptest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/sdk/membership"
)

// wait bounds every wait of this package.
const wait = 5 * time.Second

// Log is a logger's output, which a test can wait on.
type Log struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

// NewLogger returns a debug-level logger writing to a new Log.
func NewLogger() (hclog.Logger, *Log) {
	l := &Log{changed: make(chan struct{})}
	return hclog.New(&hclog.LoggerOptions{Output: l, Level: hclog.Debug}), l
}

// Write appends p and wakes the waiters.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// String returns everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count returns how many times the log holds s.
func (l *Log) Count(s string) int { return strings.Count(l.String(), s) }

// Await waits for the log to hold s n times in all.
func (l *Log) Await(t testing.TB, s string, n int) {
	t.Helper()
	deadline := time.After(wait)
	for {
		l.mu.Lock()
		count, changed := strings.Count(l.b.String(), s), l.changed
		l.mu.Unlock()
		if count >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the log holds %q %d times, want %d; the log:\n%s", s, count, n, l)
		}
	}
}

// Watching runs p.Watch as self until the test ends, which checks that the
// watch then ends with context.Canceled; it returns the lists p reports.
func Watching(t testing.TB, p membership.Provider, self string) <-chan []string {
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
		case <-time.After(wait):
			t.Errorf("Watch did not return within %s after its context was cancelled", wait)
		}
	})
	return lists
}

// Next waits for the next list.
func Next(t testing.TB, lists <-chan []string) []string {
	t.Helper()
	select {
	case l := <-lists:
		return l
	case <-time.After(wait):
		t.Fatalf("no member list within %s", wait)
		return nil
	}
}

// ExpectList waits for the next list and checks it is want.
func ExpectList(t testing.TB, lists <-chan []string, want ...string) {
	t.Helper()
	if got := Next(t, lists); !slices.Equal(got, want) {
		t.Fatalf("members %q, want %q", got, want)
	}
}

// ExpectNone checks that no list is waiting.
func ExpectNone(t testing.TB, lists <-chan []string) {
	t.Helper()
	select {
	case l := <-lists:
		t.Fatalf("an unexpected update %q", l)
	default:
	}
}
