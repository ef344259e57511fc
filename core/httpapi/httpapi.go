// Package httpapi serves the HTTP port: the Nacos naming Open API (v1 and
// v2), the health, server-state and cluster-nodes endpoints, Prometheus
// metrics, the web console (core/console) and, when enabled, Go's profiler.
package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/console"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
	"github.com/sextantd/sextant/core/pluginhost"
)

// Config configures a Server.
type Config struct {
	Addr     string      // listen address, e.g. ":8848"
	Version  string      // the server's version, as "sextant version" prints it
	Ready    func() bool // whether the server is ready to serve clients
	Members  func() []cluster.Member
	Gatherer prometheus.Gatherer
	Pprof    bool // serve Go's profiler under /debug/pprof/
	Logger   hclog.Logger
	// Registry, if set, is served as the naming Open API (naming_v1.go),
	// with the service, operator and client endpoints (service_api.go,
	// operator_api.go, client_api.go).
	Registry *naming.Registry
	// Writes applies the HTTP clients' writes (register, deregister,
	// update, beat): in a cluster, a forward.Forwarder, which sends each to
	// the node responsible for its client. nil applies them to Registry.
	Writes NamingWrites
	// Store, if set, holds the persistent instances (ephemeral=false), the
	// service definitions and the namespaces: the naming API's writes of
	// them, and the console's namespace writes, go through it
	// (persistent.go; it commits through Raft, forwarding to the leader
	// itself). nil refuses those writes with 501.
	Store *persist.Store
	// Connections, if set, tells the client API what the client gRPC port
	// knows of a connection (its version, address, last activity).
	Connections ConnectionSource
	// Switches are the settings GET /nacos/v1/ns/operator/switches reports.
	Switches Switches
	// Plugins, if set, reports the plugins GET /v1/sextant/plugins lists
	// (pluginhost.Host.Status; sextant_api.go).
	Plugins func() []pluginhost.PluginStatus
	// Metrics, if set, registers the HTTP port's own metrics (fallback.go).
	Metrics prometheus.Registerer

	// Limits on connections (see config.HTTP); each zero takes the default
	// below, never "no limit".
	IdleTimeout    time.Duration // a keep-alive connection idle this long is closed
	ReadTimeout    time.Duration // a request not read in this long has its connection closed
	WriteTimeout   time.Duration // from a request's headers to the end of its response
	MaxHeaderBytes int           // larger request headers get 431
	MaxConnections int           // connections held open (connlimit.go)

	// Auth, if set, requires tokens on the paths auth.go lists and issues
	// them at the login paths. nil leaves every path open.
	Auth *auth.Authority

	// TLS, if set, serves HTTPS only (HTTP/2 and HTTP/1.1); its
	// GetConfigForClient may change the certificate for new connections.
	// nil serves plain HTTP.
	TLS *tls.Config
}

// The limits a Config leaves at zero get, as config.Default() sets them.
const (
	DefaultIdleTimeout    = 60 * time.Second
	DefaultReadTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 60 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConnections is half the descriptors the client gRPC port
	// leaves by default (core/remote: the open-file limit minus 256).
	DefaultMaxConnections = 128
)

// orDefault returns v, or def if v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Server is the HTTP endpoint.
type Server struct {
	cfg   Config
	http  *http.Server
	limit *connLimiter
	lis   net.Listener
	wg    sync.WaitGroup
}

// New returns a server that is not listening yet.
func New(cfg Config) *Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /nacos/v1/console/health/liveness", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("GET /nacos/v1/console/health/readiness", func(w http.ResponseWriter, _ *http.Request) {
		if !cfg.Ready() {
			http.Error(w, "server is not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("GET /nacos/v1/console/server/state", func(w http.ResponseWriter, _ *http.Request) {
		mode := "standalone"
		if len(cfg.Members()) > 1 {
			mode = "cluster"
		}
		writeJSON(w, map[string]string{"version": cfg.Version, "standalone_mode": mode})
	})
	mux.Handle("GET /nacos/v1/core/cluster/nodes", RequireAdmin(cfg.Auth, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, nacosResult{Code: http.StatusOK, Data: nodes(cfg.Members(), cfg.Version)})
	})))
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	if cfg.Pprof {
		for path, h := range map[string]http.HandlerFunc{"": pprof.Index, "cmdline": pprof.Cmdline, "profile": pprof.Profile, "symbol": pprof.Symbol, "trace": pprof.Trace} {
			mux.Handle("/debug/pprof/"+path, RequireAdmin(cfg.Auth, h))
		}
	}
	registerAuth(mux, cfg.Auth, cfg.Logger) // login; which paths are open: auth.go
	if cfg.Registry != nil {
		registerNaming(mux, cfg.Registry, cfg.Writes, cfg.Store, cfg.Auth, cfg.Logger.Named("naming"))
		registerOperator(mux, cfg, cfg.Logger.Named("naming"))
	}
	registerSextant(mux, cfg) // the operator's read API, /v1/sextant/
	// The web console at / and /console/; Nacos's /nacos/ redirects there.
	con := console.New()
	for _, pattern := range console.Patterns() {
		mux.Handle(pattern, con)
	}
	registerFallback(mux, cfg.Metrics, cfg.Logger) // 501 for the other /nacos/ paths
	limit := newConnLimiter(orDefault(cfg.MaxConnections, DefaultMaxConnections))
	if cfg.Metrics != nil {
		limit.register(cfg.Metrics)
	}
	return &Server{
		cfg:   cfg,
		limit: limit,
		http: &http.Server{
			Handler: mux,
			// ReadTimeout bounds the headers too (ReadHeaderTimeout is
			// left 0 to follow it); the idle wait before a request's first
			// byte is IdleTimeout's.
			ReadTimeout:    orDefault(cfg.ReadTimeout, DefaultReadTimeout),
			WriteTimeout:   orDefault(cfg.WriteTimeout, DefaultWriteTimeout),
			IdleTimeout:    orDefault(cfg.IdleTimeout, DefaultIdleTimeout),
			MaxHeaderBytes: orDefault(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes),
			ErrorLog:       cfg.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
			ConnState:      limit.connState,
		},
	}
}

// Start listens and serves.
func (s *Server) Start(context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	s.limit.Listener = lis
	lis = s.limit // under TLS: it counts TCP connections
	if s.cfg.TLS != nil {
		// The handshake happens on the connection's goroutine, within
		// ReadTimeout.
		lis = tls.NewListener(lis, s.cfg.TLS)
	}
	s.lis = lis
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("HTTP server stopped", "error", err)
		}
	}()
	s.cfg.Logger.Info("HTTP listening", "addr", lis.Addr().String(), "tls", s.cfg.TLS != nil, "max_connections", s.limit.max)
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Stop finishes the requests in progress (for a second at most, within
// ctx) and stops.
func (s *Server) Stop(ctx context.Context) error {
	// Requests in flight get shutdownGrace to finish; then their
	// connections close (the clients retry, on another node in a
	// cluster), so one slow request cannot use up the whole server's stop.
	grace, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	err := s.http.Shutdown(grace)
	if err != nil {
		err = errors.Join(ctx.Err(), s.http.Close())
	}
	s.wg.Wait()
	return err
}

// shutdownGrace is how long Stop waits for requests in flight.
const shutdownGrace = time.Second
