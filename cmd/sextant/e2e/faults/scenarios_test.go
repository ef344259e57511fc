package faults_test

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func ms(d time.Duration) int64 { return d.Milliseconds() }

// hold waits until the moment at: the fault lasts, or the witnesses watch,
// that long whatever happens meanwhile.
func hold(at time.Time) { time.Sleep(time.Until(at)) }

// frozen freezes node i for the outage, checks that the others drop its
// clients within goneWithin (invariant (b)), thaws it, and checks that the
// cluster converges (a) and that the witnesses see no empty list (c) in the
// time an expiry takes after the thaw.
func frozen(t *testing.T, c *cluster, i int) {
	addrs := c.addrsOf(i)
	heal, over := c.outage([]int{i}, nil)
	c.pause(i)
	paused := time.Now()
	gone, err := c.awaitGone(others(i), addrs, paused, goneWithin)
	if err != nil {
		t.Errorf("invariant (b): the %d instances of the frozen node %d's clients outlive its expiry on the others: %v", len(addrs), i+1, err)
	}
	hold(paused.Add(outage))
	c.resume(i)
	resumed := time.Now()
	heal()
	up := c.awaitMembersUp()
	if _, err := c.awaitConverged(convergeWithin); err != nil {
		t.Errorf("invariant (a) after the thaw: %v", err)
	}
	converged := time.Since(resumed)
	over()
	c.logf("injected=SIGSTOP node=%d paused_ms=%d gone_ms=%d gone_bound_ms=%d members_up_ms=%d converged_ms=%d converge_bound_ms=%d",
		i+1, ms(resumed.Sub(paused)), ms(gone), ms(goneWithin), ms(up), ms(converged), ms(convergeWithin))
	// A node that wrongly expires what it holds does so within a sweep of
	// the thaw, and the verifications bring it back soon after: watch.
	hold(resumed.Add(expiry + 4*verifyInterval))
}

// TestPauseOfAReplica freezes node 2, which holds replicas of node 1's 300
// instances, for longer than the client expiry. Node 2 must never serve or
// push 0 of them: node 1 stayed alive throughout.
func TestPauseOfAReplica(t *testing.T) {
	c := newCluster(t, "pause-replica")
	frozen(t, c, 1)
}

// TestPauseOfTheOwner freezes node 1, the owner of the 300 instances: they
// must leave the others within the expiry goal (b), and come back when it
// thaws; and node 1, thawed, must not drop what the others own (c).
func TestPauseOfTheOwner(t *testing.T) {
	c := newCluster(t, "pause-owner")
	frozen(t, c, 0)
}

// cut is who rightly loses whose clients in a partition: the observers
// those of the owners.
type cut struct{ owners, observers []int }

// partitioned cuts node i off as rules say (testdata/faulty's control file)
// for the outage, measures how soon the cut-off owners' instances left the
// observers (expected: a partition looks like a death), heals, and checks
// that the cluster converges (a) and that no witness sees an empty list
// beyond what the cuts allow (c).
func partitioned(t *testing.T, c *cluster, i int, rules []string, cuts ...cut) {
	var heals, overs []func()
	for _, k := range cuts {
		heal, over := c.outage(k.owners, k.observers)
		heals, overs = append(heals, heal), append(overs, over)
	}
	c.setFaults(i, rules...)
	start := time.Now()
	var dropped time.Duration
	for _, k := range cuts {
		addrs := map[string]bool{}
		for _, o := range k.owners {
			for a := range c.addrsOf(o) {
				addrs[a] = true
			}
		}
		d, err := c.awaitGone(k.observers, addrs, start, outage)
		if err != nil || dropped < 0 {
			dropped = -time.Millisecond // not within the outage
			continue
		}
		dropped = max(dropped, d)
	}
	hold(start.Add(outage))
	c.setFaults(i)
	healed := time.Now()
	for _, heal := range heals {
		heal()
	}
	up := c.awaitMembersUp()
	if _, err := c.awaitConverged(convergeWithin); err != nil {
		t.Errorf("invariant (a) after healing: %v", err)
	}
	converged := time.Since(healed)
	for _, over := range overs {
		over()
	}
	c.logf("injected=%q node=%d cut_ms=%d dropped_ms=%d members_up_ms=%d converged_ms=%d converge_bound_ms=%d",
		strings.Join(rules, "; "), i+1, ms(healed.Sub(start)), ms(dropped), ms(up), ms(converged), ms(convergeWithin))
	hold(healed.Add(expiry + 4*verifyInterval))
}

// TestOneWayPartition cuts node 2 off one way, for longer than the client
// expiry: its calls to the others fail (it cannot send: its own clients
// rightly leave the others, while it keeps theirs), or theirs to it do (it
// cannot receive: it rightly drops their clients, while they keep its own).
// Calls fail at once, as refused connections do, so the members' states
// flap as reports get through one way only.
func TestOneWayPartition(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule string
		cut  cut
	}{
		{"cannot-send", "* out drop", cut{owners: []int{1}, observers: []int{0, 2}}},
		{"cannot-receive", "* in drop", cut{owners: []int{0, 2}, observers: []int{1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, "one-way-partition/"+tc.name)
			partitioned(t, c, 1, []string{tc.rule}, tc.cut)
		})
	}
}

// TestTwoWayPartition cuts node 2 off both ways for longer than the client
// expiry: everything it sends or is sent is lost (held until the call's
// deadline, as a network that drops packets does). It drops the others'
// clients and they drop its own; after healing, all must come back.
func TestTwoWayPartition(t *testing.T) {
	c := newCluster(t, "two-way-partition")
	partitioned(t, c, 1, []string{"* both blackhole"},
		cut{owners: []int{1}, observers: []int{0, 2}}, cut{owners: []int{0, 2}, observers: []int{1}})
}

// TestKillAndRestartEachNode kills each node in turn with SIGKILL while
// clients register, move and deregister instances through the live nodes.
// The killed node's clients fail over to the next node, as SDKs that know
// every node do (registering anew, here on the next port); the instances of
// the dead clients must leave the survivors within the expiry (b). The node
// restarts, must be ready only once it has loaded the registry, and the
// cluster must converge (a).
func TestKillAndRestartEachNode(t *testing.T) {
	c := newCluster(t, "kill-restart", churnService)
	c.startChurn()
	for i := range 3 {
		addrs := c.addrsOf(i)
		dead := c.kill(i)
		killed := time.Now()
		for _, p := range dead {
			if p.svc == churnService {
				continue
			}
			moved := make([]endpoint, len(p.addrs))
			for k, a := range p.addrs {
				moved[k] = endpoint{a.ip, a.port + 1}
			}
			c.register((i+1)%3, p.svc, moved)
		}
		gone, err := c.awaitGone(others(i), addrs, killed, goneWithin)
		if err != nil {
			t.Errorf("invariant (b): the %d instances of node %d's dead clients outlive their expiry: %v", len(addrs), i+1, err)
		}
		restart := time.Now()
		c.start(i) // returns once it reports ready
		ready := time.Since(restart)
		// It logs the load before it reports ready; the log reaches the test
		// through a pipe, which may lag behind.
		if logs, ok := c.awaitLog(i, "loaded the start-up snapshot", 5*time.Second); !ok {
			t.Errorf("node %d reported ready without loading a snapshot:\n%s", i+1, notable(logs))
		}
		w := c.connectWitness(i, false)
		// Ready means loaded: it serves the others' instances at once.
		for _, svc := range services {
			hosts, err := w.conn.query(time.Second, svc)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(hosts))
			for k, h := range hosts {
				got[k] = h.String()
			}
			slices.Sort(got)
			if want := c.expected(svc); !slices.Equal(got, want) {
				t.Errorf("node %d, ready after its restart, serves %d instances of %s, want %d (missing %s; extra %s)",
					i+1, len(got), svc, len(want), sample(minus(want, got)), sample(minus(got, want)))
			}
		}
		w.subscribeAll()
		up := c.awaitMembersUp()
		if _, err := c.awaitConverged(convergeWithin); err != nil {
			t.Errorf("invariant (a) after node %d restarted: %v", i+1, err)
		}
		converged := time.Since(restart) - ready // from ready
		c.logf("injected=SIGKILL node=%d dead_instances=%d gone_ms=%d gone_bound_ms=%d ready_ms=%d members_up_ms=%d converged_ms=%d converge_bound_ms=%d",
			i+1, len(addrs), ms(gone), ms(goneWithin), ms(ready), ms(up), ms(converged), ms(convergeWithin))
	}
}

// TestPluginKillLoops kills node 2's push plugin, then its transport plugin,
// then its membership plugin with SIGKILL, three times each. The server must
// restart each; after each kill a change made through node 2 must be pushed
// to every node's subscriber, and the cluster must converge (a); no witness
// may see an empty list meanwhile (c).
//
// Node 3's links are slow meanwhile: every message to or from it waits
// 100 ms (the transport's delay fault).
func TestPluginKillLoops(t *testing.T) {
	const victim, rounds = 1, 3
	c := newCluster(t, "plugin-kill", "probe")
	c.setFaults(2, "* both delay 100ms")
	probe := endpoint{"10.9.0.1", 1}
	p := c.register(victim, "probe", []endpoint{probe})
	bin := faultyPlugin(t)
	for _, plugin := range []struct {
		name string
		is   func(process) bool
	}{
		{"pushrpc", builtin("pushrpc")},
		{"faulty", func(p process) bool { return len(p.cmdline) > 0 && p.cmdline[0] == bin }},
		{"static", builtin("static")},
	} {
		series := fmt.Sprintf("sextant_plugin_restarts_total{plugin=%q}", plugin.name)
		for round := 1; round <= rounds; round++ {
			node := c.nodes[victim]
			before := node.Metric(t, series)
			target, ok := find(node.PID(), plugin.is)
			if !ok {
				t.Fatalf("no %s process among node 2's children: %+v", plugin.name, children(node.PID()))
			}
			if err := syscall.Kill(target.pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			// Back once the server says so of a new process (a process
			// alone may still be starting: killing it then is another
			// fault).
			for {
				next, ok := find(node.PID(), plugin.is)
				if ok && next.pid != target.pid && node.Metric(t, series) == before+1 &&
					strings.Contains(node.Logs(), fmt.Sprintf("sextant.plugins.%s: plugin restarted: pid=%d", plugin.name, next.pid)) {
					break
				}
				if time.Since(killed) > convergeWithin {
					t.Fatalf("%s was not restarted within %v (%s = %v)", plugin.name, convergeWithin, series, node.Metric(t, series))
				}
				time.Sleep(20 * time.Millisecond)
			}
			restarted := time.Since(killed)
			// A change made through node 2 reaches every subscriber.
			probe.port++
			p = c.move(p, []endpoint{probe})
			moved := time.Now()
			want := c.expected("probe")
			for i := range 3 {
				if err := c.witness(i).awaitPushed("probe", want, convergeWithin); err != nil {
					t.Errorf("after killing %s (round %d): %v", plugin.name, round, err)
				}
			}
			pushed := time.Since(moved)
			if _, err := c.awaitConverged(convergeWithin); err != nil {
				t.Errorf("invariant (a) after killing %s (round %d): %v", plugin.name, round, err)
			}
			// From the kill until every node serves everything.
			converged := time.Since(killed)
			c.logf("injected=SIGKILL plugin=%s node=%d round=%d restarted_ms=%d pushed_everywhere_ms=%d converged_ms=%d converge_bound_ms=%d",
				plugin.name, victim+1, round, ms(restarted), ms(pushed), ms(converged), ms(convergeWithin))
		}
	}
}

// builtin matches the process of a built-in plugin: "sextant plugin NAME".
func builtin(name string) func(process) bool {
	return func(p process) bool { return len(p.cmdline) == 3 && p.cmdline[1] == "plugin" && p.cmdline[2] == name }
}

// find returns a live child of pid that is accepts.
func find(pid int, is func(process) bool) (process, bool) {
	for _, p := range children(pid) {
		if p.state != "Z" && is(p) {
			return p, true
		}
	}
	return process{}, false
}
