// Package pluginhost runs the server's plugins — push executors, and, in a
// cluster, the membership provider and the transport: built-ins from this
// very binary ("sextant plugin NAME") or in process, and third parties'
// binaries by path. It checks a binary's SHA-256 when configured, validates
// each plugin's configuration block against the schema the plugin declares
// before configuring it, supervises the processes (a plugin that dies is
// restarted with backoff, and what waited for it goes on once it is back),
// and re-emits plugin logs under the plugin's name.
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

	"github.com/sextantd/sextant/sdk/membership"
	sdkpush "github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/transport"
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

// Builtins are the plugins this binary carries, by kind and name.
type Builtins struct {
	Push       map[string]sdkpush.Plugin
	Membership map[string]membership.Plugin
	Transport  map[string]transport.Plugin
}

func (b Builtins) has(name string) bool {
	_, push := b.Push[name]
	_, member := b.Membership[name]
	_, tr := b.Transport[name]
	return push || member || tr
}

// Config configures a Host.
type Config struct {
	// Push are the push plugins to run.
	Push []Spec
	// Membership and Transport are the cluster's plugins; nil runs none.
	Membership, Transport *Spec
	Builtins              Builtins
	// Executable runs built-ins: Executable plugin NAME.
	Executable string
	// Connections is the host service push plugins send through.
	Connections sdkpush.Connections
	// Inbound takes what the transport receives from peers.
	Inbound transport.Inbound
	// Self is this node's HTTP address; ClusterListen is where the transport
	// listens for peers.
	Self, ClusterListen string
	// OnMembers takes every member list the membership provider reports.
	OnMembers func([]string)
	Logger    hclog.Logger
	Metrics   prometheus.Registerer
}

// Executor is a running push executor with what it declared.
type Executor struct {
	sdkpush.Executor
	Name     string
	Role     sdkpush.Role
	Interest sdkpush.Interest
}

// Host runs the configured plugins.
type Host struct {
	cfg       Config
	metrics   *metrics
	transport *TransportPlugin

	mu      sync.Mutex
	running []interface{ stop() }
	push    []*pushPlugin
}

// New returns a host that starts nothing until Start.
func New(cfg Config) *Host {
	h := &Host{cfg: cfg, metrics: newMetrics(cfg.Metrics)}
	if cfg.Transport != nil {
		h.transport = newTransportPlugin(h, *cfg.Transport)
	}
	return h
}

// Start starts every plugin — the transport first, then the membership
// provider, then the push plugins — and fails, naming the plugin and the
// problem, if one cannot start: a missing binary, a wrong SHA-256, a failed
// handshake, a plugin of another kind, an invalid configuration block. It
// also requires exactly one rpc push executor and at most one udp one.
func (h *Host) Start(ctx context.Context) error {
	if h.transport != nil {
		if err := h.startOne(ctx, h.cfg.Transport.Name, h.transport.supervisor); err != nil {
			return err
		}
	}
	if h.cfg.Membership != nil {
		if err := h.startOne(ctx, h.cfg.Membership.Name, newMembershipPlugin(h, *h.cfg.Membership).supervisor); err != nil {
			return err
		}
	}
	for _, spec := range h.cfg.Push {
		p := newPushPlugin(h, spec)
		if err := h.startOne(ctx, spec.Name, p.supervisor); err != nil {
			return err
		}
		h.mu.Lock()
		h.push = append(h.push, p)
		h.mu.Unlock()
	}
	if err := h.checkRoles(); err != nil {
		return errors.Join(err, h.Stop(ctx))
	}
	return nil
}

// startOne starts a plugin; on failure it stops what was started.
func (h *Host) startOne(ctx context.Context, name string, s interface {
	start(context.Context) error
	stop()
}) error {
	if err := s.start(ctx); err != nil {
		return errors.Join(fmt.Errorf("plugin %s: %w", name, err), h.Stop(ctx))
	}
	h.mu.Lock()
	h.running = append(h.running, s)
	h.mu.Unlock()
	return nil
}

func (h *Host) checkRoles() error {
	var rpc, udp []string
	for _, e := range h.Executors() {
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

// Executors returns the running push executors, in configuration order.
func (h *Host) Executors() []Executor {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Executor, len(h.push))
	for i, p := range h.push {
		out[i] = Executor{Executor: p, Name: p.spec.Name, Role: p.role, Interest: p.interest}
	}
	return out
}

// Transport is the cluster's transport (nil when none is configured).
func (h *Host) Transport() *TransportPlugin { return h.transport }

// Stop stops every plugin, in the reverse order of their start, and waits
// for their processes to exit.
func (h *Host) Stop(context.Context) error {
	h.mu.Lock()
	running := h.running
	h.running, h.push = nil, nil
	h.mu.Unlock()
	for _, p := range slices.Backward(running) {
		p.stop()
	}
	return nil
}
