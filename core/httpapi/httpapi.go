// Package httpapi serves the HTTP port: the Nacos health, server-state and
// cluster-nodes endpoints, Prometheus metrics and, when enabled, Go's
// profiler.
package httpapi

import (
	"context"
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

	"github.com/sextantd/sextant/core/cluster"
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
}

// Server is the HTTP endpoint.
type Server struct {
	cfg  Config
	http *http.Server
	lis  net.Listener
	wg   sync.WaitGroup
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
	mux.HandleFunc("GET /nacos/v1/core/cluster/nodes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, nacosResult{Code: http.StatusOK, Data: nodes(cfg.Members(), cfg.Version)})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &Server{
		cfg: cfg,
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          cfg.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		},
	}
}

// Start listens and serves.
func (s *Server) Start(context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	s.lis = lis
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("HTTP server stopped", "error", err)
		}
	}()
	s.cfg.Logger.Info("HTTP listening", "addr", lis.Addr().String())
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Stop finishes the requests in progress (until ctx is done) and stops.
func (s *Server) Stop(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	s.wg.Wait()
	return err
}
