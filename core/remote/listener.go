package remote

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/stats"
)

// trackingListener remembers every accepted TCP connection by its remote
// address so that the server can close one (gRPC offers no way to).
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn
}

func newTrackingListener(l net.Listener) *trackingListener {
	return &trackingListener{Listener: l, conns: make(map[string]net.Conn)}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: l}
	l.mu.Lock()
	l.conns[c.RemoteAddr().String()] = tc
	l.mu.Unlock()
	return tc, nil
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

type trackedConn struct {
	net.Conn
	owner *trackingListener
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c.RemoteAddr().String())
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}

// connTagger gives every TCP connection its Nacos connection id, which every
// call on the connection then finds in its context.
type connTagger struct{}

type connIDKey struct{}

// connectionID renders Nacos's <unixMillis>_<remoteIp>_<remotePort>.
func connectionID(now time.Time, remote net.Addr) string {
	host, port, err := net.SplitHostPort(remote.String())
	if err != nil {
		host, port = remote.String(), "0"
	}
	return strconv.FormatInt(now.UnixMilli(), 10) + "_" + host + "_" + port
}

func connectionIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(connIDKey{}).(string)
	return id
}

func (connTagger) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connIDKey{}, connectionID(time.Now(), info.RemoteAddr))
}

func (connTagger) HandleConn(context.Context, stats.ConnStats) {}

func (connTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (connTagger) HandleRPC(context.Context, stats.RPCStats) {}
