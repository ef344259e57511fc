package httpapi

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimiter holds the HTTP port to Config.MaxConnections connections, so
// that HTTP clients alone cannot take every file descriptor of the process
// (the client gRPC port has its own limit): without it, a thousand idle
// keep-alive connections under a low open-file limit leave accept failing
// with EMFILE, and liveness probes unanswered, until idle_timeout.
//
// At the limit, a new connection takes the place of the one that has waited
// longest for a request: an idle keep-alive connection, or one that has not
// sent a whole request yet. A connection serving a request is never closed
// for another; if every one is, the new connection is closed at accept. So a
// prober's fresh connection is served however many idle ones there are.
//
// It wraps the TCP listener (under TLS) and learns from the http.Server's
// ConnState hook which connections are serving a request.
type connLimiter struct {
	net.Listener
	max     int
	now     func() time.Time
	evicted prometheus.Counter
	refused prometheus.Counter

	mu    sync.Mutex
	conns map[*limitedConn]struct{}
}

// limitedConn is a connection the limiter counts.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
	// Under l.mu.
	busy  bool      // serving a request (or hijacked)
	since time.Time // when it was accepted, or last became idle
}

func newConnLimiter(limit int) *connLimiter {
	return &connLimiter{
		max: limit,
		now: time.Now,
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_http_connections_evicted_total",
			Help: "HTTP connections closed at http.max_connections to make room for a new one: the ones waiting longest for a request.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_http_connections_refused_total",
			Help: "HTTP connections closed at accept because http.max_connections were open, all serving a request.",
		}),
		conns: make(map[*limitedConn]struct{}),
	}
}

// register adds the limiter's metrics to reg.
func (l *connLimiter) register(reg prometheus.Registerer) {
	reg.MustRegister(l.evicted, l.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_http_open_connections",
			Help: "Connections open on the HTTP port.",
		}, func() float64 { return float64(l.open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_http_max_connections",
			Help: "The limit of connections on the HTTP port (http.max_connections, or derived from RLIMIT_NOFILE).",
		}, func() float64 { return float64(l.max) }))
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, since: l.now()}
		l.mu.Lock()
		var victim *limitedConn
		if len(l.conns) >= l.max {
			for o := range l.conns {
				if !o.busy && (victim == nil || o.since.Before(victim.since)) {
					victim = o
				}
			}
			if victim == nil {
				l.mu.Unlock()
				l.refused.Inc() // counted before the client can see the close
				_ = c.Close()
				continue
			}
			delete(l.conns, victim) // its place is taken now
		}
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Inc()
			_ = victim.Close()
		}
		return lc, nil
	}
}

// connState is the http.Server's ConnState hook.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	switch state {
	case http.StateActive, http.StateHijacked:
		l.mu.Lock()
		lc.busy = true
		l.mu.Unlock()
	case http.StateIdle:
		l.mu.Lock()
		lc.busy, lc.since = false, l.now()
		l.mu.Unlock()
	}
}

// open is how many connections are open.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
