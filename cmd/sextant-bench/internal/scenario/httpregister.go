package scenario

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/httpwire"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// HTTPRegisterOptions shape the http-register scenario.
type HTTPRegisterOptions struct {
	Clients   int // HTTP clients: instance addresses ip:port, each a client to the server
	Instances int // instances each client registers, each in another service
	Services  int // services the instances are spread over
}

// Validate checks the options.
func (o HTTPRegisterOptions) Validate() error {
	switch {
	case o.Clients < 1:
		return fmt.Errorf("--clients must be at least 1, got %d", o.Clients)
	case o.Instances < 1:
		return fmt.Errorf("--instances must be at least 1, got %d", o.Instances)
	case o.Services < 1:
		return fmt.Errorf("--services must be at least 1, got %d", o.Services)
	case o.Instances > o.Services:
		return fmt.Errorf("--instances %d exceeds --services %d: a client holds one instance per service", o.Instances, o.Services)
	}
	return nil
}

// HTTPRegister measures registrations over the v1 HTTP API (POST
// /nacos/v1/ns/instance with form parameters) on Concurrency keep-alive
// connections per target, Concurrency in flight. It has the register
// scenario's shape: C clients — the server knows an HTTP client by its
// instance's address, so each is an address ip:port — register I instances
// each, the j-th of client c in service (c·I + j) mod S. The default count
// is C·I, one of each; beyond that the same instances are registered again
// with another weight, each a real change. At the end every service is
// listed (instance/list) to check the server holds what it acknowledged,
// and the instances are deregistered.
func HTTPRegister(c *Common, o HTTPRegisterOptions, tool string) *report.Result {
	r := newRun(c, "http-register", tool)
	r.param("clients", o.Clients)
	r.param("instances", o.Instances)
	r.param("services", o.Services)
	setupEnd := time.Now().Add(c.SetupTimeout)
	r.versions(context.Background())

	connect := r.newSeries("connect")
	register := r.newSeries("register")
	clients := r.dialHTTP(setupEnd, connect)
	defer closeHTTP(clients)

	count := c.Count
	if count == 0 {
		count = int64(o.Clients) * int64(o.Instances)
	}
	perRound := int64(o.Clients) * int64(o.Instances)
	// acked[c·I + j] is 1 + the round of the last acknowledged registration.
	acked := make([]atomic.Int64, perRound)
	// An instance's registrations go one after another, as its client's
	// would, so that the last acknowledged is the one the server holds.
	inFlight := make([]sync.Mutex, perRound)
	if ok, _ := connect.Counts(); ok > 0 {
		r.drive(register, count, func(ctx context.Context, k int64) error {
			ci, j, round := int(k%int64(o.Clients)), int(k/int64(o.Clients)%int64(o.Instances)), k/perRound
			slot := ci*o.Instances + j
			inFlight[slot].Lock()
			defer inFlight[slot].Unlock()
			err := registerHTTP(ctx, clients[ci%len(clients)], r.service(slot%o.Services), instanceIP(ci), portBase, roundWeight(round))
			if err != nil {
				return err
			}
			acked[slot].Store(round + 1)
			return nil
		})
	} else {
		r.note("no HTTP connection could be opened; nothing was measured")
	}
	r.sampleAfter()

	var held int64
	want := make([]map[string]bool, o.Services)
	for i := range want {
		want[i] = make(map[string]bool)
	}
	for slot := range acked {
		if n := acked[slot].Load(); n != 0 {
			held++
			want[slot%o.Services][weightedKey(instanceIP(slot/o.Instances), portBase, roundWeight(n-1))] = true
		}
	}
	r.figure("instances held", float64(held), "instances")
	if held > 0 {
		r.checkServices("registry holds every acknowledged registration", want, func(h wire.Instance) string {
			return weightedKey(h.IP, h.Port, h.Weight)
		}, func(ctx context.Context, s int) ([]wire.Instance, error) {
			return listHTTP(ctx, clients[s%len(clients)], r.service(s), false)
		})
	}
	r.deregisterAll(clients, r.newSeries("deregister"), len(acked), func(slot int) (wire.Service, string, bool) {
		return r.service(slot % o.Services), instanceIP(slot / o.Instances), acked[slot].Load() != 0
	}, func(slot int) int { return slot / o.Instances })
	return r.finish("register", true)
}

// roundWeight is the weight of a registration in round n: 1 to 100.
func roundWeight(round int64) float64 { return float64(1 + round%100) }

// weightedKey names a host by address and weight.
func weightedKey(ip string, port int, weight float64) string {
	return hostKey(ip, port) + " weight " + strconv.FormatFloat(weight, 'g', -1, 64)
}

// deregisterAll deregisters, within Grace, the instances slot in [0, n)
// that instance(slot) says were registered, at portBase, each through the
// client of target client(slot) % targets, recording each in series: the
// HTTP API's instances have no connection whose end removes them. What is
// left expires on the server by itself (unhealthy after 15 s without a
// beat, gone after 30 s).
func (r *run) deregisterAll(clients []*httpwire.Client, series *stats.Series, n int, instance func(slot int) (svc wire.Service, ip string, registered bool), client func(slot int) int) {
	r.Monitor.set("teardown", nil)
	ctx, cancel := context.WithTimeout(context.Background(), r.Grace)
	defer cancel()
	var left atomic.Int64
	parallel(ctx, n, r.Concurrency, func(ctx context.Context, slot int) {
		svc, ip, registered := instance(slot)
		if !registered {
			return
		}
		start := time.Now()
		dctx, dcancel := context.WithTimeout(ctx, r.Timeout)
		err := deregisterHTTP(dctx, clients[client(slot)%len(clients)], svc, ip, portBase)
		dcancel()
		if err != nil {
			series.Fail(kind(err))
			return
		}
		series.OK(time.Since(start))
	}, func(skipped int) { left.Add(int64(skipped)) })
	if n := left.Load(); n > 0 {
		r.note("teardown: up to %d instances were not deregistered within the grace period; the server expires them", n)
	}
}
