// Package server wires the parts of a Sextant server together and runs them:
// started in dependency order, stopped in reverse.
package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/core/distro"
	"github.com/sextantd/sextant/core/httpapi"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/core/push"
	"github.com/sextantd/sextant/core/remote"
	"github.com/sextantd/sextant/sdk/membership"
)

// StopTimeout bounds a graceful stop.
const StopTimeout = 5 * time.Second

// Distro's timings that are not configuration: one call's timeout, and how
// long a starting node may spend loading a snapshot from one member.
const (
	callTimeout     = 3 * time.Second
	snapshotTimeout = time.Minute
)

// Options are what the binary supplies beyond the configuration.
type Options struct {
	Logger hclog.Logger
	// Version is the binary's version, reported on the HTTP port.
	Version string
	// Builtins are the plugins the binary carries.
	Builtins pluginhost.Builtins
	// Executable is the binary's path, which runs a built-in plugin as
	// "Executable plugin NAME".
	Executable string
}

// component is a long-lived part of the server.
type component interface {
	Start(context.Context) error
	Stop(context.Context) error
}

// Server is one Sextant node.
type Server struct {
	cfg        config.Config
	log        hclog.Logger
	components []component // in start order
	started    int
	ready      atomic.Bool
	distro     *distro.Distro // nil for a standalone node
	remote     *remote.Server
	http       *httpapi.Server
}

// New builds a server from cfg; nothing listens until Start.
func New(cfg config.Config, opts Options) (*Server, error) {
	log := opts.Logger
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	bus := notify.New(notify.Config{Logger: log.Named("notify")})
	registry := naming.NewRegistry(naming.Config{
		Limits: naming.Limits{
			MaxNameLength:    cfg.Naming.MaxNameLength,
			MaxMetadataBytes: cfg.Naming.MaxMetadataBytes,
			MaxBatchSize:     cfg.Naming.MaxBatchSize,
		},
		Bus: bus,
	})
	rs := remote.New(remote.Config{
		Addr:           ":" + strconv.Itoa(cfg.GRPCPort()),
		MaxMessageSize: cfg.Remote.MaxMessageSize,
		IdleTimeout:    cfg.Remote.IdleTimeout,
		DetectInterval: cfg.Remote.DetectInterval,
		DetectTimeout:  cfg.Remote.DetectTimeout,
		Registry:       registry,
		Logger:         log.Named("remote"),
		Metrics:        metrics,
	})

	clustered := cfg.Cluster.MembershipPlugin() != config.Standalone
	self := cfg.Cluster.Self
	if self == "" {
		self = detectSelf(cfg.Cluster.Members, cfg.Port)
	}
	// Membership providers report addresses in canonical form.
	if canonical, err := membership.ParseAddress(self, cfg.Port); err == nil {
		self = canonical
	}
	inbound := &inbound{}
	hostCfg := pluginhost.Config{
		Builtins:      opts.Builtins,
		Executable:    opts.Executable,
		Connections:   rs,
		Inbound:       inbound,
		Self:          self,
		ClusterListen: ":" + strconv.Itoa(cfg.ClusterPort()),
		Logger:        log.Named("plugins"),
		Metrics:       metrics,
	}
	hostCfg.Push, hostCfg.Membership, hostCfg.Transport = pluginSpecs(cfg, clustered)
	var members *cluster.Cluster // made below: it needs the host's transport
	hostCfg.OnMembers = func(addresses []string) { members.SetMembers(addresses) }
	plugins := pluginhost.New(hostCfg)

	members = cluster.New(cluster.Config{
		Self:           self,
		Version:        opts.Version,
		ReportInterval: cfg.Cluster.ReportInterval,
		Transport:      plugins.Transport(),
		Logger:         log.Named("cluster"),
	})
	inbound.cluster = members
	metrics.MustRegister(newStatsCollector(registry, bus, members))

	s := &Server{cfg: cfg, log: log, remote: rs}
	s.components = []component{bus, plugins}
	if clustered {
		d, err := distro.New(distro.Config{
			Registry:        registry,
			Cluster:         members,
			Transport:       plugins.Transport(),
			Bus:             bus,
			SyncDelay:       cfg.Cluster.SyncDelay,
			RetryDelay:      cfg.Cluster.SyncRetryDelay,
			CallTimeout:     callTimeout,
			VerifyInterval:  cfg.Cluster.VerifyInterval,
			ClientExpiry:    cfg.Cluster.ClientExpiry,
			SnapshotTimeout: snapshotTimeout,
			Logger:          log.Named("distro"),
			Metrics:         metrics,
		})
		if err != nil {
			return nil, fmt.Errorf("distro: %w", err)
		}
		s.distro, inbound.distro = d, d
		s.components = append(s.components, members, d)
	}
	pusher, err := push.New(push.Config{
		Registry:   registry,
		Bus:        bus,
		Routes:     func() []push.Route { return pushRoutes(plugins.Executors()) },
		Delay:      cfg.Push.Delay,
		Timeout:    cfg.Push.Timeout,
		RetryDelay: cfg.Push.RetryDelay,
		Logger:     log.Named("push"),
		Metrics:    metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	s.http = httpapi.New(httpapi.Config{
		Addr:     ":" + strconv.Itoa(cfg.Port),
		Version:  opts.Version,
		Ready:    s.Ready,
		Members:  members.Members,
		Gatherer: metrics,
		Pprof:    cfg.Debug.Pprof,
		Logger:   log.Named("http"),
	})
	s.components = append(s.components, pusher, rs, s.http)
	return s, nil
}

// pluginSpecs sorts the configured plugins into push plugins (in name
// order) and the cluster's membership and transport plugins (none for a
// standalone node). The static membership plugin gets cluster.members when
// its own block does not list members.
func pluginSpecs(cfg config.Config, clustered bool) (push []pluginhost.Spec, membership, transport *pluginhost.Spec) {
	spec := func(name string) pluginhost.Spec {
		p := cfg.Plugins[name]
		return pluginhost.Spec{Name: name, Path: p.Path, SHA256: p.SHA256, InProcess: p.InProcess, Config: p.Config}
	}
	memberName, transportName := cfg.Cluster.MembershipPlugin(), cfg.Cluster.Transport
	if clustered {
		m, t := spec(memberName), spec(transportName)
		if _, set := m.Config["members"]; memberName == "static" && !set && len(cfg.Cluster.Members) > 0 {
			m.Config = maps.Clone(m.Config)
			if m.Config == nil {
				m.Config = map[string]any{}
			}
			members := make([]any, len(cfg.Cluster.Members))
			for i, a := range cfg.Cluster.Members {
				members[i] = a
			}
			m.Config["members"] = members
		}
		membership, transport = &m, &t
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Plugins)) {
		if cfg.Plugins[name].Disabled || name == memberName || name == transportName {
			continue
		}
		push = append(push, spec(name))
	}
	return push, membership, transport
}

func pushRoutes(executors []pluginhost.Executor) []push.Route {
	routes := make([]push.Route, len(executors))
	for i, e := range executors {
		routes[i] = push.Route{Name: e.Name, Role: e.Role, Interest: e.Interest, Executor: e.Executor}
	}
	return routes
}

// Ready reports whether the node serves: every part started and, in a
// cluster, the start-up snapshot loaded. Clients may connect and register
// before (what they register is kept), but balancers wait for this.
func (s *Server) Ready() bool {
	return s.ready.Load() && (s.distro == nil || s.distro.Ready())
}

// Start prepares the data directory and starts every part; then the client
// endpoint serves. On failure, what was started is stopped again.
func (s *Server) Start(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, c := range s.components {
		if err := c.Start(ctx); err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), StopTimeout)
			defer cancel()
			return errors.Join(err, s.Stop(stopCtx))
		}
		s.started++
	}
	s.remote.SetReady(true)
	s.ready.Store(true)
	s.log.Info("serving", "http", s.http.Addr().String(), "grpc", s.remote.Addr().String())
	return nil
}

// Stop stops what Start started, in reverse order.
func (s *Server) Stop(ctx context.Context) error {
	s.ready.Store(false)
	var errs []error
	for ; s.started > 0; s.started-- {
		if err := s.components[s.started-1].Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run starts the server, serves until ctx is done, then stops it within
// StopTimeout.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	s.log.Info("stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), StopTimeout)
	defer cancel()
	return s.Stop(stopCtx)
}
