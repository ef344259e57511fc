package healthcheck

import (
	"cmp"
	"context"
	"errors"
	"hash/maphash"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/naming"
)

// Defaults for what a Config leaves zero.
const (
	// DefaultInterval is how often each instance is checked: Nacos checks
	// every 1 to 5 s, adapting to the time checks take; a fixed 5 s is its
	// pace for slow or failing instances and its ceiling.
	DefaultInterval = 5 * time.Second
	// DefaultTCPTimeout bounds a TCP check's connect: Nacos's
	// CONNECT_TIMEOUT_MS.
	DefaultTCPTimeout = 500 * time.Millisecond
	// DefaultHTTPTimeout bounds an HTTP check, connect and answer. Nacos
	// allows 5 s to connect and 10 s to answer, more than its interval; a
	// health endpoint that needs more than a second is failing.
	DefaultHTTPTimeout = time.Second
	// DefaultMaxConcurrent bounds the checks in flight: 10,000 instances
	// answering in a millisecond need about 2 of them at 5 s; 10,000 that
	// time out (500 ms) need 1,000, and are then checked every 40 s.
	DefaultMaxConcurrent = 128
	// DefaultHealthyAfter is how many successful checks in a row turn an
	// unhealthy instance healthy: one, so that it serves again within an
	// interval, as Nacos's three checks at its 1 s pace for a fast
	// instance.
	DefaultHealthyAfter = 1
	// DefaultUnhealthyAfter is how many soft failures in a row (timeouts,
	// errors, HTTP 302 or 503) turn a healthy instance unhealthy: Nacos's
	// checkTimes. A hard failure (a refused connection, another HTTP
	// status) turns it unhealthy at once.
	DefaultUnhealthyAfter = 3
)

// Address names a persistent instance within its service: the fields of
// persist.Address, so either converts to the other.
type Address struct {
	IP      string
	Port    int
	Cluster string
}

// Target is one persistent instance to check, as the Raft store holds it.
type Target struct {
	Service naming.Service
	Address Address
	// Healthy is the instance's health as stored: a check reports only a
	// change from it.
	Healthy bool
	// Checker is the instance's cluster's checker.
	Checker Checker
}

// Config configures a Scheduler.
type Config struct {
	// Targets lists the persistent instances, of every service, with their
	// current health and their cluster's checker. It is called once per
	// round, from one goroutine; the slice is not kept past the round, nor
	// modified. Required.
	Targets func() []Target
	// Owns reports whether this node checks svc: the rendezvous hash of the
	// service's key over the members that are UP picks it
	// (cluster.Cluster.Owner). Called once per service per round, from one
	// goroutine. nil means every service (a node alone).
	Owns func(svc naming.Service) bool
	// Report writes a change of health of the instance at addr of svc (a
	// persist.SetHealth through Raft). It returns once the change is
	// applied, or with an error (no quorum, not the leader, ctx done): the
	// instance is then checked again at its next turn and the change
	// reported again if it still holds. A successful Report outranks the
	// health of targets read before it returned; Targets read after it
	// should show it (else the change is reported once more, a SetHealth
	// that changes nothing). It is called from many goroutines
	// at once (up to MaxConcurrent), with a context that ends after
	// Interval (at least 5 s) or at Stop; it must return when it ends.
	// Required.
	Report func(ctx context.Context, svc naming.Service, addr Address, healthy bool) error

	// Interval is how often each instance is checked (DefaultInterval).
	Interval time.Duration
	// TCPTimeout bounds a TCP check (DefaultTCPTimeout).
	TCPTimeout time.Duration
	// HTTPTimeout bounds an HTTP check (DefaultHTTPTimeout).
	HTTPTimeout time.Duration
	// MaxConcurrent is the number of workers, and so of checks (and their
	// Reports) in flight at most (DefaultMaxConcurrent).
	MaxConcurrent int
	// HealthyAfter is how many successful checks in a row turn an unhealthy
	// instance healthy (DefaultHealthyAfter).
	HealthyAfter int
	// UnhealthyAfter is how many soft failures in a row turn a healthy
	// instance unhealthy (DefaultUnhealthyAfter); a hard failure does at
	// once.
	UnhealthyAfter int

	// Dial opens the connections of TCP checks, and of HTTP checks when
	// HTTPClient is nil; a net.Dialer's DialContext when nil. For tests.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HTTPClient runs HTTP checks, as given (its redirect policy and
	// connection reuse included); when nil, a client that follows no
	// redirect, keeps no connection and uses no proxy. For tests.
	HTTPClient *http.Client

	// Logger logs the changes of health (info), failed reports and late
	// rounds (warnings, at most one per interval each); none when nil.
	Logger hclog.Logger
	// Metrics registers the sextant_healthcheck_* metrics; none when nil.
	Metrics prometheus.Registerer
}

// Errors of the lifecycle.
var (
	// ErrStarted is returned by Start when the scheduler was already started.
	ErrStarted = errors.New("healthcheck: already started")
	// ErrStopped is returned by Start once Stop has been called.
	ErrStopped = errors.New("healthcheck: stopped")
)

// key identifies a target across rounds.
type key struct {
	svc  naming.Service
	addr Address
}

// state is what the scheduler keeps of a target between rounds; s.mu guards
// it. It exists while the target is listed, owned and checked.
type state struct {
	phase    time.Duration // when in each round it is checked
	seen     uint64        // the last round that listed it
	inFlight bool          // a check (or its Report) is running
	gone     bool          // no longer a target: drop what its check finds
	// The results in a row: successes, or failures (hard or soft).
	successes, failures int
	// reportedSeq numbers the last successful Report of the target (0:
	// none), which set its health to reportedHealthy.
	reportedSeq     uint64
	reportedHealthy bool
}

// job is one check of one target.
type job struct {
	st   *state
	t    Target
	snap uint64          // s.reportSeq when t was read
	at   time.Time       // when it is due
	wg   *sync.WaitGroup // for a synchronous round (tests, benchmarks)
}

// Scheduler checks the persistent instances of the services this node owns,
// each once per interval, and reports changes of health. It runs from Start
// to Stop.
type Scheduler struct {
	cfg    Config
	log    hclog.Logger
	m      *metrics
	seed   maphash.Seed
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	client *http.Client
	// reportLog, lateLog and typeLog bound the warnings of failed reports,
	// late rounds and unknown checker types to one per interval.
	reportLog, lateLog, typeLog *limitedLog

	jobs  chan job
	slots atomic.Int64 // slots dispatched, for tests

	// The dispatcher's own, reused from round to round.
	queue []job
	owned map[naming.Service]bool
	round uint64

	mu     sync.Mutex
	states map[key]*state
	// reportSeq numbers the successful Reports. A Report numbered after a
	// target was read changed its health since.
	reportSeq uint64

	life    sync.Mutex
	running bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a scheduler that is not running yet.
func New(cfg Config) (*Scheduler, error) {
	switch {
	case cfg.Targets == nil:
		return nil, errors.New("healthcheck: no Targets")
	case cfg.Report == nil:
		return nil, errors.New("healthcheck: no Report")
	case cfg.Interval < 0, cfg.TCPTimeout < 0, cfg.HTTPTimeout < 0:
		return nil, errors.New("healthcheck: negative interval or timeout")
	case cfg.MaxConcurrent < 0, cfg.HealthyAfter < 0, cfg.UnhealthyAfter < 0:
		return nil, errors.New("healthcheck: negative MaxConcurrent, HealthyAfter or UnhealthyAfter")
	}
	cfg.Interval = cmp.Or(cfg.Interval, DefaultInterval)
	cfg.TCPTimeout = cmp.Or(cfg.TCPTimeout, DefaultTCPTimeout)
	cfg.HTTPTimeout = cmp.Or(cfg.HTTPTimeout, DefaultHTTPTimeout)
	cfg.MaxConcurrent = cmp.Or(cfg.MaxConcurrent, DefaultMaxConcurrent)
	cfg.HealthyAfter = cmp.Or(cfg.HealthyAfter, DefaultHealthyAfter)
	cfg.UnhealthyAfter = cmp.Or(cfg.UnhealthyAfter, DefaultUnhealthyAfter)
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg:       cfg,
		log:       cfg.Logger,
		m:         m,
		seed:      maphash.MakeSeed(),
		dial:      cfg.Dial,
		client:    cfg.HTTPClient,
		reportLog: &limitedLog{every: cfg.Interval},
		lateLog:   &limitedLog{every: cfg.Interval},
		typeLog:   &limitedLog{every: time.Minute},
		jobs:      make(chan job),
		owned:     make(map[naming.Service]bool),
		states:    make(map[key]*state),
	}
	if s.dial == nil {
		// No keep-alive: a check's connection lives for a moment, and
		// setting it up costs four system calls.
		s.dial = (&net.Dialer{KeepAlive: -1}).DialContext
	}
	if s.client == nil {
		s.client = newHTTPClient(s.dial)
	}
	return s, nil
}

// Start runs the rounds until Stop: the first begins at once, and checks
// each target at its phase within the interval.
func (s *Scheduler) Start(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	switch {
	case s.stopped:
		return ErrStopped
	case s.running:
		return ErrStarted
	}
	s.running = true
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	var wg sync.WaitGroup
	s.startWorkers(ctx, &wg)
	wg.Go(func() { s.run(ctx) })
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return nil
}

// Stop ends the rounds, cancels the checks and Reports in flight, and waits
// for every goroutine of the scheduler to end. When ctx ends first it still
// waits for them (they end as soon as Targets, Owns and Report return), and
// then returns ctx.Err().
func (s *Scheduler) Stop(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.stopped || !s.running {
		s.stopped = true
		return nil
	}
	s.stopped = true
	s.cancel()
	var err error
	select {
	case <-s.done:
	case <-ctx.Done():
		<-s.done
		err = ctx.Err()
	}
	s.client.CloseIdleConnections()
	return err
}

// startWorkers starts MaxConcurrent workers, which run jobs until ctx ends.
func (s *Scheduler) startWorkers(ctx context.Context, wg *sync.WaitGroup) {
	for range s.cfg.MaxConcurrent {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-s.jobs:
					s.process(ctx, j)
				}
			}
		})
	}
}

// slotsPerRound is the number of slots a round is cut in: the checks due
// in a slot start together at its beginning. One wake-up of the dispatcher
// per slot, and a burst of checks per wake-up rather than one check at a
// time, halve the CPU the checks take: waking an idle process (the
// runtime's threads, the kernel's caches) costs more than a connect.
const slotsPerRound = 50

// dispatchSlot is the length of a slot: 100 ms at the default interval.
func (s *Scheduler) dispatchSlot() time.Duration {
	return max(s.cfg.Interval/slotsPerRound, 1)
}

// run is the dispatcher: one round per interval. A round that could not
// start all its checks within the interval (every worker busy) runs over:
// the next one starts as soon as it ends. It is late (counted, and
// logged) when it ran over by more than a tenth of the interval.
func (s *Scheduler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	for {
		s.runRound(ctx, start, timer, false)
		next := start.Add(s.cfg.Interval)
		if now := time.Now(); now.After(next) {
			next = now
		}
		if over := next.Sub(start.Add(s.cfg.Interval)); over > s.cfg.Interval/10 {
			s.m.late.Inc()
			if ok, n := s.lateLog.allow(next); ok {
				s.log.Warn("health checks fall behind: a round took longer than the interval; "+
					"raise the concurrency or lower the timeouts",
					"interval", s.cfg.Interval, "late_by", over.Round(time.Millisecond), "late_rounds_not_logged", n)
			}
		}
		if !sleepUntil(ctx, timer, next) {
			return
		}
		start = next
	}
}

// sleepUntil waits until t, and reports false when ctx ended first.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		timer.Stop()
		return false
	case <-timer.C:
		return true
	}
}

// runRound plans a round starting at start and hands each check to the
// workers when due (all at once with now set). A target whose previous
// check still runs is skipped.
func (s *Scheduler) runRound(ctx context.Context, start time.Time, timer *time.Timer, now bool) {
	s.mu.Lock()
	snap := s.reportSeq
	s.mu.Unlock()
	s.plan(s.cfg.Targets(), snap, start, now)
	defer func() {
		clear(s.queue) // keep no target past its round
		s.queue = s.queue[:0]
	}()
	slot := s.dispatchSlot()
	var wg *sync.WaitGroup
	if now {
		wg = new(sync.WaitGroup)
		defer wg.Wait()
	}
	for i := 0; i < len(s.queue); {
		// The checks of one slot of the round start together, at its
		// beginning: one wake-up per slot, however many checks.
		slotStart := start.Add(s.queue[i].at.Sub(start) / slot * slot)
		if !now && !sleepUntil(ctx, timer, slotStart) {
			return
		}
		slotEnd := slotStart.Add(slot)
		s.slots.Add(1)
		for ; i < len(s.queue) && (now || s.queue[i].at.Before(slotEnd)); i++ {
			j := s.queue[i]
			if !s.begin(j.st) {
				s.m.skipped.Inc()
				continue
			}
			if wg != nil {
				j.wg = wg
				wg.Add(1)
			}
			select {
			case s.jobs <- j:
			case <-ctx.Done():
				s.end(j.st)
				if wg != nil {
					wg.Done()
				}
				return
			}
		}
	}
}

// plan lists the round's checks in s.queue, sorted by due time: the owned
// targets whose checker is TCP or HTTP, each at start plus its phase (at
// start with now set). It forgets the state of every target not listed.
// snap is s.reportSeq before targets were read.
func (s *Scheduler) plan(targets []Target, snap uint64, start time.Time, now bool) {
	clear(s.owned)
	unknown := 0
	for _, t := range targets {
		switch t.Checker.kind() {
		case TypeTCP, TypeHTTP:
		case TypeNone:
			continue
		default:
			unknown++
			continue
		}
		owns, ok := s.owned[t.Service]
		if !ok {
			owns = s.cfg.Owns == nil || s.cfg.Owns(t.Service)
			s.owned[t.Service] = owns
		}
		if owns {
			s.queue = append(s.queue, job{t: t, snap: snap, at: start})
		}
	}
	s.round++
	s.mu.Lock()
	kept := s.queue[:0]
	for _, j := range s.queue {
		k := key{j.t.Service, j.t.Address}
		st := s.states[k]
		if st == nil {
			st = &state{phase: time.Duration(maphash.Comparable(s.seed, k) % uint64(s.cfg.Interval))}
			s.states[k] = st
		}
		if st.seen == s.round { // listed twice
			continue
		}
		st.seen = s.round
		j.st = st
		if !now {
			j.at = start.Add(st.phase)
		}
		kept = append(kept, j)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	for k, st := range s.states {
		if st.seen != s.round {
			st.gone = true
			delete(s.states, k)
		}
	}
	s.mu.Unlock()
	s.m.targets.Set(float64(len(s.queue)))
	if unknown > 0 {
		if ok, _ := s.typeLog.allow(time.Now()); ok {
			s.log.Warn("instances with an unknown checker type are not checked", "instances", unknown)
		}
	}
	slices.SortFunc(s.queue, func(a, b job) int { return a.at.Compare(b.at) })
}

// begin marks a check of st in flight, unless one already is.
func (s *Scheduler) begin(st *state) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.inFlight {
		return false
	}
	st.inFlight = true
	return true
}

func (s *Scheduler) end(st *state) {
	s.mu.Lock()
	st.inFlight = false
	s.mu.Unlock()
}

// process runs one check, and reports a change of health.
func (s *Scheduler) process(ctx context.Context, j job) {
	defer func() {
		s.end(j.st)
		if j.wg != nil {
			j.wg.Done()
		}
	}()
	typ := typeIndexTCP
	if j.t.Checker.kind() == TypeHTTP {
		typ = typeIndexHTTP
	}
	began := time.Now()
	var r result
	if typ == typeIndexHTTP {
		r = s.checkHTTP(ctx, j.t)
	} else {
		r = s.checkTCP(ctx, j.t)
	}
	if ctx.Err() != nil {
		return // stopping: the result says nothing of the instance
	}
	s.m.duration[typ].Observe(time.Since(began).Seconds())
	s.m.checks[typ][r.outcome].Inc()

	healthy, change := s.judge(j, r)
	if !change {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, s.reportTimeout())
	err := s.cfg.Report(rctx, j.t.Service, j.t.Address, healthy)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.m.reportFails.Inc()
		if ok, n := s.reportLog.allow(time.Now()); ok {
			s.log.Warn("reporting a health change failed; retried at the next check", "service", j.t.Service.String(),
				"instance", hostPort(j.t), "cluster", j.t.Address.Cluster, "healthy", healthy, "error", err,
				"failures_not_logged", n)
		}
		return
	}
	s.reported(j.st, healthy)
	s.m.changes[b2i(healthy)].Inc()
	msg := "persistent instance unhealthy"
	if healthy {
		msg = "persistent instance healthy"
	}
	s.log.Info(msg, "service", j.t.Service.String(), "ip", j.t.Address.IP, "port", j.t.Address.Port,
		"cluster", j.t.Address.Cluster, "check", j.t.Checker.kind(), "result", cmp.Or(r.detail, "ok"))
}

// judge counts r in the target's results in a row, and returns the health
// to report and whether it is a change from the stored health: the health
// the target was read with, or the one this scheduler reported since. It
// reports no change for a target forgotten meanwhile.
func (s *Scheduler) judge(j job, r result) (bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, healthy := j.st, j.t.Healthy
	if st.gone {
		return false, false
	}
	if st.reportedSeq > j.snap {
		healthy = st.reportedHealthy
	}
	if r.outcome == outcomeSuccess {
		st.failures = 0
		st.successes++
		return true, !healthy && st.successes >= s.cfg.HealthyAfter
	}
	st.successes = 0
	st.failures++
	return false, healthy && (r.hard || st.failures >= s.cfg.UnhealthyAfter)
}

// reported notes a successful Report of st's target.
func (s *Scheduler) reported(st *state, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reportSeq++
	st.reportedSeq, st.reportedHealthy = s.reportSeq, healthy
}

// reportTimeout bounds a Report: the interval, and at least
// minReportTimeout.
func (s *Scheduler) reportTimeout() time.Duration {
	return max(s.cfg.Interval, minReportTimeout)
}

// minReportTimeout is the least time a Report is given.
const minReportTimeout = 5 * time.Second

// checkNow runs one round of every target at once and returns when all its
// checks and Reports are done (for tests and benchmarks); the workers must
// be running.
func (s *Scheduler) checkNow(ctx context.Context) {
	s.runRound(ctx, time.Now(), nil, true)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// limitedLog lets one line through per period, and counts the others.
type limitedLog struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were held back
// since the last one logged.
func (l *limitedLog) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
