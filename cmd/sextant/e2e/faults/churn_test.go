package faults_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	churnService  = "churn"
	churnSlots    = 4 // clients per node
	churnInterval = 20 * time.Millisecond
)

// churn registers, moves and deregisters instances of churnService through
// the live nodes, one operation every churnInterval, each through a client
// of a random live node: a new client, a registration that replaces the
// client's instance, a deregistration, or a client leaving.
type churn struct {
	c    *cluster
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu       sync.Mutex // held by each operation; the test holds it to freeze the churn
	slots    [3][churnSlots]slot
	rng      *rand.Rand
	next     int
	ops      int
	failures []string
	log      []churnOp // every operation, for the diagnosis of a violation
}

// churnOp is one churn operation, as a violation's diagnosis shows it.
type churnOp struct {
	at, done time.Time // sent, and answered
	node     int
	conn     *conn
	what     string // "dial", "register ADDR", "deregister ADDR", "close", ...
	err      error
}

// slot is one churning client: its connection, and its instance.
type slot struct {
	conn    *conn
	current *provider
}

// startChurn starts the churn; the cluster stops it when the test ends.
func (c *cluster) startChurn() *churn {
	ch := &churn{c: c, stop: make(chan struct{}), done: make(chan struct{}), rng: rand.New(rand.NewPCG(1, 2))}
	c.churn = ch
	go ch.run()
	return ch
}

func (ch *churn) run() {
	defer close(ch.done)
	ticker := time.NewTicker(churnInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ch.stop:
			return
		case <-ticker.C:
		}
		ch.mu.Lock()
		ch.step()
		ch.mu.Unlock()
	}
}

// step runs one operation; ch.mu is held.
func (ch *churn) step() {
	c := ch.c
	var live []int
	c.mu.Lock()
	for i := range 3 {
		if c.running[i] && !c.paused[i] {
			live = append(live, i)
		}
	}
	c.mu.Unlock()
	if len(live) == 0 {
		return
	}
	i := live[ch.rng.IntN(len(live))]
	s := &ch.slots[i][ch.rng.IntN(churnSlots)]
	ch.ops++
	if s.conn == nil {
		sent := time.Now()
		conn, err := dial(address(c.ports[i]+1000), nil)
		ch.record(sent, i, conn, "dial", err)
		if err != nil {
			ch.fail(i, err)
			return
		}
		s.conn = conn
		return
	}
	switch r := ch.rng.IntN(100); {
	case r < 60:
		ch.next++
		e := endpoint{fmt.Sprintf("10.250.%d.%d", ch.next/250, ch.next%250), 9000}
		sent := time.Now()
		err := s.conn.register(churnService, []endpoint{e})
		ch.record(sent, i, s.conn, "register "+e.String(), err)
		if err != nil {
			ch.fail(i, err)
			return
		}
		p := &provider{node: i, svc: churnService, addrs: []endpoint{e}, conn: s.conn, registered: time.Now()}
		c.mu.Lock()
		if s.current != nil {
			s.current.died = sent
		}
		c.providers = append(c.providers, p)
		c.mu.Unlock()
		s.current = p
	case r < 85:
		if s.current == nil {
			return
		}
		sent := time.Now()
		err := s.conn.deregister(churnService, s.current.addrs[0])
		ch.record(sent, i, s.conn, "deregister "+s.current.addrs[0].String(), err)
		if err != nil {
			ch.fail(i, err)
			return
		}
		c.mu.Lock()
		s.current.died = sent
		c.mu.Unlock()
		s.current = nil
	default:
		sent := time.Now()
		s.conn.Close()
		ch.record(sent, i, s.conn, "close", nil)
		c.mu.Lock()
		if s.current != nil {
			s.current.died = sent
		}
		c.mu.Unlock()
		s.conn, s.current = nil, nil
	}
}

// record logs an operation sent at sent; ch.mu is held.
func (ch *churn) record(sent time.Time, node int, conn *conn, what string, err error) {
	ch.log = append(ch.log, churnOp{at: sent, done: time.Now(), node: node, conn: conn, what: what, err: err})
}

// history returns the operations so far.
func (ch *churn) history() []churnOp {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return slices.Clone(ch.log)
}

// clientOps describes, in one line, the operations of conn's client before
// and shortly after at, with times into the scenario since began: what a
// violation of (c) by one of its instances needs to be understood.
func clientOps(ops []churnOp, conn *conn, began, at time.Time) string {
	var mine []churnOp
	for _, op := range ops {
		if op.conn == conn && conn != nil && op.at.Before(at.Add(time.Second)) {
			mine = append(mine, op)
		}
	}
	if len(mine) == 0 {
		return "no churn operation of its client recorded"
	}
	node := mine[0].node
	const most = 8
	var out []string
	if len(mine) > most {
		out = append(out, fmt.Sprintf("%d earlier ops", len(mine)-most))
		mine = mine[len(mine)-most:]
	}
	for _, op := range mine {
		line := fmt.Sprintf("%v %s (%v)", op.at.Sub(began).Round(time.Millisecond), op.what, op.done.Sub(op.at).Round(time.Millisecond))
		if op.err != nil {
			line += ": " + op.err.Error()
		}
		out = append(out, line)
	}
	if ended, ok := conn.EndedByNode(); ok {
		out = append(out, fmt.Sprintf("%v the node ended its stream", ended.Sub(began).Round(time.Millisecond)))
	}
	return fmt.Sprintf("its client, connection %s of node %d: %s", conn.ID, node+1, strings.Join(out, ", "))
}

func (ch *churn) fail(node int, err error) {
	ch.failures = append(ch.failures, fmt.Sprintf("through node %d: %v", node+1, err))
}

// dropNode closes the clients of node i, which its death (c.kill) or the
// end of the churn (halt) ends, and forgets them; ch.mu is held. Their
// instances die now if they had not already (a node's death kills them
// first).
func (ch *churn) dropNode(i int) {
	for k := range ch.slots[i] {
		s := &ch.slots[i][k]
		if s.conn == nil {
			continue
		}
		sent := time.Now()
		ch.c.mu.Lock()
		if s.current != nil && s.current.died.IsZero() {
			s.current.died = sent
		}
		ch.c.mu.Unlock()
		s.conn.Close()
		ch.record(sent, i, s.conn, "close (node killed or churn halted)", nil)
		s.conn, s.current = nil, nil
	}
}

// halt stops the churn, closes its clients and reports its failures.
func (ch *churn) halt() {
	ch.once.Do(func() {
		close(ch.stop)
		<-ch.done
		ch.mu.Lock()
		defer ch.mu.Unlock()
		for i := range ch.slots {
			ch.dropNode(i)
		}
		ch.c.t.Logf("FAULT scenario=%s churn_ops=%d churn_failures=%d", ch.c.scenario, ch.ops, len(ch.failures))
		for _, f := range ch.failures {
			ch.c.t.Errorf("a churn operation on a live node failed: %s", f)
		}
	})
}
