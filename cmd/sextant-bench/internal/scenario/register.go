package scenario

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// RegisterOptions shape the register scenario.
type RegisterOptions struct {
	Connections int // client connections
	Instances   int // instances each connection registers, each in another service
	Services    int // services the instances are spread over
	// Hold keeps the connections, and so their instances, this long after
	// the check: a cluster can be measured holding that registry meanwhile
	// (a restarted node's snapshot load, say).
	Hold time.Duration
	// SkipCheck leaves out the final check that the server holds what it
	// acknowledged, for a server that keeps nothing (the ceiling).
	SkipCheck bool
}

// Validate checks the options.
func (o RegisterOptions) Validate() error {
	switch {
	case o.Connections < 1:
		return fmt.Errorf("--connections must be at least 1, got %d", o.Connections)
	case o.Instances < 1:
		return fmt.Errorf("--instances must be at least 1, got %d", o.Instances)
	case o.Services < 1:
		return fmt.Errorf("--services must be at least 1, got %d", o.Services)
	case o.Hold < 0:
		return fmt.Errorf("--hold must not be negative, got %s", o.Hold)
	case o.Instances > o.Services:
		return fmt.Errorf("--instances %d exceeds --services %d: a connection holds one instance per service", o.Instances, o.Services)
	}
	return nil
}

// Register measures registrations: C connections register I instances each,
// the j-th instance of connection c in service (c·I + j) mod S, so every
// connection's instances are in distinct services. An operation is one
// InstanceRequest; the default count is C·I, one of each. Beyond that the
// same instances are registered again with a new port, each a real change.
// At the end every service is queried to check the server holds what it
// acknowledged.
func Register(c *Common, o RegisterOptions, tool string) *report.Result {
	r := newRun(c, "register", tool)
	r.param("connections", o.Connections)
	r.param("instances", o.Instances)
	r.param("services", o.Services)
	setupEnd := time.Now().Add(c.SetupTimeout)
	r.versions(context.Background())

	connect := r.newSeries("connect")
	register := r.newSeries("register")
	conns := r.connect(setupEnd, o.Connections, connect, nil)

	count := c.Count
	if count == 0 {
		count = int64(o.Connections) * int64(o.Instances)
	}
	perRound := int64(o.Connections) * int64(o.Instances)
	// acked[c·I + j] is the port of the last acknowledged registration.
	acked := make([]atomic.Int64, perRound)
	if len(live(conns)) > 0 {
		r.drive(register, count, func(ctx context.Context, k int64) error {
			ci, j, round := int(k%int64(o.Connections)), int(k/int64(o.Connections)%int64(o.Instances)), k/perRound
			conn := conns[ci]
			if conn == nil {
				return errNotConnected
			}
			slot := ci*o.Instances + j
			port := instancePort(round)
			inst := wire.NewInstance(instanceIP(ci), port)
			if err := conn.Call(ctx, wire.Register(r.service(slot%o.Services), inst), &wire.Response{}); err != nil {
				return err
			}
			acked[slot].Store(int64(port))
			return nil
		})
	} else {
		r.note("no connection could be set up; nothing was measured")
	}
	r.sampleAfter()

	var held int64
	for i := range acked {
		if acked[i].Load() != 0 {
			held++
		}
	}
	r.figure("instances held", float64(held), "instances")
	r.figure("connections held", float64(len(live(conns))), "connections")
	switch {
	case o.SkipCheck:
		r.param("skip_check", true)
		r.note("the registry was not checked (--skip-check)")
	case held > 0:
		r.verifyRegistered(conns, o, acked)
	}
	if o.Hold > 0 {
		r.param("hold", o.Hold.String())
		r.Monitor.set("hold", nil)
		time.Sleep(o.Hold)
	}
	r.closeAll(connect, conns)
	return r.finish("register", true)
}

// verifyRegistered queries every service and checks it holds exactly the
// instances whose registration was acknowledged, at their last ports.
func (r *run) verifyRegistered(conns []*wire.Conn, o RegisterOptions, acked []atomic.Int64) {
	want := make([]map[string]bool, o.Services)
	for i := range want {
		want[i] = make(map[string]bool)
	}
	for slot := range acked {
		if port := acked[slot].Load(); port != 0 {
			want[slot%o.Services][hostKey(instanceIP(slot/o.Instances), int(port))] = true
		}
	}
	r.checkServices("registry holds every acknowledged registration", want, addrKey, func(ctx context.Context, s int) ([]wire.Instance, error) {
		conn, err := anyLive(conns, int64(s))
		if err != nil {
			return nil, err
		}
		var resp wire.ServiceInfoResponse
		if err := conn.Call(ctx, wire.Query(r.service(s)), &resp); err != nil {
			return nil, err
		}
		return resp.ServiceInfo.Hosts, nil
	})
}

// checkServices reads every service with query, Concurrency at a time and
// each within Timeout, all within Grace, and adds the check name: service s
// holds exactly the hosts whose keys are in want[s].
func (r *run) checkServices(name string, want []map[string]bool, key func(wire.Instance) string,
	query func(ctx context.Context, s int) ([]wire.Instance, error)) {
	r.Monitor.set("verify", nil)
	ctx, cancel := context.WithTimeout(context.Background(), r.Grace)
	defer cancel()
	var wrong, failed atomic.Int64
	var example atomic.Value
	parallel(ctx, len(want), r.Concurrency, func(ctx context.Context, s int) {
		qctx, qcancel := context.WithTimeout(ctx, r.Timeout)
		hosts, err := query(qctx, s)
		qcancel()
		if err != nil {
			failed.Add(1)
			return
		}
		if d := diffHostsBy(want[s], hosts, key); d != "" {
			wrong.Add(1)
			example.CompareAndSwap(nil, fmt.Sprintf("%s: %s", r.service(s).Name, d))
		}
	}, func(n int) { failed.Add(int64(n)) })
	detail := fmt.Sprintf("%d services queried, %d differ, %d could not be queried", len(want), wrong.Load(), failed.Load())
	if e := example.Load(); e != nil {
		detail += "; e.g. " + e.(string)
	}
	r.check(name, wrong.Load() == 0 && failed.Load() == 0, "%s", detail)
}
