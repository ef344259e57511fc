// Package server wires the parts of a Sextant server together and runs them:
// started in dependency order, stopped in reverse.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
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
	"github.com/sextantd/sextant/core/consensus"
	"github.com/sextantd/sextant/core/distro"
	"github.com/sextantd/sextant/core/forward"
	"github.com/sextantd/sextant/core/health"
	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/httpapi"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/persist"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/core/push"
	"github.com/sextantd/sextant/core/remote"
	"github.com/sextantd/sextant/core/tlsconfig"
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
	distro     *distro.Distro  // nil for a standalone node
	raft       *consensus.Node // its log replayed before the server is ready
	remote     *remote.Server
	http       *httpapi.Server
	plugins    *pluginhost.Host
	members    *cluster.Cluster
	certs      *tlsconfig.Reloader // nil without TLS
}

// New builds a server from cfg; nothing listens until Start. Each part is
// built once, from parts already built: the event bus, the registry, the
// client endpoint, the router of cluster messages, the plugins, the member
// table, Distro (in a cluster), push and the HTTP endpoint. Parts reach one
// another only through what they are given here: the router takes the
// message kinds each part registers, and the bus carries the member lists
// from the membership plugin to the member table.
func New(cfg config.Config, opts Options) (*Server, error) {
	log := opts.Logger
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The TLS files are read here, so that one that cannot be read stops
	// start-up; then again when they change, and on Reload.
	var certs *tlsconfig.Reloader
	var httpTLS, grpcTLS *tls.Config
	if cfg.TLS.Enabled() {
		var err error
		certs, err = tlsconfig.New(tlsconfig.Config{
			Files:   tlsconfig.Files{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, ClientCAFile: cfg.TLS.ClientCAFile},
			Logger:  log.Named("tls"),
			Metrics: metrics,
		})
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		httpTLS, grpcTLS = certs.ServerConfig("h2", "http/1.1"), certs.ServerConfig()
	}

	authority, err := newAuthority(cfg.Auth, log.Named("auth"))
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}

	bus := notify.New(notify.Config{Logger: log.Named("notify")})
	registry := naming.NewRegistry(naming.Config{
		Limits: naming.Limits{
			MaxNameLength:    cfg.Naming.MaxNameLength,
			MaxMetadataBytes: cfg.Naming.MaxMetadataBytes,
			MaxBatchSize:     cfg.Naming.MaxBatchSize,

			MaxServicesPerClient:      cfg.Naming.MaxServicesPerClient,
			MaxInstancesPerClient:     cfg.Naming.MaxInstancesPerClient,
			MaxSubscriptionsPerClient: cfg.Naming.MaxSubscriptionsPerClient,
			MaxClustersPerFilter:      cfg.Naming.MaxClustersPerFilter,
		},
		UDPSubscriberTTL: cfg.Push.UDP.Expiry,
		Bus:              bus,
		Metrics:          metrics,
	})
	rs := remote.New(remote.Config{
		Addr:           cfg.GRPCListen(),
		Transport:      cfg.Remote.Transport,
		TLS:            grpcTLS,
		Auth:           authority,
		MaxMessageSize: cfg.Remote.MaxMessageSize,
		IdleTimeout:    cfg.Remote.IdleTimeout,
		DetectInterval: cfg.Remote.DetectInterval,
		DetectTimeout:  cfg.Remote.DetectTimeout,
		Registry:       registry,
		Logger:         log.Named("remote"),
		Metrics:        metrics,

		MaxOutboundBytes: cfg.Remote.MaxOutboundBytes,
		WriteTimeout:     cfg.Remote.WriteTimeout,
		SetupTimeout:     cfg.Remote.SetupTimeout,
		MaxStreams:       cfg.Remote.MaxStreamsPerConnection,
		MaxConnections:   cfg.Remote.MaxConnections,
	})

	clustered := cfg.Cluster.MembershipPlugin() != config.Standalone
	listening := listeningIPs(cfg.Bind)
	self := cfg.Cluster.Self
	if self == "" {
		self = detectSelf(cfg.Cluster.Members, cfg.Port, listening())
	}
	// Membership providers report addresses in canonical form.
	if canonical, err := membership.ParseAddress(self, cfg.Port); err == nil {
		self = canonical
	}
	// What other members send: the member table and Distro register the
	// kinds they serve below.
	router := cluster.NewRouter()
	hostCfg := pluginhost.Config{
		Builtins:      opts.Builtins,
		Executable:    opts.Executable,
		Connections:   rs,
		Inbound:       router,
		Self:          self,
		ClusterListen: cfg.ClusterListen(),
		Bus:           bus,
		Logger:        log.Named("plugins"),
		Metrics:       metrics,
	}
	hostCfg.Push, hostCfg.Membership, hostCfg.Transport = pluginSpecs(cfg, clustered)
	plugins := pluginhost.New(hostCfg)

	members, err := cluster.New(cluster.Config{
		Self:           self,
		LocalIPs:       listening,
		Version:        opts.Version,
		ReportInterval: cfg.Cluster.ReportInterval,
		Transport:      plugins.Transport(),
		Router:         router,
		Bus:            bus,
		Logger:         log.Named("cluster"),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	metrics.MustRegister(newStatsCollector(registry, bus, members))

	// Persistent instances, service definitions and namespaces: the Raft
	// store, a single node's when standalone, mirrored into the registry.
	fsm := persist.New(persist.Config{Limits: registry.Limits(), Registry: registry, Logger: log.Named("persist")})
	metrics.MustRegister(fsm.Metrics())
	// A standalone node's Raft has no peers, and an id that does not move
	// with the machine's address: its log must elect it after any restart.
	var peers cluster.Caller
	raftSelf := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))
	if clustered {
		peers, raftSelf = plugins.Transport(), self
	}
	raftNode, err := consensus.New(consensus.Config{
		DataDir:      cfg.DataDir,
		Self:         raftSelf,
		FSM:          fsm,
		EncodeResult: persist.EncodeResponse,
		Transport:    peers,
		Router:       router,
		Logger:       log.Named("raft"),
		Metrics:      metrics,
		ApplyTimeout: cfg.Raft.ApplyTimeout,
		LeaderReads:  cfg.Raft.LeaderReads,
	})
	if err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	if clustered {
		// After the member table's own subscription: it has the list then.
		if err := notify.Subscribe(bus, "raft", func(cluster.MembersReported) {
			var addrs []string
			for _, m := range members.Members() {
				addrs = append(addrs, m.Address)
			}
			raftNode.SetMembers(addrs)
		}); err != nil {
			return nil, fmt.Errorf("raft: %w", err)
		}
	} else {
		raftNode.SetMembers([]string{raftSelf})
	}
	store := persist.NewStore(fsm, raftNode, registry)
	rs.UsePersistentStore(store)

	s := &Server{cfg: cfg, log: log, remote: rs, plugins: plugins, members: members}
	fwd := forward.Local(registry) // a standalone node applies every write
	s.components = []component{bus, plugins}
	if certs != nil {
		s.certs = certs
		s.components = append([]component{certs}, s.components...) // polls the files; stops last
	}
	if clustered {
		d, err := distro.New(distro.Config{
			Registry:        registry,
			Cluster:         members,
			Transport:       plugins.Transport(),
			TransportSince:  plugins.Transport().ServingSince,
			Router:          router,
			Bus:             bus,
			SyncDelay:       cfg.Cluster.SyncDelay,
			RetryDelay:      cfg.Cluster.SyncRetryDelay,
			CallTimeout:     callTimeout,
			VerifyInterval:  cfg.Cluster.VerifyInterval,
			ClientExpiry:    cfg.Cluster.ClientExpiry,
			ReportInterval:  cfg.Cluster.ReportInterval,
			SnapshotTimeout: snapshotTimeout,
			Logger:          log.Named("distro"),
			Metrics:         metrics,
		})
		if err != nil {
			return nil, fmt.Errorf("distro: %w", err)
		}
		s.distro = d
		// The writes of HTTP clients go to the node responsible for each
		// client, which takes them over as the membership changes.
		fwd, err = forward.New(forward.Config{
			Registry:    registry,
			Members:     members,
			Transport:   plugins.Transport(),
			Router:      router,
			CallTimeout: callTimeout,
			Interval:    cfg.Cluster.ReportInterval / 2,
			Grace:       3 * cfg.Cluster.ReportInterval, // as long as failed reports take to make a member DOWN
			Ready:       d.Ready,
			Logger:      log.Named("forward"),
			Metrics:     metrics,
		})
		if err != nil {
			return nil, fmt.Errorf("forward: %w", err)
		}
		s.components = append(s.components, members, d, fwd)
	}
	s.components = append(s.components, raftNode)
	s.raft = raftNode
	pusher, err := push.New(push.Config{
		Registry:   registry,
		Bus:        bus,
		Executors:  plugins,
		Delay:      cfg.Push.Delay,
		Timeout:    cfg.Push.Timeout,
		RetryDelay: cfg.Push.RetryDelay,

		ProtectEmpty:      cfg.Push.ProtectEmpty,
		ProtectEmptyGrace: cfg.Push.ProtectEmptyGrace,
		Logger:            log.Named("push"),
		Metrics:           metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	s.http = httpapi.New(httpapi.Config{
		Addr:     cfg.HTTPListen(),
		TLS:      httpTLS,
		Auth:     authority,
		Version:  opts.Version,
		Ready:    s.Ready,
		Members:  members.Members,
		Gatherer: metrics,
		Pprof:    cfg.Debug.Pprof,
		Logger:   log.Named("http"),
		Registry: registry, // the naming Open API
		Writes:   fwd,      // its writes, on the node responsible for their client
		Store:    store,    // persistent instances, service definitions, namespaces

		// What the operator and client endpoints report.
		Connections: rs,
		Plugins:     plugins.Status,
		Metrics:     metrics,
		Switches: httpapi.Switches{
			PushDelay: cfg.Push.Delay, PushTimeout: cfg.Push.Timeout, PushRetryDelay: cfg.Push.RetryDelay,
			ProtectEmpty: cfg.Push.ProtectEmpty, ProtectEmptyGrace: cfg.Push.ProtectEmptyGrace,
			HealthCheckInterval: cfg.Health.CheckInterval,
			ReportInterval:      cfg.Cluster.ReportInterval, VerifyInterval: cfg.Cluster.VerifyInterval,
			ClientExpiry: cfg.Cluster.ClientExpiry,
		},

		IdleTimeout:    cfg.HTTP.IdleTimeout,
		ReadTimeout:    cfg.HTTP.ReadTimeout,
		WriteTimeout:   cfg.HTTP.WriteTimeout,
		MaxHeaderBytes: cfg.HTTP.MaxHeaderBytes,
		MaxConnections: httpMaxConnections(cfg),
	})
	// The beat checker of the HTTP API's instances: of the clients this
	// node is responsible for.
	checker, err := health.New(health.Config{
		Registry:         registry,
		Owns:             fwd.Responsible,
		Interval:         cfg.Health.CheckInterval,
		MaxChecksPerTick: cfg.Health.MaxChecksPerTick,
		Logger:           log.Named("health"),
		Metrics:          metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	// The server-side checks of persistent instances: each member checks
	// the services the rendezvous hash gives it; a change goes through Raft.
	probes, err := healthcheck.New(healthcheck.Config{
		Targets: func() []healthcheck.Target { return persistentTargets(fsm) },
		Owns:    func(svc naming.Service) bool { return members.Owner(svc.String()) == members.Self() },
		Report: func(ctx context.Context, svc naming.Service, a healthcheck.Address, healthy bool) error {
			return store.Do(ctx, persist.SetHealth{Service: svc, IP: a.IP, Port: a.Port, Cluster: a.Cluster, Healthy: healthy})
		},
		Logger:  log.Named("healthcheck"),
		Metrics: metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("healthcheck: %w", err)
	}
	s.components = append(s.components, pusher, rs, checker, probes, s.http)
	return s, nil
}

// persistentTargets lists the store's persistent instances for the
// server-side checks, each with its cluster's checker (PUT
// /nacos/v1/ns/cluster), or Nacos's default, TCP to its port, for a cluster
// without a definition. Those whose checker is NONE are listed too: the
// scheduler does not check them.
func persistentTargets(fsm *persist.FSM) []healthcheck.Target {
	var out []healthcheck.Target
	clusters := fsm.AllClusters()
	def := persist.DefaultClusterDefinition().HealthChecker()
	for svc, insts := range fsm.AllInstances() {
		for _, in := range insts {
			checker := def
			if d, ok := clusters[svc][in.Cluster]; ok {
				checker = d.HealthChecker()
			}
			out = append(out, healthcheck.Target{Service: svc, Address: healthcheck.Address{IP: in.IP, Port: in.Port, Cluster: in.Cluster},
				Healthy: in.Healthy, Checker: checker})
		}
	}
	return out
}

// httpMaxConnections is http.max_connections, or when it is 0 half the
// descriptors the client gRPC port's limit leaves.
func httpMaxConnections(cfg config.Config) int {
	if cfg.HTTP.MaxConnections > 0 {
		return cfg.HTTP.MaxConnections
	}
	return remote.DefaultHTTPConnections(cfg.Remote.MaxConnections)
}

// pluginSpecs sorts the configured plugins into push plugins (in name
// order) and the cluster's membership and transport plugins (none for a
// standalone node). The static membership plugin (under its own name or
// another, with builtin = "static") gets cluster.members when its own block
// does not list members; the transport gets cluster.tls and
// cluster.secret as its tls_ca_file, tls_cert_file, tls_key_file and secret
// keys, those its own block does not set.
func pluginSpecs(cfg config.Config, clustered bool) (push []pluginhost.Spec, membership, transport *pluginhost.Spec) {
	spec := func(name string) pluginhost.Spec {
		p := cfg.Plugins[name]
		return pluginhost.Spec{Name: name, Path: p.Path, Args: p.Args, Builtin: p.Builtin, SHA256: p.SHA256, InProcess: p.InProcess, Config: p.Config}
	}
	memberName, transportName := cfg.Cluster.MembershipPlugin(), cfg.Cluster.Transport
	if clustered {
		m, t := spec(memberName), spec(transportName)
		static := cfg.Plugins[memberName].BuiltinName(memberName) == "static"
		if _, set := m.Config["members"]; static && !set && len(cfg.Cluster.Members) > 0 {
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
		t.Config = maps.Clone(t.Config)
		for key, value := range map[string]string{
			"tls_ca_file": cfg.Cluster.TLS.CAFile, "tls_cert_file": cfg.Cluster.TLS.CertFile,
			"tls_key_file": cfg.Cluster.TLS.KeyFile, "secret": cfg.Cluster.Secret,
		} {
			if _, set := t.Config[key]; value != "" && !set {
				if t.Config == nil {
					t.Config = map[string]any{}
				}
				t.Config[key] = value
			}
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

// Reload reads again what changes without a restart, on SIGHUP: the TLS
// certificate, key and client CA, which new connections then use. A set that
// does not load is logged and returned, and the current one stays.
func (s *Server) Reload() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// Ready reports whether the node serves: every part started and, in a
// cluster, the start-up snapshot loaded. Clients may connect and register
// before (what they register is kept), but balancers wait for this.
func (s *Server) Ready() bool {
	return s.ready.Load() && (s.distro == nil || s.distro.Ready()) && s.raft.Replayed()
}

// Start prepares the data directory and starts every part; then the client
// endpoint serves. On failure, what was started is stopped again.
func (s *Server) Start(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	applyMemoryLimit(s.cfg.MemoryLimitBytes(), s.cfg.MemoryLimit, os.Getenv("GOMEMLIMIT"), s.log)
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
// StopTimeout. It stops too, and returns the error, when the node cannot go
// on as a member of its cluster (its member list holds it under another
// address). The plugins hear first that the server stops, so that a plugin
// process that the same signal ended is not restarted.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	var failed error
	select {
	case <-ctx.Done():
		s.log.Info("stopping")
	case <-s.members.Failed():
		failed = s.members.Err()
		s.log.Info("stopping: this node cannot go on as a member")
	}
	s.plugins.BeginStop()
	stopCtx, cancel := context.WithTimeout(context.Background(), StopTimeout)
	defer cancel()
	return errors.Join(failed, s.Stop(stopCtx))
}
