package sdktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/watchlog"
	"github.com/sextantd/sextant/sdk/membership"
)

// endedMessage is what the plugin side logs once a Watch has returned.
const endedMessage = watchlog.Ended

// membershipKit is one run of the membership checks: the plugin under test
// and what the checks learnt so far.
type membershipKit struct {
	opts   MembershipOptions
	stderr *scanner // of a plugin binary
	ends   *counter // of the plugin's Watch calls that returned

	process
	remote *membership.Client

	config  []byte   // Config, checked against the plugin's schema
	first   *watch   // the first Watch
	current []string // the list as it should be now

	mu        sync.Mutex
	watches   []*watch
	cancelled int // Watch calls the kit cancelled
}

func newMembershipKit(opts MembershipOptions) *membershipKit {
	ends := &counter{changed: make(chan struct{})}
	return &membershipKit{opts: opts, ends: ends, stderr: &scanner{ends: ends}}
}

// start launches the plugin, or serves it in process with its provider's
// Watch calls counted as they return, and dispenses it.
func (k *membershipKit) start() error {
	var cmd *exec.Cmd
	var served plugin.PluginSet
	if k.opts.Binary != "" {
		cmd = exec.Command(k.opts.Binary)
		// At debug level, the plugin side logs each Watch that ends.
		cmd.Env = append(os.Environ(), sdk.LogLevelEnv+"=debug")
	} else {
		served = spied(*k.opts.Plugin, k.ends).Set()
	}
	if err := k.launch(cmd, k.stderr, served, membership.PluginSet()); err != nil {
		return err
	}
	raw, err := k.rpc.Dispense(membership.DispenseName)
	if err != nil {
		return fmt.Errorf("it serves no membership plugin (serve it with membership.Serve): %w", err)
	}
	k.remote = raw.(*membership.Client)
	return nil
}

// close ends every Watch and stops the plugin.
func (k *membershipKit) close(t reporter) {
	t.Helper()
	k.mu.Lock()
	watches := k.watches
	k.mu.Unlock()
	for _, w := range watches {
		w.stop()
		<-w.done // the host's end returns at once
	}
	if err := k.shutdown(); err != nil {
		t.Errorf("%v", err)
	}
}

// gone says why the plugin can no longer be reached, if it cannot.
func (k *membershipKit) gone() error {
	if k.exited() {
		return errors.New("its process exited")
	}
	return nil
}

// stderrTail returns, for a message, what a plugin binary wrote since the
// last message, but for its debug lines — all of it, if the process is
// exiting.
func (k *membershipKit) stderrTail() string {
	if k.opts.Binary == "" {
		return ""
	}
	if k.remote != nil {
		select {
		case <-k.remote.Exited():
		case <-time.After(grace):
		}
	}
	if s := k.stderr.tail.take(); s != "" {
		return "\nthe plugin's last output:\n" + s
	}
	return ""
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
		w.err = k.remote.Watch(ctx, k.opts.Self, func(members []string) {
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
		return nil, fmt.Errorf("the Watch ended: %w%s", w.err, k.stderrTail())
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

// scanner takes a plugin binary's standard error: it counts the lines that
// say a Watch ended, and keeps the tail of the others but debug lines for
// messages.
type scanner struct {
	ends *counter
	tail tail

	mu   sync.Mutex
	line []byte // the line being written
}

func (s *scanner) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for rest := p; len(rest) > 0; {
		i := strings.IndexByte(string(rest), '\n')
		if i < 0 {
			s.line = append(s.line, rest...)
			break
		}
		s.line = append(s.line, rest[:i+1]...)
		rest = rest[i+1:]
		switch line := string(s.line); {
		case strings.Contains(line, endedMessage):
			s.ends.add()
		case strings.Contains(line, `"@level":"debug"`) || strings.Contains(line, `"@level":"trace"`):
		default:
			_, _ = s.tail.Write(s.line)
		}
		s.line = s.line[:0]
	}
	return len(p), nil
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
