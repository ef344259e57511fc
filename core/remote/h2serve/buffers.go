package h2serve

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Buffers of connections with input or output, shared.
var (
	readBuffers  = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}
	writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}
)

// errIdle is what inbox.await returns once it has given its buffer back.
var errIdle = errors.New("h2serve: idle")

// inbox reads a connection through a buffer it holds while the connection
// is busy. Between frames (await) it waits for input with its buffer for
// idleAfter at most; it then gives the buffer back, and the next wait
// (awaitIdle) is without one.
type inbox struct {
	nc      net.Conn
	holding *atomic.Int64 // counts the inboxes that hold a buffer
	buf     *[]byte
	r, w    int  // the unread bytes are (*buf)[r:w]
	armed   bool // await's deadline is set: fill, inside a frame, clears it
	first   [1]byte
}

func (in *inbox) buffered() int { return in.w - in.r }

// Read reads into p what is buffered, or else from the connection.
func (in *inbox) Read(p []byte) (int, error) {
	if in.r == in.w {
		if err := in.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*in.buf)[in.r:in.w])
	in.r += n
	return n, nil
}

// fill waits for input into the buffer, inside a frame: the idle deadline
// is no reason to stop there.
func (in *inbox) fill() error {
	in.take()
	for {
		n, err := in.nc.Read(*in.buf)
		in.r, in.w = 0, n
		if n > 0 {
			return nil
		}
		if !in.armed || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		in.disarm()
	}
}

// await waits for input between frames, with the buffer, for idleAfter at
// most: then it gives the buffer back and returns errIdle.
func (in *inbox) await() error {
	in.take()
	_ = in.nc.SetReadDeadline(time.Now().Add(idleAfter))
	in.armed = true
	n, err := in.nc.Read(*in.buf)
	in.r, in.w = 0, n
	if n > 0 {
		return nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	in.disarm()
	in.release()
	return errIdle
}

// awaitIdle waits for the first byte of input without a buffer, then
// takes one.
func (in *inbox) awaitIdle() error {
	if _, err := io.ReadFull(in.nc, in.first[:]); err != nil {
		return err
	}
	in.take()
	(*in.buf)[0] = in.first[0]
	in.r, in.w = 0, 1
	return nil
}

// take gets a buffer, if the inbox has none.
func (in *inbox) take() {
	if in.buf == nil {
		in.buf = readBuffers.Get().(*[]byte)
		in.holding.Add(1)
	}
}

// disarm clears the idle deadline.
func (in *inbox) disarm() {
	_ = in.nc.SetReadDeadline(time.Time{})
	in.armed = false
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
// Each write to the connection must complete within timeout (0: none).
type outbox struct {
	nc      net.Conn
	timeout time.Duration
	// lasting lets the write deadline stay set between writes, as on a
	// plaintext connection, where only these writes meet it; it is then
	// moved on only once a tenth of the timeout has passed since it was set
	// (a timer change per write was 5 % of a push's CPU). TLS may write on
	// its own, from a read (an answer to a KeyUpdate), and must not meet a
	// deadline long past: without lasting the deadline is cleared after
	// each write.
	lasting  bool
	deadline time.Time // the write deadline set, while lasting
	buf      *[]byte
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
		return o.write(p)
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
	_, err := o.write(*o.buf)
	*o.buf = (*o.buf)[:0]
	return err
}

// write writes p to the connection within the timeout (less a tenth at
// most, while lasting).
func (o *outbox) write(p []byte) (int, error) {
	if o.timeout <= 0 {
		return o.nc.Write(p)
	}
	now := time.Now()
	if !o.lasting || o.deadline.Sub(now) < o.timeout-o.timeout/10 {
		o.deadline = now.Add(o.timeout)
		_ = o.nc.SetWriteDeadline(o.deadline)
	}
	n, err := o.nc.Write(p)
	if err == nil && !o.lasting {
		_ = o.nc.SetWriteDeadline(time.Time{})
	}
	return n, err
}

func (o *outbox) release() {
	if o.buf != nil {
		*o.buf = (*o.buf)[:0]
		writeBuffers.Put(o.buf)
		o.buf = nil
	}
}
