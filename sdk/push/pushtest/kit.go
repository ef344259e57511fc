package pushtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/push"
)

// pushKit is one run of the checks: the plugin under test, the fake host it
// talks to, the subscribers a udp plugin pushes to, and what the checks
// learnt so far.
type pushKit struct {
	kit.Process
	opts       Options
	host       *connections
	udp        *receivers // a udp plugin's subscribers; nil for other roles
	deliveries Deliveries // set by configure
	panics     kit.Panics // of an in-process plugin's executor

	execMu sync.Mutex
	execs  []push.Executor // an in-process plugin's, as New built them

	config    []byte // Config, checked against the plugin's schema
	role      push.Role
	stream    *stream
	endStream context.CancelFunc
	elsewhere bool // the plugin delivers elsewhere than through host
}

func newKit(opts Options) *pushKit {
	k := &pushKit{opts: opts, host: newConnections()}
	k.Process = kit.Process{Kind: wire.KindPush, Binary: opts.Binary, Who: "the plugin"}
	if opts.Plugin != nil {
		k.Plugin = guard(*opts.Plugin, &k.panics, k.built)
	}
	return k
}

// built records an executor an in-process plugin's New built.
func (k *pushKit) built(exec push.Executor) {
	k.execMu.Lock()
	defer k.execMu.Unlock()
	k.execs = append(k.execs, exec)
}

// close releases every delivery still hanging, stops the plugin, closes the
// executors of an in-process plugin that are io.Closers, and stops the UDP
// receivers.
func (k *pushKit) close(t kit.Reporter) {
	t.Helper()
	k.host.release()
	if k.endStream != nil {
		k.endStream()
	}
	if err := k.Shutdown(); err != nil {
		t.Errorf("%v", err)
	}
	k.execMu.Lock()
	execs := k.execs
	k.execs = nil
	k.execMu.Unlock()
	for _, exec := range execs {
		if c, ok := exec.(io.Closer); ok {
			if err := c.Close(); err != nil {
				t.Errorf("closing the executor (its io.Closer) failed: %v", err)
			}
		}
	}
	if k.udp != nil {
		k.udp.close()
	}
}

// Gone implements kit.State.
func (k *pushKit) Gone() error {
	if k.Exited() {
		return errors.New("its process exited")
	}
	if k.stream != nil {
		select {
		case <-k.stream.done:
			return k.stream.err
		default:
		}
	}
	return nil
}

// ReportPanics implements kit.PanicReporter: it reports the panics of an
// in-process plugin's Push since the last report, and the pushes the kit's
// UDP receivers could not read.
func (k *pushKit) ReportPanics(t kit.Reporter) {
	t.Helper()
	if n, first := k.panics.Take(); n > 0 {
		t.Errorf("Push panicked %s (in its own process, a panic kills the process and every batch in flight: report failures as errors instead); the first time: %s", kit.Plural(n, "time"), first)
	}
	if k.udp == nil {
		return
	}
	if n, first := k.udp.problems(); n > 0 {
		t.Errorf("the kit's UDP receivers got %s that Nacos 1.x clients could not read, and acknowledged none of them. "+
			"A push to a Target.Address is one datagram, gzipped or not, of the JSON "+
			`{"type":"dom","data":"<Batch.ServiceInfo as a JSON string>","lastRefTime":<an integer>}. The first:%s`,
			kit.Plural(n, "datagram"), "\n"+strings.Join(first, "\n"))
	}
}

// guard returns p with its executor wrapped so that a panic in New or Push
// is answered as errors (and, for Push, recorded in ps) instead of crashing
// the test process that serves it; built sees each executor New builds.
func guard(p push.Plugin, ps *kit.Panics, built func(push.Executor)) push.Plugin {
	build := p.New
	p.New = func(config []byte, host push.Host) (exec push.Executor, err error) {
		defer func() {
			if v := recover(); v != nil {
				exec, err = nil, fmt.Errorf("panic in New: %v\n%s", v, kit.PanicStack())
			}
		}()
		if build == nil {
			return nil, errors.New("Plugin.New is nil")
		}
		if exec, err = build(config, host); err != nil {
			return nil, err
		}
		if exec == nil {
			return nil, errors.New("Plugin.New returned neither an executor nor an error")
		}
		built(exec)
		g := guarded{exec, ps}
		if in, ok := exec.(push.Interested); ok {
			return guardedInterested{g, in}, nil
		}
		return g, nil
	}
	return p
}

type guarded struct {
	push.Executor
	panics *kit.Panics
}

func (g guarded) Push(ctx context.Context, b push.Batch) (errs []error) {
	defer func() {
		if v := recover(); v != nil {
			g.panics.Add(v)
			errs = make([]error, len(b.Targets))
			for i := range errs {
				errs[i] = fmt.Errorf("%s%v", panicked, v)
			}
		}
	}()
	return g.Executor.Push(ctx, b)
}

// panicked starts the errors of a batch whose Push panicked.
const panicked = "pushtest: Push panicked: "

type guardedInterested struct {
	guarded
	push.Interested
}
