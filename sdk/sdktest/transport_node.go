package sdktest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/transport"
)

// transportKit is one run of the transport checks: two instances of the
// plugin, the nodes A and B, and what the checks learnt so far.
type transportKit struct {
	opts   TransportOptions
	a, b   *node
	config []byte // Config, checked against the plugin's schema
}

func newTransportKit(opts TransportOptions) *transportKit {
	return &transportKit{opts: opts, a: newNode("A", opts), b: newNode("B", opts)}
}

func (k *transportKit) nodes() []*node { return []*node{k.a, k.b} }

// node is one instance of the plugin under test, as one Sextant server runs
// it: its process (or in-process server), the fake Inbound the kit serves
// it, and the kit's end of its Call stream.
type node struct {
	name    string // "A" or "B"
	self    string // the node's HTTP address, as its peers are told
	address string // where it listens for peers, once it does
	opts    TransportOptions
	inbound *inbound
	panics  panics // of an in-process plugin's transport
	stderr  tail   // of a plugin binary

	process
	remote     *transportRemote
	hostServer chan *grpc.Server // serves inbound to the plugin, once configured

	calls      *callStream
	closeCalls context.CancelFunc
	closed     bool // the kit closed the node's transport (the close check)
}

func newNode(name string, opts TransportOptions) *node {
	return &node{
		name:       name,
		self:       "node-" + strings.ToLower(name) + ".sdktest:8848",
		opts:       opts,
		inbound:    newInbound(name),
		hostServer: make(chan *grpc.Server, 1),
	}
}

// start launches the node's plugin, or serves it in process, and dispenses it.
func (n *node) start() error {
	var cmd *exec.Cmd
	var served plugin.PluginSet
	if n.opts.Binary != "" {
		cmd = exec.Command(n.opts.Binary)
	} else {
		served = guardTransport(*n.opts.Plugin, &n.panics).Set()
	}
	if err := n.launch(cmd, &n.stderr, served, plugin.PluginSet{transport.DispenseName: transportHostPlugin{}}); err != nil {
		return err
	}
	raw, err := n.rpc.Dispense(transport.DispenseName)
	if err != nil {
		return fmt.Errorf("it serves no transport plugin (serve it with transport.Serve): %w", err)
	}
	n.remote = raw.(*transportRemote)
	return nil
}

// configure serves the node's inbound to the plugin over the broker and
// hands the plugin config.
func (n *node) configure(ctx context.Context, config []byte) error {
	id := n.remote.broker.NextId()
	go n.remote.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(sdk.MaxMessageSize), grpc.MaxSendMsgSize(sdk.MaxMessageSize))...)
		pluginv1.RegisterInboundServer(s, inboundServer{in: n.inbound})
		n.hostServer <- s
		return s
	})
	_, err := n.remote.pluginRPC.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config, HostBrokerId: id})
	return err
}

// openCalls opens the node's Call stream.
func (n *node) openCalls() error {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := n.remote.transportRPC.Call(ctx, grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))
	if err != nil {
		cancel()
		return err
	}
	n.calls, n.closeCalls = newCallStream(s), cancel
	return nil
}

// close releases the node's hanging inbound calls and stops its plugin.
func (n *node) close(t reporter) {
	t.Helper()
	n.inbound.release()
	if n.closeCalls != nil {
		n.closeCalls()
	}
	select {
	case s := <-n.hostServer:
		s.Stop() // a graceful stop would wait for the plugin to end its streams
	default:
	}
	if err := n.shutdown(); err != nil {
		t.Errorf("node %s: %v", n.name, err)
	}
}

// gone says why the node's plugin can no longer be reached, if it cannot.
func (n *node) gone() error {
	if n.exited() {
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

// stderrTail returns what a plugin binary wrote since the last message.
func (n *node) stderrTail() string {
	if n.opts.Binary == "" {
		return ""
	}
	if n.remote != nil {
		select {
		case <-n.remote.Exited():
		case <-time.After(grace):
		}
	}
	if s := n.stderr.take(); s != "" {
		return fmt.Sprintf("\nnode %s's plugin's last output:\n%s", n.name, s)
	}
	return ""
}

func (k *transportKit) close(t reporter) {
	t.Helper()
	for _, n := range k.nodes() {
		n.close(t)
	}
}

func (k *transportKit) gone() error {
	for _, n := range k.nodes() {
		if err := n.gone(); err != nil {
			return err
		}
	}
	return nil
}

func (k *transportKit) stderrTail() string {
	return k.a.stderrTail() + k.b.stderrTail()
}

// reportPanics reports the panics of the in-process plugins' transports
// since the last report.
func (k *transportKit) reportPanics(t reporter) {
	t.Helper()
	for _, n := range k.nodes() {
		if count, first := n.panics.take(); count > 0 {
			t.Errorf("node %s's transport panicked %s (the SDK answers a panic with an error, but the call fails: report failures as errors instead); the first time: %s",
				n.name, plural(count, "time"), first)
		}
	}
}

// transportHostPlugin dispenses transport plugins on the host side as
// transport.PluginSet does, and keeps the connection so the kit can also
// speak the protocol directly and see what the plugin really answers.
type transportHostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

// transportRemote is a dispensed transport plugin.
type transportRemote struct {
	*transport.Client
	broker       *plugin.GRPCBroker
	pluginRPC    pluginv1.PluginClient
	transportRPC pluginv1.TransportClient
}

func (transportHostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("sdktest: the host side of transport plugins only")
}

func (transportHostPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	c, err := transport.PluginSet()[transport.DispenseName].(plugin.GRPCPlugin).GRPCClient(ctx, broker, conn)
	if err != nil {
		return nil, err
	}
	return &transportRemote{
		Client:       c.(*transport.Client),
		broker:       broker,
		pluginRPC:    pluginv1.NewPluginClient(conn),
		transportRPC: pluginv1.NewTransportClient(conn),
	}, nil
}

// guardTransport returns p with its transport wrapped so that a panic in New
// or in one of its methods is recorded in ps and answered as an error.
func guardTransport(p transport.Plugin, ps *panics) transport.Plugin {
	build := p.New
	p.New = func(config []byte, host transport.Host) (t transport.Transport, err error) {
		defer func() {
			if v := recover(); v != nil {
				t, err = nil, fmt.Errorf("panic in New: %v\n%s", v, panicStack())
			}
		}()
		if build == nil {
			return nil, errors.New("Plugin.New is nil")
		}
		if t, err = build(config, host); err != nil || t == nil {
			return t, err
		}
		return guardedTransport{t, ps}, nil
	}
	return p
}

type guardedTransport struct {
	transport.Transport
	panics *panics
}

// recovered records a panic in method and returns it as *err.
func (g guardedTransport) recovered(method string, err *error) {
	if v := recover(); v != nil {
		g.panics.add(v)
		*err = fmt.Errorf("sdktest: %s panicked: %v", method, v)
	}
}

func (g guardedTransport) Listen(ctx context.Context, address, self string) (err error) {
	defer g.recovered("Listen", &err)
	return g.Transport.Listen(ctx, address, self)
}

func (g guardedTransport) Call(ctx context.Context, target, kind string, payload []byte) (answer []byte, err error) {
	defer g.recovered("Call", &err)
	return g.Transport.Call(ctx, target, kind, payload)
}

func (g guardedTransport) Snapshot(ctx context.Context, target string, fn func([]byte) error) (err error) {
	defer g.recovered("Snapshot", &err)
	return g.Transport.Snapshot(ctx, target, fn)
}

func (g guardedTransport) Close() (err error) {
	defer g.recovered("Close", &err)
	return g.Transport.Close()
}
