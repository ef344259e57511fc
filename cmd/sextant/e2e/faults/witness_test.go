package faults_test

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// readInterval is how often a witness queries every service.
const readInterval = 200 * time.Millisecond

// witness is a client of one node subscribed to every test service: it
// records every push, and what the node answers to a query of each service
// five times a second.
type witness struct {
	c    *cluster
	node int
	conn *conn
	stop chan struct{}
	once sync.Once

	mu      sync.Mutex
	latest  map[string][]string // the last push of each service, sorted
	changed chan struct{}       // closed and replaced on every push
}

// connectWitness connects node i's witness; with subscribe, it subscribes
// it at once.
func (c *cluster) connectWitness(i int, subscribe bool) *witness {
	c.t.Helper()
	w := &witness{c: c, node: i, stop: make(chan struct{}), latest: map[string][]string{}, changed: make(chan struct{})}
	conn, err := dial(c.nodes[i].GRPCAddr(), w.onPush)
	if err != nil {
		c.t.Fatal(err)
	}
	w.conn = conn
	c.mu.Lock()
	c.witnesses[i] = w
	c.mu.Unlock()
	if subscribe {
		w.subscribeAll()
	}
	return w
}

// subscribeAll subscribes to every service and starts reading them.
func (w *witness) subscribeAll() {
	w.c.t.Helper()
	for _, svc := range w.c.services {
		if err := w.conn.subscribe(svc); err != nil {
			w.c.t.Fatal(err)
		}
	}
	w.c.readers.Go(w.read)
}

func (w *witness) onPush(body []byte) {
	p, err := decodePush(body)
	if err != nil {
		w.c.t.Errorf("node %d pushed what does not decode: %v: %.200s", w.node+1, err, body)
		return
	}
	w.c.addRecord(record{at: time.Now(), node: w.node, svc: p.service, how: "pushed", n: len(p.hosts), ref: p.ref})
	got := make([]string, len(p.hosts))
	for i, h := range p.hosts {
		got[i] = h.String()
	}
	slices.Sort(got)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.latest[p.service] = got
	close(w.changed)
	w.changed = make(chan struct{})
}

// read queries every service every readInterval until the witness closes;
// failed queries (a frozen or dead node) are not recorded.
func (w *witness) read() {
	ticker := time.NewTicker(readInterval)
	defer ticker.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-ticker.C:
		}
		for _, svc := range w.c.services {
			info, err := w.conn.queryInfo(time.Second, svc)
			if err == nil {
				w.c.addRecord(record{at: time.Now(), node: w.node, svc: svc, how: "served", n: len(info.hosts), ref: info.ref})
			}
		}
	}
}

// awaitPushed waits until the last push of svc lists exactly want.
func (w *witness) awaitPushed(svc string, want []string, within time.Duration) error {
	deadline := time.After(within)
	for {
		w.mu.Lock()
		got, changed := w.latest[svc], w.changed
		w.mu.Unlock()
		if slices.Equal(got, want) {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			return fmt.Errorf("node %d: the last push of %s lists %d instances, want %d (missing %s; extra %s)",
				w.node+1, svc, len(got), len(want), sample(minus(want, got)), sample(minus(got, want)))
		}
	}
}

func (w *witness) close() {
	w.once.Do(func() {
		close(w.stop)
		w.conn.Close()
	})
}
