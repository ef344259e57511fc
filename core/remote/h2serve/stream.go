package h2serve

import (
	"context"
	"encoding/binary"

	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/proto/nacos"
)

// Stream is a client's bi-stream, as the server writes to it.
type Stream struct {
	c  *conn
	st *stream
}

// Context is the stream's connection's: it carries the client's address
// and ends with the connection.
func (s *Stream) Context() context.Context { return s.c.ctx }

// Send writes p to the client, from any goroutine, one call at a time per
// stream: it waits while the client's flow-control windows are full, and
// returns once p is handed to the connection (Options.WriteTimeout bounds
// each write). It fails once the stream or its connection has ended.
func (s *Stream) Send(p *nacos.Payload) error {
	msg := make([]byte, 5, 5+proto.Size(p))
	msg, err := proto.MarshalOptions{}.MarshalAppend(msg, p)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(msg[1:5], uint32(len(msg)-5))
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
