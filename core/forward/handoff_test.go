package forward

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
)

// sweepAll runs a round of handoffs on every node that is not cut off.
func (c *testCluster) sweepAll() {
	for _, n := range c.nodes {
		if !c.isCut(n.addr) {
			n.fwd.Sweep(context.Background())
		}
	}
}

// holdersByID returns who holds each client as its own.
func (c *testCluster) holdersByID(clients []string) map[string]string {
	out := map[string]string{}
	for _, id := range clients {
		if h := c.holders(id); len(h) == 1 {
			out[id] = h[0]
		} else {
			out[id] = "" // none, or several (checkNeverTwice says)
		}
	}
	return out
}

// checkListed fails unless every node not cut off lists n instances.
func (c *testCluster) checkListed(n int64) {
	c.t.Helper()
	for _, nd := range c.nodes {
		if st := nd.reg.Stats(); !c.isCut(nd.addr) && st.Instances != n {
			c.t.Fatalf("%s lists %d instances, want %d", nd.addr, st.Instances, n)
		}
	}
}

// TestAJoiningNodeTakesOnlyItsShare: a fourth node joins three holding 400
// HTTP clients. The clients it is now responsible for move to it — those
// that write at once, with their former owner's consent, the others when
// their owner hands them over after the grace — and no other client moves;
// no client is ever its own on two nodes; every node keeps listing every
// instance; a client handed over keeps its beat clock.
func TestAJoiningNodeTakesOnlyItsShare(t *testing.T) {
	c := newTestCluster(t, 3)
	addrs := ips(400)
	clients := ids(addrs)
	for i, ip := range addrs {
		register(t, c.nodes[i%3], ip)
	}
	registeredAt := c.clock.Now()
	c.replicate()
	c.checkListed(400)
	c.sweepAll()
	before := c.holdersByID(clients)

	c.clock.advance(time.Second)
	fourth := c.add()
	c.everyoneSees()
	c.replicate() // its start-up snapshot
	c.sweepAll()  // the UP members changed: the grace starts

	// A quarter of the clients beat (through any node) before the grace
	// ends: theirs move now.
	for i, ip := range addrs[:100] {
		beat(t, c.nodes[i%4], ip)
		c.checkNeverTwice(clients[i : i+1])
	}
	c.clock.advance(grace)
	c.sweepAll() // the others are handed over
	c.checkNeverTwice(clients)
	c.flushNotices()
	// The replicas of the moved clients follow them on the third nodes.
	after := c.holdersByID(clients)
	moved := 0
	for _, id := range clients {
		if after[id] == "" {
			t.Fatalf("%s is held by %v", id, c.holders(id))
		}
		if after[id] != c.owner(id).addr {
			t.Fatalf("%s is held by %s, not its owner %s", id, after[id], c.owner(id).addr)
		}
		if after[id] == before[id] {
			continue
		}
		moved++
		if after[id] != fourth.addr {
			t.Fatalf("%s moved from %s to %s, not to the joining node", id, before[id], after[id])
		}
		for _, n := range c.nodes {
			if d, ok := n.reg.Client(id); ok && d.Owner != "" && d.Owner != fourth.addr {
				t.Fatalf("%s's replica on %s is still %s's", id, n.addr, d.Owner)
			}
		}
	}
	want := float64(len(clients)) / 4
	t.Logf("the joining node took %d of %d clients (1/4 = %.0f)", moved, len(clients), want)
	if math.Abs(float64(moved)-want) > 5*math.Sqrt(want) {
		t.Fatalf("%d of %d clients moved to the fourth node, want about %.0f", moved, len(clients), want)
	}
	c.replicate()
	c.checkListed(400)

	// A client handed over by the sweep kept its last beat (its
	// registration), and the new owner checks it.
	for i, id := range clients[100:] {
		if after[id] != fourth.addr {
			continue
		}
		st, ok := fourth.reg.HTTPClient(id)
		if !ok || len(st.Beats) != 1 || !st.Beats[0].Last.Equal(registeredAt) {
			t.Fatalf("%s (%s) on the new owner: %+v, want its last beat at %v", id, addrs[100+i], st, registeredAt)
		}
		if !fourth.fwd.Responsible(id) || before[id] != "" && c.nodeAt(before[id]).fwd.Responsible(id) {
			t.Fatalf("%s: the new owner is not responsible, or the former one still is", id)
		}
		break
	}
}

func (c *testCluster) nodeAt(addr string) *node {
	for _, n := range c.nodes {
		if n.addr == addr {
			return n
		}
	}
	return nil
}

// TestAKilledOwnersClientsAreAdopted: the owner of a third of the clients
// dies. The survivors responsible for its clients adopt them from their
// replicas at their next round (or at a client's beat, whichever is first),
// the other survivors re-home their replicas, every instance stays, and
// their beats reach the new owners.
func TestAKilledOwnersClientsAreAdopted(t *testing.T) {
	c := newTestCluster(t, 3)
	addrs := ips(150)
	clients := ids(addrs)
	for i, ip := range addrs {
		register(t, c.nodes[i%3], ip)
	}
	c.replicate()
	dead := c.nodes[0]
	var orphans []int
	for i, id := range clients {
		if c.owner(id) == dead {
			orphans = append(orphans, i)
		}
	}
	c.net.mu.Lock()
	c.net.cut[dead.addr] = true
	c.net.mu.Unlock()
	// Node 2 sees it DOWN first: it adopts its share of the orphans and
	// tells node 3, which re-homes its replicas only once it sees the
	// death too.
	c.nodes[1].view.set(dead.addr, cluster.Down)
	c.nodes[1].fwd.Sweep(context.Background())
	c.flushNotices()
	for _, i := range orphans {
		if d, _ := c.nodes[2].reg.Client(clients[i]); d.Owner != dead.addr {
			t.Fatalf("node 3 re-homed %s to %s before it saw its owner DOWN", clients[i], d.Owner)
		}
	}
	c.nodes[2].view.set(dead.addr, cluster.Down)
	// One orphan beats (lightly: without a body to register it again with)
	// before node 3's round: its new owner adopts it from its replica.
	var first int
	for _, i := range orphans {
		if len(c.holders(clients[i])) == 1 { // node 3's: not adopted yet
			first = i
			break
		}
	}
	res, err := c.nodes[1].fwd.Apply(context.Background(), Write{Op: Beat, Service: svc, Instance: naming.Instance{IP: addrs[first], Port: 80}})
	if err != nil || !res.Found || res.Instance.Metadata["ip"] != addrs[first] {
		t.Fatalf("a light beat of an orphan: %+v %v", res, err)
	}
	c.sweepAll()
	c.flushNotices()
	c.sweepAll() // the moves node 3 waited with
	for _, i := range orphans {
		id := clients[i]
		owner := c.nodes[1].view.Owner(id)
		if h := c.holders(id); !slices.Equal(h, []string{owner}) && !slices.Equal(h, []string{dead.addr, owner}) {
			t.Fatalf("orphan %s is held by %v, want %s", id, h, owner)
		}
		for _, n := range c.nodes[1:] {
			if d, _ := n.reg.Client(id); d.Owner != "" && d.Owner != owner {
				t.Fatalf("orphan %s's replica on %s is %s's", id, n.addr, d.Owner)
			}
		}
		if res := beat(t, c.nodes[1+i%2], addrs[i]); !res.Found {
			t.Fatalf("beat of orphan %s", id)
		}
	}
	for _, n := range c.nodes[1:] {
		if st := n.reg.Stats(); st.Instances != 150 {
			t.Fatalf("%s lists %d instances, want 150", n.addr, st.Instances)
		}
	}
	t.Logf("the survivors adopted the %d clients of the dead node", len(orphans))
}

// TestResponsibilityMovesOnlyWithTheOwnersConsent: a joining node that the
// others do not see yet cannot take a client over (503, the client
// retries); once they do, it can.
func TestResponsibilityMovesOnlyWithTheOwnersConsent(t *testing.T) {
	c := newTestCluster(t, 3)
	addrs := ips(200)
	for i, ip := range addrs {
		register(t, c.nodes[i%3], ip)
	}
	c.replicate()
	fourth := c.add()
	for _, n := range c.nodes[:3] {
		fourth.view.set(n.addr, cluster.Up) // it sees them; they do not see it
	}
	c.replicate()
	var ip string
	for _, cand := range addrs {
		if fourth.view.Owner(naming.HTTPClientID(cand, 80)) == fourth.addr {
			ip = cand
			break
		}
	}
	id := naming.HTTPClientID(ip, 80)
	formerOwner := c.holders(id)
	body := instanceAt(ip)
	_, err := fourth.fwd.Apply(context.Background(), Write{Op: Beat, Service: svc, Instance: naming.Instance{IP: ip, Port: 80}, Body: &body})
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("taking a client over before its owner agrees: %v", err)
	}
	t.Logf("the client is told: %v", err)
	if h := c.holders(id); !slices.Equal(h, formerOwner) {
		t.Fatalf("held by %v, want %v still", h, formerOwner)
	}
	// The others' membership catches up.
	c.everyoneSees()
	if res := beat(t, fourth, ip); !res.Found {
		t.Fatal("not found once the owner agrees")
	}
	if h := c.holders(id); !slices.Equal(h, []string{fourth.addr}) {
		t.Fatalf("held by %v, want the fourth node alone", h)
	}
	if d, _ := c.nodeAt(formerOwner[0]).reg.Client(id); d.Owner != fourth.addr {
		t.Fatalf("the former owner holds %+v, want a replica of the fourth node's", d)
	}
}

// TestTwoHoldersEndWithOne: after a partition both sides may hold a client
// as their own; once they see each other, the one not responsible hands it
// over and the responsible one keeps its own copy.
func TestTwoHoldersEndWithOne(t *testing.T) {
	c := newTestCluster(t, 2)
	var ip string
	for _, cand := range ips(50) {
		if c.owner(naming.HTTPClientID(cand, 80)) == c.nodes[1] {
			ip = cand
			break
		}
	}
	id := naming.HTTPClientID(ip, 80)
	for _, n := range c.nodes {
		in := instanceAt(ip)
		in.Metadata = map[string]string{"side": n.addr}
		if err := n.reg.RegisterHTTP(context.Background(), "", svc, in); err != nil {
			t.Fatal(err)
		}
	}
	c.sweepAll()
	c.clock.advance(grace)
	c.sweepAll()
	if h := c.holders(id); !slices.Equal(h, []string{c.nodes[1].addr}) {
		t.Fatalf("held by %v, want the responsible node alone", h)
	}
	if in, _ := c.nodes[1].reg.Instance(svc, ip, 80, ""); in.Metadata["side"] != c.nodes[1].addr {
		t.Fatalf("the responsible node's copy was replaced: %+v", in)
	}
}

// TestAHandoverNotTakenIsTakenBack: a handover the target refuses (it does
// not see itself responsible) or cannot receive (unreachable) leaves the
// client with the node that had it.
func TestAHandoverNotTakenIsTakenBack(t *testing.T) {
	c := newTestCluster(t, 3)
	a, b := c.nodes[0], c.nodes[1]
	// a sees only a and b, and b responsible for the client; b sees all
	// three, and another responsible.
	a.view.set(c.nodes[2].addr, "")
	var ip string
	for _, cand := range ips(100) {
		cid := naming.HTTPClientID(cand, 80)
		if a.view.Owner(cid) == b.addr && b.view.Owner(cid) != b.addr {
			ip = cand
			break
		}
	}
	id := naming.HTTPClientID(ip, 80)
	if err := a.reg.RegisterHTTP(context.Background(), "", svc, instanceAt(ip)); err != nil {
		t.Fatal(err)
	}
	c.sweepAll()
	c.clock.advance(grace)
	a.fwd.Sweep(context.Background())
	if c.net.calls[opAdopt] != 1 {
		t.Fatalf("%d handovers tried, want 1", c.net.calls[opAdopt])
	}
	if h := c.holders(id); !slices.Equal(h, []string{a.addr}) {
		t.Fatalf("after a refused handover: held by %v", h)
	}
	c.net.mu.Lock()
	c.net.cut[b.addr] = true
	c.net.mu.Unlock()
	a.fwd.Sweep(context.Background())
	if h := c.holders(id); !slices.Equal(h, []string{a.addr}) {
		t.Fatalf("after an undelivered handover: held by %v", h)
	}
	if d, _ := a.reg.Client(id); d.InstanceCount() != 1 {
		t.Fatalf("the client came back with %+v", d)
	}
}

// TestAMoveWaitsForItsNewOwnerWithoutLosingTheReplica: a fourth node joins,
// and one of the three others learns of it late (each reads the membership
// on its own). The former owners hand their clients over, tell that node,
// then verify with it, no longer listing them. It must keep listing every
// instance: it holds the replicas it cannot re-home yet against those
// verifications, and re-homes them once it knows the new owner.
func TestAMoveWaitsForItsNewOwnerWithoutLosingTheReplica(t *testing.T) {
	c := newTestCluster(t, 3)
	addrs := ips(200)
	clients := ids(addrs)
	for i, ip := range addrs {
		register(t, c.nodes[i%3], ip)
	}
	c.replicate()
	c.sweepAll()

	late := c.nodes[2]
	fourth := c.add()
	for _, n := range c.nodes {
		if n != late && n != fourth {
			n.view.set(fourth.addr, cluster.Up)
		}
		if n != fourth {
			fourth.view.set(n.addr, cluster.Up)
		}
	}
	c.replicate()
	c.sweepAll()
	c.clock.advance(grace)
	c.sweepAll()
	c.flushNotices()

	var moved []string
	for _, id := range clients {
		if h := c.holders(id); len(h) == 1 && h[0] == fourth.addr {
			if d, _ := late.reg.Client(id); d.Owner != late.addr {
				moved = append(moved, id)
			}
		}
	}
	if len(moved) == 0 {
		t.Fatal("no client of the other nodes moved to the fourth node")
	}
	// The former owners' verifications reach the late node.
	verify := func() {
		t.Helper()
		opts := naming.ReplicaOptions{IsMember: func(a string) bool { _, ok := late.fwd.state(a); return ok }}
		for _, n := range c.nodes[:2] {
			if _, err := late.reg.Verify(context.Background(), n.addr, n.reg.LocalVersions(), opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	verify()
	if st := late.reg.Stats(); st.Instances != int64(len(addrs)) {
		t.Fatalf("the late node lists %d instances, want %d", st.Instances, len(addrs))
	}
	late.fwd.Sweep(context.Background()) // it does not know the fourth node: nothing is adopted
	c.checkNeverTwice(clients)

	// Once it knows the fourth node, the moves are taken.
	late.view.set(fourth.addr, cluster.Up)
	late.fwd.Sweep(context.Background())
	for _, id := range moved {
		if d, _ := late.reg.Client(id); d.Owner != fourth.addr {
			t.Fatalf("%s's replica on the late node is %s's, want the fourth node's", id, d.Owner)
		}
	}
	verify()
	if st := late.reg.Stats(); st.Instances != int64(len(addrs)) {
		t.Fatalf("after the moves, the late node lists %d instances, want %d", st.Instances, len(addrs))
	}
}
