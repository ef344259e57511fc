package membershiptest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/membership"
)

// T is what Run reports to: *testing.T satisfies T[*testing.T]. Each check
// is a subtest, run with its Run method.
type T[Sub any] = kit.T[Sub]

// Options says which membership plugin to check and how to exercise it.
type Options struct {
	// Binary is the path of the plugin's executable. The kit launches it as
	// the server does: the Sextant handshake and protocol version, gRPC
	// only, automatic mutual TLS.
	Binary string
	// Plugin is the plugin itself, served inside the test process over a
	// real go-plugin gRPC connection: the same wire, no build step. Set
	// either Binary or Plugin.
	Plugin *membership.Plugin
	// Config is a valid configuration block for the plugin, as a user's
	// file gives it: strings, numbers, bools, lists as []any.
	Config map[string]any
	// Self is this node's address, which the kit watches with:
	// DefaultSelf when empty. Give it canonical (membership.ParseAddress).
	Self string
	// Change, when set, changes the plugin's source — rewrites its file,
	// makes its server answer otherwise — and returns the member list that
	// must follow, self included, in any order. The kit calls it once,
	// after the first list, and takes the next list the plugin sends as the
	// outcome: make the change at once (write a file beside the real one
	// and rename it into place). Without Change, the source must not change
	// while the kit runs.
	Change func() (want []string)
}

// DefaultSelf is the address the kit watches with when Options.Self is
// empty.
const DefaultSelf = "127.0.0.1:8848"

// queuedLists bounds the lists the kit keeps of one Watch.
const queuedLists = 1024

// How long the kit waits for a list (variables only for the kit's own
// tests, which shorten them).
var (
	// firstListWait is how soon after Watch the first list must come.
	firstListWait = 5 * time.Second
	// changeWait is how soon after Change the new list must come.
	changeWait = kit.ResultWait
)

// Run checks a membership plugin, each check a subtest of t:
//
//   - handshake: the plugin starts and accepts Sextant's handshake and
//     protocol version;
//   - describe: it is a membership plugin with a name, a version and a valid
//     configuration schema, which accepts Config and refuses an unknown key
//     by name;
//   - configure: it configures itself from Config;
//   - first-list: a Watch gets the member list within 5s: canonical
//     host:port addresses (membership.ParseAddress), sorted, without
//     duplicates, self included;
//   - change (with Change only): after the source changes, the next list,
//     within 10s, is the one Change wants; a list sent while the source
//     did not change (the same list again) is a failure;
//   - cancel: once the host cancels the Watch, the plugin's Watch returns
//     within a second (for a binary, the kit learns it from the plugin's
//     log, which the SDK writes: the binary must be built with this SDK);
//   - rewatch: after that, the plugin serves a new Watch, which starts with
//     the current list, and ends it too when cancelled.
//
// The checks after configure are skipped if one of the first three fails,
// and once the plugin's process is gone. From a plugin's tests:
//
//	func TestConformance(t *testing.T) {
//		path := filepath.Join(t.TempDir(), "cluster.conf")
//		write(path, "127.0.0.1:8848\n10.0.0.2:8848\n")
//		membershiptest.Run(t, membershiptest.Options{
//			Plugin: &Plugin, // or Binary: a path, to run the built plugin
//			Config: map[string]any{"path": path, "interval": "10ms"},
//			Change: func() []string {
//				write(path, "127.0.0.1:8848\n10.0.0.3:8848\n") // at once: write and rename
//				return []string{"127.0.0.1:8848", "10.0.0.3:8848"}
//			},
//		})
//	}
func Run[Sub T[Sub]](t Sub, opts Options) {
	t.Helper()
	kit.OnePlugin(t, "membershiptest", opts.Binary != "", opts.Plugin != nil)
	if opts.Self == "" {
		opts.Self = DefaultSelf
	}
	if self, err := membership.ParseAddress(opts.Self, membership.DefaultPort); err != nil || self != opts.Self {
		t.Fatalf("membershiptest: Options.Self %q is not a canonical host:port address (membership.ParseAddress: %q, %v)", opts.Self, self, err)
	}
	k := newKit(opts)
	t.Cleanup(func() { k.close(t) })
	checks := []kit.Check{
		{Name: "handshake", Run: k.Handshake, Required: true},
		{Name: "describe", Run: k.describe, Required: true},
		{Name: "configure", Run: k.configure, Required: true},
		{Name: "first-list", Run: k.firstList},
	}
	if opts.Change != nil {
		checks = append(checks, kit.Check{Name: "change", Run: k.change})
	}
	checks = append(checks, kit.Check{Name: "cancel", Run: k.cancel}, kit.Check{Name: "rewatch", Run: k.rewatch})
	kit.Run(t, k, checks)
}

func (k *membershipKit) describe(t kit.Reporter) {
	t.Helper()
	_, k.config = k.Describe(t, k.opts.Config)
}

func (k *membershipKit) configure(t kit.Reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kit.ResultWait)
	defer cancel()
	if err := k.remote().Configure(ctx, k.config); err != nil {
		t.Fatalf("Configure failed (New returned an error): %v%s", err, k.StderrTail())
	}
}

func (k *membershipKit) firstList(t kit.Reporter) {
	t.Helper()
	k.first = k.watch()
	list, err := k.first.next(firstListWait, k)
	if err != nil {
		t.Fatalf("a Watch got no member list: %v; Watch must call update with the current list at once", err)
	}
	if err := wellFormed(list, k.opts.Self); err != nil {
		t.Errorf("the first member list %q is malformed: %v", list, err)
	}
	k.current = list
}

func (k *membershipKit) change(t kit.Reporter) {
	t.Helper()
	if k.current == nil {
		t.Fatalf("cannot check: the first Watch got no member list to change")
	}
	if extra := k.first.pending(); len(extra) > 0 {
		t.Errorf("after the first list, the plugin sent %s though its source did not change (the first: %q); "+
			"Watch must call update only when the list changes", kit.Plural(len(extra), "list"), extra[0])
	}
	want := k.opts.Change()
	want = slices.Compact(slices.Sorted(slices.Values(want)))
	before := k.current
	k.current = want // whatever the plugin makes of it
	list, err := k.first.next(changeWait, k)
	if err != nil {
		t.Fatalf("after Options.Change, the plugin sent no new list: %v", err)
	}
	switch {
	case slices.Equal(list, before):
		t.Errorf("after Options.Change, the plugin sent the unchanged list %q again, want %q; "+
			"Watch must call update only when the list changes", list, want)
	case !slices.Equal(list, want):
		t.Errorf("after Options.Change, the plugin sent %q, want %q", list, want)
	}
	if err := wellFormed(list, k.opts.Self); err != nil {
		t.Errorf("the member list %q is malformed: %v", list, err)
	}
}

func (k *membershipKit) cancel(t kit.Reporter) {
	t.Helper()
	if k.first == nil {
		k.first = k.watch()
	}
	k.endWatch(t, k.first, "the first Watch")
}

func (k *membershipKit) rewatch(t kit.Reporter) {
	t.Helper()
	w := k.watch()
	list, err := w.next(firstListWait, k)
	if err != nil {
		t.Errorf("a Watch after one was cancelled got no member list: %v; the plugin must serve one Watch after another", err)
	} else {
		if err := wellFormed(list, k.opts.Self); err != nil {
			t.Errorf("the first member list %q of a new Watch is malformed: %v", list, err)
		}
		if k.current != nil && !slices.Equal(list, k.current) {
			t.Errorf("a new Watch started with %q, but the current list is %q", list, k.current)
		}
	}
	k.endWatch(t, w, "a second Watch")
}

// endWatch cancels w and checks that the plugin's Watch returns soon.
func (k *membershipKit) endWatch(t kit.Reporter, w *watch, what string) {
	t.Helper()
	k.mu.Lock()
	k.cancelled++
	n := k.cancelled
	k.mu.Unlock()
	w.stop()
	select {
	case <-w.done:
	case <-time.After(kit.Grace):
		t.Fatalf("%s, cancelled, did not end on the host's side within %v", what, kit.Grace)
	}
	if !k.ends.await(n, kit.Grace) {
		how := "its Watch did not return"
		if k.opts.Binary != "" {
			how = fmt.Sprintf("the plugin did not log %q (at debug level), which the SDK does once Watch has returned: "+
				"Watch did not return, or the plugin is not built with this SDK", wire.WatchEnded)
		}
		t.Errorf("%s was cancelled, and %v later %s; Watch must return as soon as its context is done%s", what, kit.Grace, how, k.StderrTail())
	}
}

// wellFormed says what is wrong with a member list.
func wellFormed(list []string, self string) error {
	if len(list) == 0 {
		return fmt.Errorf("it is empty; a list holds this node (%s) at least", self)
	}
	for _, a := range list {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return fmt.Errorf("%q is not host:port", a)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%q has the port %q, not a number from 1 to 65535", a, port)
		}
		canonical, err := membership.ParseAddress(a, 0)
		if err != nil {
			return fmt.Errorf("%q is not a valid address: %v", a, err)
		}
		if canonical != a {
			return fmt.Errorf("%q is not canonical: membership.ParseAddress makes it %q", a, canonical)
		}
	}
	if !slices.IsSorted(list) {
		return fmt.Errorf("it is not sorted")
	}
	for i := 1; i < len(list); i++ {
		if list[i] == list[i-1] {
			return fmt.Errorf("%q is in it twice", list[i])
		}
	}
	if !slices.Contains(list, self) {
		return fmt.Errorf("this node (%s) is not in it; a provider counts the node in even when its source leaves it out (membership.WithSelf)", self)
	}
	return nil
}
