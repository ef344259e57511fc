package persistent_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// refuseWithin bounds how long a node without a quorum takes to refuse a
// persistent write: raft.apply_timeout and a margin for a loaded machine.
const refuseWithin = applyTimeout + 1500*time.Millisecond

// TestWritesFailWithoutQuorum: with two of three nodes killed, a persistent
// write on the survivor — over gRPC, and over HTTP — is refused with 503
// and a message saying why within raft.apply_timeout (and at once once the
// node has had no leader for that long), while the survivor still lists the
// persistent instances and takes ephemeral registrations. Once the killed
// nodes are back, writes succeed again. Both ways: the leader survives (it
// must find out it lost its quorum), and a follower does.
func TestWritesFailWithoutQuorum(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	const svc = "no-quorum"
	var written []string
	write := func(ip string) {
		t.Helper()
		leader := c.awaitRaft()
		w, err := dial(c.nodes[leader].GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if a, err := w.registerPersistent(requestTimeout, svc, ip, 8080, nil); err != nil || a.ResultCode != 200 {
			t.Fatalf("registering %s:8080 with a quorum: %v %v", ip, a, err)
		}
		written = append(written, ip+":8080")
		for i := range 3 {
			awaitList(t, c.nodes[i].HTTPAddr(), svc, persistentAt(written...))
		}
	}
	write("10.30.0.1")

	for k, survivorLeads := range []bool{true, false} {
		leader := c.awaitRaft()
		survivor := leader
		if !survivorLeads {
			survivor = (leader + 1) % 3
		}
		t.Logf("round %d: node %d survives (leader: node %d)", k+1, survivor+1, leader+1)
		conn, err := dial(c.nodes[survivor].GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		var killed []int
		for i := range 3 {
			if i != survivor {
				c.kill(i)
				killed = append(killed, i)
			}
		}
		addr := c.nodes[survivor].HTTPAddr()
		round := fmt.Sprintf("round %d (node %d, which led: %v, survives)", k+1, survivor+1, survivorLeads)

		// A write at once, while the survivor may still think it leads or
		// has a leader.
		refused(t, round+": the first write", func() (answer, error) {
			return conn.registerPersistent(requestTimeout, svc, fmt.Sprintf("10.30.%d.1", k+1), 8080, nil)
		}, refuseWithin)
		// The survivor knows it has no leader.
		deadline := time.Now().Add(awaitTimeout)
		for {
			m, err := scrape(addr)
			if err != nil {
				t.Fatal(err)
			}
			if m["sextant_raft_leader_known"] == 0 && m[`sextant_raft_state{state="Leader"}`] == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: node %d still knows a leader %v after the others died", round, survivor+1, awaitTimeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
		refused(t, round+": a write without a leader", func() (answer, error) {
			return conn.registerPersistent(requestTimeout, svc, fmt.Sprintf("10.30.%d.2", k+1), 8080, nil)
		}, refuseWithin)
		// Without a leader for the apply timeout now: refused at once.
		refused(t, round+": a write after the apply timeout without a leader", func() (answer, error) {
			return conn.registerPersistent(requestTimeout, svc, fmt.Sprintf("10.30.%d.3", k+1), 8080, nil)
		}, time.Second)

		start := time.Now()
		status, body, err := httpRegister(addr, svc, fmt.Sprintf("10.30.%d.4", k+1), 8080, false, nil)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "quorum") || took > refuseWithin {
			t.Errorf("%s: a persistent POST instance: %d %q after %v; want 503 naming the lost quorum within %v", round, status, body, took.Round(time.Millisecond), refuseWithin)
		}
		t.Logf("%s: HTTP: %d %q after %v", round, status, body, took.Round(time.Millisecond))

		// Reads still answer, and ephemeral instances still register.
		if hosts, err := list(addr, svc); err != nil {
			t.Errorf("%s: instance/list: %v", round, err)
		} else if why := persistentAt(written...)(hosts); why != "" {
			t.Errorf("%s: instance/list: %s", round, why)
		}
		if got, err := conn.query(svc); err != nil {
			t.Errorf("%s: ServiceQueryRequest: %v", round, err)
		} else {
			for _, a := range written {
				if eph, ok := got[a]; !ok || eph {
					t.Errorf("%s: ServiceQueryRequest answers %v, want %s persistent", round, got, a)
				}
			}
		}
		ephemeral := fmt.Sprintf("10.30.%d.9", k+1)
		if a, err := conn.registerEphemeral(svc, ephemeral, 8080); err != nil || a.ResultCode != 200 {
			t.Errorf("%s: an ephemeral registration: %v %v", round, a, err)
		} else {
			awaitList(t, addr, svc, both(persistentAt(written...), listedEphemeral(ephemeral+":8080")))
		}

		// The killed nodes come back: the quorum with them.
		conn.Close()
		for _, i := range killed {
			c.start(i)
		}
		write(fmt.Sprintf("10.30.%d.10", k+1))
	}
}

// refused runs a persistent write that must be refused with 503, naming
// the lack of a leader or quorum, within d.
func refused(t *testing.T, what string, do func() (answer, error), d time.Duration) {
	t.Helper()
	start := time.Now()
	a, err := do()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s: not answered after %v: %v", what, took.Round(time.Millisecond), err)
	}
	if a.Type != "ErrorResponse" || a.ResultCode == 200 || a.ErrorCode != 503 ||
		!(strings.Contains(a.Message, "no quorum") || strings.Contains(a.Message, "no leader")) {
		t.Errorf("%s: answered %s after %v; want an ErrorResponse 503 naming the lost quorum", what, a, took.Round(time.Millisecond))
	}
	if took > d {
		t.Errorf("%s: refused only after %v, want within %v (raft.apply_timeout %v)", what, took.Round(time.Millisecond), d, applyTimeout)
	}
	t.Logf("%s: %d %q after %v", what, a.ErrorCode, a.Message, took.Round(time.Millisecond))
}
