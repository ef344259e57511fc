package remote

import (
	"strconv"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// gatedConn is a connection of pool whose writes each wait for a value on
// gate; started receives one value per write as it begins.
func gatedConn(t *testing.T, pool *writerPool, id string, gate, started chan struct{}) *conn {
	t.Helper()
	c := newConn(id, "", time.Now(), func(serveropts.Message) error {
		started <- struct{}{}
		<-gate
		return nil
	}, func(error) {})
	c.writers = pool
	t.Cleanup(c.close)
	return c
}

// newTestPool returns a pool stopped when the test ends, after which no
// writer of it is left.
func newTestPool(t *testing.T, maxIdle int64, timeout time.Duration) *writerPool {
	t.Helper()
	stop := make(chan struct{})
	p := newWriterPool(stop)
	p.maxIdle, p.timeout = maxIdle, timeout
	t.Cleanup(func() {
		close(stop)
		waitFor(t, "every idle writer ended", func() bool { return p.idleWriters() == 0 })
	})
	return p
}

// Writers done with a burst of writes wait for the next up to the pool's
// limit; a later write is taken by one of them rather than a new goroutine.
func TestIdleWritersAreKeptUpToTheLimit(t *testing.T) {
	const maxIdle, burst = 3, 8
	p := newTestPool(t, maxIdle, time.Minute)
	gate, started := make(chan struct{}), make(chan struct{}, burst)
	for i := range burst {
		c := gatedConn(t, p, "c"+strconv.Itoa(i), gate, started)
		if _, err := c.send("R", "1", &nacos.Payload{}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for range burst {
		<-started // every write runs at once: one writer each
	}
	if n := p.idleWriters(); n != 0 {
		t.Fatalf("%d writers idle while all write", n)
	}
	close(gate)
	waitFor(t, "the limit of idle writers is reached", func() bool { return p.idleWriters() == maxIdle })

	// An idle writer counts itself just before it waits: a write may find
	// none waiting yet and start its own; one of a few is taken by a kept one.
	hold, next := make(chan struct{}), make(chan struct{}, 1)
	defer close(hold)
	for i := 0; ; i++ {
		c := gatedConn(t, p, "later"+strconv.Itoa(i), hold, next)
		if _, err := c.send("R", "1", &nacos.Payload{}, time.Now()); err != nil {
			t.Fatal(err)
		}
		<-next
		if p.idleWriters() == maxIdle-1 {
			return
		}
		if i == 20 {
			t.Fatalf("20 writes all started a new writer; %d idle", p.idleWriters())
		}
	}
}

// An idle writer ends after the pool's timeout, and at once when the
// server stops.
func TestIdleWritersEnd(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		p := newTestPool(t, maxIdleWriters, 20*time.Millisecond)
		writeOnceAndIdle(t, p)
		waitFor(t, "the idle writer ended", func() bool { return p.idleWriters() == 0 })
	})
	t.Run("stop", func(t *testing.T) {
		stop := make(chan struct{})
		p := newWriterPool(stop)
		writeOnceAndIdle(t, p)
		close(stop)
		waitFor(t, "the idle writer ended", func() bool { return p.idleWriters() == 0 })
	})
}

// writeOnceAndIdle has p write one request and returns once its writer
// waits for the next.
func writeOnceAndIdle(t *testing.T, p *writerPool) {
	t.Helper()
	gate, started := make(chan struct{}), make(chan struct{}, 1)
	close(gate)
	c := gatedConn(t, p, "c", gate, started)
	if _, err := c.send("R", "1", &nacos.Payload{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	<-started
	waitFor(t, "the writer is idle", func() bool { return p.idleWriters() == 1 })
}
