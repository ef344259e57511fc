package suite

import (
	"fmt"
	"strings"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/scenario"
)

// step is one scenario run against a fresh server.
type step struct {
	name   string
	env    []string // server environment, such as SEXTANT_PUSH_DELAY=0s
	config string   // server configuration file (YAML), if any
	run    func(c *scenario.Common, tool string) *report.Result
	// ceiling runs the step against the ceiling instead of Sextant, its
	// answers listing hosts instances.
	ceiling bool
	hosts   int
}

// ceilingVersion is the version the results of the ceiling's steps name.
const ceilingVersion = "ceiling"

// inProcess configures the server to run its built-in plugins inside itself.
const inProcess = "plugins:\n  pushrpc:\n    in_process: true\n  pushudp:\n    in_process: true\n"

// Profiles are the suite's sets of steps: "full" gives the figures of
// BENCHMARKS.md, "short" is what make bench runs in about a minute, and
// "smoke" only checks that every step works (its figures mean little).
var Profiles = map[string][]step{
	"full": {
		{name: "idle", run: idle(5 * time.Second)},
		{name: "idle-in-process", config: inProcess, run: idle(5 * time.Second)},
		registerStep("register", 100, 500, 1000), ceilingRegisterStep("register", 100, 500, 1000),
		registerStep("footprint", 10000, 10, 1000),
		queryStep("query", 16, 1000, 10, 2*time.Second, 10*time.Second), ceilingQueryStep("query", 16, 1000, 10, 2*time.Second, 10*time.Second),
		pushStep(1, 500*time.Millisecond, 10), pushStep(1000, 500*time.Millisecond, 10), pushStep(10000, 500*time.Millisecond, 10),
		pushStep(1, 0, 10), pushStep(1000, 0, 10), pushStep(10000, 0, 10),
		churnStep(50, 10, 5, 10*time.Second),
		visibilityStep(10),
		httpRegisterStep(100, 500, 1000),
		beatsStep(100000, 5*time.Second, 20*time.Second),
		udpPushStep(1, 500*time.Millisecond, 10), udpPushStep(1000, 500*time.Millisecond, 10), udpPushStep(10000, 500*time.Millisecond, 10),
		udpPushStep(1000, 0, 10),
	},
	"short": {
		{name: "idle", run: idle(time.Second)},
		{name: "idle-in-process", config: inProcess, run: idle(time.Second)},
		registerStep("register", 100, 100, 1000), ceilingRegisterStep("register", 100, 100, 1000),
		registerStep("footprint", 1000, 10, 1000),
		queryStep("query", 16, 100, 10, time.Second, 3*time.Second), ceilingQueryStep("query", 16, 100, 10, time.Second, 3*time.Second),
		pushStep(1, 500*time.Millisecond, 3), pushStep(100, 500*time.Millisecond, 3), pushStep(100, 0, 10),
		churnStep(50, 10, 5, 3*time.Second),
		visibilityStep(5),
		httpRegisterStep(100, 100, 1000),
		beatsStep(5000, time.Second, 3*time.Second),
		udpPushStep(100, 500*time.Millisecond, 3),
	},
	"smoke": {
		{name: "idle", run: idle(100 * time.Millisecond)},
		{name: "idle-in-process", config: inProcess, run: idle(100 * time.Millisecond)},
		registerStep("register", 10, 10, 20), ceilingRegisterStep("register", 10, 10, 20),
		queryStep("query", 2, 10, 2, 0, 300*time.Millisecond), ceilingQueryStep("query", 2, 10, 2, 0, 300*time.Millisecond),
		pushStep(10, 20*time.Millisecond, 3),
		churnStep(10, 3, 2, 300*time.Millisecond),
		visibilityStep(3),
		httpRegisterStep(10, 10, 20),
		beatsStep(100, 100*time.Millisecond, 300*time.Millisecond),
		udpPushStep(10, 20*time.Millisecond, 3),
	},
}

func registerStep(name string, conns, instances, services int) step {
	return step{name: name, run: func(c *scenario.Common, tool string) *report.Result {
		return scenario.Register(c, scenario.RegisterOptions{Connections: conns, Instances: instances, Services: services}, tool)
	}}
}

// ceilingRegisterStep is registerStep against the ceiling, which keeps no
// registry to check.
func ceilingRegisterStep(name string, conns, instances, services int) step {
	return step{name: ceilingPrefix + name, ceiling: true, run: func(c *scenario.Common, tool string) *report.Result {
		return scenario.Register(c, scenario.RegisterOptions{Connections: conns, Instances: instances, Services: services, SkipCheck: true}, tool)
	}}
}

// ceilingQueryStep is queryStep against the ceiling, whose answers list as
// many instances as the services have.
func ceilingQueryStep(name string, conns, services, instances int, warmup, duration time.Duration) step {
	st := queryStep(ceilingPrefix+name, conns, services, instances, warmup, duration)
	st.ceiling, st.hosts = true, instances
	return st
}

func queryStep(name string, conns, services, instances int, warmup, duration time.Duration) step {
	return step{name: name, run: func(c *scenario.Common, tool string) *report.Result {
		c.Warmup, c.Duration = warmup, duration
		return scenario.Query(c, scenario.QueryOptions{Connections: conns, Services: services, Instances: instances, VerifyEvery: 64}, tool)
	}}
}

// pushStep runs the push scenario against a server whose merge window is
// window.
func pushStep(subscribers int, window time.Duration, rounds int64) step {
	return step{
		name: fmt.Sprintf("push-%d-window-%s", subscribers, window),
		env:  []string{"SEXTANT_PUSH_DELAY=" + window.String()},
		run: func(c *scenario.Common, tool string) *report.Result {
			c.Count = rounds
			return scenario.Push(c, scenario.PushOptions{Subscribers: subscribers, Services: 1, MergeWindow: window}, tool)
		},
	}
}

func churnStep(providers, subscribers, services int, duration time.Duration) step {
	return step{name: "churn", run: func(c *scenario.Common, tool string) *report.Result {
		c.Duration = duration
		return scenario.Churn(c, scenario.ChurnOptions{Providers: providers, Subscribers: subscribers, Services: services}, tool)
	}}
}

func visibilityStep(rounds int64) step {
	const window = 500 * time.Millisecond
	return step{name: "visibility", env: []string{"SEXTANT_PUSH_DELAY=" + window.String()},
		run: func(c *scenario.Common, tool string) *report.Result {
			c.Count = rounds
			return scenario.Visibility(c, scenario.VisibilityOptions{MergeWindow: window}, tool)
		}}
}

// httpRegisterStep runs http-register: registrations over the v1 HTTP API,
// in the register step's shape.
func httpRegisterStep(clients, instances, services int) step {
	return step{name: "http-register", run: func(c *scenario.Common, tool string) *report.Result {
		return scenario.HTTPRegister(c, scenario.HTTPRegisterOptions{Clients: clients, Instances: instances, Services: services}, tool)
	}}
}

// beatsStep runs beats: clients beating every interval (the SDKs' 5 s; the
// short profiles beat more often to offer the same rate with fewer
// clients) for duration after the two intervals of warm-up.
func beatsStep(clients int, interval, duration time.Duration) step {
	return step{name: "beats", run: func(c *scenario.Common, tool string) *report.Result {
		c.Duration = duration
		return scenario.Beats(c, scenario.BeatsOptions{Clients: clients, Services: 100, Interval: interval}, tool)
	}}
}

// udpPushStep runs udp-push — subscribers of the HTTP API pushed over UDP,
// the changes made over gRPC as in the push steps — against a server whose
// merge window is window.
func udpPushStep(subscribers int, window time.Duration, rounds int64) step {
	return step{
		name: fmt.Sprintf("udp-push-%d-window-%s", subscribers, window),
		env:  []string{"SEXTANT_PUSH_DELAY=" + window.String()},
		run: func(c *scenario.Common, tool string) *report.Result {
			c.Count = rounds
			return scenario.UDPPush(c, scenario.UDPPushOptions{Subscribers: subscribers, MergeWindow: window,
				Repoll: 5 * time.Second, Writer: scenario.WriterGRPC}, tool)
		},
	}
}

// headlines picks the suite's key figures from its results: Sextant ÷
// ceiling first, then Sextant's own figures.
func headlines(results []*report.Result, ratios []Ratio) []Headline {
	var hs []Headline
	add := func(name string, v float64, unit, step string) {
		hs = append(hs, Headline{Name: name, Value: v, Unit: unit, Step: step})
	}
	for _, r := range ratios {
		add(r.Scenario+" throughput, Sextant ÷ ceiling", r.Throughput, "×", r.SextantStep+", "+r.CeilingStep)
		add(r.Scenario+" server CPU per request, Sextant ÷ ceiling", r.CPUPerRequest, "×", r.SextantStep+", "+r.CeilingStep)
	}
	for _, r := range results {
		if strings.HasPrefix(r.Label, ceilingPrefix) {
			continue
		}
		switch r.Scenario {
		case "idle":
			if r.Process != nil {
				name := "idle RSS, one process"
				if n := r.Process.Processes; n > 1 {
					name = fmt.Sprintf("idle RSS, %d processes added up", n)
				}
				add(name, mib(r.Process.After.RSSBytes), "MiB", r.Label)
			}
		case "register":
			if s := r.SeriesNamed("register"); s != nil && r.Label == "register" {
				add("registrations/s", s.Rate, "/s", r.Label)
			}
			held, _ := r.FigureNamed("instances held")
			conns, _ := r.FigureNamed("connections held")
			if r.Label == "footprint" && r.Process != nil && held > 0 {
				add(fmt.Sprintf("RSS with %.0f instances over %.0f connections", held, conns), mib(r.Process.After.RSSBytes), "MiB", r.Label)
				add("bytes per instance (RSS growth / instances)", float64(r.Process.After.RSSBytes-r.Process.Before.RSSBytes)/held, "B", r.Label)
			}
		case "query":
			if s := r.SeriesNamed("query"); s != nil {
				add("queries/s", s.Rate, "/s", r.Label)
			}
		case "push":
			for _, f := range []string{"push p50 beyond merge window", "push p99 beyond merge window", "last subscriber max beyond merge window"} {
				if v, ok := r.FigureNamed(f); ok {
					add(fmt.Sprintf("%s (%v subscribers, window %v)", f, r.Params.Get("subscribers"), r.Params.Get("merge_window")), v, "ms", r.Label)
				}
			}
		case "udp-push":
			for _, f := range []string{"push p50 beyond merge window", "push p99 beyond merge window", "push max beyond merge window"} {
				if v, ok := r.FigureNamed(f); ok {
					add(fmt.Sprintf("UDP %s (%v subscribers, window %v)", f, r.Params.Get("subscribers"), r.Params.Get("merge_window")), v, "ms", r.Label)
				}
			}
		case "churn":
			if v, ok := r.FigureNamed("changes acknowledged"); ok && r.MeasuredSeconds > 0 {
				add("churn changes/s", v/r.MeasuredSeconds, "/s", r.Label)
			}
		case "http-register":
			if s := r.SeriesNamed("register"); s != nil {
				add("HTTP registrations/s", s.Rate, "/s", r.Label)
			}
			if v, ok := r.FigureNamed("server CPU per register"); ok {
				add("server CPU per HTTP registration", v, "µs", r.Label)
			}
		case "beats":
			offered, _ := r.FigureNamed("offered beats/s")
			if s := r.SeriesNamed("beat"); s != nil {
				add(fmt.Sprintf("beats/s (%.0f offered)", offered), s.Rate, "/s", r.Label)
			}
			if v, ok := r.FigureNamed("server CPU per beat"); ok {
				add("server CPU per beat", v, "µs", r.Label)
			}
		case "visibility":
			if s := r.SeriesNamed("visible same node"); s != nil && s.Latency != nil {
				add("visibility p50, same node", s.Latency.P50, "ms", r.Label)
			}
		}
	}
	return hs
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
