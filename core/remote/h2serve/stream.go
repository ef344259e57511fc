package h2serve

import (
	"context"

	"github.com/sextantd/sextant/core/remote/serveropts"
)

// Stream is a client's bi-stream, as the server writes to it.
type Stream struct {
	c  *conn
	st *stream
}

// Context is the stream's connection's: it carries the client's address
// and ends with the connection.
func (s *Stream) Context() context.Context { return s.c.ctx }

// Send writes m to the client, from any goroutine, one call at a time per
// stream: it waits while the client's flow-control windows are full, and
// returns once m is handed to the connection (Options.WriteTimeout bounds
// each write). It fails once the stream or its connection has ended. m is
// only read: one Message may be sent on many streams at once.
func (s *Stream) Send(m serveropts.Message) error {
	msg := m.Framed()
	c, st := s.c, s.st
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if err := c.sendHeaders(st); err != nil {
		return err
	}
	for len(msg) > 0 {
		n := min(int64(len(msg)), c.sendWindow, st.sendWindow, int64(c.peerFrame))
		if n <= 0 {
			// The client grants more once it has read what is sent.
			c.flush()
			c.wake.Wait()
			if err := s.usable(); err != nil {
				return err
			}
			continue
		}
		if err := c.writeData(st.id, msg[:n]); err != nil {
			return err
		}
		c.sendWindow -= n
		st.sendWindow -= n
		msg = msg[n:]
	}
	c.flush()
	return c.err
}

// usable returns why nothing more can be written to the stream, if so;
// under the connection's mu.
func (s *Stream) usable() error {
	switch {
	case s.c.err != nil:
		return s.c.err
	case s.st.ended:
		return errStreamEnded
	}
	return nil
}
