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
	"github.com/sextantd/sextant/sdk/membership"
	sdkpush "github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/transport"
)

// Restart backoff after a plugin dies: the first restart is quick, repeated
// failures slow down.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 10 * time.Second
	startTimeout = 15 * time.Second
)

// pluginSets are the plugins a host can dispense from any plugin binary, by
// kind; a binary serves one.
var pluginSets = func() goplugin.PluginSet {
	set := goplugin.PluginSet{}
	for _, s := range []goplugin.PluginSet{sdkpush.PluginSet(), membership.PluginSet(), transport.PluginSet()} {
		for name, p := range s {
			set[name] = p
		}
	}
	return set
}()

// instance is a plugin in use: what the host calls, and how it ends.
type instance[T any] struct {
	value T
	// done is closed when the instance stops working (its process died);
	// nil for an in-process instance, which does not.
	done <-chan struct{}
	// close releases it.
	close func()
}

// kind adapts the supervisor to one kind of plugin.
type kind[T any] struct {
	name sdk.Kind
	// dispense is the go-plugin name to dispense the plugin by.
	dispense string
	// attach checks what a freshly started process is, configures it and
	// starts using it.
	attach func(ctx context.Context, raw any) (instance[T], error)
	// inProcess builds the built-in inside the server.
	inProcess func() (instance[T], error)
}

// supervisor runs one plugin — in process, or as a process it restarts with
// backoff whenever it dies — and hands out its current instance.
type supervisor[T any] struct {
	spec Spec
	kind kind[T]
	host *Host
	log  hclog.Logger

	mu       sync.Mutex
	current  *instance[T]     // nil while the process restarts
	up       chan struct{}    // closed while current is set
	proc     *goplugin.Client // the running process, if out of process
	stopping bool
	stopped  chan struct{} // closed by stop
	done     chan struct{} // closed when supervision has ended
}

func newSupervisor[T any](h *Host, spec Spec, k kind[T]) *supervisor[T] {
	return &supervisor[T]{spec: spec, kind: k, host: h, log: h.cfg.Logger.Named(spec.Name),
		up: make(chan struct{}), stopped: make(chan struct{}), done: make(chan struct{})}
}

// start runs the plugin once, failing with what went wrong.
func (s *supervisor[T]) start(ctx context.Context) error {
	if s.spec.InProcess {
		defer close(s.done)
		if s.spec.Path != "" {
			return errors.New("in_process is only for built-in plugins, and this one has a path")
		}
		inst, err := s.kind.inProcess()
		if err != nil {
			return err
		}
		s.set(inst, nil)
		s.log.Info("plugin running in process", "kind", s.kind.name)
		return nil
	}
	proc, inst, err := s.launch(ctx)
	if err != nil {
		close(s.done)
		return err
	}
	s.set(inst, proc)
	s.log.Info("plugin started", "kind", s.kind.name, "pid", proc.ReattachConfig().Pid)
	go s.supervise(inst)
	return nil
}

// launch starts the plugin's process and attaches to it.
func (s *supervisor[T]) launch(ctx context.Context) (*goplugin.Client, instance[T], error) {
	var none instance[T]
	cmd, err := s.command()
	if err != nil {
		return nil, none, err
	}
	cmd.Env = append(os.Environ(), sdk.LogLevelEnv+"="+s.log.GetLevel().String())
	cfg := &goplugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{sdk.ProtocolVersion: pluginSets},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     startTimeout,
		Logger:           fixedName{s.log},
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))},
	}
	if s.spec.SHA256 != "" {
		sum, err := hex.DecodeString(s.spec.SHA256)
		if err != nil {
			return nil, none, fmt.Errorf("sha256 %q is not hex: %w", s.spec.SHA256, err)
		}
		cfg.SecureConfig = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := goplugin.NewClient(cfg)
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, none, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	raw, err := rpc.Dispense(s.kind.dispense)
	if err != nil {
		client.Kill()
		return nil, none, fmt.Errorf("%s does not serve %s plugins: %w", cmd.Path, s.kind.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	inst, err := s.kind.attach(ctx, raw)
	if err != nil {
		client.Kill()
		return nil, none, err
	}
	return client, inst, nil
}

// command returns how to run the plugin: its own binary, or this one.
func (s *supervisor[T]) command() (*exec.Cmd, error) {
	if s.spec.Path == "" {
		if !s.host.cfg.Builtins.has(s.spec.Name) {
			return nil, errors.New("no built-in plugin has this name, and no path is set")
		}
		return exec.Command(s.host.cfg.Executable, "plugin", s.spec.Name), nil
	}
	if _, err := os.Stat(s.spec.Path); err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	if s.spec.SHA256 != "" {
		if err := checkSHA256(s.spec.Path, s.spec.SHA256); err != nil {
			return nil, err
		}
	}
	return exec.Command(s.spec.Path), nil
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

// set makes inst the current instance, unless the plugin is stopping (then
// it is released); it reports whether inst was taken.
func (s *supervisor[T]) set(inst instance[T], proc *goplugin.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		release(inst, proc)
		return false
	}
	s.current, s.proc = &inst, proc
	close(s.up)
	return true
}

func release[T any](inst instance[T], proc *goplugin.Client) {
	if inst.close != nil {
		inst.close()
	}
	if proc != nil {
		proc.Kill()
	}
}

// supervise restarts the plugin whenever its instance dies, until stop.
func (s *supervisor[T]) supervise(inst instance[T]) {
	defer close(s.done)
	for {
		select {
		case <-inst.done:
		case <-s.stopped:
			return
		}
		s.mu.Lock()
		proc := s.proc
		s.current, s.proc, s.up = nil, nil, make(chan struct{})
		s.mu.Unlock()
		release(inst, proc)
		s.host.metrics.restarts.WithLabelValues(s.spec.Name).Inc()
		s.log.Warn("plugin exited; restarting")
		var ok bool
		if inst, ok = s.restart(); !ok {
			return
		}
	}
}

// restart launches the plugin again, with growing backoff, until it runs or
// the plugin is stopped (then it reports false).
func (s *supervisor[T]) restart() (instance[T], bool) {
	for backoff := firstBackoff; ; backoff = min(2*backoff, maxBackoff) {
		select {
		case <-s.stopped:
			return instance[T]{}, false
		case <-time.After(backoff):
		}
		proc, inst, err := s.launch(context.Background())
		if err != nil {
			s.log.Error("restarting the plugin failed", "error", err, "next_try_in", 2*backoff)
			continue
		}
		if !s.set(inst, proc) {
			return instance[T]{}, false
		}
		s.log.Info("plugin restarted", "pid", proc.ReattachConfig().Pid)
		return inst, true
	}
}

// await returns the current instance's value, waiting for a restart to
// finish until ctx is done or the plugin stops (then false).
func (s *supervisor[T]) await(ctx context.Context) (T, bool) {
	for {
		s.mu.Lock()
		cur, up := s.current, s.up
		s.mu.Unlock()
		if cur != nil {
			return cur.value, true
		}
		select {
		case <-up:
		case <-ctx.Done():
			var zero T
			return zero, false
		case <-s.stopped:
			var zero T
			return zero, false
		}
	}
}

func (s *supervisor[T]) stop() {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	close(s.stopped)
	cur, proc := s.current, s.proc
	s.current, s.proc = nil, nil
	s.mu.Unlock()
	if cur != nil {
		release(*cur, proc)
	}
	<-s.done
}

// fixedName is a logger that keeps its name: go-plugin names the plugin's
// log after its binary, which for built-ins is the server's own.
type fixedName struct{ hclog.Logger }

func (f fixedName) Named(string) hclog.Logger      { return f }
func (f fixedName) ResetNamed(string) hclog.Logger { return f }

// checkSchema validates a described plugin's kind and schema, and the user's
// block against the schema.
func checkSchema(want, got sdk.Kind, schema sdk.Schema, block map[string]any) ([]byte, error) {
	if got != want {
		return nil, fmt.Errorf("is a %q plugin, not a %s plugin", got, want)
	}
	if err := schema.Validate(); err != nil {
		return nil, fmt.Errorf("declares an invalid configuration schema: %w", err)
	}
	return schema.Check(block)
}
