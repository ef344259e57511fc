// Package h2serve is a purpose-built HTTP/2 server for the two methods of
// the Nacos 2.x gRPC wire (/Request/request and
// /BiRequestStream/requestBiStream), written on golang.org/x/net/http2's
// framer and hpack: the client port's transport when remote.transport is
// "h2", and the ceiling's (sextant-bench serve-ceiling --transport h2).
//
// One goroutine serves a connection, reading its frames and answering each
// unary call inline as its last DATA frame arrives; a call whose handler
// may wait (Handlers.Blocking) is answered from a goroutine of its own.
// Answers are written into one buffer, flushed when no more input is
// buffered, so that pipelined calls share a system call. Other goroutines
// write to a bi-stream (Stream.Send) under the connection's lock. The read
// and write buffers come from pools: the write buffer is given back at
// every flush, the read buffer once the connection has been idle for
// idleAfter, so that an idle connection holds neither. There is no
// goroutine per stream, none for writing, none for keep-alive (a client's
// PINGs are answered as they come, and too frequent ones refused as
// grpc-go's keep-alive enforcement refuses them).
//
// It keeps HTTP/2's flow control both ways: what is read is given back in
// WINDOW_UPDATEs once half a window is used, and an answer larger than the
// client's windows waits for its WINDOW_UPDATEs. It speaks TLS with ALPN
// "h2" when given a tls.Config. It does not compress (a compressed message
// is refused with gRPC's UNIMPLEMENTED). Stop sends every connection a
// GOAWAY before closing it.
package h2serve

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// The paths of the two Nacos methods.
const (
	UnaryPath  = "/Request/request"
	StreamPath = "/BiRequestStream/requestBiStream"
)

// Sizes of a connection's buffers and windows, and its time limits.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 16 << 10
	// idleAfter is how long a connection waits for input with its read
	// buffer before it gives the buffer back and waits without one.
	idleAfter = time.Second
	// defaultWindow is HTTP/2's initial window, of a stream and of the
	// connection, both ways: this server announces no other.
	defaultWindow = 65535
	// maxWindow is the largest window HTTP/2 allows.
	maxWindow = 1<<31 - 1
	// giveBack is how much of a window is read before it is given back.
	giveBack = defaultWindow / 2
	// maxFrameSize is the largest frame read: HTTP/2's default
	// SETTINGS_MAX_FRAME_SIZE, which this server does not raise.
	maxFrameSize = 16 << 10
	// maxHeaderList bounds a request's decoded headers.
	maxHeaderList = 16 << 10
	// prefaceTimeout bounds the wait for a new connection's TLS handshake
	// and preface.
	prefaceTimeout = 10 * time.Second
	// goAwayTimeout bounds the writing of the GOAWAY that Stop sends.
	goAwayTimeout = time.Second
	// maxPingStrikes is how many PINGs closer than Options.MinPingInterval
	// a connection may send before it is closed, as in grpc-go.
	maxPingStrikes = 2
	// defaultMaxBlocking bounds a connection's blocking calls at once
	// when Options.MaxStreams sets no bound.
	defaultMaxBlocking = 100
)

// gRPC status codes this server answers with.
const (
	codeOK                = 0
	codeUnknown           = 2
	codeResourceExhausted = 8
	codeUnimplemented     = 12
	codeInternal          = 13
)

// Handlers are what the server calls. The context of a call carries the
// client's address as grpc's peer.FromContext finds it (the net.Conn's
// RemoteAddr), and ends with the connection.
type Handlers struct {
	// Unary answers a /Request/request call. It runs on the connection's
	// goroutine, so it must not wait, unless Blocking says it may.
	Unary func(context.Context, *nacos.Payload) *serveropts.Answer
	// Blocking, if set, says of a request whether its handler may wait
	// (on a Raft commit, say): such a call is answered from a goroutine of
	// its own, and the connection's other calls go on meanwhile.
	Blocking func(*nacos.Payload) bool
	// Stream is called when a client opens a bi-stream, on the
	// connection's goroutine; the Receiver it returns takes the stream's
	// messages there.
	Stream func(context.Context, *Stream) Receiver
}

// Receiver takes what a client sends on its bi-stream. Its methods run on
// the connection's goroutine, so they must not wait.
type Receiver interface {
	// Receive takes one message. An error ends the stream with gRPC's
	// UNKNOWN status and the error's text.
	Receive(*nacos.Payload) error
	// Closed is called once, when the stream has ended for whatever
	// reason; Stream.Send fails from then on.
	Closed()
}

// Options bound what a client may send and take.
type Options struct {
	// MaxMessageSize is the largest request message accepted.
	MaxMessageSize int
	// MaxStreams is the streams a connection may have open at once
	// (SETTINGS_MAX_CONCURRENT_STREAMS); 0 is no limit.
	MaxStreams int
	// TLS, if set, is required of every connection; "h2" is added to its
	// ALPN protocols (and to those of the configs its GetConfigForClient
	// returns). nil serves plaintext (h2c with prior knowledge, as gRPC).
	TLS *tls.Config
	// WriteTimeout bounds each write to a connection: a client that does
	// not read for this long (on plaintext, for a tenth less at the least)
	// loses it. 0 is none.
	WriteTimeout time.Duration
	// MinPingInterval is how often a client may PING with no data sent to
	// it in between: more than maxPingStrikes PINGs closer than this close
	// its connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings", as
	// grpc-go's keep-alive enforcement does. 0 allows any.
	MinPingInterval time.Duration
}

// Server serves connections until Stop.
type Server struct {
	h   Handlers
	o   Options
	tls *tls.Config // o.TLS with ALPN h2; nil for plaintext
	// answerHeaders and okTrailers are the header blocks of every answer,
	// encoded once: hpack's static table and literals never indexed, so
	// that no connection's dynamic table depends on them.
	answerHeaders, okTrailers []byte

	// reading counts the connections that hold a read buffer.
	reading atomic.Int64

	mu        sync.Mutex
	stopped   bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]*conn // nil until the connection is set up
	// wg counts the connections being served (each by one goroutine at a
	// time) and the blocking calls.
	wg sync.WaitGroup
}

// New returns a Server that calls h.
func New(h Handlers, o Options) *Server {
	return &Server{
		h: h, o: o,
		tls:           withH2(o.TLS),
		answerHeaders: headerBlock(":status", "200", "content-type", "application/grpc"),
		okTrailers:    headerBlock("grpc-status", "0"),
		listeners:     map[net.Listener]struct{}{},
		conns:         map[net.Conn]*conn{},
	}
}

// withH2 returns a copy of cfg that offers ALPN "h2", also in the configs
// its GetConfigForClient returns.
func withH2(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return nil
	}
	addH2 := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		if !slices.Contains(c.NextProtos, "h2") {
			c.NextProtos = append(c.NextProtos, "h2")
		}
		return c
	}
	out := addH2(cfg)
	if get := cfg.GetConfigForClient; get != nil {
		out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c == nil || err != nil {
				return c, err
			}
			return addH2(c), nil
		}
	}
	return out
}

// Reading returns how many connections hold a read buffer: those that
// had input within idleAfter.
func (s *Server) Reading() int { return int(s.reading.Load()) }

// ErrStopped is what Serve returns once Stop was called.
var ErrStopped = errors.New("h2serve: stopped")

// Serve accepts connections on lis until Stop, which closes it.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		lis.Close()
		return ErrStopped
	}
	s.listeners[lis] = struct{}{}
	s.mu.Unlock()
	for {
		nc, err := lis.Accept()
		if err != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.stopped {
				return ErrStopped
			}
			return err
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			nc.Close()
			return ErrStopped
		}
		s.conns[nc] = nil
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

// closed forgets nc, closes it, and counts its goroutine done: the last
// step of every connection, from whichever goroutine serves it then.
func (s *Server) closed(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	nc.Close()
	s.wg.Done()
}

// Stop closes the listeners, sends every connection a GOAWAY and closes
// it, and waits for the connections' goroutines and their blocking calls.
func (s *Server) Stop() {
	s.mu.Lock()
	s.stopped = true
	for lis := range s.listeners {
		lis.Close()
	}
	conns := make(map[net.Conn]*conn, len(s.conns))
	for nc, c := range s.conns {
		conns[nc] = c
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for nc, c := range conns {
		if c == nil {
			nc.Close()
			continue
		}
		wg.Go(c.goAway)
	}
	wg.Wait()
	s.wg.Wait()
}

// started records c as nc's served connection; false if Stop came first.
func (s *Server) started(nc net.Conn, c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.conns[nc] = c
	return true
}

// handshake runs the TLS handshake of nc, if the server has TLS, and
// returns the connection to speak HTTP/2 on.
func (s *Server) handshake(nc net.Conn) (net.Conn, error) {
	if s.tls == nil {
		return nc, nil
	}
	tc := tls.Server(nc, s.tls)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	// A client that names no protocol is let through: it may still speak
	// HTTP/2 with prior knowledge.
	if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "h2" {
		return nil, errors.New("h2serve: the client negotiated " + p + ", not h2")
	}
	return tc, nil
}
