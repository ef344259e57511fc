// Package pluginhost runs the server's push plugins: built-ins from this very
// binary ("sextant plugin NAME") or in-process, and third parties' binaries
// by path. It checks a binary's SHA-256 when configured, validates each
// plugin's configuration block against the schema the plugin declares before
// configuring it, supervises the processes (a plugin that dies is restarted
// with backoff; the pushes it dropped fail and are retried by the push
// engine), and re-emits plugin logs under the plugin's name.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	sdkpush "github.com/sextantd/sextant/sdk/push"
)

// Spec is one plugin the configuration asks for.
type Spec struct {
	// Name is the plugin's key in the configuration, and the name of a
	// built-in when Path is empty.
	Name string
	// Path of a plugin binary; "" runs the built-in Name from this binary.
	Path string
	// SHA256 of the binary at Path, hex; checked before every start when set.
	SHA256 string
	// InProcess runs a built-in inside the server, without a process.
	InProcess bool
	// Config is the plugin's configuration block, as the file had it.
	Config map[string]any
}

// Config configures a Host.
type Config struct {
	Specs []Spec
	// Builtins are the plugins this binary carries, by name.
	Builtins map[string]sdkpush.Plugin
	// Executable runs built-ins: Executable plugin NAME.
	Executable string
	// Connections is the host service push plugins send through.
	Connections sdkpush.Connections
	Logger      hclog.Logger
	Metrics     prometheus.Registerer
}

// Executor is a running push executor with what it declared.
type Executor struct {
	sdkpush.Executor
	Name     string
	Role     sdkpush.Role
	Interest sdkpush.Interest
}

// Host runs the configured push plugins.
type Host struct {
	cfg       Config
	metrics   *metrics
	mu        sync.Mutex
	running   []*plugin
	executors []Executor
}

// New returns a host that starts nothing until Start.
func New(cfg Config) *Host {
	return &Host{cfg: cfg, metrics: newMetrics(cfg.Metrics)}
}

// Start starts every plugin and fails, naming the plugin and the problem, if
// one cannot start: a missing binary, a wrong SHA-256, a failed handshake, a
// plugin of another kind, an invalid configuration block. It also requires
// exactly one rpc executor and at most one udp executor.
func (h *Host) Start(ctx context.Context) error {
	for _, spec := range h.cfg.Specs {
		p := &plugin{spec: spec, host: h, log: h.cfg.Logger.Named(spec.Name)}
		if err := p.start(ctx); err != nil {
			return errors.Join(fmt.Errorf("plugin %s: %w", spec.Name, err), h.Stop(ctx))
		}
		h.mu.Lock()
		h.running = append(h.running, p)
		h.executors = append(h.executors, Executor{Executor: p, Name: spec.Name, Role: p.role, Interest: p.interest})
		h.mu.Unlock()
	}
	if err := h.checkRoles(); err != nil {
		return errors.Join(err, h.Stop(ctx))
	}
	return nil
}

func (h *Host) checkRoles() error {
	var rpc, udp []string
	for _, e := range h.executors {
		switch e.Role {
		case sdkpush.RoleRPC:
			rpc = append(rpc, e.Name)
		case sdkpush.RoleUDP:
			udp = append(udp, e.Name)
		}
	}
	switch {
	case len(rpc) == 0:
		return errors.New("plugins: no push plugin serves the rpc role, so gRPC subscribers would never be pushed (enable pushrpc)")
	case len(rpc) > 1:
		return fmt.Errorf("plugins: %s all serve the rpc role; disable all but one", strings.Join(rpc, ", "))
	case len(udp) > 1:
		return fmt.Errorf("plugins: %s all serve the udp role; disable all but one", strings.Join(udp, ", "))
	}
	return nil
}

// Executors returns the running executors, in configuration order.
func (h *Host) Executors() []Executor {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.executors)
}

// Stop stops every plugin and waits for its process to exit.
func (h *Host) Stop(context.Context) error {
	h.mu.Lock()
	running := h.running
	h.running, h.executors = nil, nil
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range running {
		wg.Go(p.stop)
	}
	wg.Wait()
	return nil
}
