package scenario

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// ChurnOptions shape the churn scenario.
type ChurnOptions struct {
	Providers   int // provider connections, each with one instance that comes and goes
	Subscribers int // subscriber connections, each subscribed to every service
	Services    int // provider p's instance belongs to service p mod S
}

// Validate checks the options.
func (o ChurnOptions) Validate() error {
	switch {
	case o.Providers < 1:
		return fmt.Errorf("--providers must be at least 1, got %d", o.Providers)
	case o.Subscribers < 1:
		return fmt.Errorf("--subscribers must be at least 1, got %d", o.Subscribers)
	case o.Services < 1:
		return fmt.Errorf("--services must be at least 1, got %d", o.Services)
	}
	return nil
}

// provider is one churning instance and what the run knows of it.
type provider struct {
	mu         sync.Mutex
	registered bool
	port       int
	changes    int64
	// uncertain is set while its last change failed: the server may or may
	// not have made it.
	uncertain bool
}

// view is what a subscriber was last told of a service.
type view struct {
	lastRefTime int64
	hosts       map[string]bool
}

// churnWatcher is a subscriber's latest view of every service.
type churnWatcher struct {
	mu    sync.Mutex
	views []view
}

// churnCounts are the pushes all subscribers received.
type churnCounts struct {
	pushes, undecodable, unknown, older, conflicting atomic.Int64
}

// Churn registers and deregisters providers' instances in a loop while
// subscribers watch, then checks that no state was lost or left stale: the
// registry holds exactly the acknowledged state, and every subscriber's last
// view of every service equals the registry. An operation is one register or
// deregister of a provider chosen at random (by Seed); a provider's changes
// never overlap.
func Churn(c *Common, o ChurnOptions, tool string) *report.Result {
	r := newRun(c, "churn", tool)
	r.param("providers", o.Providers)
	r.param("subscribers", o.Subscribers)
	r.param("services", o.Services)
	setupEnd := time.Now().Add(c.SetupTimeout)
	r.versions(context.Background())

	connect := r.newSeries("connect")
	populate := r.newSeries("populate")
	subscribe := r.newSeries("subscribe")
	change := r.newSeries("change")

	byName := make(map[string]int, o.Services)
	for s := range o.Services {
		byName[r.service(s).Name] = s
	}
	var counts churnCounts
	watchers := make([]*churnWatcher, o.Subscribers)
	for i := range watchers {
		watchers[i] = &churnWatcher{views: make([]view, o.Services)}
	}
	provs := make([]*provider, o.Providers)
	for i := range provs {
		provs[i] = &provider{}
	}

	pconns := r.connect(setupEnd, o.Providers, connect, nil)
	r.registerProviders(setupEnd, pconns, provs, o.Services, populate)
	sconns := r.connect(setupEnd, o.Subscribers, connect, func(i int) func(wire.ServerRequest) {
		return watchers[i].handler(byName, &counts)
	})
	r.subscribeAll(setupEnd, sconns, watchers, byName, o.Services, subscribe)

	if len(live(pconns)) > 0 {
		r.drive(change, c.Count, func(ctx context.Context, k int64) error {
			return r.toggle(ctx, pconns, provs, o.Services, pick(c.Seed, k, o.Providers))
		})
	} else {
		r.note("no provider could be set up; nothing was measured")
	}
	r.sampleAfter()

	r.checkChurn(pconns, sconns, provs, watchers, o)
	ok, _ := change.Counts()
	r.figure("changes acknowledged", float64(ok), "changes")
	r.figure("pushes received (churn and settling)", float64(counts.pushes.Load()), "pushes")
	if ok > 0 {
		r.figure("pushes per subscriber per change", float64(counts.pushes.Load())/float64(ok)/float64(o.Subscribers), "pushes")
	}
	r.figure("pushes older than the view they followed", float64(counts.older.Load()), "pushes")
	r.figure("pushes contradicting a view of the same lastRefTime", float64(counts.conflicting.Load()), "pushes")
	if n := counts.undecodable.Load() + counts.unknown.Load(); n > 0 {
		r.figure("pushes that could not be parsed or named an unknown service", float64(n), "pushes")
	}
	r.closeAll(connect, pconns, sconns)
	return r.finish("change", true)
}

// registerProviders registers every provider's instance at its first port.
func (r *run) registerProviders(deadline time.Time, conns []*wire.Conn, provs []*provider, services int, series *stats.Series) {
	r.Monitor.set("populate", series)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	parallel(ctx, len(conns), r.Concurrency, func(ctx context.Context, p int) {
		if conns[p] == nil {
			return
		}
		start := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, r.Timeout)
		err := conns[p].Call(rctx, wire.Register(r.service(p%services), wire.NewInstance(instanceIP(p), instancePort(0))), &wire.Response{})
		rcancel()
		if err != nil {
			series.Fail(kind(err))
			provs[p].uncertain = true
			return
		}
		series.OK(time.Since(start))
		provs[p].registered, provs[p].port = true, instancePort(0)
	}, func(skipped int) { series.FailN("set-up timed out", int64(skipped)) })
}

// subscribeAll subscribes every subscriber to every service; the answers are
// its first views.
func (r *run) subscribeAll(deadline time.Time, conns []*wire.Conn, watchers []*churnWatcher, byName map[string]int, services int, series *stats.Series) {
	r.Monitor.set("subscribe", series)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	parallel(ctx, len(conns)*services, r.Concurrency, func(ctx context.Context, k int) {
		i, s := k%len(conns), k/len(conns)
		if conns[i] == nil {
			return
		}
		start := time.Now()
		var resp wire.ServiceInfoResponse
		sctx, scancel := context.WithTimeout(ctx, r.Timeout)
		err := conns[i].Call(sctx, wire.Subscribe(r.service(s)), &resp)
		scancel()
		if err != nil {
			series.Fail(kind(err))
			return
		}
		series.OK(time.Since(start))
		watchers[i].apply(s, &resp.ServiceInfo, nil)
	}, func(skipped int) { series.FailN("set-up timed out", int64(skipped)) })
}

// toggle registers provider p's instance if it is not registered (at a new
// port) and deregisters it otherwise. If p is busy it takes the next free
// provider, so that a provider's changes never overlap.
func (r *run) toggle(ctx context.Context, conns []*wire.Conn, provs []*provider, services, p int) error {
	var pr *provider
	for j := range len(provs) {
		if q := (p + j) % len(provs); provs[q].mu.TryLock() {
			p, pr = q, provs[q]
			break
		}
	}
	if pr == nil {
		pr = provs[p]
		pr.mu.Lock()
	}
	defer pr.mu.Unlock()
	conn := conns[p]
	if conn == nil {
		return errNotConnected
	}
	svc := r.service(p % services)
	if pr.registered {
		err := conn.Call(ctx, wire.Deregister(svc, wire.NewInstance(instanceIP(p), pr.port)), &wire.Response{})
		if err != nil {
			pr.uncertain = true
			return err
		}
		pr.registered, pr.uncertain = false, false
		return nil
	}
	pr.changes++
	port := instancePort(pr.changes)
	if err := conn.Call(ctx, wire.Register(svc, wire.NewInstance(instanceIP(p), port)), &wire.Response{}); err != nil {
		pr.uncertain = true
		return err
	}
	pr.registered, pr.port, pr.uncertain = true, port, false
	return nil
}

// handler returns the server request handler of a churn subscriber.
func (w *churnWatcher) handler(byName map[string]int, counts *churnCounts) func(wire.ServerRequest) {
	return func(req wire.ServerRequest) {
		if req.Type != wire.NotifySubscriberType {
			return
		}
		counts.pushes.Add(1)
		push, err := wire.DecodeNotify(req.Body)
		if err != nil {
			counts.undecodable.Add(1)
			return
		}
		name := push.ServiceName
		if name == "" {
			name = push.ServiceInfo.Name
		}
		if _, n, ok := strings.Cut(name, "@@"); ok {
			name = n
		}
		s, ok := byName[name]
		if !ok {
			counts.unknown.Add(1)
			return
		}
		w.apply(s, &push.ServiceInfo, counts)
	}
}

// apply takes info as the view of service s if it is newer than the one
// held, as Nacos clients do; counts, if set, gets the pushes that were not.
func (w *churnWatcher) apply(s int, info *wire.ServiceInfo, counts *churnCounts) {
	hosts := hostSet(info.Hosts)
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := &w.views[s]
	switch {
	case cur.hosts == nil || info.LastRefTime > cur.lastRefTime:
		*cur = view{lastRefTime: info.LastRefTime, hosts: hosts}
	case counts == nil:
	case info.LastRefTime < cur.lastRefTime:
		counts.older.Add(1)
	case !maps.Equal(hosts, cur.hosts):
		counts.conflicting.Add(1)
	}
}

// checkChurn compares, once churn has stopped, the acknowledged state with
// the registry, and the subscribers' views with the registry until they agree
// or the grace period ends.
func (r *run) checkChurn(pconns, sconns []*wire.Conn, provs []*provider, watchers []*churnWatcher, o ChurnOptions) {
	r.Monitor.set("settle", nil)
	stop := time.Now()
	deadline := stop.Add(r.Grace)
	// Instances whose last change failed may be either way: leave them out.
	uncertain := make(map[string]bool)
	want := make([]map[string]bool, o.Services)
	for s := range want {
		want[s] = make(map[string]bool)
	}
	for p, pr := range provs {
		pr.mu.Lock()
		switch {
		case pr.uncertain || pconns[p] == nil:
			uncertain[instanceIP(p)] = true
		case pr.registered:
			want[p%o.Services][hostKey(instanceIP(p), pr.port)] = true
		}
		pr.mu.Unlock()
	}
	r.figure("providers whose last change failed", float64(len(uncertain)), "providers")

	truth, err := r.registry(sconns, o.Services, deadline)
	if err != nil {
		r.check("registry matches the acknowledged changes", false, "the registry could not be read: %v", err)
		r.check("subscribers' final view matches the registry", false, "the registry could not be read")
		return
	}
	var differ []string
	for s := range o.Services {
		if d := diffHosts(want[s], drop(truth[s], uncertain)); d != "" {
			differ = append(differ, fmt.Sprintf("%s: %s", r.service(s).Name, d))
		}
	}
	r.check("registry matches the acknowledged changes", len(differ) == 0,
		"%d services, %d differ%s", o.Services, len(differ), example(differ))

	want = make([]map[string]bool, o.Services)
	for s, hosts := range truth {
		want[s] = hostSet(hosts)
	}
	views := 0
	for i := range watchers {
		if sconns[i] != nil {
			views += o.Services
		}
	}
	for {
		stale := staleViews(sconns, watchers, want)
		if len(stale) == 0 {
			r.figure("time for subscribers to settle after the churn", msOf(time.Since(stop)), "ms")
			r.check("subscribers' final view matches the registry", views > 0,
				"%d subscriber views of %d services, all equal to the registry", views, o.Services)
			return
		}
		if time.Now().After(deadline) {
			r.check("subscribers' final view matches the registry", false,
				"%d of %d subscriber views still differ %s after the churn stopped%s", len(stale), views, r.Grace, example(stale))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// registry queries every service on a live connection.
func (r *run) registry(conns []*wire.Conn, services int, deadline time.Time) ([][]wire.Instance, error) {
	out := make([][]wire.Instance, services)
	for s := range services {
		conn, err := anyLive(conns, int64(s))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		ctx, cancelCall := context.WithTimeout(ctx, r.Timeout)
		var resp wire.ServiceInfoResponse
		err = conn.Call(ctx, wire.Query(r.service(s)), &resp)
		cancelCall()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("querying %s: %w", r.service(s).Name, err)
		}
		out[s] = resp.ServiceInfo.Hosts
	}
	return out, nil
}

// staleViews lists the (subscriber, service) views that differ from want.
func staleViews(conns []*wire.Conn, watchers []*churnWatcher, want []map[string]bool) []string {
	var stale []string
	for i, w := range watchers {
		if conns[i] == nil {
			continue
		}
		w.mu.Lock()
		for s := range want {
			if !maps.Equal(w.views[s].hosts, want[s]) && (len(want[s]) > 0 || len(w.views[s].hosts) > 0) {
				stale = append(stale, "subscriber "+strconv.Itoa(i)+" service "+strconv.Itoa(s))
			}
		}
		w.mu.Unlock()
	}
	return stale
}

// drop returns hosts without those at the given IPs.
func drop(hosts []wire.Instance, ips map[string]bool) []wire.Instance {
	var out []wire.Instance
	for _, h := range hosts {
		if !ips[h.IP] {
			out = append(out, h)
		}
	}
	return out
}

// example renders the first of a list of problems.
func example(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return "; e.g. " + items[0]
}
