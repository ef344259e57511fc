package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// PushOptions shape the push scenario.
type PushOptions struct {
	Subscribers int // subscriber connections
	Services    int // services they are spread over (subscriber i watches service i mod S)
	// MergeWindow is the server's push delay as configured there; the tool
	// cannot know it. It is reported, latencies are also given beyond it,
	// and a round waits MergeWindow + Timeout for its pushes.
	MergeWindow time.Duration
	// Interval is the pause between rounds.
	Interval time.Duration
}

// Validate checks the options.
func (o PushOptions) Validate() error {
	switch {
	case o.Subscribers < 1:
		return fmt.Errorf("--subscribers must be at least 1, got %d", o.Subscribers)
	case o.Services < 1:
		return fmt.Errorf("--services must be at least 1, got %d", o.Services)
	case o.MergeWindow < 0:
		return fmt.Errorf("--merge-window must not be negative, got %s", o.MergeWindow)
	case o.Interval < 0:
		return fmt.Errorf("--interval must not be negative, got %s", o.Interval)
	}
	return nil
}

// defaultRounds is the count of the push and visibility scenarios when none
// is given.
const defaultRounds = 10

// Push measures push latency. One provider connection registers an instance
// in each service; each subscriber subscribes to its service and waits for
// its first push. Then, round after round, the provider moves every
// service's instance to a new port; a subscriber's latency is the time from
// the change request to the push that carries the new port. A round ends
// when every subscriber has it (or after MergeWindow + Timeout); its slowest
// latency is the time until the last subscriber has it. An operation is a
// round (default 10).
func Push(c *Common, o PushOptions, tool string) *report.Result {
	r := newRun(c, "push", tool)
	r.param("subscribers", o.Subscribers)
	r.param("services", o.Services)
	r.param("merge_window", o.MergeWindow)
	r.param("interval", o.Interval)
	r.versions(context.Background())
	if c.Rate > 0 {
		r.note("--rate does not apply to push: rounds follow each other, --interval apart")
	}

	connect := r.newSeries("connect")
	populate := r.newSeries("populate")
	subscribe := r.newSeries("subscribe")
	first := r.newSeries("first push")
	change := r.newSeries("change")
	push := r.newSeries("push")
	last := r.newSeries("last subscriber")

	subs := make([]*subscriber, o.Subscribers)
	for i := range subs {
		subs[i] = newSubscriber(i%o.Services, i%len(c.Targets))
	}
	rig := &pushRig{w: &watch{}, subs: subs, services: o.Services, window: o.MergeWindow, interval: o.Interval,
		record: func(_ *round, _ *subscriber, d time.Duration) { push.OK(d) },
		missed: func(*round, *subscriber) { push.Fail("missing") },
	}
	rig.providers = r.connect(time.Now().Add(c.SetupTimeout), 1, connect, nil)
	r.setUpWatch(rig, connect, populate, subscribe, first)

	count := c.Count
	if count == 0 {
		count = defaultRounds
	}
	if rig.providers[0] != nil && len(live(rig.conns)) > 0 {
		r.rounds(rig, count, change, push, last)
	} else {
		r.note("no provider or no subscriber could be set up; nothing was measured")
	}
	r.sampleAfter()

	r.figure("merge window (as configured on the server)", msOf(o.MergeWindow), "ms")
	if l := push.Latency().Summary(); l.Count > 0 {
		beyond := l.Shift(o.MergeWindow)
		r.figure("push p50 beyond merge window", msOf(beyond.P50), "ms")
		r.figure("push p99 beyond merge window", msOf(beyond.P99), "ms")
	}
	if l := last.Latency().Summary(); l.Count > 0 {
		r.figure("last subscriber p50 beyond merge window", msOf(l.P50-o.MergeWindow), "ms")
		r.figure("last subscriber max beyond merge window", msOf(l.Max-o.MergeWindow), "ms")
	}
	r.reportWatch(rig.w)
	r.closeAll(connect, rig.providers, rig.conns)
	return r.finish("push", false)
}

// pushRig is what the rounds of the push and visibility scenarios work with.
type pushRig struct {
	w *watch
	// providers change the instances: round n is made by providers[n mod P],
	// whose instances are at instanceIP(n mod P).
	providers []*wire.Conn
	conns     []*wire.Conn // subscribers' connections
	subs      []*subscriber
	services  int
	window    time.Duration
	interval  time.Duration
	// record gets each subscriber's latency in a measured round, missed each
	// subscriber that did not see it.
	record func(rd *round, sub *subscriber, d time.Duration)
	missed func(rd *round, sub *subscriber)
}

// setUpWatch has the rig's providers register their instances (at
// instancePort(0)) in every service, connects and subscribes the
// subscribers, and waits for each one's first push of that state.
func (r *run) setUpWatch(rig *pushRig, connect, populate, subscribe, first *stats.Series) {
	setupEnd := time.Now().Add(r.SetupTimeout)
	r.populate(setupEnd, rig.providers, rig.services, populate)
	// Round 0 is the state the subscribers subscribe to.
	rd := newRound(0, instanceIP(0), instancePort(0), rig.services, int64(len(rig.subs)))
	rd.since = func(s *subscriber) time.Time { return time.Unix(0, s.subscribedAt.Load()) }
	rd.record = func(_ *subscriber, d time.Duration) { first.OK(d) }
	rig.w.start(rd)
	rig.conns = r.connect(setupEnd, len(rig.subs), connect, func(i int) func(wire.ServerRequest) { return rig.w.handler(rig.subs[i]) })
	r.subscribe(setupEnd, rig.conns, rig.subs, subscribe)
	_, expected, _ := watching(rig.conns, rig.subs, rig.services)
	rd.discount(int64(len(rig.subs)) - expected)
	r.Monitor.set("first push", first)
	wait := min(rig.window+r.Timeout, max(time.Until(setupEnd), 0))
	if missing := rd.wait(wait); missing > 0 {
		first.FailN("missing", missing)
	}
}

// rounds runs rounds of changes: unrecorded ones for Warmup, then measured
// ones until count were measured or Duration has passed. slowest gets each
// complete round's time until its last subscriber saw it.
func (r *run) rounds(rig *pushRig, count int64, change, primary, slowest *stats.Series) {
	start := time.Now()
	warmEnd := start.Add(r.Warmup)
	end := warmEnd.Add(r.Duration)
	hard := end.Add(r.Grace)
	r.Monitor.set("warm-up", nil)
	var measured int64
	var first, last time.Time
	for n := int64(1); measured < count && time.Now().Before(end); n++ {
		warming := time.Now().Before(warmEnd)
		if !warming && measured == 0 {
			first = time.Now()
			r.sampleMeasure()
			r.Monitor.set("measure", primary)
		}
		expect, all, per := watching(rig.conns, rig.subs, rig.services)
		if all == 0 {
			r.note("round %d: no subscriber is left", n)
			break
		}
		from := int(n % int64(len(rig.providers)))
		rd := newRound(n, instanceIP(from), instancePort(n), rig.services, all)
		rd.from = from
		if !warming {
			rd.record = func(sub *subscriber, d time.Duration) { rig.record(rd, sub, d) }
		}
		rig.w.start(rd)
		r.change(rd, rig.providers[from], hard, per, warming, change)
		rd.wait(min(rig.window+r.Timeout, max(time.Until(hard), 0)))
		if warming {
			continue
		}
		measured++
		last = time.Now()
		complete := true
		for i, sub := range rig.subs {
			if expect[i] && !rd.failed[sub.svc].Load() && sub.seen.Load() < n {
				rig.missed(rd, sub)
				complete = false
			}
		}
		if complete {
			slowest.OK(time.Duration(rd.slowest.Load()))
		} else {
			slowest.Fail("incomplete round")
		}
		if rig.interval > 0 {
			sleepUntil(time.Now().Add(rig.interval), end)
		}
	}
	if measured > 0 {
		r.measured = last.Sub(first)
	}
}

// change moves the provider's instance of every service to the round's
// port; the subscribers of a service whose change fails are not waited for.
func (r *run) change(rd *round, provider *wire.Conn, deadline time.Time, per []int64, warming bool, series *stats.Series) {
	fail := func(s int, kind string) {
		rd.failed[s].Store(true)
		rd.discount(per[s])
		if !warming {
			series.Fail(kind)
		}
	}
	if provider == nil {
		for s := range per {
			fail(s, kind(errNotConnected))
		}
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	parallel(ctx, len(per), r.Concurrency, func(ctx context.Context, s int) {
		inst := wire.NewInstance(rd.ip, rd.port)
		rctx, rcancel := context.WithTimeout(ctx, r.Timeout)
		defer rcancel()
		start := time.Now()
		rd.sent[s].Store(start.UnixNano())
		if err := provider.Call(rctx, wire.Register(r.service(s), inst), &wire.Response{}); err != nil {
			fail(s, kind(err))
			return
		}
		if !warming {
			series.OK(time.Since(start))
		}
	}, nil)
	for s := range per {
		if rd.sent[s].Load() == 0 {
			fail(s, "not sent in time")
		}
	}
}

// sleepUntil sleeps until t, but not past limit.
func sleepUntil(t, limit time.Time) {
	if t.After(limit) {
		t = limit
	}
	time.Sleep(time.Until(t))
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
