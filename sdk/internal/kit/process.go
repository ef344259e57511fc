package kit

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"

	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/internal/wire"
)

// Process is a plugin under test as a host reaches it: a binary launched as
// the server launches it (sdk/host's ClientConfig), or a Plugin value served
// inside the test process over a real go-plugin gRPC connection. Every kit
// runs its plugins through one. Set the fields above Host, then Start it.
type Process struct {
	// Kind is the kind of the plugin.
	Kind wire.Kind
	// Binary is the path of the plugin's executable; "" to serve Plugin.
	Binary string
	// Plugin is the Plugin value of Kind (a push.Plugin, ...) to serve in
	// process when Binary is "". The kit's package must import the kind's
	// package, which registers how to serve it.
	Plugin any
	// Who names the plugin in messages: "the plugin", "node A's plugin".
	Who string
	// Debug runs a binary at debug log level instead of info.
	Debug bool
	// Lines, when set, sees each line a binary writes to its standard
	// error; the output shown in messages keeps only the lines it returns
	// true for.
	Lines func(line string) bool

	// Host is the plugin as host.Dispense returns it — a *host.Push,
	// *host.Membership or *host.Transport — once Start has succeeded.
	Host any
	// Broker is the plugin connection's broker, over which a kit serves the
	// host's services to the plugin (ServeHost).
	Broker *plugin.GRPCBroker
	// Conn is the plugin connection, for a kit to speak the protocol itself
	// and see what the plugin really answers, and when.
	Conn *grpc.ClientConn

	info    host.Process
	client  *plugin.Client
	rpc     plugin.ClientProtocol
	stop    func() error // stops serving an in-process plugin
	stderr  output
	mu      sync.Mutex
	servers []*grpc.Server // serving the host's services to the plugin
}

// Start launches the plugin, or serves it in process, and dispenses it.
func (p *Process) Start() error {
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Info})
	if p.Debug {
		logger.SetLevel(hclog.Debug)
	}
	cmd := &exec.Cmd{} // only for ClientConfig, when serving in process
	if p.Binary != "" {
		cmd = exec.Command(p.Binary)
	}
	// The server's configuration, with the plugin's log level in cmd's
	// environment, but dispensing the kit's remotes.
	cfg := host.ClientConfig(cmd, logger)
	set := remoteSet(cfg.VersionedPlugins[wire.ProtocolVersion])
	cfg.VersionedPlugins = map[int]plugin.PluginSet{wire.ProtocolVersion: set}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Off})
	cfg.StartTimeout = ResultWait
	if p.Binary != "" {
		p.stderr.lines = p.Lines
		cfg.Stderr = &p.stderr
	} else {
		reattach, err := p.serve()
		if err != nil {
			return err
		}
		// A reattached client takes the version the server chose, and
		// dispenses from Plugins.
		cfg.Cmd, cfg.AutoMTLS, cfg.Reattach, cfg.Plugins = nil, false, reattach, set
	}
	p.client = plugin.NewClient(cfg)
	rpc, err := p.client.Client()
	p.rpc = rpc
	if err != nil {
		return err
	}
	raw, err := host.Dispense(rpc, p.Kind)
	if err != nil {
		return fmt.Errorf("it serves no %s plugin (serve it with %s.Serve): %w", p.Kind, p.Kind, err)
	}
	r := raw.(*remote)
	p.Host, p.Broker, p.Conn, p.info = r.host, r.broker, r.conn, r.process
	return nil
}

// serve serves Plugin as its kind's Serve would, in go-plugin's test mode,
// and returns how to reach it.
func (p *Process) serve() (*plugin.ReattachConfig, error) {
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	cfg := wire.ServeConfig(wire.ServedSet(p.Kind, p.Plugin), hclog.NewNullLogger())
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
	go plugin.Serve(cfg)
	// The client's Close stops the server (go-plugin's Shutdown call); the
	// context only frees it after, since stopping it both ways at once races.
	p.stop = func() error {
		defer cancel()
		if p.rpc != nil {
			_ = p.rpc.Close()
		}
		select {
		case <-closed:
			// In test mode, go-plugin never closes the pipes it made for
			// the plugin's stdout and stderr, whose readers it copies from
			// on goroutines of their own; the pipes close, and the
			// goroutines end, once the collector finalizes them. Collect
			// now, not whenever: the test's leak check would see them.
			runtime.GC()
			return nil
		case <-time.After(ResultWait):
			return fmt.Errorf("the in-process plugin did not stop within %v", ResultWait)
		}
	}
	select {
	case r := <-reattach:
		r.ReattachFunc = func() (runner.AttachedRunner, error) { return inProcess{closed}, nil }
		return r, nil
	case <-closed:
		cancel()
		return nil, errors.New("go-plugin could not serve the plugin in process")
	}
}

// ServeHost serves the host's services to the plugin over the broker, as
// the server does, with register adding them to the gRPC server; it returns
// the broker id the plugin's Configure call must carry, once the plugin can
// dial it. Shutdown stops the server.
func (p *Process) ServeHost(ctx context.Context, register func(*grpc.Server)) (uint32, error) {
	return wire.ServeOnBroker(ctx, p.Broker, func(s *grpc.Server) {
		register(s)
		p.mu.Lock()
		p.servers = append(p.servers, s)
		p.mu.Unlock()
	})
}

// Shutdown stops serving the host's services, then kills the plugin's
// process, or stops serving it in process.
func (p *Process) Shutdown() error {
	p.mu.Lock()
	servers := p.servers
	p.servers = nil
	p.mu.Unlock()
	for _, s := range servers {
		s.Stop() // a graceful stop would wait for the plugin to end its streams
	}
	if p.stop != nil {
		return p.stop()
	}
	if p.client != nil {
		p.client.Kill()
	}
	return nil
}

// Exited reports whether the plugin's process has exited.
func (p *Process) Exited() bool { return p.client != nil && p.client.Exited() }

// StderrTail returns, for a message, what a plugin binary wrote since the
// last message — all of it, if the process is exiting — as a paragraph of
// its own; "" for none.
func (p *Process) StderrTail() string {
	if p.Binary == "" {
		return ""
	}
	if p.Host != nil {
		select {
		case <-p.info.Exited():
		case <-time.After(Grace):
		}
	}
	if s := p.stderr.take(); s != "" {
		return "\n" + p.Who + "'s last output:\n" + s
	}
	return ""
}

// Handshake is the check every kit starts with: it starts the plugin and
// checks that it speaks Sextant's protocol version.
func (p *Process) Handshake(t Reporter) {
	t.Helper()
	if err := p.Start(); err != nil {
		t.Fatalf("%s did not start and accept Sextant's handshake: %v%s", p.Who, err, p.StderrTail())
	}
	if v := p.client.NegotiatedVersion(); v != wire.ProtocolVersion {
		t.Fatalf("%s speaks protocol version %d, want %d", p.Who, v, wire.ProtocolVersion)
	}
}

// Describe is the check every kit runs second: it asks the plugin what it
// is and checks what every plugin says of itself — its kind, name, version
// and configuration schema, which must accept config and refuse an unknown
// key by name. It returns what the plugin said, and config as the schema
// encodes it.
func (p *Process) Describe(t Reporter, config map[string]any) (host.Description, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ResultWait)
	defer cancel()
	d, err := p.info.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe (the Info call) failed: %v%s", err, p.StderrTail())
	}
	return d, checkInfo(t, d.Info, string(d.Kind), string(p.Kind), config)
}

// remoteSet wraps the host side's plugin set so that what it dispenses
// keeps its connection too.
func remoteSet(hostSet plugin.PluginSet) plugin.PluginSet {
	set := plugin.PluginSet{}
	for name, p := range hostSet {
		set[name] = remotePlugin{host: p.(plugin.GRPCPlugin)}
	}
	return set
}

// remotePlugin dispenses a plugin as the host does, and keeps the
// connection to it.
type remotePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	host plugin.GRPCPlugin
}

// remote is a dispensed plugin.
type remote struct {
	host    any
	process host.Process
	broker  *plugin.GRPCBroker
	conn    *grpc.ClientConn
}

func (remotePlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("kit: the host side of plugins only")
}

func (r remotePlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	h, err := r.host.GRPCClient(ctx, broker, conn)
	if err != nil {
		return nil, err
	}
	var p host.Process
	switch h := h.(type) {
	case *host.Push:
		p = h.Process
	case *host.Membership:
		p = h.Process
	case *host.Transport:
		p = h.Process
	default:
		return nil, fmt.Errorf("kit: sdk/host dispensed a %T", h)
	}
	return &remote{host: h, process: p, broker: broker, conn: conn}, nil
}

// inProcess is the go-plugin runner of a plugin served in the test process:
// it runs until serving stops. (go-plugin's own would wait for the test
// process itself to exit.)
type inProcess struct{ closed <-chan struct{} }

func (r inProcess) Wait(ctx context.Context) error {
	select {
	case <-r.closed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (inProcess) Kill(context.Context) error { return nil }
func (inProcess) ID() string                 { return "in-process" }

func (inProcess) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (inProcess) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// output takes a plugin binary's standard error, line by line (go-plugin
// writes it so), and keeps the last bytes of the lines that lines keeps.
type output struct {
	lines func(line string) bool

	mu     sync.Mutex
	line   []byte // the line being written
	b      []byte // the tail
	unread int    // the last bytes of b, not yet taken
}

// tailBytes bounds what output keeps.
const tailBytes = 8 << 10

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for rest := p; len(rest) > 0; {
		i := strings.IndexByte(string(rest), '\n')
		if i < 0 {
			o.line = append(o.line, rest...)
			break
		}
		o.line = append(o.line, rest[:i+1]...)
		rest = rest[i+1:]
		if o.lines == nil || o.lines(string(o.line)) {
			o.keep(o.line)
		}
		o.line = o.line[:0]
	}
	return len(p), nil
}

func (o *output) keep(line []byte) {
	o.b = append(o.b, line...)
	if len(o.b) > tailBytes {
		o.b = o.b[len(o.b)-tailBytes:]
	}
	o.unread = min(o.unread+len(line), len(o.b))
}

// take returns what was kept since the last take.
func (o *output) take() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.b[len(o.b)-o.unread:]
	o.unread = 0
	return strings.TrimSpace(string(s))
}
