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

	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/core/httpapi"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/core/push"
	"github.com/sextantd/sextant/core/remote"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

// StopTimeout bounds a graceful stop.
const StopTimeout = 5 * time.Second

// Options are what the binary supplies beyond the configuration.
type Options struct {
	Logger hclog.Logger
	// Version is the binary's version, reported on the HTTP port.
	Version string
	// Builtins are the plugins the binary carries, by name.
	Builtins map[string]sdkpush.Plugin
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
	metrics.MustRegister(newStatsCollector(registry, bus))

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
	plugins := pluginhost.New(pluginhost.Config{
		Specs:       pluginSpecs(cfg.Plugins),
		Builtins:    opts.Builtins,
		Executable:  opts.Executable,
		Connections: rs,
		Logger:      log.Named("plugins"),
		Metrics:     metrics,
	})
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
	s := &Server{cfg: cfg, log: log, remote: rs}
	s.http = httpapi.New(httpapi.Config{
		Addr:     ":" + strconv.Itoa(cfg.Port),
		Version:  opts.Version,
		Ready:    s.ready.Load,
		Gatherer: metrics,
		Pprof:    cfg.Debug.Pprof,
		Logger:   log.Named("http"),
	})
	s.components = []component{bus, plugins, pusher, rs, s.http}
	return s, nil
}

// pluginSpecs lists the enabled plugins in name order.
func pluginSpecs(plugins map[string]config.Plugin) []pluginhost.Spec {
	var specs []pluginhost.Spec
	for _, name := range slices.Sorted(maps.Keys(plugins)) {
		if p := plugins[name]; !p.Disabled {
			specs = append(specs, pluginhost.Spec{Name: name, Path: p.Path, SHA256: p.SHA256, InProcess: p.InProcess, Config: p.Config})
		}
	}
	return specs
}

func pushRoutes(executors []pluginhost.Executor) []push.Route {
	routes := make([]push.Route, len(executors))
	for i, e := range executors {
		routes[i] = push.Route{Name: e.Name, Role: e.Role, Interest: e.Interest, Executor: e.Executor}
	}
	return routes
}

// Start prepares the data directory and starts every part; once all run, the
// server reports ready. On failure, what was started is stopped again.
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
	s.log.Info("ready", "http", s.http.Addr().String(), "grpc", s.remote.Addr().String())
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
