package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// QueryOptions shape the query scenario.
type QueryOptions struct {
	Connections int // connections that query
	Services    int // services in the registry
	Instances   int // instances of each service, each from its own provider connection
	// VerifyEvery decodes every n-th answer in full and checks it lists the
	// service's instances; the others are checked by their response class
	// only, which tells success from failure without the client spending
	// the CPU the server needs to decode every body.
	VerifyEvery int
}

// Validate checks the options.
func (o QueryOptions) Validate() error {
	switch {
	case o.Connections < 1:
		return fmt.Errorf("--connections must be at least 1, got %d", o.Connections)
	case o.Services < 1:
		return fmt.Errorf("--services must be at least 1, got %d", o.Services)
	case o.Instances < 0:
		return fmt.Errorf("--instances must not be negative, got %d", o.Instances)
	case o.VerifyEvery < 1:
		return fmt.Errorf("--verify-every must be at least 1, got %d", o.VerifyEvery)
	}
	return nil
}

// Query measures ServiceQueryRequest over a populated registry: Instances
// provider connections each register one instance in every one of Services
// services, then Connections connections query services chosen at random
// (by Seed), closed-loop or at Rate.
func Query(c *Common, o QueryOptions, tool string) *report.Result {
	r := newRun(c, "query", tool)
	r.param("connections", o.Connections)
	r.param("services", o.Services)
	r.param("instances", o.Instances)
	r.param("verify_every", o.VerifyEvery)
	setupEnd := time.Now().Add(c.SetupTimeout)
	r.versions(context.Background())

	connect := r.newSeries("connect")
	populate := r.newSeries("populate")
	query := r.newSeries("query")
	providers := r.connect(setupEnd, o.Instances, connect, nil)
	r.populate(setupEnd, providers, o.Services, populate)
	conns := r.connect(setupEnd, o.Connections, connect, nil)

	if len(live(conns)) > 0 {
		r.drive(query, c.Count, func(ctx context.Context, k int64) error {
			conn, err := anyLive(conns, k)
			if err != nil {
				return err
			}
			svc := r.service(pick(c.Seed, k, o.Services))
			if k%int64(o.VerifyEvery) != 0 {
				return conn.Call(ctx, wire.Query(svc), nil)
			}
			var resp wire.ServiceInfoResponse
			if err := conn.Call(ctx, wire.Query(svc), &resp); err != nil {
				return err
			}
			if n := len(resp.ServiceInfo.Hosts); n != o.Instances {
				return &mismatchError{fmt.Sprintf("%s has %d hosts, want %d", svc.Name, n, o.Instances)}
			}
			return nil
		})
	} else {
		r.note("no query connection could be set up; nothing was measured")
	}
	r.sampleAfter()
	r.closeAll(connect, providers, conns)
	return r.finish("query", true)
}

// populate has every provider register one instance in each of n services,
// within deadline, and records each registration in series.
func (r *run) populate(deadline time.Time, providers []*wire.Conn, n int, series *stats.Series) {
	r.Monitor.set("populate", series)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	total := len(providers) * n
	parallel(ctx, total, r.Concurrency, func(ctx context.Context, k int) {
		p, s := k%len(providers), k/len(providers)
		conn := providers[p]
		if conn == nil {
			series.Fail(kind(errNotConnected))
			return
		}
		start := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, r.Timeout)
		err := conn.Call(rctx, wire.Register(r.service(s), wire.NewInstance(instanceIP(p), instancePort(0))), &wire.Response{})
		rcancel()
		if err != nil {
			series.Fail(kind(err))
			return
		}
		series.OK(time.Since(start))
	}, func(skipped int) { series.FailN("set-up timed out", int64(skipped)) })
}
