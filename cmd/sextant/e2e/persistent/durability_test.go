package persistent_test

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The durability workload: writes persistent registrations of distinct
// addresses over these services, at most one per writePace.
const (
	totalWrites      = 1000
	durableServices  = 4
	grpcWorkers      = 2 // per node, on one connection
	httpWorkers      = 1 // per node
	writePace        = 3 * time.Millisecond
	killAfterAcks    = 300
	durableIPPrefix  = "10.20."
	durableService   = "durable-"
	durablePortFirst = 8080
)

// write is what became of one registration.
type write struct {
	node     int
	via      string // grpc or http
	sent     time.Time
	answered time.Time
	acked    bool
	code     int    // the ErrorResponse's errorCode, or the HTTP status, when refused
	message  string // its message, or the HTTP body
	err      error  // not answered at all
}

func durableAddr(i int) (svc, ip string, port int) {
	return fmt.Sprintf("%s%d", durableService, i%durableServices), fmt.Sprintf("%s%d.%d", durableIPPrefix, i/250, i%250+1), durablePortFirst
}

// TestAcknowledgedWritesSurviveLeaderKill: while writers register 1,000
// persistent instances through all three nodes, over gRPC
// (PersistentInstanceRequest) and over HTTP (POST instance ephemeral=false)
// — a follower forwards them to the leader — the Raft leader is killed
// with SIGKILL; once the writes are done it is started again on its data
// directory. Every write a node acknowledged is then listed by every node,
// the restarted one included, all nodes list the same, and nothing that was
// never written. A live node refuses a write only with 503 and a message,
// within raft.apply_timeout and a margin. The figures go to a PERSIST line.
func TestAcknowledgedWritesSurviveLeaderKill(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	c.awaitRaft()

	conns := make([]*rawConn, 3)
	for i := range 3 {
		var err error
		if conns[i], err = dial(c.nodes[i].GRPCAddr()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conns[i].Close)
	}

	writes := make([]write, totalWrites)
	items := make(chan int, totalWrites)
	for i := range totalWrites {
		items <- i
	}
	close(items)
	pace := time.NewTicker(writePace)
	defer pace.Stop()

	var acks atomic.Int64
	killNow := make(chan struct{})
	var killOnce sync.Once
	var (
		killed      = -1
		killedAt    time.Time
		newLeader   = -1
		newLeaderAt time.Time
		killErr     error
		killDone    = make(chan struct{})
	)
	// The killer: once killAfterAcks writes are acknowledged, it kills the
	// node whose metrics say it leads, then watches the others until one
	// of them leads.
	go func() {
		defer close(killDone)
		<-killNow
		if killed = c.leader(); killed < 0 {
			killErr = errors.New("no node said it led when the kill was due")
			return
		}
		killedAt = time.Now()
		c.kill(killed)
		deadline := time.Now().Add(awaitTimeout)
		for time.Now().Before(deadline) {
			if l := c.leader(); l >= 0 {
				newLeader, newLeaderAt = l, time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		killErr = fmt.Errorf("no survivor led within %v of the kill", awaitTimeout)
	}()

	began := time.Now()
	var workers sync.WaitGroup
	for node := range 3 {
		for k := range grpcWorkers + httpWorkers {
			via := "grpc"
			if k >= grpcWorkers {
				via = "http"
			}
			workers.Go(func() {
				for i := range items {
					<-pace.C
					w := write{node: node, via: via, sent: time.Now()}
					if via == "grpc" {
						w.viaGRPC(conns[node], i)
					} else {
						w.viaHTTP(c.nodes[node].HTTPAddr(), i)
					}
					if w.acked && acks.Add(1) == killAfterAcks {
						killOnce.Do(func() { close(killNow) })
					}
					writes[i] = w
					// A node that does not answer at all is the killed one:
					// its writers stop, the others take the rest.
					if w.err != nil {
						return
					}
				}
			})
		}
	}
	workers.Wait()
	writing := time.Since(began)
	killOnce.Do(func() { close(killNow) }) // fewer acks than planned: kill anyway, and fail below
	<-killDone
	if killErr != nil {
		t.Fatal(killErr)
	}
	if got := acks.Load(); got < killAfterAcks {
		t.Errorf("only %d writes were acknowledged before the writers ran out: the leader was killed after the workload", got)
	}

	// Judge the answers: a live node refuses only with 503, within the
	// apply timeout and a margin; the killed node's writes may fail any way
	// once it is dead.
	acked, failed := map[int]bool{}, map[int]bool{}
	var refused503, killedNode int
	by := map[string]int{} // "via/outcome": counts
	var first503, last503 time.Time
	var slowest time.Duration
	var wrong []string
	var ackTimes []time.Time
	for i, w := range writes {
		if w.sent.IsZero() {
			wrong = append(wrong, fmt.Sprintf("write %d was never sent", i))
			continue
		}
		outcome := "failed"
		if w.acked {
			outcome = "acked"
		}
		by[w.via+"/"+outcome]++
		if w.acked {
			acked[i] = true
			ackTimes = append(ackTimes, w.answered)
			continue
		}
		failed[i] = true
		if w.node == killed && !w.answered.Before(killedAt) {
			killedNode++
			continue
		}
		took := w.answered.Sub(w.sent)
		slowest = max(slowest, took)
		switch {
		case w.err != nil:
			wrong = append(wrong, fmt.Sprintf("write %d to node %d over %s not answered after %v: %v", i, w.node+1, w.via, took.Round(time.Millisecond), w.err))
		case w.code != 503 || w.message == "":
			wrong = append(wrong, fmt.Sprintf("write %d to node %d over %s refused with %d (want 503 with a message) after %v: %s", i, w.node+1, w.via, w.code, took.Round(time.Millisecond), w.message))
		case took > refuseWithin:
			wrong = append(wrong, fmt.Sprintf("write %d to node %d over %s refused with 503 only after %v (apply timeout %v)", i, w.node+1, w.via, took.Round(time.Millisecond), applyTimeout))
			refused503++
		default:
			refused503++
			if first503.IsZero() || w.answered.Before(first503) {
				first503 = w.answered
			}
			if w.answered.After(last503) {
				last503 = w.answered
			}
		}
	}
	for _, s := range wrong[:min(len(wrong), 20)] {
		t.Error(s)
	}
	if len(wrong) > 20 {
		t.Errorf("... and %d more", len(wrong)-20)
	}
	// The longest time without an acknowledgement, around the kill.
	slices.SortFunc(ackTimes, time.Time.Compare)
	var stall time.Duration
	for k := 1; k < len(ackTimes); k++ {
		stall = max(stall, ackTimes[k].Sub(ackTimes[k-1]))
	}

	// The killed leader comes back on its data directory.
	restarted := time.Now()
	c.start(killed)
	ready := time.Since(restarted)
	c.awaitRaft()
	settled := time.Since(restarted)

	// Every acknowledged write is listed by every node, and they list the
	// same, and nothing never written.
	var present map[string]bool
	deadline := time.Now().Add(awaitTimeout)
	for {
		var why string
		present, why = c.durableState(acked)
		if why == "" {
			break
		}
		if strings.HasPrefix(why, "never written") || time.Now().After(deadline) {
			t.Fatalf("after the restart: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	caughtUp := time.Since(restarted)
	presentFailed := 0
	for i := range failed {
		svc, ip, port := durableAddr(i)
		if present[fmt.Sprintf("%s/%s:%d", svc, ip, port)] {
			presentFailed++
		}
	}
	t.Logf("PERSIST writes=%d acked=%d (grpc %d, http %d) failed=%d (grpc %d, http %d) failed_503=%d failed_on_killed_node=%d failed_but_present=%d killed=node%d after_acks=%d leaderless=%v new_leader=node%d first_503=%v last_503=%v longest_ack_gap=%v slowest_refusal=%v writing=%v restart_to_ready=%v restart_to_raft_settled=%v restart_to_converged=%v",
		totalWrites, len(acked), by["grpc/acked"], by["http/acked"], len(failed), by["grpc/failed"], by["http/failed"], refused503, killedNode, presentFailed, killed+1, killAfterAcks,
		newLeaderAt.Sub(killedAt).Round(time.Millisecond), newLeader+1, sinceKill(first503, killedAt), sinceKill(last503, killedAt),
		stall.Round(time.Millisecond), slowest.Round(time.Millisecond), writing.Round(time.Millisecond), ready.Round(time.Millisecond), settled.Round(time.Millisecond), caughtUp.Round(time.Millisecond))
}

// viaGRPC sends write i as a PersistentInstanceRequest on conn.
func (w *write) viaGRPC(conn *rawConn, i int) {
	svc, ip, port := durableAddr(i)
	a, err := conn.registerPersistent(requestTimeout, svc, ip, port, nil)
	w.answered = time.Now()
	switch {
	case err != nil:
		w.err = err
	case a.ResultCode == 200 && a.Type == "InstanceResponse":
		w.acked = true
	default:
		w.code, w.message = a.ErrorCode, a.Message
	}
}

// viaHTTP sends write i as POST /nacos/v1/ns/instance ephemeral=false to
// the node at addr.
func (w *write) viaHTTP(addr string, i int) {
	svc, ip, port := durableAddr(i)
	code, body, err := httpRegister(addr, svc, ip, port, false, nil)
	w.answered = time.Now()
	switch {
	case err != nil:
		w.err = err
	case code == http.StatusOK && body == "ok":
		w.acked = true
	default:
		w.code, w.message = code, body
	}
}

// sinceKill renders when something happened relative to the kill.
func sinceKill(at, killedAt time.Time) string {
	if at.IsZero() {
		return "none"
	}
	return at.Sub(killedAt).Round(time.Millisecond).String()
}

// durableState lists every durable service on every node; it returns what
// the nodes list (service/ip:port) and why that is not yet final ("" when
// every node lists every acknowledged write and they all list the same;
// "never written …" when a node lists an address no write was sent for).
func (c *cluster) durableState(acked map[int]bool) (map[string]bool, string) {
	var first map[string]bool
	for node := range 3 {
		got := map[string]bool{}
		for s := range durableServices {
			svc := fmt.Sprintf("%s%d", durableService, s)
			hosts, err := list(c.nodes[node].HTTPAddr(), svc)
			if err != nil {
				return nil, err.Error()
			}
			for a, h := range hosts {
				if h.Ephemeral {
					return nil, fmt.Sprintf("never written: node %d lists %s/%s as ephemeral", node+1, svc, a)
				}
				got[svc+"/"+a] = true
			}
		}
		for k := range got {
			var i, a, b, port int
			if _, err := fmt.Sscanf(k, durableService+"%d/"+durableIPPrefix+"%d.%d:%d", &i, &a, &b, &port); err != nil ||
				port != durablePortFirst || a*250+b-1 >= totalWrites || (a*250+b-1)%durableServices != i {
				return nil, fmt.Sprintf("never written: node %d lists %s", node+1, k)
			}
		}
		var missing []string
		for i := range acked {
			svc, ip, port := durableAddr(i)
			if k := fmt.Sprintf("%s/%s:%d", svc, ip, port); !got[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return nil, fmt.Sprintf("node %d lacks %d acknowledged writes (of %d), such as %v", node+1, len(missing), len(acked), missing[:min(3, len(missing))])
		}
		if first == nil {
			first = got
		} else if !maps.Equal(first, got) {
			return nil, fmt.Sprintf("node 1 lists %d durable instances, node %d %d", len(first), node+1, len(got))
		}
	}
	return first, ""
}
