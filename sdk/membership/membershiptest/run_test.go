package membershiptest_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/kit/kittest"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// The built-in providers pass the kit in their own packages' tests
// (plugins/standalone and the others); here, the kit itself is checked.

// A failure the kit must report: in which check, and what its message says.
type failure = kittest.Failure

func TestLeavesNoGoroutineBehind(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("in process", func(t *testing.T) {
		membershiptest.Run(t, membershiptest.Options{
			Plugin: &Plugin,
			Config: map[string]any{"members": []any{"10.0.0.2:8848", "10.0.0.3"}},
		})
	})
}

func TestAPluginThatFollowsChangesPasses(t *testing.T) {
	src := newSource()
	membershiptest.Run(t, membershiptest.Options{
		Plugin: brokenMembership(func(ctx context.Context, _ string, update func([]string)) error {
			last := src.current()
			update(last)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-src.changed:
				if list := src.current(); !slices.Equal(list, last) {
					update(list)
				}
			}
			<-ctx.Done()
			return ctx.Err()
		}),
		Change: src.change("10.0.0.9:8848", "127.0.0.1:8848"),
	})
}

// provider is a provider made of a function.
type provider func(ctx context.Context, self string, update func([]string)) error

func (f provider) Watch(ctx context.Context, self string, update func([]string)) error {
	return f(ctx, self, update)
}

// brokenMembership is a membership plugin whose provider is f.
func brokenMembership(f provider) *membership.Plugin {
	return &membership.Plugin{
		Info: sdk.Info{Name: "broken", Version: "0.0.1"},
		New:  func([]byte, membership.Host) (membership.Provider, error) { return f, nil },
	}
}

// reports reports list, then waits for ctx.
func reports(list ...string) provider {
	return func(ctx context.Context, _ string, update func([]string)) error {
		update(list)
		<-ctx.Done()
		return ctx.Err()
	}
}

// source is a member list that Change changes.
type source struct {
	mu      sync.Mutex
	list    []string
	changed chan struct{} // closed by the change
}

func newSource() *source {
	return &source{list: []string{"127.0.0.1:8848"}, changed: make(chan struct{})}
}

func (s *source) current() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list
}

// change returns a Change that changes the source and wants want.
func (s *source) change(want ...string) func() []string {
	return func() []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.list = []string{"10.0.0.9:8848", "127.0.0.1:8848"}
		close(s.changed)
		return want
	}
}

func TestBrokenMembershipPluginsFail(t *testing.T) {
	t.Parallel()
	// What the stuck providers wait for instead of their context.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, tc := range []struct {
		name   string
		binary string // the package of a plugin binary, instead of opts
		opts   membershiptest.Options
		want   []failure
	}{{
		name:   "a binary that ignores cancellation",
		binary: "./testdata/stuck",
		want: []failure{
			{Check: "cancel", Says: "the first Watch was cancelled, and 1s later the plugin did not log \"membership: watch ended\" (at debug level)"},
			{Check: "cancel", Says: "the provider's Watch has not returned 1s after its context ended"}, // the plugin's own log, shown
			{Check: "rewatch", Says: "a second Watch was cancelled, and 1s later"},
		},
	}, {
		name: "never sends a first list",
		opts: membershiptest.Options{Plugin: brokenMembership(func(ctx context.Context, _ string, _ func([]string)) error {
			<-ctx.Done()
			return ctx.Err()
		})},
		want: []failure{
			{Check: "first-list", Says: "a Watch got no member list: none came within 2s; Watch must call update with the current list at once"},
			{Check: "rewatch", Says: "a Watch after one was cancelled got no member list: none came within 2s"},
		},
	}, {
		name: "ignores cancellation",
		opts: membershiptest.Options{Plugin: brokenMembership(func(_ context.Context, self string, update func([]string)) error {
			update([]string{self})
			<-release
			return nil
		})},
		want: []failure{
			{Check: "cancel", Says: "the first Watch was cancelled, and 1s later its Watch did not return; Watch must return as soon as its context is done"},
			{Check: "rewatch", Says: "a second Watch was cancelled, and 1s later its Watch did not return"},
		},
	}, {
		name: "fails at once",
		opts: membershiptest.Options{Plugin: brokenMembership(func(context.Context, string, func([]string)) error {
			panic("out of luck")
		})},
		want: []failure{
			{Check: "first-list", Says: "a Watch got no member list: the Watch ended: membership plugin: rpc error: code = Unknown desc = the provider's Watch panicked: out of luck"},
			{Check: "rewatch", Says: "the provider's Watch panicked: out of luck"},
		},
	}, {
		name: "leaves itself out",
		opts: membershiptest.Options{Plugin: brokenMembership(reports("10.0.0.2:8848"))},
		want: []failure{
			{Check: "first-list", Says: `the first member list ["10.0.0.2:8848"] is malformed: this node (127.0.0.1:8848) is not in it`},
			{Check: "rewatch", Says: "is not in it"},
		},
	}, {
		name: "unsorted",
		opts: membershiptest.Options{Plugin: brokenMembership(reports("127.0.0.1:8848", "10.0.0.2:8848"))},
		want: []failure{{Check: "first-list", Says: "is malformed: it is not sorted"}, {Check: "rewatch", Says: "it is not sorted"}},
	}, {
		name: "a duplicate",
		opts: membershiptest.Options{Plugin: brokenMembership(reports("10.0.0.2:8848", "127.0.0.1:8848", "127.0.0.1:8848"))},
		want: []failure{{Check: "first-list", Says: `"127.0.0.1:8848" is in it twice`}, {Check: "rewatch", Says: "twice"}},
	}, {
		name: "no port",
		opts: membershiptest.Options{Plugin: brokenMembership(reports("10.0.0.2", "127.0.0.1:8848"))},
		want: []failure{{Check: "first-list", Says: `"10.0.0.2" is not host:port`}, {Check: "rewatch", Says: "is not host:port"}},
	}, {
		name: "not canonical",
		opts: membershiptest.Options{Plugin: brokenMembership(reports("127.0.0.1:8848", "Nacos-2:8848"))},
		want: []failure{
			{Check: "first-list", Says: `"Nacos-2:8848" is not canonical: membership.ParseAddress makes it "nacos-2:8848"`},
			{Check: "rewatch", Says: "is not canonical"},
		},
	}, {
		name: "empty",
		opts: membershiptest.Options{Plugin: brokenMembership(reports())},
		want: []failure{{Check: "first-list", Says: "it is empty; a list holds this node (127.0.0.1:8848) at least"}, {Check: "rewatch", Says: "it is empty"}},
	}, {
		name: "repeats itself",
		opts: func() membershiptest.Options {
			src := newSource()
			return membershiptest.Options{
				Plugin: brokenMembership(func(ctx context.Context, _ string, update func([]string)) error {
					update(src.current()) // the repeat comes before any change
					for {
						update(src.current())
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(time.Millisecond):
						}
					}
				}),
				Change: src.change("10.0.0.9:8848", "127.0.0.1:8848"),
			}
		}(),
		want: []failure{
			// Either it resent the list before the change, or just after.
			{Check: "change", Says: "Watch must call update only when the list changes"},
		},
	}, {
		name: "misses the change",
		opts: membershiptest.Options{
			Plugin: brokenMembership(reports("127.0.0.1:8848")),
			Change: newSource().change("10.0.0.9:8848", "127.0.0.1:8848"),
		},
		want: []failure{
			{Check: "change", Says: "after Options.Change, the plugin sent no new list: none came within 2s"},
			{Check: "rewatch", Says: `a new Watch started with ["127.0.0.1:8848"], but the current list is ["10.0.0.9:8848" "127.0.0.1:8848"]`},
		},
	}, {
		name: "gets the change wrong",
		opts: func() membershiptest.Options {
			src := newSource()
			return membershiptest.Options{
				Plugin: brokenMembership(func(ctx context.Context, self string, update func([]string)) error {
					update([]string{self})
					select {
					case <-ctx.Done():
					case <-src.changed:
						update([]string{"10.0.0.7:8848", self})
						<-ctx.Done()
					}
					return ctx.Err()
				}),
				Change: src.change("127.0.0.1:8848", "10.0.0.9:8848"),
			}
		}(),
		want: []failure{
			{Check: "change", Says: `after Options.Change, the plugin sent ["10.0.0.7:8848" "127.0.0.1:8848"], want ["10.0.0.9:8848" "127.0.0.1:8848"]`},
			{Check: "rewatch", Says: "a new Watch started with"},
		},
	}, {
		name: "config the schema refuses",
		opts: membershiptest.Options{Plugin: &Plugin, Config: map[string]any{"colour": "blue"}},
		want: []failure{{Check: "describe", Says: "Options.Config does not pass the plugin's configuration schema: config.colour: unknown key"}},
	}, {
		name: "no name, a bad schema",
		opts: membershiptest.Options{Plugin: func() *membership.Plugin {
			p := Plugin
			p.Name, p.Config = "", sdk.Schema{{Key: "x", Type: "text"}}
			return &p
		}()},
		want: []failure{
			{Check: "describe", Says: "the plugin has no name: set Plugin.Info.Name"},
			{Check: "describe", Says: `the plugin's configuration schema (Plugin.Info.Config) is invalid, so the server would refuse to start it: key "x" has unknown type "text"`},
		},
	}, {
		name: "New fails",
		opts: membershiptest.Options{Plugin: func() *membership.Plugin {
			p := Plugin
			p.New = func([]byte, membership.Host) (membership.Provider, error) { return nil, nil }
			return &p
		}()},
		want: []failure{{Check: "configure", Says: "Configure failed (New returned an error): starting the provider: New returned no provider"}},
	}, {
		name: "a self not canonical",
		opts: membershiptest.Options{Plugin: &Plugin, Self: "LocalHost"},
		want: []failure{{Check: "", Says: `membershiptest: Options.Self "LocalHost" is not a canonical host:port address (membership.ParseAddress: "localhost:8848", <nil>)`}},
	}, {
		name: "no plugin",
		want: []failure{{Check: "", Says: "membershiptest: set exactly one of Options.Binary and Options.Plugin"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.binary != "" {
				tc.opts.Binary = kittest.Build(t, tc.binary)
			}
			got := record(tc.opts).Failures
			kittest.Expect(t, got, tc.want)
			if tc.name == "config the schema refuses" && slices.ContainsFunc(got, func(f failure) bool { return f.Check != "describe" }) {
				t.Errorf("the kit went on after describe failed: %v", got)
			}
		})
	}
}

// record runs the kit against a recorder and returns what it reported.
func record(opts membershiptest.Options) kittest.Report {
	return kittest.Record(func(r *kittest.Recorder) { membershiptest.Run(r, opts) })
}
