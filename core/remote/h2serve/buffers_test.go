package h2serve

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// deadlineCounter is a connection that counts its write deadlines set.
type deadlineCounter struct {
	net.Conn
	set atomic.Int32
}

func (d *deadlineCounter) SetWriteDeadline(t time.Time) error {
	d.set.Add(1)
	return d.Conn.SetWriteDeadline(t)
}

// A lasting outbox sets its write deadline once for writes within a tenth
// of the timeout, and a write the client does not read still times out;
// without lasting, every write sets the deadline and clears it.
func TestOutboxWriteDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, lasting := range []bool{true, false} {
		server, client := net.Pipe()
		conn := &deadlineCounter{Conn: server}
		o := &outbox{nc: conn, timeout: timeout, lasting: lasting}
		go func() { _, _ = io.CopyN(io.Discard, client, 3) }()
		for range 3 {
			if _, err := o.write([]byte("x")); err != nil {
				t.Fatalf("lasting=%v: %v", lasting, err)
			}
		}
		want := int32(1)
		if !lasting {
			want = 6
		}
		if got := conn.set.Load(); got != want {
			t.Errorf("lasting=%v: %d deadlines set for 3 writes, want %d", lasting, got, want)
		}
		start := time.Now()
		_, err := o.write([]byte("never read"))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("lasting=%v: a write nobody reads: %v", lasting, err)
		}
		if took := time.Since(start); took < timeout-timeout/10-20*time.Millisecond {
			t.Errorf("lasting=%v: the write timed out after %v, before %v", lasting, took, timeout-timeout/10)
		}
		server.Close()
		client.Close()
	}
}
