// Package pluginhost runs the server's plugins — push executors, and, in a
// cluster, the membership provider and the transport: built-ins from this
// very binary ("sextant plugin NAME") or in process, and third parties'
// binaries by path. It checks a binary's SHA-256 when configured — and a
// built-in's always, against the server's binary as it was at Start — validates
// each plugin's configuration block against the schema the plugin declares
// before configuring it, supervises the processes (a plugin that dies is
// restarted with backoff, and what waited for it goes on once it is back),
// re-emits plugin logs under the plugin's name, and removes the Unix socket
// files of processes that are gone.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/membership"
	sdkpush "github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/transport"
)

// Spec is one plugin the configuration asks for.
type Spec struct {
	// Name is the plugin's key in the configuration, and the name of the
	// built-in it runs when Path and Builtin are empty.
	Name string
	// Path of a plugin binary, run with Args; "" runs a built-in from this
	// binary.
	Path string
	Args []string
	// Builtin is the built-in to run under Name, when Path is empty: one
	// built-in twice with different settings, or under a name of the
	// user's; "" runs the built-in Name.
	Builtin string
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

// of returns the names of the built-ins of kind k, sorted.
func (b Builtins) of(k host.Kind) []string {
	switch k {
	case host.KindPush:
		return slices.Sorted(maps.Keys(b.Push))
	case host.KindMembership:
		return slices.Sorted(maps.Keys(b.Membership))
	case host.KindTransport:
		return slices.Sorted(maps.Keys(b.Transport))
	}
	return nil
}

// builtin is the built-in the plugin runs: Builtin, or Name; "" for a
// binary given by path.
func (s Spec) builtin() string {
	switch {
	case s.Path != "":
		return ""
	case s.Builtin != "":
		return s.Builtin
	}
	return s.Name
}

// Config configures a Host.
type Config struct {
	// Push are the push plugins to run.
	Push []Spec
	// Membership and Transport are the cluster's plugins; nil runs none.
	Membership, Transport *Spec
	Builtins              Builtins
	// Executable runs built-ins: Executable plugin NAME. Start takes its
	// SHA-256, which every launch of a built-in then requires: a binary
	// replaced on disk since is refused.
	Executable string
	// Connections is the host service push plugins send through.
	Connections sdkpush.Connections
	// Inbound takes what the transport receives from peers (the cluster's
	// router).
	Inbound transport.Inbound
	// Self is this node's HTTP address; ClusterListen is where the transport
	// listens for peers.
	Self, ClusterListen string
	// Bus takes every member list the membership provider reports, as a
	// cluster.MembersReported event.
	Bus     *notify.Bus
	Logger  hclog.Logger
	Metrics prometheus.Registerer
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
	sockets   sockets
	// executableSum is the SHA-256 of cfg.Executable at Start, when a
	// built-in runs out of process.
	executableSum []byte

	// stopping is closed by BeginStop: a plugin process that exits from
	// then on does so because the server stops, and is not restarted.
	stopping     chan struct{}
	stoppingOnce sync.Once

	mu      sync.Mutex
	running []interface{ stop() }
	push    []*pushPlugin
	plugins []statusReporter // every plugin started, for Status (status.go)

	sumsMu sync.Mutex
	sums   map[string]string // plugin binaries' SHA-256 by path, for the log
}

// New returns a host that starts nothing until Start.
func New(cfg Config) *Host {
	h := &Host{cfg: cfg, metrics: newMetrics(cfg.Metrics), stopping: make(chan struct{})}
	if cfg.Transport != nil {
		h.transport = newTransportPlugin(h, *cfg.Transport)
	}
	return h
}

// Start starts every plugin — the transport, the membership provider and
// the push plugins — at once: each is a process whose launch, handshake and
// configuration take most of a second, and many seconds on a loaded
// machine, and none needs another to start. It fails, naming each plugin
// and its problem, if one cannot start (a missing binary, a wrong SHA-256,
// a failed handshake, a plugin of another kind, an invalid configuration
// block), stopping those that started. It also requires exactly one rpc
// push executor and at most one udp one.
func (h *Host) Start(ctx context.Context) error {
	if err := h.checkBuiltins(); err != nil {
		return err
	}
	if slices.ContainsFunc(h.specs(), func(s Spec) bool { return s.Path == "" && !s.InProcess }) {
		sum, err := fileSHA256(h.cfg.Executable)
		if err != nil {
			return fmt.Errorf("plugins: the server's binary, which runs the built-in plugins: %w", err)
		}
		h.executableSum = sum
	}
	// In the order Stop reverses: the transport, the membership provider,
	// then the push plugins (which Stop stops together).
	type starting struct {
		name   string
		plugin startable
		push   *pushPlugin
	}
	var all []starting
	if h.transport != nil {
		all = append(all, starting{name: h.cfg.Transport.Name, plugin: h.transport.supervisor})
	}
	if h.cfg.Membership != nil {
		all = append(all, starting{name: h.cfg.Membership.Name, plugin: newMembershipPlugin(h, *h.cfg.Membership).supervisor})
	}
	for _, spec := range h.cfg.Push {
		p := newPushPlugin(h, spec)
		all = append(all, starting{name: spec.Name, plugin: p, push: p})
	}
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, st := range all {
		h.track(st.plugin)
		wg.Go(func() {
			if err := st.plugin.start(ctx); err != nil {
				errs[i] = fmt.Errorf("plugin %s: %w", st.name, err)
			}
		})
	}
	wg.Wait()
	h.mu.Lock()
	for i, st := range all {
		if errs[i] != nil {
			continue
		}
		h.running = append(h.running, st.plugin)
		if st.push != nil {
			h.push = append(h.push, st.push)
		}
	}
	h.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return errors.Join(err, h.Stop(ctx))
	}
	if err := h.checkRoles(); err != nil {
		return errors.Join(err, h.Stop(ctx))
	}
	return nil
}

// checkBuiltins checks, before anything starts, that every plugin naming
// the built-in it runs (Spec.Builtin) names one of its kind.
func (h *Host) checkBuiltins() error {
	var errs []error
	check := func(spec Spec, k host.Kind) {
		if spec.Builtin == "" || spec.Path != "" {
			return
		}
		names := h.cfg.Builtins.of(k)
		if slices.Contains(names, spec.Builtin) {
			return
		}
		those := "this binary has none"
		if len(names) > 0 {
			those = "those are: " + strings.Join(names, ", ")
		}
		errs = append(errs, fmt.Errorf("plugins.%s.builtin: %q is not a built-in %s plugin (%s)", spec.Name, spec.Builtin, k, those))
	}
	if h.cfg.Transport != nil {
		check(*h.cfg.Transport, host.KindTransport)
	}
	if h.cfg.Membership != nil {
		check(*h.cfg.Membership, host.KindMembership)
	}
	for _, spec := range h.cfg.Push {
		check(spec, host.KindPush)
	}
	return errors.Join(errs...)
}

// specs are the plugins to run.
func (h *Host) specs() []Spec {
	specs := slices.Clone(h.cfg.Push)
	for _, s := range []*Spec{h.cfg.Membership, h.cfg.Transport} {
		if s != nil {
			specs = append(specs, *s)
		}
	}
	return specs
}

// startable is a plugin the host starts and stops.
type startable interface {
	start(context.Context) error
	stop()
	statusReporter
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

// BeginStop tells the host that the server is stopping, before Stop: from
// then on a plugin process that exits is expected — the signal that stops
// the server (SIGTERM or SIGINT to its process group) may reach the plugins
// too — so it is logged at info and not restarted. Stop then stops the
// plugins that still run, in order.
func (h *Host) BeginStop() {
	h.stoppingOnce.Do(func() { close(h.stopping) })
}

// Stop stops every plugin, in the reverse order of their start, and waits
// for their processes to exit. The push plugins, started last and in no
// order that matters, stop together: each may take a second or two to exit.
func (h *Host) Stop(context.Context) error {
	h.mu.Lock()
	running := h.running
	pushes := min(len(h.push), len(running)) // the last ones started
	h.running, h.push = nil, nil
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range running[len(running)-pushes:] {
		wg.Go(p.stop)
	}
	wg.Wait()
	for _, p := range slices.Backward(running[:len(running)-pushes]) {
		p.stop()
	}
	h.sockets.remove()
	return nil
}
