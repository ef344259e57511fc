package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/host"
)

// Restart backoff after a plugin dies: the first restart is quick, repeated
// failures slow down.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 10 * time.Second
	startTimeout = 15 * time.Second
)

// exitWait is how long a plugin whose stream or connection ended is given
// to exit by itself, so that the log says how it ended (its exit status)
// rather than that it was killed. signalGrace is how long the host waits
// for the server to begin stopping (BeginStop) when a plugin died of
// SIGTERM or SIGINT: a signal to the process group reaches the server and
// its plugins at once, and the plugin may die first.
const (
	exitWait    = time.Second
	signalGrace = time.Second
)

// instance is a plugin in use: what the host calls, and how it ends.
type instance[T any] struct {
	value T
	// done is closed when the instance stops working (its process died);
	// nil for an in-process instance, which does not.
	done <-chan struct{}
	// exited is closed once its process has exited; nil in process.
	exited <-chan struct{}
	// close releases it.
	close func()
}

// kind adapts the supervisor to one kind of plugin.
type kind[T any] struct {
	name host.Kind
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
	current  *instance[T]  // nil while the process restarts
	since    time.Time     // when current was set
	up       chan struct{} // closed while current is set
	proc     *process      // the running process, if out of process
	stopping bool
	quiet    atomic.Bool   // set by stop before it releases the instance
	stopped  chan struct{} // closed by stop
	done     chan struct{} // closed when supervision has ended

	// What Status reports beyond the above (status.go), under mu: the
	// deaths of its process, and its last failure.
	restarts  int
	lastErr   string
	lastErrAt time.Time

	// processes bounds the plugin's processes: kill, called once stop has
	// released the instance, ends one still in its handshake too (go-plugin's
	// own Kill waits for a handshake to end first).
	processes context.Context
	kill      context.CancelFunc
}

func newSupervisor[T any](h *Host, spec Spec, k kind[T]) *supervisor[T] {
	processes, kill := context.WithCancel(context.Background())
	return &supervisor[T]{spec: spec, kind: k, host: h, log: h.cfg.Logger.Named(spec.Name),
		up: make(chan struct{}), stopped: make(chan struct{}), done: make(chan struct{}),
		processes: processes, kill: kill}
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
		s.log.Info("plugin running in process", "kind", s.kind.name, "builtin", s.spec.builtin())
		return nil
	}
	proc, inst, err := s.launch(ctx)
	if err != nil {
		close(s.done)
		return err
	}
	s.set(inst, proc)
	s.log.Info("plugin started", append([]any{"kind", s.kind.name, "pid", proc.pid()}, s.binary()...)...)
	go s.supervise(inst)
	return nil
}

// binary returns what the log says of the plugin's binary: its path and
// SHA-256, and for a built-in its name (the path is the server's own
// binary's).
func (s *supervisor[T]) binary() []any {
	if b := s.spec.builtin(); b != "" {
		return []any{"path", s.host.cfg.Executable, "builtin", b, "sha256", hex.EncodeToString(s.host.executableSum)}
	}
	return []any{"path", s.spec.Path, "sha256", s.host.sha256Of(s.spec.Path)}
}

// launch starts the plugin's process and attaches to it.
func (s *supervisor[T]) launch(ctx context.Context) (*process, instance[T], error) {
	var none instance[T]
	cmd, err := s.command()
	if err != nil {
		return nil, none, err
	}
	cfg := host.ClientConfig(cmd, fixedName{Logger: s.log, stopping: s.beingStopped})
	cfg.StartTimeout = startTimeout
	stderr := &stderrTail{}
	cfg.Stderr = stderr
	switch {
	case s.spec.Path == "":
		// A built-in runs from the server's own binary, as it was at Start.
		cfg.SecureConfig = &goplugin.SecureConfig{Checksum: s.host.executableSum, Hash: sha256.New()}
	case s.spec.SHA256 != "":
		sum, err := hex.DecodeString(s.spec.SHA256)
		if err != nil {
			return nil, none, fmt.Errorf("sha256 %q is not hex: %w", s.spec.SHA256, err)
		}
		cfg.SecureConfig = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	// The process makes its socket in a directory of its own, removed
	// once it is gone; the host's services ride that socket, so the host
	// makes none. ClientConfig has put the environment in cmd.Env already,
	// so that this setting comes last and counts.
	dir, err := s.host.sockets.dir()
	if err != nil {
		return nil, none, err
	}
	cmd.Env = append(cmd.Env, goplugin.EnvUnixSocketDir+"="+dir)
	cfg.SkipHostEnv = true
	cfg.GRPCBrokerMultiplex = true
	proc := &process{client: goplugin.NewClient(cfg), dir: dir, cmd: cmd}
	rpc, err := proc.client.Client()
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch) && s.spec.Path == "":
		proc.kill()
		return nil, none, fmt.Errorf("the server's binary %s has changed since the server started (its SHA-256 differs), so its built-in plugins are not run from it: restart the server", cmd.Path)
	case err != nil:
		proc.kill() // and wait for it: its stderr has been read then
		return nil, none, proc.said(fmt.Errorf("starting %s: %w", cmd.Path, err), stderr)
	}
	stderr.close()
	proc.osPID = proc.client.ReattachConfig().Pid
	raw, err := host.Dispense(rpc, s.kind.name)
	if err != nil {
		proc.kill()
		return nil, none, fmt.Errorf("%s does not serve %s plugins: %w", cmd.Path, s.kind.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	inst, err := s.kind.attach(ctx, raw)
	if err != nil {
		proc.kill()
		return nil, none, err
	}
	return proc, inst, nil
}

// command returns how to run the plugin: its own binary, or this one.
func (s *supervisor[T]) command() (*exec.Cmd, error) {
	if b := s.spec.builtin(); b != "" {
		if !s.host.cfg.Builtins.has(b) {
			return nil, errors.New("no built-in plugin has this name, and no path is set")
		}
		return exec.CommandContext(s.processes, s.host.cfg.Executable, "plugin", b), nil
	}
	if _, err := os.Stat(s.spec.Path); err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	if s.spec.SHA256 != "" {
		if err := checkSHA256(s.spec.Path, s.spec.SHA256); err != nil {
			return nil, err
		}
	}
	return exec.CommandContext(s.processes, s.spec.Path, s.spec.Args...), nil
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
func (s *supervisor[T]) set(inst instance[T], proc *process) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		release(inst, proc)
		return false
	}
	s.current, s.proc, s.since = &inst, proc, time.Now()
	close(s.up)
	return true
}

// ServingSince returns when the plugin's current process began serving;
// now while it is restarting (or not started).
func (s *supervisor[T]) ServingSince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return time.Now()
	}
	return s.since
}

func release[T any](inst instance[T], proc *process) {
	if inst.close != nil {
		inst.close()
	}
	if proc != nil {
		proc.kill()
	}
}

// supervise restarts the plugin whenever its instance dies, until stop or,
// once the server has begun to stop, until the process exits.
func (s *supervisor[T]) supervise(inst instance[T]) {
	defer close(s.done)
	for {
		select {
		case <-inst.done:
		case <-s.stopped:
			return
		}
		s.mu.Lock()
		if s.stopping { // stop released the instance: not a death
			s.mu.Unlock()
			return
		}
		proc := s.proc
		s.current, s.proc, s.up = nil, nil, make(chan struct{})
		s.mu.Unlock()
		exited := awaitClosed(inst.exited, exitWait)
		release(inst, proc) // the process has exited once this returns
		reason := "it stopped serving (its stream or connection ended), and was stopped"
		if exited {
			reason = proc.exitStatus()
		}
		if s.host.exitExpected(exited && proc.stoppedBySignal()) {
			s.log.Info("plugin exited as the server stops; not restarting it", "pid", proc.pid(), "reason", reason)
			return
		}
		s.mu.Lock()
		s.restarts++
		s.lastErr, s.lastErrAt = fmt.Errorf("%w: %s", errExited, reason).Error(), time.Now()
		restarts := s.restarts
		s.mu.Unlock()
		s.host.metrics.restarts.WithLabelValues(s.spec.Name).Inc()
		s.log.Warn("plugin exited; restarting", "pid", proc.pid(), "reason", reason)
		var ok bool
		if inst, ok = s.restart(restarts, reason); !ok {
			return
		}
	}
}

// restart launches the plugin again, with growing backoff, until it runs or
// the plugin is stopped, or the server begins to stop (then it reports
// false). restarts and reason are what the log says of this restart.
func (s *supervisor[T]) restart(restarts int, reason string) (instance[T], bool) {
	for backoff := firstBackoff; ; backoff = min(2*backoff, maxBackoff) {
		select {
		case <-s.stopped:
			return instance[T]{}, false
		case <-s.host.stopping:
			s.log.Info("not restarting the plugin: the server stops")
			return instance[T]{}, false
		case <-time.After(backoff):
		}
		proc, inst, err := s.launch(context.Background())
		if err != nil {
			s.failed(err)
			select {
			case <-s.host.stopping:
			default:
				s.log.Error("restarting the plugin failed", "error", err, "next_try_in", 2*backoff)
			}
			continue
		}
		if !s.set(inst, proc) {
			return instance[T]{}, false
		}
		s.log.Info("plugin restarted", append([]any{"pid", proc.pid(), "restarts", restarts, "reason", reason}, s.binary()...)...)
		return inst, true
	}
}

// awaitClosed reports whether ch is closed, waiting up to d for it.
func awaitClosed(ch <-chan struct{}, d time.Duration) bool {
	if ch == nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
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
	s.quiet.Store(true)
	close(s.stopped)
	cur, proc := s.current, s.proc
	s.current, s.proc = nil, nil
	s.mu.Unlock()
	if cur != nil {
		release(*cur, proc)
	}
	s.kill() // a process still starting ends now, not at the start timeout
	<-s.done
}

// beingStopped reports whether the plugin is being stopped: by Stop, or as
// the server begins to stop. It takes no lock: go-plugin logs while stop
// holds the supervisor's.
func (s *supervisor[T]) beingStopped() bool {
	select {
	case <-s.host.stopping:
		return true
	default:
		return s.quiet.Load()
	}
}

// fixedName is a logger that keeps its name: go-plugin names the plugin's
// log after its binary, which for built-ins is the server's own, and passes
// on the plugin's own "@module" field, which would replace the name in JSON
// output; both are dropped. It also lowers what is no error to debug:
// go-plugin's line about a process that ended (the supervisor says how it
// ended, at the level that fits), the multiplexer's (yamux's) complaint of
// a peer gone (a broken pipe or a reset: the plugin's process died, and the
// supervisor says so), and, while the plugin is being stopped, the other
// complaints of the connection's teardown that yamux logs in both
// processes.
type fixedName struct {
	hclog.Logger
	stopping func() bool
}

func (f fixedName) Named(string) hclog.Logger      { return f }
func (f fixedName) ResetNamed(string) hclog.Logger { return f }

func (f fixedName) Log(level hclog.Level, msg string, args ...any) {
	f.Logger.Log(f.level(level, msg), msg, withoutModule(args)...)
}
func (f fixedName) Trace(msg string, args ...any) { f.Log(hclog.Trace, msg, args...) }
func (f fixedName) Debug(msg string, args ...any) { f.Log(hclog.Debug, msg, args...) }
func (f fixedName) Info(msg string, args ...any)  { f.Log(hclog.Info, msg, args...) }
func (f fixedName) Warn(msg string, args ...any)  { f.Log(hclog.Warn, msg, args...) }
func (f fixedName) Error(msg string, args ...any) { f.Log(hclog.Error, msg, args...) }

// level is the level msg is logged at, given the level it came with.
func (f fixedName) level(level hclog.Level, msg string) hclog.Level {
	switch {
	case level < hclog.Warn:
		return level
	case level == hclog.Error && msg == goPluginExited,
		strings.HasPrefix(msg, "yamux: ") && peerGone(msg),
		(strings.HasPrefix(msg, "yamux: ") || strings.Contains(msg, "use of closed network connection")) && f.stopping():
		return hclog.Debug
	}
	return level
}

// peerGone reports whether a yamux error says the other process is gone.
func peerGone(msg string) bool {
	return strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset by peer")
}

// StandardLogger and StandardWriter take the lines of a standard library
// logger (as go-plugin makes one for yamux) through f, with the level their
// prefix says ("[ERR] ", "[WARN] ", "[DEBUG] "...), info without one.
func (f fixedName) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(f.StandardWriter(opts), "", 0)
}

// StandardWriter: see StandardLogger.
func (f fixedName) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return stdlogWriter{f} }

type stdlogWriter struct{ f fixedName }

func (w stdlogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := hclog.Info
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, msg, ok := strings.Cut(rest, "]"); ok {
			switch tag {
			case "TRACE":
				level = hclog.Trace
			case "DEBUG":
				level = hclog.Debug
			case "INFO":
				level = hclog.Info
			case "WARN":
				level = hclog.Warn
			case "ERR", "ERROR":
				level = hclog.Error
			}
			line = strings.TrimSpace(msg)
		}
	}
	w.f.Log(level, line)
	return len(p), nil
}

// goPluginExited is go-plugin's message when a plugin process ends.
const goPluginExited = "plugin process exited"

// withoutModule is args without an "@module" key and its value.
func withoutModule(args []any) []any {
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "@module" {
			return append(args[:i:i], args[i+2:]...)
		}
	}
	return args
}

// checkSchema validates a described plugin's kind and schema, and the user's
// block against the schema.
func checkSchema(want, got host.Kind, schema sdk.Schema, block map[string]any) ([]byte, error) {
	if got != want {
		return nil, fmt.Errorf("is a %q plugin, not a %s plugin", got, want)
	}
	if err := schema.Validate(); err != nil {
		return nil, fmt.Errorf("declares an invalid configuration schema: %w", err)
	}
	return schema.Check(block)
}
