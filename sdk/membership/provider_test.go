package membership_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// watchClient runs c.Watch; the lists come on the channel, its result on the
// other once it returns.
func watchClient(ctx context.Context, p membership.Provider, self string) (<-chan []string, <-chan error) {
	lists := make(chan []string, 100)
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, self, func(m []string) { lists <- m }) }()
	return lists, done
}

func awaitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return")
		return nil
	}
}

// providerFunc is a provider made of a function.
type providerFunc func(ctx context.Context, self string, update func([]string)) error

func (f providerFunc) Watch(ctx context.Context, self string, update func([]string)) error {
	return f(ctx, self, update)
}

func pluginOf(f providerFunc) membership.Plugin {
	return membership.Plugin{
		Info: sdk.Info{Name: "f", Version: "0.1.0"},
		New:  func([]byte, membership.Host) (membership.Provider, error) { return f, nil },
	}
}

func TestLateAndConcurrentUpdatesAreContained(t *testing.T) {
	release := make(chan struct{})
	var wg sync.WaitGroup
	p, err := membership.NewProvider(pluginOf(func(ctx context.Context, self string, update func([]string)) error {
		list := []string{self}
		for range 8 { // a provider that calls update from many goroutines
			wg.Go(func() {
				update(list)
				<-release
				update([]string{"late:1"}) // after Watch returned
			})
		}
		<-ctx.Done()
		return ctx.Err()
	}), nil, membership.Host{})
	if err != nil {
		t.Fatal(err)
	}
	var busy atomic.Bool
	got := make(chan []string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Watch(ctx, "a:1", func(m []string) {
			if !busy.CompareAndSwap(false, true) {
				t.Error("update was called concurrently")
			}
			got <- m
			time.Sleep(time.Millisecond) // widen the window a concurrent call would hit
			busy.Store(false)
		})
	}()
	for range 8 {
		l := membershiptest.Next(t, got)
		if !slices.Equal(l, []string{"a:1"}) {
			t.Errorf("an update got %q", l)
		}
		l[0] = "scribbled" // the list is the host's own
	}
	cancel()
	if err := awaitErr(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch returned %v", err)
	}
	close(release)
	wg.Wait()
	if len(got) != 0 {
		t.Errorf("%d updates after Watch returned, want none", len(got))
	}
}

func TestNewProviderContainsFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func([]byte, membership.Host) (membership.Provider, error)
		want string
	}{
		{"panic", func([]byte, membership.Host) (membership.Provider, error) { panic("boom") }, "starting the provider panicked: boom"},
		{"nil", func([]byte, membership.Host) (membership.Provider, error) { return nil, nil }, "New returned no provider"},
		{"error", func([]byte, membership.Host) (membership.Provider, error) { return nil, errors.New("bad config") }, "starting the provider: bad config"},
		{"no New", nil, "Plugin.New is nil"},
	} {
		p, err := membership.NewProvider(membership.Plugin{Info: sdk.Info{Name: "x"}, New: tc.new}, nil, membership.Host{})
		if p != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewProvider = %v, %v; want an error saying %q", tc.name, p, err, tc.want)
		}
	}
	p, err := membership.NewProvider(pluginOf(func(ctx context.Context, self string, update func([]string)) error {
		update(slices.Clip([]string{self}))
		panic("in Watch")
	}), nil, membership.Host{})
	if err != nil {
		t.Fatal(err)
	}
	lists, done := watchClient(context.Background(), p, "a:1")
	if err := awaitErr(t, done); err == nil || !strings.Contains(err.Error(), "panicked: in Watch") {
		t.Errorf("a panicking Watch returned %v", err)
	}
	membershiptest.ExpectList(t, lists, "a:1")
}
