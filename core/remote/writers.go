package remote

import (
	"sync/atomic"
	"time"
)

// Writer goroutines kept between writes: at most maxIdleWriters wait at
// once, each for idleWriterTimeout.
const (
	maxIdleWriters    = 1024
	idleWriterTimeout = time.Second
)

// writerPool runs connections' writers (conn.drain) on goroutines kept
// between pushes. A push to a thousand subscribers starts a thousand
// writers at once, and a new goroutine grows its stack again on the way
// down to the socket's write: 14 % of the server's CPU per push in a
// profile of h2. A writer that is done waits a while for the next
// connection to write; a connection never waits for a writer, since one is
// started when none is free. A nil pool starts a goroutine every time.
type writerPool struct {
	work    chan *conn      // to an idle writer; unbuffered
	stop    <-chan struct{} // closed when the server stops: idle writers end
	maxIdle int64
	timeout time.Duration
	idle    atomic.Int64
}

func newWriterPool(stop <-chan struct{}) *writerPool {
	return &writerPool{work: make(chan *conn), stop: stop, maxIdle: maxIdleWriters, timeout: idleWriterTimeout}
}

// start runs c.drain on an idle writer, or on a new one.
func (p *writerPool) start(c *conn) {
	if p == nil {
		go c.drain()
		return
	}
	select {
	case p.work <- c:
	default:
		go p.writer(c)
	}
}

// writer drains c, then waits for the next connection until the pool has
// enough idle writers, the timeout passes or the server stops.
func (p *writerPool) writer(c *conn) {
	var timer *time.Timer
	for {
		c.drain()
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		if timer == nil {
			timer = time.NewTimer(p.timeout)
		} else {
			timer.Reset(p.timeout)
		}
		select {
		case c = <-p.work:
			p.idle.Add(-1)
		case <-timer.C:
			p.idle.Add(-1)
			return
		case <-p.stop:
			p.idle.Add(-1)
			timer.Stop()
			return
		}
	}
}

// idleWriters is how many writers wait for a connection (0 without a pool).
func (p *writerPool) idleWriters() int64 {
	if p == nil {
		return 0
	}
	return p.idle.Load()
}
