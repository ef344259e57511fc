package scenario

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// watch follows a sequence of changes ("rounds") to the instances of watched
// services and records when each subscriber first sees the current one.
type watch struct {
	cur         atomic.Pointer[round]
	pushes      atomic.Int64 // NotifySubscriberRequests received
	undecodable atomic.Int64 // pushes whose body could not be parsed
	unexpected  atomic.Int64 // server requests other than pushes and probes
}

// subscriber is one subscribing connection; make it with newSubscriber.
type subscriber struct {
	svc    int // index of the service it watches
	target int // index of the target it is connected to
	// subscribed is set once its subscription was acknowledged.
	subscribed atomic.Bool
	// subscribedAt is when it asked to subscribe (unix nanoseconds).
	subscribedAt atomic.Int64
	// seen is the last round it saw.
	seen atomic.Int64
}

func newSubscriber(svc, target int) *subscriber {
	s := &subscriber{svc: svc, target: target}
	s.seen.Store(-1)
	return s
}

// round is one change: the instance at ip moves to port; a subscriber has
// seen it once a push lists ip:port.
type round struct {
	n    int64
	ip   string
	port int
	from int // the provider that made the change
	// sent[s] is when the change of service s was requested (unix nanoseconds).
	sent []atomic.Int64
	// failed[s] is set when the change of service s could not be made.
	failed    []atomic.Bool
	remaining atomic.Int64
	done      chan struct{}
	closeOnce sync.Once
	slowest   atomic.Int64 // the largest latency recorded, nanoseconds
	// record, if set, is given every subscriber's latency.
	record func(sub *subscriber, latency time.Duration)
	// since, if set, gives the time a subscriber's latency counts from
	// instead of sent.
	since func(sub *subscriber) time.Time
}

// newRound returns round n, in which expected subscribers must see ip:port;
// set it up, then make it current with watch.start.
func newRound(n int64, ip string, port, services int, expected int64) *round {
	rd := &round{n: n, ip: ip, port: port, sent: make([]atomic.Int64, services), failed: make([]atomic.Bool, services), done: make(chan struct{})}
	rd.remaining.Store(expected)
	if expected <= 0 {
		rd.closeOnce.Do(func() { close(rd.done) })
	}
	return rd
}

// start makes rd the current round.
func (w *watch) start(rd *round) { w.cur.Store(rd) }

// discount stops waiting for n subscribers (that cannot see the change).
func (rd *round) discount(n int64) {
	if n > 0 && rd.remaining.Add(-n) <= 0 {
		rd.closeOnce.Do(func() { close(rd.done) })
	}
}

// wait waits until every expected subscriber saw the round or timeout, and
// returns how many did not.
func (rd *round) wait(timeout time.Duration) int64 {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-rd.done:
	case <-t.C:
	}
	return max(rd.remaining.Load(), 0)
}

// handler returns the server request handler of sub's connection.
func (w *watch) handler(sub *subscriber) func(wire.ServerRequest) {
	return func(req wire.ServerRequest) {
		switch req.Type {
		case wire.NotifySubscriberType:
		case "ClientDetectionRequest":
			return
		default:
			w.unexpected.Add(1)
			return
		}
		w.pushes.Add(1)
		rd := w.cur.Load()
		if rd == nil || sub.seen.Load() >= rd.n {
			return
		}
		push, err := wire.DecodeNotify(req.Body)
		if err != nil {
			w.undecodable.Add(1)
			return
		}
		if !hasHost(push.ServiceInfo.Hosts, rd.ip, rd.port) {
			return
		}
		sub.seen.Store(rd.n)
		from := time.Unix(0, rd.sent[sub.svc].Load())
		if rd.since != nil {
			from = rd.since(sub)
		}
		latency := req.Received.Sub(from)
		storeMax(&rd.slowest, int64(latency))
		if rd.record != nil {
			rd.record(sub, latency)
		}
		rd.discount(1)
	}
}

// subscribe subscribes every connected subscriber, within deadline, and
// records each subscription in series.
func (r *run) subscribe(deadline time.Time, conns []*wire.Conn, subs []*subscriber, series *stats.Series) {
	r.Monitor.set("subscribe", series)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	parallel(ctx, len(conns), r.Concurrency, func(ctx context.Context, i int) {
		if conns[i] == nil {
			return
		}
		start := time.Now()
		subs[i].subscribedAt.Store(start.UnixNano())
		sctx, scancel := context.WithTimeout(ctx, r.Timeout)
		err := conns[i].Call(sctx, wire.Subscribe(r.service(subs[i].svc)), &wire.ServiceInfoResponse{})
		scancel()
		if err != nil {
			series.Fail(kind(err))
			return
		}
		series.OK(time.Since(start))
		subs[i].subscribed.Store(true)
	}, func(skipped int) { series.FailN("set-up timed out", int64(skipped)) })
}

// watching tells which subscribers are subscribed on a live connection, and
// counts them in all and per service.
func watching(conns []*wire.Conn, subs []*subscriber, services int) (which []bool, all int64, per []int64) {
	which = make([]bool, len(subs))
	per = make([]int64, services)
	for i, s := range subs {
		if s.subscribed.Load() && conns[i] != nil && conns[i].Err() == nil {
			which[i] = true
			all++
			per[s.svc]++
		}
	}
	return which, all, per
}

// reportWatch adds the watch's push counts to the result.
func (r *run) reportWatch(w *watch) {
	r.figure("pushes received", float64(w.pushes.Load()), "pushes")
	if n := w.undecodable.Load(); n > 0 {
		r.figure("pushes that could not be parsed", float64(n), "pushes")
	}
	if n := w.unexpected.Load(); n > 0 {
		r.figure("unexpected server requests", float64(n), "requests")
	}
}
