// Package h2serve is a purpose-built HTTP/2 server for the two methods of
// the Nacos 2.x gRPC wire (/Request/request and
// /BiRequestStream/requestBiStream), written on golang.org/x/net/http2's
// framer and hpack: the experiment of the performance issue, measured
// against grpc-go under the ceiling (sextant-bench serve-ceiling
// --transport h2).
//
// One goroutine serves a connection, reading its frames and answering each
// unary call inline as its last DATA frame arrives; answers are written
// into one buffer, flushed when no more input is buffered, so that
// pipelined calls share a system call. The read and write buffers come
// from pools: the write buffer is given back at every flush, the read
// buffer once the connection has been idle for idleAfter, so that an idle
// connection holds neither. There is no goroutine per stream,
// none for writing, none for keep-alive (a client's PINGs are answered as
// they come). It keeps HTTP/2's flow control both ways: what is read is
// given back in WINDOW_UPDATEs once half a window is used, and an answer
// larger than the client's windows waits for its WINDOW_UPDATEs. It does
// not compress (a compressed message is refused as gRPC's UNIMPLEMENTED),
// does not speak TLS, and cannot write to a stream from another goroutine
// (a server push): what it measures is the cost of reading and answering.
package h2serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// The paths of the two Nacos methods.
const (
	UnaryPath  = "/Request/request"
	StreamPath = "/BiRequestStream/requestBiStream"
)

// Sizes of a connection's buffers and windows, and when it is idle.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
	// idleAfter is how long a connection waits for input with its read
	// buffer before it gives the buffer back and waits without one.
	idleAfter = time.Second
	// defaultWindow is HTTP/2's initial window, of a stream and of the
	// connection, both ways: this server announces no other.
	defaultWindow = 65535
	// giveBack is how much of a window is read before it is given back.
	giveBack = defaultWindow / 2
	// maxHeaderList bounds a request's decoded headers.
	maxHeaderList = 16 << 10
	// prefaceTimeout bounds the wait for a new connection's preface.
	prefaceTimeout = 10 * time.Second
)

// gRPC status codes this server answers with.
const (
	codeOK                = 0
	codeInternal          = 13
	codeUnimplemented     = 12
	codeResourceExhausted = 8
)

// Handlers are what the server calls. The context carries the client's
// address as grpc's peer.FromContext finds it.
type Handlers struct {
	// Unary answers a /Request/request call.
	Unary func(context.Context, *nacos.Payload) *serveropts.Answer
	// Stream takes a message the client sent on its bi-stream.
	Stream func(context.Context, *nacos.Payload)
}

// Options bound what a client may send.
type Options struct {
	// MaxMessageSize is the largest request message accepted.
	MaxMessageSize int
	// MaxStreams is the streams a connection may have open at once
	// (SETTINGS_MAX_CONCURRENT_STREAMS); 0 is no limit.
	MaxStreams int
}

// Server serves connections until Stop.
type Server struct {
	h Handlers
	o Options
	// answerHeaders and okTrailers are the header blocks of every answer,
	// encoded once: hpack's static table and literals never indexed, so
	// that no connection's dynamic table depends on them.
	answerHeaders, okTrailers []byte

	// reading counts the connections that hold a read buffer.
	reading atomic.Int64

	mu        sync.Mutex
	stopped   bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// New returns a Server that calls h.
func New(h Handlers, o Options) *Server {
	return &Server{
		h: h, o: o,
		answerHeaders: headerBlock(":status", "200", "content-type", "application/grpc"),
		okTrailers:    headerBlock("grpc-status", "0"),
		listeners:     map[net.Listener]struct{}{},
		conns:         map[net.Conn]struct{}{},
	}
}

// headerBlock encodes name, value pairs without touching a dynamic table.
func headerBlock(pairs ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i < len(pairs); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: pairs[i], Value: pairs[i+1], Sensitive: true})
	}
	return buf.Bytes()
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
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			nc.Close()
		}()
	}
}

// Stop closes the listeners and every connection, and waits for their
// goroutines.
func (s *Server) Stop() {
	s.mu.Lock()
	s.stopped = true
	for lis := range s.listeners {
		lis.Close()
	}
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// conn is one client connection, owned by its goroutine.
type conn struct {
	s   *Server
	ctx context.Context
	in  *inbox
	out *outbox
	fr  *http2.Framer

	streams     map[uint32]*stream
	lastStream  uint32 // the highest stream id the client opened
	sendWindow  int64  // the connection's, as the client grants it
	peerWindow  int64  // a new stream's send window (SETTINGS_INITIAL_WINDOW_SIZE)
	peerFrame   int    // the largest DATA payload the client takes
	readUnacked int    // bytes read on the connection not yet given back
	blocked     []*stream
}

// stream is one open call.
type stream struct {
	id          uint32
	unary       bool
	buf         []byte // the start of a message not yet whole
	answered    bool   // a unary call's answer is queued
	readUnacked int
	sendWindow  int64
	pending     [][]byte // parts of the answer the windows held back
	trailers    bool     // send the OK trailers once pending is out
}

func (s *Server) serveConn(nc net.Conn) {
	c := &conn{
		s:          s,
		ctx:        peer.NewContext(context.Background(), &peer.Peer{Addr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr()}),
		in:         &inbox{nc: nc, holding: &s.reading},
		out:        &outbox{w: nc},
		streams:    map[uint32]*stream{},
		sendWindow: defaultWindow,
		peerWindow: defaultWindow,
		peerFrame:  16 << 10,
	}
	defer c.in.release()
	defer c.out.release()
	_ = nc.SetReadDeadline(time.Now().Add(prefaceTimeout))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(nc, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	c.fr = http2.NewFramer(c.out, c.in)
	c.fr.SetReuseFrames()
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderList
	settings := []http2.Setting{{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList}}
	if s.o.MaxStreams > 0 {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(s.o.MaxStreams)})
	}
	if c.fr.WriteSettings(settings...) != nil {
		return
	}
	for {
		if c.in.buffered() == 0 && c.out.flush() != nil {
			return
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			switch {
			case errors.As(err, &se):
				delete(c.streams, se.StreamID)
				if c.fr.WriteRSTStream(se.StreamID, se.Code) != nil {
					return
				}
				continue
			default:
				var ce http2.ConnectionError
				if errors.As(err, &ce) {
					_ = c.fr.WriteGoAway(c.lastStream, http2.ErrCode(ce), nil)
					_ = c.out.flush()
				}
				return
			}
		}
		if err := c.handle(f); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				_ = c.fr.WriteGoAway(c.lastStream, http2.ErrCode(ce), nil)
				_ = c.out.flush()
			}
			return
		}
	}
}

// handle acts on one frame; an error ends the connection.
func (c *conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := f.ForeachSetting(c.setting); err != nil {
			return err
		}
		if err := c.fr.WriteSettingsAck(); err != nil {
			return err
		}
		return c.unblock()
	case *http2.MetaHeadersFrame:
		return c.headers(f)
	case *http2.DataFrame:
		return c.data(f)
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.sendWindow += int64(f.Increment)
		} else if st := c.streams[f.StreamID]; st != nil {
			st.sendWindow += int64(f.Increment)
		}
		if c.sendWindow > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		return c.unblock()
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return c.fr.WritePing(true, f.Data)
	case *http2.RSTStreamFrame:
		c.close(f.StreamID)
	case *http2.GoAwayFrame:
		_ = c.out.flush()
		return io.EOF
	}
	return nil // PRIORITY and unknown frames
}

// setting applies one of the client's settings.
func (c *conn) setting(s http2.Setting) error {
	if err := s.Valid(); err != nil {
		return err
	}
	switch s.ID {
	case http2.SettingInitialWindowSize:
		delta := int64(s.Val) - c.peerWindow
		c.peerWindow = int64(s.Val)
		for _, st := range c.streams {
			st.sendWindow += delta
		}
	case http2.SettingMaxFrameSize:
		c.peerFrame = int(s.Val)
	}
	return nil
}

// headers opens a stream.
func (c *conn) headers(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 || id <= c.lastStream {
		if c.streams[id] != nil && f.StreamEnded() {
			return c.halfClosed(c.streams[id]) // trailers of the client: none in gRPC, but allowed
		}
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.lastStream = id
	if most := c.s.o.MaxStreams; most > 0 && len(c.streams) >= most {
		return c.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
	}
	path := f.PseudoValue("path")
	if f.PseudoValue("method") != "POST" || (path != UnaryPath && path != StreamPath) {
		return c.refuse(id, codeUnimplemented, "unknown method "+strconv.Quote(path))
	}
	for _, h := range f.RegularFields() {
		if h.Name == "grpc-encoding" && h.Value != "identity" {
			return c.refuse(id, codeUnimplemented, "compression "+strconv.Quote(h.Value)+" is not supported")
		}
	}
	st := &stream{id: id, unary: path == UnaryPath, sendWindow: c.peerWindow}
	c.streams[id] = st
	if f.StreamEnded() {
		return c.halfClosed(st)
	}
	return nil
}

// data takes a DATA frame's messages.
func (c *conn) data(f *http2.DataFrame) error {
	n := int(f.Length)
	c.readUnacked += n
	if c.readUnacked >= giveBack {
		if err := c.fr.WriteWindowUpdate(0, uint32(c.readUnacked)); err != nil {
			return err
		}
		c.readUnacked = 0
	}
	st := c.streams[f.StreamID]
	if st == nil {
		return nil // a stream this server ended (refused, or answered): its data is dropped
	}
	if !f.StreamEnded() {
		st.readUnacked += n
		if st.readUnacked >= giveBack {
			if err := c.fr.WriteWindowUpdate(st.id, uint32(st.readUnacked)); err != nil {
				return err
			}
			st.readUnacked = 0
		}
	}
	in := f.Data()
	if len(st.buf) > 0 {
		st.buf = append(st.buf, in...)
		in = st.buf
	}
	for len(in) >= 5 {
		size := int(binary.BigEndian.Uint32(in[1:5]))
		if in[0] != 0 {
			return c.refuse(st.id, codeUnimplemented, "compressed messages are not supported")
		}
		if size > c.s.o.MaxMessageSize {
			return c.refuse(st.id, codeResourceExhausted, "a message of "+strconv.Itoa(size)+" bytes exceeds the limit of "+strconv.Itoa(c.s.o.MaxMessageSize))
		}
		if len(in) < 5+size {
			break
		}
		if err := c.message(st, in[5:5+size]); err != nil || c.streams[st.id] == nil {
			return err
		}
		in = in[5+size:]
	}
	switch {
	case len(in) == 0:
		st.buf = nil
	case len(st.buf) > 0: // in is the tail of st.buf
		st.buf = append(st.buf[:0], in...)
	default:
		st.buf = append([]byte(nil), in...)
	}
	if f.StreamEnded() {
		return c.halfClosed(st)
	}
	return nil
}

// message acts on one whole message of st.
func (c *conn) message(st *stream, raw []byte) error {
	p := new(nacos.Payload)
	if err := proto.Unmarshal(raw, p); err != nil {
		return c.refuse(st.id, codeInternal, "the message is not a Payload: "+err.Error())
	}
	if !st.unary {
		c.s.h.Stream(c.ctx, p)
		return nil
	}
	if st.answered {
		return c.refuse(st.id, codeInternal, "a second message on a unary call")
	}
	st.answered = true
	return c.answer(st, c.s.h.Unary(c.ctx, p))
}

// answer writes a unary call's answer, as far as the windows let it.
func (c *conn) answer(st *stream, a *serveropts.Answer) error {
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: c.s.answerHeaders, EndHeaders: true}); err != nil {
		return err
	}
	// The message: gRPC's prefix, then the parts as they are (the
	// answer's body is shared, never joined or copied here).
	body := a.Encode()
	prefix := make([]byte, 5)
	binary.BigEndian.PutUint32(prefix[1:5], uint32(body.Len()))
	st.pending = make([][]byte, 0, 1+len(body))
	st.pending = append(st.pending, prefix)
	for _, part := range body {
		st.pending = append(st.pending, part.ReadOnlyData())
	}
	st.trailers = true
	return c.send(st)
}

// writeData writes a DATA frame of p on stream id straight into the
// write buffer (the framer would copy p into a frame first).
func (c *conn) writeData(id uint32, p []byte) error {
	var h [9]byte
	h[0], h[1], h[2] = byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
	h[3] = byte(http2.FrameData)
	binary.BigEndian.PutUint32(h[5:], id)
	if _, err := c.out.Write(h[:]); err != nil {
		return err
	}
	_, err := c.out.Write(p)
	return err
}

// send writes st's pending parts within the windows, then its trailers;
// a stream the windows hold back waits in blocked.
func (c *conn) send(st *stream) error {
	for len(st.pending) > 0 {
		part := st.pending[0]
		if len(part) == 0 {
			st.pending = st.pending[1:]
			continue
		}
		n := min(int64(len(part)), c.sendWindow, st.sendWindow, int64(c.peerFrame))
		if n <= 0 {
			c.blocked = append(c.blocked, st)
			return nil
		}
		if err := c.writeData(st.id, part[:n]); err != nil {
			return err
		}
		c.sendWindow -= n
		st.sendWindow -= n
		st.pending[0] = part[n:]
	}
	st.pending = nil
	if !st.trailers {
		return nil
	}
	c.close(st.id)
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: c.s.okTrailers, EndStream: true, EndHeaders: true})
}

// unblock sends what the windows held back, as far as they now let it.
func (c *conn) unblock() error {
	blocked := c.blocked
	c.blocked = nil
	for _, st := range blocked {
		if c.streams[st.id] != st {
			continue // reset meanwhile
		}
		if err := c.send(st); err != nil {
			return err
		}
	}
	return nil
}

// halfClosed acts on the client's end of st: a unary call must have sent
// its message; a bi-stream is ended.
func (c *conn) halfClosed(st *stream) error {
	switch {
	case st.unary && !st.answered:
		return c.refuse(st.id, codeInternal, "a unary call without a message")
	case !st.unary:
		c.close(st.id)
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: c.s.trailersOnly(codeOK, ""), EndStream: true, EndHeaders: true})
	}
	return nil
}

// refuse ends stream id with a gRPC status, in one header block
// (trailers only).
func (c *conn) refuse(id uint32, code int, message string) error {
	c.close(id)
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.s.trailersOnly(code, message), EndStream: true, EndHeaders: true})
}

// close forgets stream id.
func (c *conn) close(id uint32) { delete(c.streams, id) }

// trailersOnly is the header block of an answer with no message.
func (s *Server) trailersOnly(code int, message string) []byte {
	pairs := []string{":status", "200", "content-type", "application/grpc", "grpc-status", strconv.Itoa(code)}
	if message != "" {
		pairs = append(pairs, "grpc-message", percentEncode(message))
	}
	return headerBlock(pairs...)
}

// percentEncode encodes a grpc-message as gRPC's HTTP/2 mapping asks.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch <= 0x7e && ch != '%' {
			b = append(b, ch)
			continue
		}
		b = append(b, '%', hex[ch>>4], hex[ch&15])
	}
	return string(b)
}

// Buffers of connections with input or output, shared.
var (
	readBuffers  = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}
	writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}
)

// inbox reads a connection through a buffer it holds while the connection
// is busy: it gives the buffer back once a read has waited idleAfter, and
// then waits for the next byte without one.
type inbox struct {
	nc      net.Conn
	holding *atomic.Int64 // counts the inboxes that hold a buffer
	buf     *[]byte
	r, w    int  // the unread bytes are (*buf)[r:w]
	armed   bool // a read deadline idleAfter away is set
	first   [1]byte
}

func (in *inbox) buffered() int { return in.w - in.r }

// Read reads into p what is buffered, or else from the connection.
func (in *inbox) Read(p []byte) (int, error) {
	if in.r == in.w {
		if err := in.fill(len(p)); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*in.buf)[in.r:in.w])
	in.r += n
	return n, nil
}

// fill waits for input; want is how much the reader asked for.
func (in *inbox) fill(want int) error {
	if in.buf != nil {
		if !in.armed {
			_ = in.nc.SetReadDeadline(time.Now().Add(idleAfter))
			in.armed = true
		}
		n, err := in.nc.Read(*in.buf)
		in.r, in.w = 0, n
		if n > 0 {
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		_ = in.nc.SetReadDeadline(time.Time{})
		in.armed = false
		in.release()
	}
	// Idle: the first byte, without a buffer; then what came with it.
	if _, err := io.ReadFull(in.nc, in.first[:]); err != nil {
		return err
	}
	in.buf = readBuffers.Get().(*[]byte)
	in.holding.Add(1)
	(*in.buf)[0] = in.first[0]
	in.r, in.w = 0, 1
	if want > 1 {
		n, err := in.nc.Read((*in.buf)[1:])
		in.w += n
		if n == 0 {
			return err
		}
	}
	return nil
}

// release gives the read buffer back; only what is buffered is lost.
func (in *inbox) release() {
	if in.buf != nil {
		readBuffers.Put(in.buf)
		in.holding.Add(-1)
		in.buf, in.r, in.w = nil, 0, 0
	}
}

// outbox collects a connection's writes in a buffer held until flush.
type outbox struct {
	w   io.Writer
	buf *[]byte
}

// Write adds p to what flush sends, sending first what would not fit.
func (o *outbox) Write(p []byte) (int, error) {
	if o.buf == nil {
		o.buf = writeBuffers.Get().(*[]byte)
	}
	if len(*o.buf)+len(p) > writeBufferSize && len(*o.buf) > 0 {
		if err := o.send(); err != nil {
			return 0, err
		}
	}
	if len(p) >= writeBufferSize {
		return o.w.Write(p)
	}
	*o.buf = append(*o.buf, p...)
	return len(p), nil
}

// flush sends what was written and gives the buffer back.
func (o *outbox) flush() error {
	if o.buf == nil {
		return nil
	}
	err := o.send()
	o.release()
	return err
}

func (o *outbox) send() error {
	if len(*o.buf) == 0 {
		return nil
	}
	_, err := o.w.Write(*o.buf)
	*o.buf = (*o.buf)[:0]
	return err
}

func (o *outbox) release() {
	if o.buf != nil {
		*o.buf = (*o.buf)[:0]
		writeBuffers.Put(o.buf)
		o.buf = nil
	}
}
