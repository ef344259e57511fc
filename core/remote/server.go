// Package remote serves the Nacos 2.x client wire on the client gRPC port:
// connection checks and setup, the client's requests (decoded and handed to
// naming), server-to-client requests with their answers, the probing and
// dropping of silent connections, and the limits that keep what clients cost
// bounded: connections (Config.MaxConnections), streams per connection
// (MaxStreams), time to set up (SetupTimeout), bytes queued to a connection
// (MaxOutboundBytes, with a newer push of a service replacing an unsent older
// one) and time to write to it (WriteTimeout).
package remote

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
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
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
	"github.com/sextantd/sextant/core/remote/h2serve"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// refusedLogInterval is how often refused connections are logged at most.
const refusedLogInterval = 10 * time.Second

// The transports the client port can serve on (Config.Transport).
const (
	// TransportGRPC is grpc-go's server, the default.
	TransportGRPC = "grpc"
	// TransportH2 is h2serve, a server written for the two Nacos methods:
	// one goroutine and no buffers per idle connection.
	TransportH2 = "h2"
)

// Config configures a Server.
type Config struct {
	Addr string // listen address, e.g. ":9848" or "127.0.0.1:9848"
	// Transport is TransportGRPC ("" too) or TransportH2.
	Transport      string
	MaxMessageSize int // largest message accepted from a client, in bytes
	IdleTimeout    time.Duration
	DetectInterval time.Duration
	DetectTimeout  time.Duration
	Registry       *naming.Registry
	Logger         hclog.Logger
	Metrics        prometheus.Registerer
	// Auth, if set, requires of every request but the open ones a token
	// whose user has the access the request needs (dispatch.go). nil lets
	// every client do everything.
	Auth *auth.Authority

	// MaxOutboundBytes is each connection's budget of server requests queued
	// and not yet handed to its stream; a send over it closes the connection.
	// A message larger than the budget is accepted when nothing else is
	// queued. 0 means no budget.
	MaxOutboundBytes int
	// WriteTimeout closes a connection whose stream does not take a message
	// in this long. 0 means no timeout.
	WriteTimeout time.Duration
	// SetupTimeout closes a TCP connection that has not completed
	// ConnectionSetupRequest this long after it was accepted. 0 means none.
	SetupTimeout time.Duration
	// MaxStreams is HTTP/2 MAX_CONCURRENT_STREAMS per connection; 0 is
	// grpc-go's default (no limit).
	MaxStreams int
	// MaxConnections is how many TCP connections are held open; more are
	// closed as they are accepted. 0 derives it from RLIMIT_NOFILE
	// (DefaultMaxConnections); negative means no limit.
	MaxConnections int
	// TLS, if set, is required of every connection (plaintext ones fail
	// their handshake); its GetConfigForClient may change the certificate
	// for new connections. nil serves plaintext.
	TLS *tls.Config
}

// Server is the client gRPC endpoint.
type Server struct {
	cfg      Config
	log      hclog.Logger
	registry *naming.Registry
	store    *persist.Store
	handlers map[string]handler
	metrics  *metrics
	// clientErrors logs what clients get wrong, each client's same error
	// once a minute at most (client_errors.go).
	clientErrors *clientErrors
	// One of grpc and h2 serves, as Config.Transport says.
	grpc *grpc.Server
	h2   *h2serve.Server
	lis  *trackingListener

	ready atomic.Bool

	sendMu        sync.Mutex
	lastRequestID uint64 // of server-to-client requests; under sendMu

	outboundBytes  atomic.Int64               // queued and being written, every connection
	writers        atomic.Pointer[writerPool] // set by Start
	lastRefusedLog atomic.Int64               // unix nanoseconds
	lastLabelsLog  atomic.Int64               // unix nanoseconds

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
	if s.cfg.MaxConnections == 0 {
		s.cfg.MaxConnections = DefaultMaxConnections()
	}
	// The listener's connection table exists before Start, for the gauges
	// and for connections registered without a network in tests.
	s.lis = newTrackingListener(nil)
	s.lis.maxConns, s.lis.setupTimeout = s.cfg.MaxConnections, s.cfg.SetupTimeout
	s.lis.refused = s.refused
	s.lis.expired = func(addr string) {
		s.metrics.closed.WithLabelValues(reasonSetupTimeout).Inc()
		s.log.Info("closing a connection that did not complete its setup in time", "addr", addr, "timeout", s.cfg.SetupTimeout)
	}
	s.handlers = s.requestHandlers()
	s.metrics = newMetrics(cfg.Metrics, gauges{
		connections:    s.connectionCount,
		open:           s.openConnections,
		outboundBytes:  s.outboundBytes.Load,
		reading:        s.reading,
		idleWriters:    func() int64 { return s.writers.Load().idleWriters() },
		maxConnections: s.cfg.MaxConnections,
	})
	s.clientErrors = newClientErrors(s.log, s.metrics.clientErrorsSuppressed, s.metrics.clientErrorsEvicted)
	if cfg.Transport == TransportH2 {
		s.h2 = h2serve.New(h2serve.Handlers{Unary: s.serveRequest, Blocking: mayWait, Stream: s.openStream}, h2serve.Options{
			MaxMessageSize: cfg.MaxMessageSize, MaxStreams: cfg.MaxStreams, TLS: cfg.TLS,
			WriteTimeout: cfg.WriteTimeout, MinPingInterval: serveropts.MinPingInterval,
		})
		return s
	}
	// The transport's options are shared with sextant-bench's ceiling server.
	opts := serveropts.Transport(cfg.MaxMessageSize, cfg.MaxStreams)
	if cfg.TLS != nil {
		// The handshake runs on the connection's own goroutine, bounded by
		// SetupTimeout like the rest of the setup.
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	serveropts.RegisterRequest(s.grpc, s.serveRequest)
	nacos.RegisterBiRequestStreamServer(s.grpc, streamService{s: s})
	return s
}

// Start listens and serves. The server answers "starting" until SetReady(true).
func (s *Server) Start(context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("client gRPC listener: %w", err)
	}
	s.lis.Listener = lis
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.writers.Store(newWriterPool(s.baseCtx.Done()))
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.serve(); err != nil {
			s.log.Error("client gRPC server stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.detectIdle()
	}()
	s.log.Info("client gRPC listening", "addr", lis.Addr().String(), "transport", s.transport(), "tls", s.cfg.TLS != nil,
		"max_connections", s.cfg.MaxConnections)
	return nil
}

// serve serves the listener on the transport until Stop.
func (s *Server) serve() error {
	if s.h2 == nil {
		return s.grpc.Serve(s.lis)
	}
	if err := s.h2.Serve(s.lis); !errors.Is(err, h2serve.ErrStopped) {
		return err
	}
	return nil
}

// reading is how many connections hold a read buffer, on h2 (0 on grpc).
func (s *Server) reading() int {
	if s.h2 == nil {
		return 0
	}
	return s.h2.Reading()
}

// transport names the transport the server serves on.
func (s *Server) transport() string {
	if s.h2 != nil {
		return TransportH2
	}
	return TransportGRPC
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
		if s.h2 != nil {
			s.h2.Stop() // a GOAWAY to every client first
		} else {
			s.grpc.Stop()
		}
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

// openConnections is how many TCP connections are open, set up or not.
func (s *Server) openConnections() int { return s.lis.open() }

// refused counts a connection closed at accept for the connection limit,
// and logs the first of every burst.
func (s *Server) refused() {
	s.metrics.refused.Inc()
	now := time.Now().UnixNano()
	if last := s.lastRefusedLog.Load(); now-last >= int64(refusedLogInterval) && s.lastRefusedLog.CompareAndSwap(last, now) {
		s.log.Warn("refusing client connections: remote.max_connections are open", "max_connections", s.cfg.MaxConnections)
	}
}

func (s *Server) connectionCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

// streamService adapts the Server to the generated interface of the stream.
type streamService struct {
	nacos.UnimplementedBiRequestStreamServer
	s *Server
}

func (st streamService) RequestBiStream(stream nacos.BiRequestStream_RequestBiStreamServer) error {
	return st.s.serveStream(stream)
}

// serveStream runs one client's bi-directional stream on grpc-go: this
// goroutine reads; the server's requests are written by the connection.
func (s *Server) serveStream(stream nacos.BiRequestStream_RequestBiStreamServer) error {
	ss := s.newSession(stream.Context(), func(m serveropts.Message) error { return stream.SendMsg(m) })
	defer ss.Closed()
	for {
		p, err := stream.Recv()
		if err != nil {
			return nil
		}
		if err := ss.Receive(p); err != nil {
			return err
		}
	}
}

// openStream starts the session of a bi-stream h2serve took.
func (s *Server) openStream(ctx context.Context, stream *h2serve.Stream) h2serve.Receiver {
	return s.newSession(ctx, stream.Send)
}

// session is one client's bi-stream, on either transport: the connection
// its ConnectionSetupRequest sets up, the answers to server requests that
// come on it, and its end, which removes the client. It is an
// h2serve.Receiver.
type session struct {
	s          *Server
	c          *conn
	registered bool
}

// newSession returns the session of a stream whose context carries its
// connection's peer, and on which send writes.
func (s *Server) newSession(ctx context.Context, send func(serveropts.Message) error) *session {
	var addr string
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	ss := &session{s: s}
	ss.c = s.newStreamConn(connectionIDFrom(ctx), addr, send, func(err error) { s.dropConn(ss.c, err) })
	return ss
}

// Receive handles what the client sends on its stream: the connection
// setup, then answers to server requests. A refused setup ends the stream.
func (ss *session) Receive(p *nacos.Payload) error {
	s, c := ss.s, ss.c
	c.touch(time.Now())
	typ, body := p.GetMetadata().GetType(), p.GetBody().GetValue()
	if typ != typeConnectionSetup {
		if _, err := c.answer(body); err != nil {
			s.log.Debug("bad answer on stream", "connection", c.id, "type", typ, "error", err)
		}
		return nil
	}
	if ss.registered {
		s.log.Debug("repeated connection setup ignored", "connection", c.id)
		return nil
	}
	if err := s.register(c, body); err != nil {
		s.clientErrors.report(clientIP(c.addr, c.id), "setup", "connection setup refused", "connection", c.id, "error", err)
		return err
	}
	ss.registered = true
	return nil
}

// Closed ends the session, for whatever reason its stream ended: the TCP
// connection is closed, nothing more is written, and the client is removed.
func (ss *session) Closed() {
	ss.s.lis.closeConn(ss.c.addr) // unblocks a writer stuck on a client that stopped reading
	ss.c.close()
	if ss.registered {
		ss.s.unregister(ss.c)
	}
}

// mayWait says whether a request's handler may wait for a Raft commit: a
// PersistentInstanceRequest's, or an InstanceRequest's that does not say it
// is ephemeral (as the official clients write it). h2serve answers those
// from a goroutine of their own and every other request inline.
func mayWait(p *nacos.Payload) bool {
	switch p.GetMetadata().GetType() {
	case "PersistentInstanceRequest":
		return true
	case "InstanceRequest":
		return !bytes.Contains(p.GetBody().GetValue(), []byte(`"ephemeral":true`))
	}
	return false
}

// UsePersistentStore makes the server take persistent instances
// (ephemeral=false, and the PersistentInstanceRequest) through store, the
// Raft store; without one they are refused. Call it before Start: the
// store is built after the plugins, which need the server first.
func (s *Server) UsePersistentStore(store *persist.Store) { s.store = store }

// register records a connection that sent its setup request.
//
// Its client is created first, and only then is the connection found by
// requests: a client that is answered (a HealthCheckRequest, as clients poll
// after their setup) must find its client when it registers next, not be
// told that it is not connected.
func (s *Server) register(c *conn, body []byte) error {
	var setup connectionSetup
	if err := json.Unmarshal(body, &setup); err != nil {
		return fmt.Errorf("%s could not be parsed: %w", typeConnectionSetup, err)
	}
	c.version = setup.ClientVersion
	if s.conn(c.id) != nil {
		return errConnectionHasStream
	}
	labels, dropped, why := checkLabels(setup.Labels)
	if dropped > 0 {
		s.droppedLabels(c, dropped, why)
	}
	c.app = cmp.Or(labels[appNameLabel], noAppName)
	// A second stream racing this one is refused here: the client exists.
	if err := s.registry.Connect(c.id, labels); err != nil {
		return err
	}
	s.mu.Lock()
	s.conns[c.id] = c
	s.mu.Unlock()
	s.lis.setUp(c.addr)
	s.log.Info("connection set up", "connection", c.id, "client_ip", clientIP(c.addr, c.id), "app", c.app,
		"client_version", setup.ClientVersion)
	s.log.Debug("connection labels", "connection", c.id, "tenant", setup.Tenant, "labels", labels)
	return nil
}

// errConnectionHasStream refuses the setup of a second stream on a
// connection.
var errConnectionHasStream = errors.New("connection already has a stream")

// droppedLabels counts the labels checkLabels dropped of a connection's
// setup, and logs the first connection of every burst.
func (s *Server) droppedLabels(c *conn, dropped int, why string) {
	s.metrics.labelsDropped.Add(float64(dropped))
	now := time.Now().UnixNano()
	if last := s.lastLabelsLog.Load(); now-last >= int64(refusedLogInterval) && s.lastLabelsLog.CompareAndSwap(last, now) {
		s.log.Warn("dropping connection labels over the label limits", "connection", c.id, "dropped", dropped,
			"first", why, "max_labels", maxLabels, "max_key_bytes", maxLabelKeyBytes, "max_value_bytes", maxLabelValueBytes)
	}
}

// unregister removes a registered connection and its client, and logs what
// went with it.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
	var instances, subscriptions int
	if info, ok := s.registry.ClientInfo(c.id); ok {
		for _, insts := range info.Published {
			instances += len(insts)
		}
		subscriptions = len(info.Subscribed)
	}
	if err := s.registry.Disconnect(s.baseCtx, c.id); err != nil {
		s.log.Warn("removing a client's data was interrupted", "connection", c.id, "error", err)
	}
	s.log.Info("connection closed", "connection", c.id, "client_ip", clientIP(c.addr, c.id), "app", c.app,
		"client_version", c.version, "instances_removed", instances, "subscriptions_removed", subscriptions,
		"age", time.Since(c.since).Round(time.Millisecond))
}

// The label in which a Nacos client names its application, and what the
// log says of a client without one.
const (
	appNameLabel = "AppName"
	noAppName    = "-"
)

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
