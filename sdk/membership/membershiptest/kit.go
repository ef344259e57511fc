package membershiptest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/membership"
)

// membershipKit is one run of the checks: the plugin under test and what the
// checks learnt so far.
type membershipKit struct {
	kit.Process
	opts Options
	ends *counter // of the plugin's Watch calls that returned

	config  []byte   // Config, checked against the plugin's schema
	first   *watch   // the first Watch
	current []string // the list as it should be now

	mu        sync.Mutex
	watches   []*watch
	cancelled int // Watch calls the kit cancelled
}

func newKit(opts Options) *membershipKit {
	k := &membershipKit{opts: opts, ends: &counter{changed: make(chan struct{})}}
	k.Process = kit.Process{
		Kind:   wire.KindMembership,
		Binary: opts.Binary,
		Who:    "the plugin",
		// At debug level, the plugin side logs each Watch that ends, which
		// is how the kit sees a binary's Watch return.
		Debug: true,
		Lines: k.line,
	}
	if opts.Plugin != nil {
		k.Plugin = spied(*opts.Plugin, k.ends)
	}
	return k
}

// remote is the plugin, once started.
func (k *membershipKit) remote() *host.Membership { return k.Host.(*host.Membership) }

// line takes a line of a plugin binary's standard error: it counts those
// that say a Watch ended, and keeps the others but debug lines for messages.
func (k *membershipKit) line(line string) bool {
	switch {
	case strings.Contains(line, wire.WatchEnded):
		k.ends.add()
		return false
	case strings.Contains(line, `"@level":"debug"`) || strings.Contains(line, `"@level":"trace"`):
		return false
	}
	return true
}

// close ends every Watch and stops the plugin.
func (k *membershipKit) close(t kit.Reporter) {
	t.Helper()
	k.mu.Lock()
	watches := k.watches
	k.mu.Unlock()
	for _, w := range watches {
		w.stop()
		<-w.done // the host's end returns at once
	}
	if err := k.Shutdown(); err != nil {
		t.Errorf("%v", err)
	}
}

// Gone implements kit.State.
func (k *membershipKit) Gone() error {
	if k.Exited() {
		return errors.New("its process exited")
	}
	return nil
}

// watch opens a Watch as the host does.
func (k *membershipKit) watch() *watch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{stop: cancel, lists: make(chan []string, queuedLists), done: make(chan struct{})}
	k.mu.Lock()
	k.watches = append(k.watches, w)
	k.mu.Unlock()
	go func() {
		defer close(w.done)
		w.err = k.remote().Watch(ctx, k.opts.Self, func(members []string) {
			select {
			case w.lists <- members:
			default: // a plugin that floods: the kit has seen enough
			}
		})
	}()
	return w
}

// watch is the host's end of one Watch.
type watch struct {
	stop  context.CancelFunc
	lists chan []string
	done  chan struct{} // closed when the host's Watch has returned...
	err   error         // ...with this
}

// next returns the next list within wait, or why none came.
func (w *watch) next(wait time.Duration, k *membershipKit) ([]string, error) {
	select {
	case list := <-w.lists:
		return list, nil
	default:
	}
	select {
	case list := <-w.lists:
		return list, nil
	case <-w.done:
		return nil, fmt.Errorf("the Watch ended: %w%s", w.err, k.StderrTail())
	case <-time.After(wait):
		return nil, fmt.Errorf("none came within %v", wait)
	}
}

// pending returns the lists received and not yet taken.
func (w *watch) pending() [][]string {
	var lists [][]string
	for {
		select {
		case list := <-w.lists:
			lists = append(lists, list)
		default:
			return lists
		}
	}
}

// counter counts the plugin's Watch calls that returned.
type counter struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed and replaced at each count
}

func (c *counter) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	close(c.changed)
	c.changed = make(chan struct{})
}

// await reports whether n calls returned within wait.
func (c *counter) await(n int, wait time.Duration) bool {
	timeout := time.After(wait)
	for {
		c.mu.Lock()
		got, changed := c.n, c.changed
		c.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-changed:
		case <-timeout:
			return false
		}
	}
}

// spied returns p with its provider's Watch calls counted as they return.
func spied(p membership.Plugin, ends *counter) membership.Plugin {
	build := p.New
	if build == nil {
		return p
	}
	p.New = func(config []byte, host membership.Host) (membership.Provider, error) {
		provider, err := build(config, host)
		if err != nil || provider == nil {
			return provider, err
		}
		return spy{provider, ends}, nil
	}
	return p
}

type spy struct {
	membership.Provider
	ends *counter
}

func (s spy) Watch(ctx context.Context, self string, update func(members []string)) error {
	defer s.ends.add()
	return s.Provider.Watch(ctx, self, update)
}
