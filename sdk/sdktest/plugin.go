package sdktest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/push"
)

// kit is one run of the push checks: the plugin under test, the fake host it
// talks to, and what the checks learnt so far.
type kit struct {
	opts       PushOptions
	host       *host
	deliveries Deliveries
	panics     panics // of an in-process plugin's executor
	stderr     tail   // of a plugin binary

	process
	remote     *remote
	hostServer chan *grpc.Server // serves host to the plugin, once configured

	config      []byte // Config, checked against the plugin's schema
	role        push.Role
	stream      *stream
	closeStream context.CancelFunc
}

func newKit(opts PushOptions) *kit {
	k := &kit{opts: opts, host: newHost(), deliveries: opts.Deliveries, hostServer: make(chan *grpc.Server, 1)}
	if k.deliveries == nil {
		k.deliveries = k.host
	}
	return k
}

// start launches the plugin, or serves it in process, and dispenses it.
func (k *kit) start() error {
	var cmd *exec.Cmd
	var served plugin.PluginSet
	if k.opts.Binary != "" {
		cmd = exec.Command(k.opts.Binary)
	} else {
		served = guard(*k.opts.Plugin, &k.panics).Set()
	}
	if err := k.launch(cmd, &k.stderr, served, plugin.PluginSet{push.DispenseName: hostPlugin{}}); err != nil {
		return err
	}
	raw, err := k.rpc.Dispense(push.DispenseName)
	if err != nil {
		return fmt.Errorf("it serves no push plugin (serve it with push.Serve): %w", err)
	}
	k.remote = raw.(*remote)
	return nil
}

// close releases every delivery still hanging and stops the plugin.
func (k *kit) close(t reporter) {
	t.Helper()
	k.host.release()
	if k.closeStream != nil {
		k.closeStream()
	}
	select {
	case s := <-k.hostServer:
		s.Stop() // a graceful stop would wait for the plugin to end its stream
	default:
	}
	if err := k.shutdown(); err != nil {
		t.Errorf("%v", err)
	}
}

// gone says why the plugin can no longer be reached, if it cannot.
func (k *kit) gone() error {
	if k.exited() {
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

// stderrTail returns, for a message, what a plugin binary wrote since the
// last message — all of it, if the process is exiting.
func (k *kit) stderrTail() string {
	if k.opts.Binary == "" {
		return ""
	}
	if k.remote != nil {
		select {
		case <-k.remote.Exited():
		case <-time.After(grace):
		}
	}
	if s := k.stderr.take(); s != "" {
		return "\nthe plugin's last output:\n" + s
	}
	return ""
}

// hostPlugin dispenses push plugins on the host side as push.PluginSet does,
// and keeps the connection so the kit can also speak the protocol directly
// and see what the plugin really answers.
type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

// remote is a dispensed push plugin.
type remote struct {
	*push.Client
	broker    *plugin.GRPCBroker
	pluginRPC pluginv1.PluginClient
	pushRPC   pluginv1.PushExecutorClient
}

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("sdktest: the host side of push plugins only")
}

func (hostPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	c, err := push.PluginSet()[push.DispenseName].(plugin.GRPCPlugin).GRPCClient(ctx, broker, conn)
	if err != nil {
		return nil, err
	}
	return &remote{
		Client:    c.(*push.Client),
		broker:    broker,
		pluginRPC: pluginv1.NewPluginClient(conn),
		pushRPC:   pluginv1.NewPushExecutorClient(conn),
	}, nil
}

// guard returns p with its executor wrapped so that a panic in New or Push
// is answered as errors (and, for Push, recorded in ps) instead of crashing
// the test process that serves it.
func guard(p push.Plugin, ps *panics) push.Plugin {
	build := p.New
	p.New = func(config []byte, host push.Host) (exec push.Executor, err error) {
		defer func() {
			if v := recover(); v != nil {
				exec, err = nil, fmt.Errorf("panic in New: %v\n%s", v, panicStack())
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
	panics *panics
}

func (g guarded) Push(ctx context.Context, b push.Batch) (errs []error) {
	defer func() {
		if v := recover(); v != nil {
			g.panics.add(v)
			errs = make([]error, len(b.Targets))
			for i := range errs {
				errs[i] = fmt.Errorf("%s%v", panicked, v)
			}
		}
	}()
	return g.Executor.Push(ctx, b)
}

// panicked starts the errors of a batch whose Push panicked.
const panicked = "sdktest: Push panicked: "

type guardedInterested struct {
	guarded
	push.Interested
}

// panics records the panics of an in-process plugin's Push.
type panics struct {
	mu    sync.Mutex
	n     int
	first string // the first one's value and stack
}

func (p *panics) add(v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n++; p.n == 1 {
		p.first = fmt.Sprintf("%v\n%s", v, panicStack())
	}
}

// take returns how many panics there were since the last take, and the first.
func (p *panics) take() (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, first := p.n, p.first
	p.n, p.first = 0, ""
	return n, first
}

// panicStack returns the stack of a recovered panic from the frame that
// panicked down to the kit's own.
func panicStack() string {
	lines := strings.Split(string(debug.Stack()), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			lines = lines[min(i+2, len(lines)):]
			break
		}
	}
	for i, l := range lines {
		if strings.Contains(l, "/sdk/sdktest.") {
			lines = lines[:i]
			break
		}
	}
	return strings.Join(lines, "\n")
}

// tail keeps the last bytes written to it.
type tail struct {
	mu     sync.Mutex
	b      []byte
	unread int // the last bytes of b, not yet taken
}

const tailBytes = 8 << 10

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > tailBytes {
		w.b = w.b[len(w.b)-tailBytes:]
	}
	w.unread = min(w.unread+len(p), len(w.b))
	return len(p), nil
}

// take returns what was written since the last take.
func (w *tail) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.b[len(w.b)-w.unread:]
	w.unread = 0
	return strings.TrimSpace(string(s))
}
