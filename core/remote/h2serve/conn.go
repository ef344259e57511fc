package h2serve

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/peer"

	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// errConnectionClosed is what a write to a connection that ended fails with.
var errConnectionClosed = errors.New("h2serve: connection closed")

// conn is one client connection. Its goroutine reads the frames and acts
// on them holding mu, which it releases only to call the handlers; every
// write, from any goroutine, is made holding mu.
type conn struct {
	s      *Server
	raw    net.Conn // as accepted, under TLS if any
	nc     net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	in     *inbox
	fr     *http2.Framer // reads on the connection's goroutine; writes under mu

	// Of the connection's goroutine.
	readUnacked int // bytes read on the connection not yet given back
	lastPing    time.Time

	mu sync.Mutex
	// wake is signalled, on mu, when the windows grow or the connection
	// ends: a Send waiting for a window wakes.
	wake        *sync.Cond
	out         *outbox
	err         error // why the connection ended; nil while it serves
	streams     map[uint32]*stream
	lastStream  uint32 // the highest stream id the client opened
	sendWindow  int64  // the connection's, as the client grants it
	peerWindow  int64  // a new stream's send window (SETTINGS_INITIAL_WINDOW_SIZE)
	peerFrame   int    // the largest DATA payload the client takes
	blocked     []*stream
	pingStrikes int // PINGs too close together since data was last sent
	blocking    int // blocking calls running
}

// stream is one open call.
type stream struct {
	id    uint32
	unary bool
	// Of the connection's goroutine.
	buf         []byte // the start of a message not yet whole
	answered    bool   // a unary call's message has come
	readUnacked int
	recv        Receiver // of a bi-stream
	// Under conn.mu.
	cancel      context.CancelFunc // of a blocking call's context
	ended       bool               // the stream is over: nothing more is written to it
	sentHeaders bool
	sendWindow  int64
	pending     [][]byte // parts of the answer the windows held back
	trailers    bool     // send the OK trailers once pending is out
}

// serveConn sets up a connection and serves it until it ends. The
// connection moves to a new goroutine each time it wakes from idleness
// (conn.run); s.closed(nc) is its last step, from whichever goroutine.
func (s *Server) serveConn(nc net.Conn) {
	c := s.open(nc)
	if c == nil {
		s.closed(nc)
		return
	}
	c.run()
}

// open runs the TLS handshake, sends the server's SETTINGS and reads the
// client's preface; nil if any of that failed (or Stop came first).
func (s *Server) open(nc net.Conn) *conn {
	_ = nc.SetDeadline(time.Now().Add(prefaceTimeout))
	hc, err := s.handshake(nc)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(peer.NewContext(context.Background(), &peer.Peer{Addr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr()}))
	c := &conn{
		s:          s,
		raw:        nc,
		nc:         hc,
		ctx:        ctx,
		cancel:     cancel,
		in:         &inbox{nc: hc, holding: &s.reading},
		streams:    map[uint32]*stream{},
		sendWindow: defaultWindow,
		peerWindow: defaultWindow,
		peerFrame:  16 << 10,
	}
	c.out = &outbox{nc: hc, timeout: s.o.WriteTimeout, lasting: s.tls == nil}
	c.wake = sync.NewCond(&c.mu)
	c.fr = http2.NewFramer(c.out, c.in)
	c.fr.SetReuseFrames()
	// The largest frame HTTP/2 allows without a SETTINGS_MAX_FRAME_SIZE,
	// which this server does not send: a larger one is a FRAME_SIZE_ERROR.
	c.fr.SetMaxReadFrameSize(maxFrameSize)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderList
	// The server's SETTINGS go first, without waiting for the client's
	// preface, as from grpc-go: a client sees at once that it was served.
	// The connection is Stop's to close from then on, not before.
	settings := []http2.Setting{{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList}}
	if s.o.MaxStreams > 0 {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(s.o.MaxStreams)})
	}
	c.mu.Lock()
	if c.write(c.fr.WriteSettings(settings...)) == nil {
		c.flush()
	}
	failed := c.err != nil
	c.mu.Unlock()
	if failed || !s.started(nc, c) {
		c.abandon()
		return nil
	}
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c.in, preface); err != nil || string(preface) != http2.ClientPreface {
		c.abandon()
		return nil
	}
	// The preface's deadline ends, and with it the write deadline the
	// outbox set for the SETTINGS: the outbox must set its own again.
	_ = nc.SetDeadline(time.Time{})
	c.out.deadline = time.Time{}
	return c
}

// run serves frames until the connection ends, or until it has had no
// input for idleAfter: it then gives its read buffer back and waits for
// the next byte on a new goroutine, so that an idle connection holds
// neither a buffer nor the stack its handlers grew, and returns.
func (c *conn) run() {
	for {
		if c.in.buffered() == 0 {
			c.mu.Lock()
			c.flush()
			failed := c.err != nil
			c.mu.Unlock()
			if failed {
				c.finish()
				return
			}
			switch err := c.in.await(); {
			case errors.Is(err, errIdle):
				go c.resume()
				return
			case err != nil:
				c.finish()
				return
			}
		}
		if !c.serveFrame() {
			c.finish()
			return
		}
	}
}

// resume waits, on a goroutine of its own, for an idle connection's next
// input, then serves it.
func (c *conn) resume() {
	if c.in.awaitIdle() != nil {
		c.finish()
		return
	}
	c.run()
}

// finish ends the connection: its streams' Receivers are told, and the
// server forgets it.
func (c *conn) finish() {
	c.abandon()
	c.s.closed(c.raw)
}

// abandon ends the connection and gives its buffers back; the server still
// has it.
func (c *conn) abandon() {
	c.end(errConnectionClosed)
	c.in.release()
}

// serveFrame reads one frame and acts on it; false ends the connection.
func (c *conn) serveFrame() bool {
	f, err := c.fr.ReadFrame()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	if err == nil {
		err = c.handle(f)
	}
	var se http2.StreamError
	if errors.As(err, &se) {
		c.rst(se.StreamID, se.Code)
		return c.err == nil
	}
	if err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			c.sendGoAway(http2.ErrCode(ce), nil)
		}
		c.fail(err)
		return false
	}
	return c.err == nil
}

// handle acts on one frame, under mu; an error other than a StreamError
// ends the connection.
func (c *conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := f.ForeachSetting(c.setting); err != nil {
			return err
		}
		if err := c.write(c.fr.WriteSettingsAck()); err != nil {
			return err
		}
		return c.unblock()
	case *http2.MetaHeadersFrame:
		return c.headers(f)
	case *http2.DataFrame:
		return c.data(f)
	case *http2.WindowUpdateFrame:
		return c.windowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return c.ping(f)
	case *http2.RSTStreamFrame:
		c.endStream(c.streams[f.StreamID])
	case *http2.GoAwayFrame:
		c.flush() // what is answered already still goes out
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
			if st.sendWindow += delta; st.sendWindow > maxWindow {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
	case http2.SettingMaxFrameSize:
		c.peerFrame = int(s.Val)
	}
	return nil
}

// windowUpdate grows a send window, and sends what it held back.
func (c *conn) windowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		if c.sendWindow += int64(f.Increment); c.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	} else if st := c.streams[f.StreamID]; st != nil {
		if st.sendWindow += int64(f.Increment); st.sendWindow > maxWindow {
			return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeFlowControl}
		}
	}
	return c.unblock()
}

// ping answers a client's PING, and refuses one that comes too soon after
// the last more than maxPingStrikes times since data was last sent.
func (c *conn) ping(f *http2.PingFrame) error {
	now := time.Now()
	if least := c.s.o.MinPingInterval; least > 0 && !c.lastPing.IsZero() && now.Sub(c.lastPing) < least {
		if c.pingStrikes++; c.pingStrikes > maxPingStrikes {
			c.sendGoAway(http2.ErrCodeEnhanceYourCalm, []byte("too_many_pings"))
			return errors.New("h2serve: too many pings")
		}
	}
	c.lastPing = now
	return c.write(c.fr.WritePing(true, f.Data))
}

// headers opens a stream.
func (c *conn) headers(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 || id <= c.lastStream {
		if st := c.streams[id]; st != nil && f.StreamEnded() {
			return c.halfClosed(st) // the client's trailers: none in gRPC, but allowed
		}
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.lastStream = id
	if most := c.s.o.MaxStreams; most > 0 && len(c.streams) >= most {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	path := f.PseudoValue("path")
	st := &stream{id: id, unary: path == UnaryPath, sendWindow: c.peerWindow}
	c.streams[id] = st
	if f.PseudoValue("method") != "POST" || (path != UnaryPath && path != StreamPath) {
		return c.status(st, codeUnimplemented, "unknown method "+strconv.Quote(path))
	}
	if f.Truncated {
		return c.status(st, codeResourceExhausted, "the request's headers exceed "+strconv.Itoa(maxHeaderList)+" bytes")
	}
	for _, h := range f.RegularFields() {
		if h.Name == "grpc-encoding" && h.Value != "identity" {
			return c.status(st, codeUnimplemented, "compression "+strconv.Quote(h.Value)+" is not supported")
		}
	}
	if !st.unary {
		stream := &Stream{c: c, st: st}
		c.mu.Unlock()
		recv := c.s.h.Stream(c.ctx, stream)
		c.mu.Lock()
		st.recv = recv
		if c.err != nil || st.ended {
			c.closed(st)
			return nil
		}
	}
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
		if err := c.write(c.fr.WriteWindowUpdate(0, uint32(c.readUnacked))); err != nil {
			return err
		}
		c.readUnacked = 0
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if f.StreamID > c.lastStream {
			return http2.ConnectionError(http2.ErrCodeProtocol) // a stream never opened
		}
		return nil // a stream this server ended (refused, or answered): its data is dropped
	}
	if !f.StreamEnded() {
		st.readUnacked += n
		if st.readUnacked >= giveBack {
			if err := c.write(c.fr.WriteWindowUpdate(st.id, uint32(st.readUnacked))); err != nil {
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
			return c.status(st, codeUnimplemented, "compressed messages are not supported")
		}
		if size > c.s.o.MaxMessageSize {
			return c.status(st, codeResourceExhausted, "a message of "+strconv.Itoa(size)+" bytes exceeds the limit of "+strconv.Itoa(c.s.o.MaxMessageSize))
		}
		if len(in) < 5+size {
			break
		}
		if err := c.message(st, in[5:5+size]); err != nil || st.ended || c.err != nil {
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

// message acts on one whole message of st; the handlers are called
// without mu.
func (c *conn) message(st *stream, raw []byte) error {
	p := new(nacos.Payload)
	if err := serveropts.DecodePayload(raw, p); err != nil {
		return c.status(st, codeInternal, "the message is not a Payload: "+err.Error())
	}
	if !st.unary {
		c.mu.Unlock()
		err := st.recv.Receive(p)
		c.mu.Lock()
		if err != nil && !st.ended && c.err == nil {
			return c.status(st, codeUnknown, err.Error())
		}
		return nil
	}
	if st.answered {
		return c.status(st, codeInternal, "a second message on a unary call")
	}
	st.answered = true
	if c.s.h.Blocking != nil && c.s.h.Blocking(p) {
		return c.block(st, p)
	}
	c.mu.Unlock()
	a := c.s.h.Unary(c.ctx, p)
	c.mu.Lock()
	if st.ended || c.err != nil {
		return nil
	}
	return c.answer(st, a)
}

// block answers a call that may wait from a goroutine of its own, with a
// context that ends with the stream (a client's RST_STREAM cancels it). A
// connection runs as many at once as it may open streams: more are
// refused with REFUSED_STREAM, which a client may retry.
func (c *conn) block(st *stream, p *nacos.Payload) error {
	most := c.s.o.MaxStreams
	if most <= 0 {
		most = defaultMaxBlocking
	}
	if c.blocking >= most {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeRefusedStream}
	}
	c.blocking++
	var ctx context.Context
	ctx, st.cancel = context.WithCancel(c.ctx)
	c.s.wg.Add(1) // the connection's own goroutine is counted: Stop waits
	go func() {
		defer c.s.wg.Done()
		a := c.s.h.Unary(ctx, p)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.blocking--
		if !st.ended && c.err == nil && c.answer(st, a) == nil {
			c.flush()
		}
		st.cancel()
	}()
	return nil
}

// answer writes a unary call's answer, as far as the windows let it.
func (c *conn) answer(st *stream, a *serveropts.Answer) error {
	if err := c.sendHeaders(st); err != nil {
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

// sendHeaders writes st's response headers, once.
func (c *conn) sendHeaders(st *stream) error {
	if st.sentHeaders {
		return nil
	}
	st.sentHeaders = true
	c.pingStrikes = 0
	return c.write(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: c.s.answerHeaders, EndHeaders: true}))
}

// writeData writes a DATA frame of p on stream id straight into the
// write buffer (the framer would copy p into a frame first).
func (c *conn) writeData(id uint32, p []byte) error {
	var h [9]byte
	h[0], h[1], h[2] = byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
	h[3] = byte(http2.FrameData)
	binary.BigEndian.PutUint32(h[5:], id)
	c.pingStrikes = 0
	if _, err := c.out.Write(h[:]); err != nil {
		return c.write(err)
	}
	_, err := c.out.Write(p)
	return c.write(err)
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
	c.forget(st)
	return c.write(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: c.s.okTrailers, EndStream: true, EndHeaders: true}))
}

// unblock sends what the windows held back, as far as they now let it,
// and wakes the Sends waiting for a window.
func (c *conn) unblock() error {
	c.wake.Broadcast()
	blocked := c.blocked
	c.blocked = nil
	for _, st := range blocked {
		if st.ended {
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
		return c.status(st, codeInternal, "a unary call without a message")
	case !st.unary:
		return c.status(st, codeOK, "")
	}
	return nil
}

// status ends st with a gRPC status: trailers after its headers, or one
// header block (trailers only) if it had none.
func (c *conn) status(st *stream, code int, message string) error {
	block := c.s.trailers(code, message, !st.sentHeaders)
	err := c.write(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: block, EndStream: true, EndHeaders: true}))
	c.endStream(st) // after the status: the Receiver may close the connection
	return err
}

// rst resets stream id.
func (c *conn) rst(id uint32, code http2.ErrCode) {
	c.endStream(c.streams[id])
	_ = c.write(c.fr.WriteRSTStream(id, code))
}

// forget ends st without a word to the client, and wakes its Sends.
func (c *conn) forget(st *stream) {
	if st == nil || st.ended {
		return
	}
	st.ended, st.pending = true, nil
	if st.cancel != nil {
		st.cancel()
	}
	delete(c.streams, st.id)
	c.wake.Broadcast()
}

// endStream ends st (nil: none) and tells its Receiver, without mu.
func (c *conn) endStream(st *stream) {
	if st == nil || st.ended {
		return
	}
	c.forget(st)
	c.closed(st)
}

// closed tells st's Receiver that it ended, without mu.
func (c *conn) closed(st *stream) {
	if st.recv == nil {
		return
	}
	recv := st.recv
	st.recv = nil
	c.flush() // the stream's status, before the Receiver may close the connection
	c.mu.Unlock()
	recv.Closed()
	c.mu.Lock()
}

// write returns err, and if it is one, ends the connection with it: a
// write that failed left the connection's HTTP/2 state unknown.
func (c *conn) write(err error) error {
	if err != nil {
		c.fail(err)
	}
	return err
}

// flush sends what was written, under mu.
func (c *conn) flush() {
	_ = c.write(c.out.flush())
}

// fail ends the connection with err, under mu: nothing more is written,
// and its goroutine, reading, stops.
func (c *conn) fail(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	c.cancel()
	// The connection as accepted: closing TLS would write its close_notify
	// under mu, to a client that may not read.
	_ = c.raw.Close()
	c.out.release()
	c.wake.Broadcast()
}

// end fails the connection (if it has not failed yet), ends its streams
// and tells their Receivers.
func (c *conn) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail(err)
	ended := make([]*stream, 0, len(c.streams))
	for _, st := range c.streams {
		ended = append(ended, st)
	}
	for _, st := range ended {
		c.endStream(st)
	}
}

// sendGoAway writes a GOAWAY naming the last stream the client opened,
// and flushes it.
func (c *conn) sendGoAway(code http2.ErrCode, debug []byte) {
	if c.err != nil {
		return
	}
	if c.write(c.fr.WriteGoAway(c.lastStream, code, debug)) == nil {
		c.flush()
	}
}

// goAway tells the client the server is going away, then closes the
// connection: its goroutine ends.
func (c *conn) goAway() {
	// A write stuck on a client that does not read gives up soon.
	_ = c.nc.SetWriteDeadline(time.Now().Add(goAwayTimeout))
	c.mu.Lock()
	c.out.timeout = 0 // keep the deadline just set
	c.sendGoAway(http2.ErrCodeNo, nil)
	c.fail(errConnectionClosed)
	c.mu.Unlock()
}
