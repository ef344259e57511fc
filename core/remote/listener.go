package remote

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/peer"
)

// trackingListener remembers every accepted TCP connection by its remote
// address so that the server can close one (gRPC offers no way to). It also
// holds the limits that apply before gRPC sees a connection: at most
// maxConns are open (more are closed as they are accepted, before any
// HTTP/2), and one that has not completed its setup setupTimeout after it was
// accepted is closed.
type trackingListener struct {
	net.Listener
	maxConns     int           // 0: no limit
	setupTimeout time.Duration // 0: none
	refused      func()        // a connection over maxConns was closed
	expired      func(addr string)

	mu    sync.Mutex
	conns map[string]*trackedConn
}

func newTrackingListener(l net.Listener) *trackingListener {
	return &trackingListener{Listener: l, conns: make(map[string]*trackedConn), refused: func() {}, expired: func(string) {}}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := c.RemoteAddr().String()
		l.mu.Lock()
		if l.maxConns > 0 && len(l.conns) >= l.maxConns {
			l.mu.Unlock()
			l.refused() // counted before the client can see the close
			_ = c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, owner: l, addr: addr, remote: &connAddr{Addr: c.RemoteAddr(), id: connectionID(time.Now(), c.RemoteAddr())}}
		l.conns[addr] = tc
		if l.setupTimeout > 0 {
			tc.setupTimer = time.AfterFunc(l.setupTimeout, func() { l.expire(tc) })
		}
		l.mu.Unlock()
		return tc, nil
	}
}

// closeConn closes the connection from addr, if it is still open.
func (l *trackingListener) closeConn(addr string) {
	l.mu.Lock()
	c := l.conns[addr]
	l.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// setUp records that the connection from addr completed its setup.
func (l *trackingListener) setUp(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conns[addr]; c != nil {
		c.setUp = true
		if c.setupTimer != nil {
			c.setupTimer.Stop()
		}
	}
}

// expire closes c if it has not completed its setup.
func (l *trackingListener) expire(c *trackedConn) {
	l.mu.Lock()
	expired := !c.setUp && l.conns[c.addr] == c
	l.mu.Unlock()
	if expired {
		l.expired(c.addr) // counted before the client can see the close
		_ = c.Close()
	}
}

// open is how many accepted connections are open.
func (l *trackingListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type trackedConn struct {
	net.Conn
	owner  *trackingListener
	addr   string
	remote *connAddr
	once   sync.Once
	// Under owner.mu.
	setUp      bool
	setupTimer *time.Timer
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		if c.owner.conns[c.addr] == c {
			delete(c.owner.conns, c.addr)
		}
		if c.setupTimer != nil {
			c.setupTimer.Stop()
		}
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}

// RemoteAddr is the client's address with the connection's Nacos id, which
// every call on the connection then finds in its context's peer: grpc-go
// takes a connection's peer address from here (through TLS too).
func (c *trackedConn) RemoteAddr() net.Addr { return c.remote }

// connAddr is a client's address and its connection's Nacos id.
type connAddr struct {
	net.Addr
	id string
}

// connectionID renders Nacos's <unixMillis>_<remoteIp>_<remotePort>.
func connectionID(now time.Time, remote net.Addr) string {
	host, port, err := net.SplitHostPort(remote.String())
	if err != nil {
		host, port = remote.String(), "0"
	}
	return strconv.FormatInt(now.UnixMilli(), 10) + "_" + host + "_" + port
}

// connectionIDFrom returns the id of the connection a call came on.
func connectionIDFrom(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.Addr.(*connAddr); ok {
			return a.id
		}
	}
	return ""
}
