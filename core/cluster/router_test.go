package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/internal/metrictest"
)

func echo(prefix string) HandlerFunc {
	return func(_ context.Context, from string, payload []byte) ([]byte, error) {
		return []byte(prefix + " " + from + " " + string(payload)), nil
	}
}

func TestRouterDispatchesByKind(t *testing.T) {
	r := NewRouter()
	if err := errors.Join(r.Register("a", echo("A")), r.Register("b", echo("B"))); err != nil {
		t.Fatal(err)
	}
	for kind, want := range map[string]string{"a": "A peer hi", "b": "B peer hi"} {
		got, err := r.Handle(context.Background(), "peer", kind, []byte("hi"))
		if err != nil || string(got) != want {
			t.Errorf("kind %s: %q, %v; want %q", kind, got, err, want)
		}
	}
}

func TestRouterRefusesAnUnknownKind(t *testing.T) {
	r := NewRouter()
	if err := r.Register("a", echo("A")); err != nil {
		t.Fatal(err)
	}
	_, err := r.Handle(context.Background(), "peer", "x", nil)
	if !errors.Is(err, ErrNoHandler) || err.Error() != `no handler for cluster message kind "x"` {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestRouterRefusesASecondRegistration(t *testing.T) {
	r := NewRouter()
	if err := r.Register("a", echo("first")); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("a", echo("second")); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("second handler of a kind: %v, want an error naming it", err)
	}
	if got, _ := r.Handle(context.Background(), "peer", "a", nil); !strings.HasPrefix(string(got), "first") {
		t.Fatalf("the second registration replaced the first: %q", got)
	}
	if err := r.Register("b", nil); err == nil {
		t.Fatal("a nil handler was registered")
	}
	source := func(context.Context, string, func([]byte) error) error { return nil }
	if err := r.RegisterSnapshot(source); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterSnapshot(source); err == nil {
		t.Fatal("a second snapshot source was registered")
	}
	if err := NewRouter().RegisterSnapshot(nil); err == nil {
		t.Fatal("a nil snapshot source was registered")
	}
}

func TestRouterPassesTheHandlersErrorOn(t *testing.T) {
	r := NewRouter()
	failure := errors.New("the handler failed")
	if err := r.Register("a", func(context.Context, string, []byte) ([]byte, error) { return nil, failure }); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(context.Background(), "peer", "a", nil); err != failure {
		t.Fatalf("got %v, want the handler's own error", err)
	}
}

func TestRouterSnapshot(t *testing.T) {
	ctx := context.Background()
	var chunks []string
	collect := func(c []byte) error {
		chunks = append(chunks, string(c))
		return nil
	}
	r := NewRouter()
	if err := r.Snapshot(ctx, "peer", collect); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("snapshot without a source: %v, want ErrNoSnapshot", err)
	}
	stop := errors.New("the peer stopped reading")
	if err := r.RegisterSnapshot(func(_ context.Context, from string, fn func([]byte) error) error {
		for _, c := range []string{"1", "2", from} {
			if err := fn([]byte(c)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(ctx, "peer", collect); err != nil || !slices.Equal(chunks, []string{"1", "2", "peer"}) {
		t.Fatalf("snapshot: %v, chunks %v", err, chunks)
	}
	if err := r.Snapshot(ctx, "peer", func([]byte) error { return stop }); err != stop {
		t.Fatalf("snapshot whose reader fails: %v, want its error", err)
	}
}

// TestRouterRefusesAMessageWithoutASender: with or without an admission, a
// message or snapshot request that names no sender is refused, and
// counted, before any handler sees it.
func TestRouterRefusesAMessageWithoutASender(t *testing.T) {
	ctx := context.Background()
	r := NewRouter()
	handled := false
	if err := errors.Join(
		r.Register("a", func(context.Context, string, []byte) ([]byte, error) { handled = true; return nil, nil }),
		r.RegisterSnapshot(func(context.Context, string, func([]byte) error) error { handled = true; return nil }),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(ctx, "", "a", nil); !errors.Is(err, ErrNotMember) || !strings.Contains(err.Error(), "without its sender") {
		t.Fatalf("a message without a sender: %v", err)
	}
	if err := r.Snapshot(ctx, "", func([]byte) error { return nil }); !errors.Is(err, ErrNotMember) {
		t.Fatalf("a snapshot request without a sender: %v", err)
	}
	if handled {
		t.Fatal("a handler saw a message without a sender")
	}
	if a, s := metrictest.CounterValue(t, r.refused.WithLabelValues("a")), metrictest.CounterValue(t, r.refused.WithLabelValues(SnapshotKind)); a != 1 || s != 1 {
		t.Fatalf("counted %v messages and %v snapshots refused, want 1 each", a, s)
	}
}

// TestRouterCountsRefusalsOfUnknownKindsAsOther: a caller choosing kinds
// cannot make the counter's label values grow.
func TestRouterCountsRefusalsOfUnknownKindsAsOther(t *testing.T) {
	r := NewRouter()
	r.setAdmission(func(_ context.Context, from, _ string) error { return fmt.Errorf("%s: %w", from, ErrNotMember) })
	for _, kind := range []string{"x", "y", "z"} {
		if _, err := r.Handle(context.Background(), "evil:6666", kind, nil); !errors.Is(err, ErrNotMember) {
			t.Fatalf("kind %s: %v", kind, err)
		}
	}
	ch := make(chan prometheus.Metric, 10)
	r.Metrics().Collect(ch)
	if n := len(ch); n != 1 {
		t.Fatalf("%d series, want one", n)
	}
	if got := metrictest.CounterValue(t, r.refused.WithLabelValues("other")); got != 3 {
		t.Fatalf("%v refusals counted as other, want 3", got)
	}
}
