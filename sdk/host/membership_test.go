package host_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// scripted is a provider that reports the lists a test hands it, and says
// when each Watch returns.
type scripted struct {
	lists chan []string
	ended chan error
}

func (s *scripted) Watch(ctx context.Context, self string, update func([]string)) (err error) {
	defer func() { s.ended <- err }()
	update([]string{self})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l := <-s.lists:
			update(l)
		}
	}
}

func scriptedPlugin(s *scripted) membership.Plugin {
	return membership.Plugin{
		Info: sdk.Info{Name: "scripted", Version: "0.1.0", Config: sdk.Schema{{Key: "greeting", Type: sdk.String, Required: true}}},
		New: func(config []byte, host membership.Host) (membership.Provider, error) {
			var cfg struct {
				Greeting string `json:"greeting"`
			}
			if err := sdk.DecodeConfig(config, &cfg); err != nil {
				return nil, err
			}
			if host.Logger == nil {
				return nil, errors.New("no logger")
			}
			return s, nil
		},
	}
}

func dispenseMembership(t *testing.T, p membership.Plugin) *host.Membership {
	return dispense[*host.Membership](t, host.KindMembership, p)
}

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

func TestMembershipPluginOverGRPC(t *testing.T) {
	ctx := context.Background()
	s := &scripted{lists: make(chan []string), ended: make(chan error, 1)}
	p := scriptedPlugin(s)
	c := dispenseMembership(t, p)

	desc, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := host.Description{Info: p.Info, Kind: host.KindMembership}
	if !reflect.DeepEqual(desc, want) {
		t.Fatalf("Describe = %+v, want %+v", desc, want)
	}

	_, done := watchClient(ctx, c, "10.0.0.1:8848")
	if err := awaitErr(t, done); err == nil || !strings.Contains(err.Error(), "watch before Configure") {
		t.Fatalf("a Watch before Configure returned %v", err)
	}

	if err := c.Configure(ctx, []byte(`{"greting":"hi"}`)); err == nil {
		t.Fatal("a configuration the plugin cannot decode was accepted")
	}
	if err := c.Configure(ctx, []byte(`{"greeting":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Configure(ctx, []byte(`{"greeting":"hi"}`)); err == nil || !strings.Contains(err.Error(), "already configured") {
		t.Fatalf("a second Configure returned %v", err)
	}

	for round := range 2 { // a Watch, then another after it ended
		watchCtx, cancel := context.WithCancel(ctx)
		lists, done := watchClient(watchCtx, c, "10.0.0.1:8848")
		membershiptest.ExpectList(t, lists, "10.0.0.1:8848")
		s.lists <- []string{"10.0.0.1:8848", "10.0.0.2:8848"}
		membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")
		cancel()
		if err := awaitErr(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: Watch returned %v after its context was cancelled", round, err)
		}
		// The plugin's own Watch returns too.
		if err := awaitErr(t, s.ended); !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: the provider's Watch returned %v after the host cancelled it", round, err)
		}
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

func TestWatchFailuresReachTheHost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     providerFunc
		lists [][]string
		want  string
	}{{
		name: "panic",
		f: func(_ context.Context, self string, update func([]string)) error {
			update([]string{self})
			panic("out of luck")
		},
		lists: [][]string{{"10.0.0.1:8848"}},
		want:  "the provider's Watch panicked: out of luck",
	}, {
		name: "error",
		f:    func(context.Context, string, func([]string)) error { return errors.New("no source") },
		want: "the provider's Watch failed: no source",
	}, {
		name: "returns early",
		f:    func(context.Context, string, func([]string)) error { return nil },
		want: "returned before its context ended",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := dispenseMembership(t, pluginOf(tc.f))
			if err := c.Configure(ctx, nil); err != nil {
				t.Fatal(err)
			}
			lists, done := watchClient(ctx, c, "10.0.0.1:8848")
			err := awaitErr(t, done)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Watch returned %v, want an error saying %q", err, tc.want)
			}
			for _, want := range tc.lists {
				membershiptest.ExpectList(t, lists, want...)
			}
		})
	}
}
