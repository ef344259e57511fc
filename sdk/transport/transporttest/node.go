package transporttest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/transport"
)

// transportKit is one run of the checks: two instances of the plugin, the
// nodes A and B, and what the checks learnt so far.
type transportKit struct {
	opts Options
	a, b *node
	// strangers are the blocks of Auth.Refused, checked against the plugin's
	// schema.
	strangers map[string][]byte
}

func newKit(opts Options) *transportKit {
	return &transportKit{opts: opts, a: newNode("A", opts), b: newNode("B", opts)}
}

// block is the configuration block of a node whose own is own (nil for
// none): own laid over Options.Config.
func (k *transportKit) block(own map[string]any) map[string]any {
	if own == nil {
		return k.opts.Config
	}
	b := maps.Clone(k.opts.Config)
	if b == nil {
		b = map[string]any{}
	}
	maps.Copy(b, own)
	return b
}

func (k *transportKit) nodes() []*node { return []*node{k.a, k.b} }

// node is one instance of the plugin under test, as one Sextant server runs
// it: its process (or in-process server), the fake Inbound the kit serves
// it, and the kit's end of its Call stream.
type node struct {
	kit.Process
	name    string // "A" or "B"
	self    string // the node's HTTP address, as its peers are told
	address string // where it listens for peers, once it does
	config  []byte // its configuration block, checked against the schema
	inbound *inbound
	panics  kit.Panics // of an in-process plugin's transport

	calls    *callStream
	endCalls context.CancelFunc
	closed   bool // the kit closed the node's transport (the close check)
}

func newNode(name string, opts Options) *node {
	n := &node{
		name:    name,
		self:    "node-" + strings.ToLower(name) + ".transporttest:8848",
		inbound: newInbound(name),
	}
	n.Process = kit.Process{Kind: wire.KindTransport, Binary: opts.Binary, Who: "node " + name + "'s plugin"}
	if opts.Plugin != nil {
		n.Plugin = guard(*opts.Plugin, &n.panics)
	}
	return n
}

// configure serves the node's inbound to the plugin over the broker and
// hands the plugin config.
func (n *node) configure(ctx context.Context, config []byte) error {
	id, err := n.ServeHost(ctx, func(s *grpc.Server) { pluginv1.RegisterInboundServer(s, inboundServer{in: n.inbound}) })
	if err != nil {
		return err
	}
	_, err = pluginv1.NewPluginClient(n.Conn).Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config, HostBrokerId: id})
	return err
}

// openCalls opens the node's Call stream.
func (n *node) openCalls() error {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := n.rpc().Call(ctx, wire.CallOptions...)
	if err != nil {
		cancel()
		return err
	}
	n.calls, n.endCalls = newCallStream(s), cancel
	return nil
}

// rpc is the node's plugin's Transport service.
func (n *node) rpc() pluginv1.TransportClient { return pluginv1.NewTransportClient(n.Conn) }

// close releases the node's hanging inbound calls and stops its plugin.
func (n *node) close(t kit.Reporter) {
	t.Helper()
	n.inbound.release()
	if n.endCalls != nil {
		n.endCalls()
	}
	if err := n.Shutdown(); err != nil {
		t.Errorf("node %s: %v", n.name, err)
	}
}

// gone says why the node's plugin can no longer be reached, if it cannot.
func (n *node) gone() error {
	if n.Exited() {
		return fmt.Errorf("node %s's plugin process exited", n.name)
	}
	if n.calls != nil && !n.closed {
		select {
		case <-n.calls.done:
			return fmt.Errorf("node %s: %w", n.name, n.calls.err)
		default:
		}
	}
	return nil
}

func (k *transportKit) close(t kit.Reporter) {
	t.Helper()
	for _, n := range k.nodes() {
		n.close(t)
	}
}

// Gone implements kit.State.
func (k *transportKit) Gone() error {
	for _, n := range k.nodes() {
		if err := n.gone(); err != nil {
			return err
		}
	}
	return nil
}

// StderrTail implements kit.State.
func (k *transportKit) StderrTail() string {
	return k.a.StderrTail() + k.b.StderrTail()
}

// ReportPanics implements kit.PanicReporter: it reports the panics of the
// in-process plugins' transports since the last report.
func (k *transportKit) ReportPanics(t kit.Reporter) {
	t.Helper()
	for _, n := range k.nodes() {
		if count, first := n.panics.Take(); count > 0 {
			t.Errorf("node %s's transport panicked %s (the SDK answers a panic with an error, but the call fails: report failures as errors instead); the first time: %s",
				n.name, kit.Plural(count, "time"), first)
		}
	}
}

// guard returns p with its transport wrapped so that a panic in New or in
// one of its methods is recorded in ps and answered as an error.
func guard(p transport.Plugin, ps *kit.Panics) transport.Plugin {
	build := p.New
	p.New = func(config []byte, host transport.Host) (t transport.Transport, err error) {
		defer func() {
			if v := recover(); v != nil {
				t, err = nil, fmt.Errorf("panic in New: %v\n%s", v, kit.PanicStack())
			}
		}()
		if build == nil {
			return nil, errors.New("Plugin.New is nil")
		}
		if t, err = build(config, host); err != nil || t == nil {
			return t, err
		}
		return guarded{t, ps}, nil
	}
	return p
}

type guarded struct {
	transport.Transport
	panics *kit.Panics
}

// recovered records a panic in method and returns it as *err.
func (g guarded) recovered(method string, err *error) {
	if v := recover(); v != nil {
		g.panics.Add(v)
		*err = fmt.Errorf("transporttest: %s panicked: %v", method, v)
	}
}

func (g guarded) Listen(ctx context.Context, address, self string) (err error) {
	defer g.recovered("Listen", &err)
	return g.Transport.Listen(ctx, address, self)
}

func (g guarded) Call(ctx context.Context, target, kind string, payload []byte) (answer []byte, err error) {
	defer g.recovered("Call", &err)
	return g.Transport.Call(ctx, target, kind, payload)
}

func (g guarded) Snapshot(ctx context.Context, target string, fn func([]byte) error) (err error) {
	defer g.recovered("Snapshot", &err)
	return g.Transport.Snapshot(ctx, target, fn)
}

func (g guarded) Close() (err error) {
	defer g.recovered("Close", &err)
	return g.Transport.Close()
}
