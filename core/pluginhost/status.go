package pluginhost

import (
	"errors"
	"slices"
	"time"

	"github.com/sextantd/sextant/sdk/host"
)

// The states a plugin is in, as Status reports them.
const (
	// StateStarting: its first process (or in-process instance) is being
	// started.
	StateStarting = "starting"
	// StateServing: it serves.
	StateServing = "serving"
	// StateRestarting: its process died and is being launched again, with
	// backoff.
	StateRestarting = "restarting"
	// StateStopped: the host stopped it.
	StateStopped = "stopped"
)

// errExited is what a plugin's last error says when its process died (or
// its stream broke) while it served.
var errExited = errors.New("the plugin exited")

// PluginStatus is what the host knows of one plugin at a moment.
type PluginStatus struct {
	Name string
	Kind host.Kind
	// Role is a push plugin's declared role (rpc, udp or spi); "" for the
	// other kinds, and before a push plugin first described itself.
	Role string
	// Path is a third party's binary; "" for a built-in, which runs from
	// the server's own binary or, when InProcess, inside the server.
	Path      string
	InProcess bool
	// PID is the plugin's current process; 0 in process or while none runs.
	PID   int
	State string // one of the State constants
	// Restarts counts the times its process died and was launched again.
	Restarts int
	// ServingSince is when its current process (or instance) began
	// serving; zero unless State is StateServing.
	ServingSince time.Time
	// LastError is its last failure (an exit, a failed relaunch) and when
	// it happened; "" if none. It stays after a successful restart.
	LastError     string
	LastErrorTime time.Time
}

// Status returns the status of every plugin the host started or is
// starting, in start order: the transport, the membership provider, then
// the push plugins. After Stop, they are reported stopped.
func (h *Host) Status() []PluginStatus {
	h.mu.Lock()
	plugins := slices.Clone(h.plugins)
	h.mu.Unlock()
	out := make([]PluginStatus, len(plugins))
	for i, p := range plugins {
		out[i] = p.status()
	}
	return out
}

// track adds a plugin that is about to start to those Status reports.
func (h *Host) track(p statusReporter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.plugins = append(h.plugins, p)
}

// statusReporter is a plugin whose status the host reports.
type statusReporter interface {
	status() PluginStatus
}

// status reports the supervised plugin's state.
func (s *supervisor[T]) status() PluginStatus {
	st, _ := s.snapshot()
	return st
}

// snapshot returns the plugin's status, and whether an instance of it was
// ever set.
func (s *supervisor[T]) snapshot() (PluginStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := PluginStatus{Name: s.spec.Name, Kind: s.kind.name, Path: s.spec.Path, InProcess: s.spec.InProcess,
		Restarts: s.restarts, LastError: s.lastErr, LastErrorTime: s.lastErrAt}
	switch {
	case s.stopping:
		st.State = StateStopped
	case s.current != nil:
		st.State, st.ServingSince = StateServing, s.since
		if s.proc != nil {
			st.PID = s.proc.pid()
		}
	case s.since.IsZero():
		st.State = StateStarting
	default:
		st.State = StateRestarting
	}
	return st, !s.since.IsZero()
}

// failed records err as the plugin's last error.
func (s *supervisor[T]) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr, s.lastErrAt = err.Error(), time.Now()
}

// status adds the role the push plugin declared, once it has: attach and
// inProcess set it before the first instance is set (under the
// supervisor's lock, which snapshot takes), and never change it after.
func (p *pushPlugin) status() PluginStatus {
	st, served := p.snapshot()
	if served {
		st.Role = string(p.role)
	}
	return st
}
