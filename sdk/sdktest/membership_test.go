package sdktest_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/plugins/standalone"
	"github.com/sextantd/sextant/plugins/static"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/sdktest"
)

// The built-in providers pass the kit in their own packages' tests
// (plugins/standalone and the others); here, the kit itself is checked.

func TestMembershipLeavesNoGoroutineBehind(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("in process", func(t *testing.T) {
		sdktest.Membership(t, sdktest.MembershipOptions{
			Plugin: &static.Plugin,
			Config: map[string]any{"members": []any{"10.0.0.2:8848"}},
		})
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
		opts   sdktest.MembershipOptions
		want   []failure
	}{{
		name:   "a binary that ignores cancellation",
		binary: "./testdata/membership-stuck",
		want: []failure{
			{"cancel", "the first Watch was cancelled, and 1s later the plugin did not log \"membership: watch ended\" (at debug level)"},
			{"cancel", "the provider's Watch has not returned 1s after its context ended"}, // the plugin's own log, shown
			{"rewatch", "a second Watch was cancelled, and 1s later"},
		},
	}, {
		name: "never sends a first list",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(func(ctx context.Context, _ string, _ func([]string)) error {
			<-ctx.Done()
			return ctx.Err()
		})},
		want: []failure{
			{"first-list", "a Watch got no member list: none came within 2s; Watch must call update with the current list at once"},
			{"rewatch", "a Watch after one was cancelled got no member list: none came within 2s"},
		},
	}, {
		name: "ignores cancellation",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(func(_ context.Context, self string, update func([]string)) error {
			update([]string{self})
			<-release
			return nil
		})},
		want: []failure{
			{"cancel", "the first Watch was cancelled, and 1s later its Watch did not return; Watch must return as soon as its context is done"},
			{"rewatch", "a second Watch was cancelled, and 1s later its Watch did not return"},
		},
	}, {
		name: "fails at once",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(func(context.Context, string, func([]string)) error {
			panic("out of luck")
		})},
		want: []failure{
			{"first-list", "a Watch got no member list: the Watch ended: membership plugin: rpc error: code = Unknown desc = the provider's Watch panicked: out of luck"},
			{"rewatch", "the provider's Watch panicked: out of luck"},
		},
	}, {
		name: "leaves itself out",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(reports("10.0.0.2:8848"))},
		want: []failure{
			{"first-list", `the first member list ["10.0.0.2:8848"] is malformed: this node (127.0.0.1:8848) is not in it`},
			{"rewatch", "is not in it"},
		},
	}, {
		name: "unsorted",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(reports("127.0.0.1:8848", "10.0.0.2:8848"))},
		want: []failure{{"first-list", "is malformed: it is not sorted"}, {"rewatch", "it is not sorted"}},
	}, {
		name: "a duplicate",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(reports("10.0.0.2:8848", "127.0.0.1:8848", "127.0.0.1:8848"))},
		want: []failure{{"first-list", `"127.0.0.1:8848" is in it twice`}, {"rewatch", "twice"}},
	}, {
		name: "no port",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(reports("10.0.0.2", "127.0.0.1:8848"))},
		want: []failure{{"first-list", `"10.0.0.2" is not host:port`}, {"rewatch", "is not host:port"}},
	}, {
		name: "not canonical",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(reports("127.0.0.1:8848", "Nacos-2:8848"))},
		want: []failure{
			{"first-list", `"Nacos-2:8848" is not canonical: membership.ParseAddress makes it "nacos-2:8848"`},
			{"rewatch", "is not canonical"},
		},
	}, {
		name: "empty",
		opts: sdktest.MembershipOptions{Plugin: brokenMembership(reports())},
		want: []failure{{"first-list", "it is empty; a list holds this node (127.0.0.1:8848) at least"}, {"rewatch", "it is empty"}},
	}, {
		name: "repeats itself",
		opts: func() sdktest.MembershipOptions {
			src := newSource()
			return sdktest.MembershipOptions{
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
			{"change", "Watch must call update only when the list changes"},
		},
	}, {
		name: "misses the change",
		opts: sdktest.MembershipOptions{
			Plugin: brokenMembership(reports("127.0.0.1:8848")),
			Change: newSource().change("10.0.0.9:8848", "127.0.0.1:8848"),
		},
		want: []failure{
			{"change", "after MembershipOptions.Change, the plugin sent no new list: none came within 2s"},
			{"rewatch", `a new Watch started with ["127.0.0.1:8848"], but the current list is ["10.0.0.9:8848" "127.0.0.1:8848"]`},
		},
	}, {
		name: "gets the change wrong",
		opts: func() sdktest.MembershipOptions {
			src := newSource()
			return sdktest.MembershipOptions{
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
			{"change", `after MembershipOptions.Change, the plugin sent ["10.0.0.7:8848" "127.0.0.1:8848"], want ["10.0.0.9:8848" "127.0.0.1:8848"]`},
			{"rewatch", "a new Watch started with"},
		},
	}, {
		name: "config the schema refuses",
		opts: sdktest.MembershipOptions{Plugin: &standalone.Plugin, Config: map[string]any{"colour": "blue"}},
		want: []failure{{"describe", "MembershipOptions.Config does not pass the plugin's configuration schema: config.colour: unknown key"}},
	}, {
		name: "no name, a bad schema",
		opts: sdktest.MembershipOptions{Plugin: func() *membership.Plugin {
			p := standalone.Plugin
			p.Name, p.Config = "", sdk.Schema{{Key: "x", Type: "text"}}
			return &p
		}()},
		want: []failure{
			{"describe", "the plugin has no name: set Plugin.Info.Name"},
			{"describe", `the plugin's configuration schema (Plugin.Info.Config) is invalid, so the server would refuse to start it: key "x" has unknown type "text"`},
		},
	}, {
		name: "New fails",
		opts: sdktest.MembershipOptions{Plugin: func() *membership.Plugin {
			p := standalone.Plugin
			p.New = func([]byte, membership.Host) (membership.Provider, error) { return nil, nil }
			return &p
		}()},
		want: []failure{{"configure", "Configure failed (New returned an error): rpc error: code = Unknown desc = starting the provider: New returned no provider"}},
	}, {
		name: "a self not canonical",
		opts: sdktest.MembershipOptions{Plugin: &standalone.Plugin, Self: "LocalHost"},
		want: []failure{{"", `sdktest: MembershipOptions.Self "LocalHost" is not a canonical host:port address (membership.ParseAddress: "localhost:8848", <nil>)`}},
	}, {
		name: "no plugin",
		want: []failure{{"", "set exactly one of MembershipOptions.Binary and MembershipOptions.Plugin"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.binary != "" {
				tc.opts.Binary = build(t, tc.binary)
			}
			got := recordMembership(tc.opts)
			expectFailures(t, got, tc.want)
			if tc.name == "config the schema refuses" && slices.ContainsFunc(got, func(f failure) bool { return f.check != "describe" }) {
				t.Errorf("the kit went on after describe failed: %v", got)
			}
		})
	}
}

// recordMembership runs the kit against a recorder and returns what it
// reported.
func recordMembership(opts sdktest.MembershipOptions) []failure {
	r := &recorder{log: new(log)}
	r.run(func() { sdktest.Membership(r, opts) })
	return r.log.failures
}
