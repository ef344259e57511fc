package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sextantd/sextant/sdk"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

// Restart backoff after a plugin dies: the first restart is quick, repeated
// failures slow down.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 10 * time.Second
	startTimeout = 15 * time.Second
)

var errRestarting = errors.New("the push plugin is restarting")

// plugin is one configured plugin: an in-process executor, or a supervised
// process.
type plugin struct {
	spec Spec
	host *Host
	log  hclog.Logger
	// role and interest are what the plugin declared when it first started.
	role     sdkpush.Role
	interest sdkpush.Interest

	mu       sync.Mutex
	current  sdkpush.Executor // nil while the process restarts
	up       chan struct{}    // closed while current is set
	proc     *process         // the running process, if out of process
	stopping bool
	stopped  chan struct{} // closed by stop
	done     chan struct{} // closed when supervision has ended
}

// process is one run of a plugin binary.
type process struct {
	client *goplugin.Client
	exec   *sdkpush.RemoteExecutor
	exited <-chan struct{}
	cancel context.CancelFunc // ends the push stream
}

func (pr *process) kill() {
	pr.cancel()
	pr.client.Kill()
}

func (p *plugin) start(ctx context.Context) error {
	p.stopped, p.done, p.up = make(chan struct{}), make(chan struct{}), make(chan struct{})
	if p.spec.InProcess {
		defer close(p.done)
		return p.startInProcess()
	}
	pr, desc, interest, err := p.launch(ctx)
	if err != nil {
		close(p.done)
		return err
	}
	p.role, p.interest = desc.Role, interest
	p.setProcess(pr)
	p.log.Info("plugin started", "plugin", desc.Name, "version", desc.Version, "role", desc.Role, "pid", pr.client.ReattachConfig().Pid)
	go p.supervise(pr)
	return nil
}

func (p *plugin) startInProcess() error {
	builtin, ok := p.host.cfg.Builtins[p.spec.Name]
	if !ok || p.spec.Path != "" {
		return errors.New("in_process is only for built-in plugins, and " + p.spec.Name + " is not one")
	}
	if err := checkRole(builtin.Role); err != nil {
		return err
	}
	config, err := builtin.Config.Check(p.spec.Config)
	if err != nil {
		return err
	}
	exec, interest, err := sdkpush.NewExecutor(builtin, config, sdkpush.Host{Connections: p.host.cfg.Connections, Logger: p.log})
	if err != nil {
		return err
	}
	p.role, p.interest, p.current = builtin.Role, interest, exec
	close(p.up)
	p.log.Info("plugin running in process", "role", builtin.Role)
	return nil
}

// command returns how to run the plugin: its own binary, or this one.
func (p *plugin) command() (*exec.Cmd, error) {
	if p.spec.Path == "" {
		if _, ok := p.host.cfg.Builtins[p.spec.Name]; !ok {
			return nil, errors.New("no built-in plugin has this name, and no path is set")
		}
		return exec.Command(p.host.cfg.Executable, "plugin", p.spec.Name), nil
	}
	if _, err := os.Stat(p.spec.Path); err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	if p.spec.SHA256 != "" {
		if err := checkSHA256(p.spec.Path, p.spec.SHA256); err != nil {
			return nil, err
		}
	}
	return exec.Command(p.spec.Path), nil
}

func checkSHA256(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("binary %s has SHA-256 %s, but the configuration requires %s", path, got, want)
	}
	return nil
}

// launch starts the plugin process, checks what it is, configures it and
// opens its push stream.
func (p *plugin) launch(ctx context.Context) (*process, sdkpush.Description, sdkpush.Interest, error) {
	var desc sdkpush.Description
	cmd, err := p.command()
	if err != nil {
		return nil, desc, sdkpush.Interest{}, err
	}
	cmd.Env = append(os.Environ(), sdk.LogLevelEnv+"="+p.log.GetLevel().String())
	cfg := &goplugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{sdk.ProtocolVersion: sdkpush.PluginSet()},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     startTimeout,
		Logger:           fixedName{p.log},
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))},
	}
	if p.spec.SHA256 != "" {
		sum, err := hex.DecodeString(p.spec.SHA256)
		if err != nil {
			return nil, desc, sdkpush.Interest{}, fmt.Errorf("sha256 %q is not hex: %w", p.spec.SHA256, err)
		}
		cfg.SecureConfig = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := goplugin.NewClient(cfg)
	fail := func(err error) (*process, sdkpush.Description, sdkpush.Interest, error) {
		client.Kill()
		return nil, desc, sdkpush.Interest{}, err
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(fmt.Errorf("starting %s: %w", cmd.Path, err))
	}
	raw, err := rpc.Dispense(sdkpush.DispenseName)
	if err != nil {
		return fail(fmt.Errorf("%s does not serve push plugins: %w", cmd.Path, err))
	}
	pc, ok := raw.(*sdkpush.Client)
	if !ok {
		return fail(fmt.Errorf("%s dispensed %T, not a push plugin", cmd.Path, raw))
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if desc, err = pc.Describe(ctx); err != nil {
		return fail(fmt.Errorf("describing itself: %w", err))
	}
	if desc.Kind != sdk.KindPush {
		return fail(fmt.Errorf("is a %q plugin, not a push plugin", desc.Kind))
	}
	if err := checkRole(desc.Role); err != nil {
		return fail(err)
	}
	if err := desc.Config.Validate(); err != nil {
		return fail(fmt.Errorf("declares an invalid configuration schema: %w", err))
	}
	config, err := desc.Config.Check(p.spec.Config)
	if err != nil {
		return fail(err)
	}
	interest, err := pc.Configure(ctx, config, p.host.cfg.Connections)
	if err != nil {
		return fail(fmt.Errorf("configuring: %w", err))
	}
	if desc.Role == sdkpush.RoleSPI {
		if err := interest.Validate(); err != nil {
			return fail(fmt.Errorf("an spi plugin must declare what it serves: %w", err))
		}
	}
	streamCtx, cancelStream := context.WithCancel(context.Background())
	exec, err := pc.Executor(streamCtx)
	if err != nil {
		cancelStream()
		return fail(fmt.Errorf("opening the push stream: %w", err))
	}
	return &process{client: client, exec: exec, exited: pc.Exited(), cancel: cancelStream}, desc, interest, nil
}

func checkRole(r sdkpush.Role) error {
	switch r {
	case sdkpush.RoleRPC, sdkpush.RoleUDP, sdkpush.RoleSPI:
		return nil
	}
	return fmt.Errorf("declares the unknown push role %q (want rpc, udp or spi)", r)
}

// setProcess makes pr the one pushes go to, unless the plugin is stopping
// (then pr is killed); it reports whether pr was taken.
func (p *plugin) setProcess(pr *process) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		pr.kill()
		return false
	}
	p.proc, p.current = pr, pr.exec
	close(p.up)
	return true
}

// supervise restarts the plugin whenever its process exits, until stop.
func (p *plugin) supervise(pr *process) {
	defer close(p.done)
	for {
		select {
		case <-pr.exited:
		case <-pr.exec.Done():
		case <-p.stopped:
			return
		}
		p.mu.Lock()
		p.current, p.proc, p.up = nil, nil, make(chan struct{})
		p.mu.Unlock()
		pr.kill()
		p.host.metrics.restarts.WithLabelValues(p.spec.Name).Inc()
		p.log.Warn("plugin exited; restarting")
		if pr = p.restart(); pr == nil {
			return
		}
	}
}

// restart launches the plugin again, with growing backoff, until it runs or
// the plugin is stopped (then it returns nil).
func (p *plugin) restart() *process {
	for backoff := firstBackoff; ; backoff = min(2*backoff, maxBackoff) {
		select {
		case <-p.stopped:
			return nil
		case <-time.After(backoff):
		}
		pr, _, _, err := p.launch(context.Background())
		if err != nil {
			p.log.Error("restarting the plugin failed", "error", err, "next_try_in", 2*backoff)
			continue
		}
		if !p.setProcess(pr) {
			return nil
		}
		p.log.Info("plugin restarted", "pid", pr.client.ReattachConfig().Pid)
		return pr
	}
}

func (p *plugin) stop() {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return
	}
	p.stopping = true
	close(p.stopped)
	pr := p.proc
	p.current, p.proc = nil, nil
	p.mu.Unlock()
	if pr != nil {
		pr.kill()
	}
	<-p.done
}

// Push sends b through the plugin's current executor. While the plugin
// restarts, Push waits for it (within ctx) rather than failing at once: the
// batch then goes out as soon as the new process is up, instead of after the
// push engine's retry delay.
func (p *plugin) Push(ctx context.Context, b sdkpush.Batch) []error {
	start := time.Now()
	exec := p.awaitCurrent(ctx)
	var errs []error
	if exec == nil {
		errs = make([]error, len(b.Targets))
		for i := range errs {
			errs[i] = errRestarting
		}
	} else {
		errs = exec.Push(ctx, b)
	}
	p.host.metrics.observe(p.spec.Name, errs, time.Since(start))
	return errs
}

// awaitCurrent returns the current executor, waiting for a restart to finish
// until ctx is done or the plugin stops (then nil).
func (p *plugin) awaitCurrent(ctx context.Context) sdkpush.Executor {
	for {
		p.mu.Lock()
		exec, up := p.current, p.up
		p.mu.Unlock()
		if exec != nil {
			return exec
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil
		case <-p.stopped:
			return nil
		}
	}
}

// fixedName is a logger that keeps its name: go-plugin names the plugin's
// log after its binary, which for built-ins is the server's own.
type fixedName struct{ hclog.Logger }

func (f fixedName) Named(string) hclog.Logger      { return f }
func (f fixedName) ResetNamed(string) hclog.Logger { return f }
