// Package scenario runs the benchmark scenarios against Nacos 2.x servers:
// register, query, push, churn and visibility over the gRPC wire,
// http-register and beats over the 1.x HTTP Open API, and udp-push to 1.x
// clients' UDP sockets. Each run has bounded phases —
// set-up (connecting, populating), warm-up, the measured phase, a drain for
// what is in flight, and teardown — so that it always ends: within
// SetupTimeout + Warmup + Duration + Grace, plus closing its connections.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/procstat"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// Common are the options every scenario takes.
type Common struct {
	Targets []target.Target
	// Duration bounds the measured phase; Count, when > 0, ends it after that
	// many operations (what an operation is depends on the scenario).
	Duration time.Duration
	Count    int64
	// Concurrency is how many operations may be in flight at once.
	Concurrency int
	// Rate, when > 0, issues operations on an open-loop schedule at this many
	// per second; latency is then measured from each operation's due time.
	Rate float64
	// Warmup runs operations for this long before measuring.
	Warmup time.Duration
	// Seed makes the choices of a run (which service, which provider)
	// repeatable.
	Seed int64
	// Timeout bounds each request.
	Timeout time.Duration
	// SetupTimeout bounds connecting and populating before the warm-up.
	SetupTimeout time.Duration
	// Grace bounds waiting for what is in flight after the measured phase
	// (answers, pushes, settling), and separately the closing of connections.
	Grace time.Duration
	// HealthInterval is how long a connection may idle before it sends a
	// health check; 0 sends none.
	HealthInterval time.Duration
	// Namespace and Group of every service; Prefix starts every service name.
	Namespace string
	Group     string
	Prefix    string
	// ClientVersion is what connections announce in their setup.
	ClientVersion string
	// PID is the server process to sample from /proc; 0 samples nothing.
	PID int
	// Monitor, if set, is kept up to date for a progress display.
	Monitor *Monitor
}

// connectConcurrency bounds how many connections are being set up at once.
const connectConcurrency = 32

// portBase is the first port of the instances scenarios register; a change
// of an instance moves it to portBase + round.
const portBase = 20000

// Validate checks the common options.
func (c *Common) Validate() error {
	var errs []error
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("no target"))
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration must be positive, got %s", c.Duration))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("--count must not be negative, got %d", c.Count))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency must be at least 1, got %d", c.Concurrency))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("--rate must not be negative, got %g", c.Rate))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("--warmup must not be negative, got %s", c.Warmup))
	}
	if c.HealthInterval < 0 {
		errs = append(errs, fmt.Errorf("--health-interval must not be negative, got %s", c.HealthInterval))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--timeout", c.Timeout}, {"--setup-timeout", c.SetupTimeout}, {"--grace", c.Grace}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.flag, d.v))
		}
	}
	if c.Prefix == "" {
		errs = append(errs, errors.New("--prefix must not be empty"))
	}
	return errors.Join(errs...)
}

// commonParams lists the common options for a result.
func (c *Common) commonParams() report.Params {
	return report.Params{
		{Name: "duration", Value: c.Duration},
		{Name: "count", Value: c.Count},
		{Name: "concurrency", Value: c.Concurrency},
		{Name: "rate", Value: c.Rate},
		{Name: "warmup", Value: c.Warmup},
		{Name: "seed", Value: c.Seed},
		{Name: "timeout", Value: c.Timeout},
		{Name: "health_interval", Value: c.HealthInterval},
		{Name: "prefix", Value: c.Prefix},
	}
}

// service returns the i-th service of the run.
func (c *Common) service(i int) wire.Service {
	return wire.Service{Namespace: c.Namespace, Group: c.Group, Name: c.Prefix + "-" + strconv.Itoa(i)}
}

// instanceIP returns a distinct made-up address for the i-th publisher.
func instanceIP(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}

// instancePort returns the port of an instance after n changes.
func instancePort(n int64) int { return portBase + int(n%40000) }

// pick returns a number in [0, n) determined by the seed and k, so that
// concurrent workers make repeatable choices without sharing a generator.
func pick(seed, k int64, n int) int {
	x := uint64(seed) ^ uint64(k)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return int(x % uint64(n))
}

// Monitor is what a progress display shows of a running scenario: its phase
// and the series being measured.
type Monitor struct {
	mu     sync.Mutex
	phase  string
	series *stats.Series
	since  time.Time
}

// set switches to a new phase, measuring s (nil for none).
func (m *Monitor) set(phase string, s *stats.Series) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.phase, m.series, m.since = phase, s, time.Now()
	m.mu.Unlock()
}

// Line renders the current state in one line.
func (m *Monitor) Line() string {
	m.mu.Lock()
	phase, s, since := m.phase, m.series, m.since
	m.mu.Unlock()
	if phase == "" {
		return "starting"
	}
	elapsed := time.Since(since)
	line := fmt.Sprintf("%-10s %6.1fs", phase, elapsed.Seconds())
	if s == nil {
		return line
	}
	ok, failed := s.Counts()
	line += fmt.Sprintf("  %s ok %d (%.0f/s)  errors %d", s.Name(), ok, float64(ok)/max(elapsed.Seconds(), 0.001), failed)
	if p99 := s.Latency().Quantile(0.99); p99 > 0 {
		line += fmt.Sprintf("  p99 %.2fms", float64(p99)/float64(time.Millisecond))
	}
	return line
}

// run is one scenario run in progress: its options and the result it builds.
type run struct {
	*Common
	res   *report.Result
	start time.Time
	// server and self are the samples of the server's process tree and of
	// this process alone.
	server, self samples
	sampled      bool
	// machine is the machine's CPU time as the measured phase starts.
	machine   procstat.Machine
	machineAt time.Time
	series    []*stats.Series
	// health counts the connections' health checks; it is reported when
	// any ran.
	health *stats.Series
	// measured is the length of the measured phase, for rates.
	measured time.Duration
}

func newRun(c *Common, scenario, tool string) *run {
	var err error
	r := &run{
		Common: c,
		start:  time.Now(),
		health: stats.NewSeries("health check"),
		res: &report.Result{
			Scenario: scenario,
			Tool:     tool,
			Started:  time.Now().UTC(),
			Params:   c.commonParams(),
		},
	}
	for _, t := range c.Targets {
		r.res.Targets = append(r.res.Targets, report.Target{HTTP: t.HTTP, GRPC: t.GRPC, Version: target.Unknown})
	}
	if c.PID > 0 {
		if r.server.Before, r.server.Processes, err = procstat.ReadTree("/proc", c.PID); err != nil {
			r.note("server process %d not sampled: %v", c.PID, err)
		}
	}
	// This process alone: servers a suite starts are its children.
	if self, err := procstat.Read("/proc", os.Getpid()); err == nil {
		r.self.Before, r.self.Processes = self, 1
	}
	return r
}

// newSeries makes a series that ends up in the result, in creation order.
func (r *run) newSeries(name string) *stats.Series {
	s := stats.NewSeries(name)
	r.series = append(r.series, s)
	return s
}

func (r *run) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

func (r *run) param(name string, v any) {
	r.res.Params = append(r.res.Params, report.Param{Name: name, Value: v})
}

func (r *run) figure(name string, v float64, unit string) {
	r.res.Figures = append(r.res.Figures, report.Figure{Name: name, Value: v, Unit: unit})
}

func (r *run) check(name string, ok bool, format string, args ...any) {
	r.res.Checks = append(r.res.Checks, report.Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// samples are one process tree's samples over a run; a zero Before means
// it is not sampled.
type samples struct {
	Before, Measure procstat.Sample
	Processes       int
}

// sampleMeasure samples the server and this process as the measured phase
// starts, so that the CPU used in it can be told apart from the set-up's.
func (r *run) sampleMeasure() {
	if m, err := procstat.ReadMachine("/proc"); err == nil {
		r.machine, r.machineAt = m, time.Now()
	}
	if r.server.Processes > 0 {
		r.server.Measure, _, _ = procstat.ReadTree("/proc", r.PID)
	}
	if r.self.Processes > 0 {
		r.self.Measure, _ = procstat.Read("/proc", os.Getpid())
	}
}

// sampleAfter samples the server and this process at the end of the
// measured phase, while the run's connections and data are still there.
func (r *run) sampleAfter() {
	if r.sampled {
		return
	}
	r.sampled = true
	if r.server.Processes > 0 {
		if after, _, err := procstat.ReadTree("/proc", r.PID); err == nil {
			r.res.Process = process(r.PID, r.server, after)
		} else {
			r.note("server process %d not sampled after the run: %v", r.PID, err)
		}
	}
	if r.self.Processes > 0 {
		if after, err := procstat.Read("/proc", os.Getpid()); err == nil {
			r.res.Generator = process(os.Getpid(), r.self, after)
		}
	}
	r.machineFigures()
}

// machineFigures reports how busy the whole machine was in the measured
// phase, and how much of it the server and this generator do not account
// for: other processes on a shared machine, which take CPU from both.
func (r *run) machineFigures() {
	m, err := procstat.ReadMachine("/proc")
	if err != nil || r.machineAt.IsZero() {
		return
	}
	wall := time.Since(r.machineAt).Seconds()
	if wall <= 0 {
		return
	}
	busy := (m.Busy - r.machine.Busy).Seconds()
	r.figure("machine CPU busy in the measured phase", busy/wall, "cores")
	server, okS := r.res.Process.MeasuredCPU()
	gen, okG := r.res.Generator.MeasuredCPU()
	if okS && okG {
		r.figure("of which neither server nor generator", max(busy-server-gen, 0)/wall, "cores")
	}
}

func process(pid int, s samples, after procstat.Sample) *report.Process {
	p := &report.Process{
		PID:       pid,
		Processes: s.Processes,
		Before:    sample(s.Before),
		After:     sample(after),
	}
	if !s.Measure.At.IsZero() {
		m := sample(s.Measure)
		p.Measure = &m
	}
	return p
}

func sample(s procstat.Sample) report.Sample {
	return report.Sample{RSSBytes: s.RSS, CPUSeconds: s.CPU.Seconds()}
}

// finish completes the result. primary names the series the scenario
// measures; with rated set, its rate is a throughput over the measured phase.
func (r *run) finish(primary string, rated bool) *report.Result {
	r.res.Primary = primary
	r.Monitor.set("done", nil)
	r.sampleAfter()
	if ok, failed := r.health.Counts(); ok+failed > 0 {
		r.series = append(r.series, r.health)
	}
	r.res.ElapsedSeconds = time.Since(r.start).Seconds()
	if cpu, ok := r.res.Process.MeasuredCPU(); ok && rated {
		if ok, _ := r.seriesNamed(primary).Counts(); ok > 0 {
			r.figure("server CPU per "+primary, cpu/float64(ok)*1e6, "µs")
		}
	}
	r.res.MeasuredSeconds = r.measured.Seconds()
	for _, s := range r.series {
		over := time.Duration(0)
		if rated && s.Name() == primary {
			over = r.measured
		}
		r.res.Series = append(r.res.Series, report.FromSeries(s, over))
	}
	r.res.TotalErrors()
	return r.res
}

// versions asks each target for its version.
func (r *run) versions(ctx context.Context) {
	for i, t := range r.Targets {
		r.res.Targets[i].Version = target.Version(ctx, t.HTTP)
	}
}

// connect opens n connections, the i-th to target i % len(targets), at most
// connectConcurrency at a time and all within deadline. It records each
// attempt in the series and returns the connections, nil where one failed.
// handler(i), if handler is set, handles what the server sends to the i-th.
func (r *run) connect(deadline time.Time, n int, series *stats.Series, handler func(i int) func(wire.ServerRequest)) []*wire.Conn {
	r.Monitor.set("connect", series)
	conns := make([]*wire.Conn, n)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ips := make([]string, len(r.Targets))
	for i, t := range r.Targets {
		ips[i] = target.LocalIP(t.GRPC)
	}
	parallel(ctx, n, connectConcurrency, func(ctx context.Context, i int) {
		opts := wire.Options{
			ClientVersion:  r.ClientVersion,
			ClientIP:       ips[i%len(ips)],
			HealthInterval: r.HealthInterval,
			Timeout:        r.Timeout,
			OnHealthCheck:  r.healthCheck,
		}
		if handler != nil {
			opts.OnServerRequest = handler(i)
		}
		start := time.Now()
		dctx, dcancel := context.WithTimeout(ctx, r.Timeout)
		c, err := wire.Dial(dctx, r.Targets[i%len(r.Targets)].GRPC, opts)
		dcancel()
		if err != nil {
			series.Fail(wire.Kind(err))
			return
		}
		series.OK(time.Since(start))
		conns[i] = c
	}, func(skipped int) { series.FailN("set-up timed out", int64(skipped)) })
	return conns
}

// healthCheck records the outcome of a connection's health check.
func (r *run) healthCheck(d time.Duration, err error) {
	if err != nil {
		r.health.Fail(wire.Kind(err))
		return
	}
	r.health.OK(d)
}

// seriesNamed returns the run's series of that name.
func (r *run) seriesNamed(name string) *stats.Series {
	for _, s := range r.series {
		if s.Name() == name {
			return s
		}
	}
	return stats.NewSeries(name)
}
