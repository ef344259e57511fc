// Package remote serves the Nacos 2.x client wire on the client gRPC port:
// connection checks and setup, the client's requests (decoded and handed to
// naming), server-to-client requests with their answers, and the probing and
// dropping of silent connections.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/proto/nacos"
)

// readBufferSize is each connection's read buffer: most client requests are
// well under it (grpc-go's default is 32 KiB).
const readBufferSize = 4 << 10

// Config configures a Server.
type Config struct {
	Addr           string // listen address, e.g. ":9848"
	MaxMessageSize int    // largest message accepted from a client, in bytes
	IdleTimeout    time.Duration
	DetectInterval time.Duration
	DetectTimeout  time.Duration
	Registry       *naming.Registry
	Logger         hclog.Logger
	Metrics        prometheus.Registerer
}

// Server is the client gRPC endpoint.
type Server struct {
	cfg      Config
	log      hclog.Logger
	registry *naming.Registry
	handlers map[string]handler
	metrics  *metrics
	grpc     *grpc.Server
	lis      *trackingListener

	ready atomic.Bool

	sendMu        sync.Mutex
	lastRequestID uint64 // of server-to-client requests; under sendMu

	mu    sync.RWMutex
	conns map[string]*conn // connections that completed setup, by id

	// baseCtx outlives every connection; it is cancelled when Stop is done.
	baseCtx context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a server that is not listening yet.
func New(cfg Config) *Server {
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		registry: cfg.Registry,
		conns:    make(map[string]*conn),
	}
	s.handlers = s.requestHandlers()
	s.metrics = newMetrics(cfg.Metrics, s.connectionCount)
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxMessageSize),
		// Thousands of mostly idle connections: a small read buffer each
		// (write buffers go back to grpc's pool after every flush).
		grpc.ReadBufferSize(readBufferSize),
		grpc.StatsHandler(connTagger{}),
		// The official clients ping every 60 s even when idle; grpc-go's default
		// policy would answer that with GOAWAY "too_many_pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WaitForHandlers(true),
	)
	nacos.RegisterRequestServer(s.grpc, unaryService{s: s})
	nacos.RegisterBiRequestStreamServer(s.grpc, streamService{s: s})
	return s
}

// Start listens and serves. The server answers "starting" until SetReady(true).
func (s *Server) Start(context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("client gRPC listener: %w", err)
	}
	s.lis = newTrackingListener(lis)
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(s.lis); err != nil {
			s.log.Error("client gRPC server stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.detectIdle()
	}()
	s.log.Info("client gRPC listening", "addr", lis.Addr().String())
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// SetReady switches between serving requests and answering "server starting".
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Stop closes every connection (their clients are removed from the registry)
// and the listener, and waits for every handler to return.
func (s *Server) Stop(ctx context.Context) error {
	s.ready.Store(false)
	done := make(chan struct{})
	go func() {
		s.grpc.Stop()
		s.cancel()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("client gRPC server: %w", ctx.Err())
	}
}

func (s *Server) conn(id string) *conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.conns[id]
}

func (s *Server) connectionCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

// unaryService and streamService adapt the Server to the generated interfaces.
type unaryService struct {
	nacos.UnimplementedRequestServer
	s *Server
}

func (u unaryService) Request(ctx context.Context, p *nacos.Payload) (*nacos.Payload, error) {
	return u.s.serveRequest(ctx, p), nil
}

type streamService struct {
	nacos.UnimplementedBiRequestStreamServer
	s *Server
}

func (st streamService) RequestBiStream(stream nacos.BiRequestStream_RequestBiStreamServer) error {
	return st.s.serveStream(stream)
}

// serveStream runs one client's bi-directional stream: this goroutine reads;
// the server's requests are written by the connection. When the stream ends,
// for whatever reason, the client is removed and its TCP connection closed.
func (s *Server) serveStream(stream nacos.BiRequestStream_RequestBiStreamServer) error {
	ctx := stream.Context()
	id := connectionIDFrom(ctx)
	var addr string
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	c := newConn(id, addr, time.Now(), stream.Send, func(err error) {
		s.log.Debug("send failed; closing connection", "connection", id, "error", err)
		s.lis.closeConn(addr)
	})
	registered, err := s.read(stream, c)
	s.lis.closeConn(addr) // unblocks a writer stuck on a client that stopped reading
	c.close()
	if registered {
		s.unregister(c)
	}
	return err
}

// read handles what the client sends on its stream until the stream ends:
// the connection setup, then answers to server requests.
func (s *Server) read(stream nacos.BiRequestStream_RequestBiStreamServer, c *conn) (registered bool, err error) {
	for {
		p, err := stream.Recv()
		if err != nil {
			return registered, nil
		}
		c.touch(time.Now())
		typ, body := p.GetMetadata().GetType(), p.GetBody().GetValue()
		if typ != typeConnectionSetup {
			if _, err := c.answer(body); err != nil {
				s.log.Debug("bad answer on stream", "connection", c.id, "type", typ, "error", err)
			}
			continue
		}
		if registered {
			s.log.Debug("repeated connection setup ignored", "connection", c.id)
			continue
		}
		if err := s.register(c, body); err != nil {
			s.log.Warn("connection setup refused", "connection", c.id, "error", err)
			return false, err
		}
		registered = true
	}
}

// register records a connection that sent its setup request.
func (s *Server) register(c *conn, body []byte) error {
	var setup connectionSetup
	if err := json.Unmarshal(body, &setup); err != nil {
		return fmt.Errorf("%s could not be parsed: %w", typeConnectionSetup, err)
	}
	s.mu.Lock()
	if _, dup := s.conns[c.id]; dup {
		s.mu.Unlock()
		return errors.New("connection already has a stream")
	}
	s.conns[c.id] = c
	s.mu.Unlock()
	if err := s.registry.Connect(c.id, setup.Labels); err != nil {
		s.mu.Lock()
		delete(s.conns, c.id)
		s.mu.Unlock()
		return err
	}
	s.log.Debug("connection set up", "connection", c.id, "client_version", setup.ClientVersion,
		"tenant", setup.Tenant, "labels", setup.Labels)
	return nil
}

// unregister removes a registered connection and its client.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
	if err := s.registry.Disconnect(s.baseCtx, c.id); err != nil {
		s.log.Warn("removing a client's data was interrupted", "connection", c.id, "error", err)
	}
	s.log.Debug("connection closed", "connection", c.id)
}

// detectIdle probes connections that have been silent for IdleTimeout with a
// ClientDetectionRequest and drops those that do not answer in DetectTimeout.
func (s *Server) detectIdle() {
	ticker := time.NewTicker(s.cfg.DetectInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case now := <-ticker.C:
			s.mu.RLock()
			var idle []*conn
			for _, c := range s.conns {
				if now.Sub(c.idleSince()) >= s.cfg.IdleTimeout && !c.probing.Load() {
					idle = append(idle, c)
				}
			}
			s.mu.RUnlock()
			for _, c := range idle {
				c.probing.Store(true)
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.probe(c)
				}()
			}
		}
	}
}

func (s *Server) probe(c *conn) {
	defer c.probing.Store(false)
	ctx, cancel := context.WithTimeout(s.baseCtx, s.cfg.DetectTimeout)
	defer cancel()
	err := s.Request(ctx, typeClientDetection, []byte(clientDetectionBody), []string{c.id})[0]
	if err == nil {
		return
	}
	if s.baseCtx.Err() == nil {
		s.log.Info("dropping a connection that did not answer a detection probe", "connection", c.id, "error", err)
		s.metrics.dropped.Inc()
	}
	s.lis.closeConn(c.addr) // the stream handler then removes the client
}
