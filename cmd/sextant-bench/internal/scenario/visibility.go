package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
)

// VisibilityOptions shape the visibility scenario.
type VisibilityOptions struct {
	// MergeWindow is the servers' push delay, reported and added to how long
	// a round waits (with Timeout).
	MergeWindow time.Duration
	// Interval is the pause between rounds.
	Interval time.Duration
}

// Validate checks the options.
func (o VisibilityOptions) Validate() error {
	switch {
	case o.MergeWindow < 0:
		return fmt.Errorf("--merge-window must not be negative, got %s", o.MergeWindow)
	case o.Interval < 0:
		return fmt.Errorf("--interval must not be negative, got %s", o.Interval)
	}
	return nil
}

// Visibility measures how long a change made on one server of a cluster
// takes to reach subscribers on each server. Every target gets a provider
// connection, which registers an instance of one service, and a subscriber
// connection subscribed to it. Round n changes the instance of the provider
// on target n mod T; each subscriber's latency counts as "same node" or
// "other node". With one target only "same node" has figures. An operation
// is a round (default 10).
func Visibility(c *Common, o VisibilityOptions, tool string) *report.Result {
	r := newRun(c, "visibility", tool)
	r.param("merge_window", o.MergeWindow)
	r.param("interval", o.Interval)
	r.versions(context.Background())
	if c.Rate > 0 {
		r.note("--rate does not apply to visibility: rounds follow each other, --interval apart")
	}
	if len(c.Targets) == 1 {
		r.note("one target: every change is seen on the node it was made on")
	}

	connect := r.newSeries("connect")
	populate := r.newSeries("populate")
	subscribe := r.newSeries("subscribe")
	first := r.newSeries("first push")
	change := r.newSeries("change")
	same := r.newSeries("visible same node")
	other := r.newSeries("visible other node")
	last := r.newSeries("visible everywhere")
	on := func(rd *round, sub *subscriber) *stats.Series {
		if sub.target == rd.from {
			return same
		}
		return other
	}

	n := len(c.Targets)
	subs := make([]*subscriber, n)
	for i := range subs {
		subs[i] = newSubscriber(0, i)
	}
	rig := &pushRig{w: &watch{}, subs: subs, services: 1, window: o.MergeWindow, interval: o.Interval,
		record: func(rd *round, sub *subscriber, d time.Duration) { on(rd, sub).OK(d) },
		missed: func(rd *round, sub *subscriber) { on(rd, sub).Fail("missing") },
	}
	// connect puts connection i on target i.
	rig.providers = r.connect(time.Now().Add(c.SetupTimeout), n, connect, nil)
	r.setUpWatch(rig, connect, populate, subscribe, first)

	count := c.Count
	if count == 0 {
		count = defaultRounds
	}
	primary := other
	if n == 1 {
		primary = same
	}
	if len(live(rig.providers)) > 0 && len(live(rig.conns)) > 0 {
		r.rounds(rig, count, change, primary, last)
	} else {
		r.note("no provider or no subscriber could be set up; nothing was measured")
	}
	r.sampleAfter()
	r.figure("merge window (as configured on the servers)", msOf(o.MergeWindow), "ms")
	r.reportWatch(rig.w)
	r.closeAll(connect, rig.providers, rig.conns)
	return r.finish(primary.Name(), false)
}
