package suite

import (
	"fmt"
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
}

// inProcess configures the server to run its built-in plugins inside itself.
const inProcess = "plugins:\n  pushrpc:\n    in_process: true\n"

// Profiles are the suite's sets of steps: "full" gives the figures of
// BENCHMARKS.md, "short" is what make bench runs in about a minute, and
// "smoke" only checks that every step works (its figures mean little).
var Profiles = map[string][]step{
	"full": {
		{name: "idle", run: idle(5 * time.Second)},
		{name: "idle-in-process", config: inProcess, run: idle(5 * time.Second)},
		registerStep("register", 100, 500, 1000),
		registerStep("footprint", 10000, 10, 1000),
		queryStep("query", 16, 1000, 10, 2*time.Second, 10*time.Second),
		pushStep(1, 500*time.Millisecond, 10), pushStep(1000, 500*time.Millisecond, 10), pushStep(10000, 500*time.Millisecond, 10),
		pushStep(1, 0, 10), pushStep(1000, 0, 10), pushStep(10000, 0, 10),
		churnStep(50, 10, 5, 10*time.Second),
		visibilityStep(10),
	},
	"short": {
		{name: "idle", run: idle(time.Second)},
		{name: "idle-in-process", config: inProcess, run: idle(time.Second)},
		registerStep("register", 100, 100, 1000),
		registerStep("footprint", 1000, 10, 1000),
		queryStep("query", 16, 100, 10, time.Second, 3*time.Second),
		pushStep(1, 500*time.Millisecond, 3), pushStep(100, 500*time.Millisecond, 3), pushStep(100, 0, 10),
		churnStep(50, 10, 5, 3*time.Second),
		visibilityStep(5),
	},
	"smoke": {
		{name: "idle", run: idle(100 * time.Millisecond)},
		{name: "idle-in-process", config: inProcess, run: idle(100 * time.Millisecond)},
		registerStep("register", 10, 10, 20),
		queryStep("query", 2, 10, 2, 0, 300*time.Millisecond),
		pushStep(10, 20*time.Millisecond, 3),
		churnStep(10, 3, 2, 300*time.Millisecond),
		visibilityStep(3),
	},
}

func registerStep(name string, conns, instances, services int) step {
	return step{name: name, run: func(c *scenario.Common, tool string) *report.Result {
		return scenario.Register(c, scenario.RegisterOptions{Connections: conns, Instances: instances, Services: services}, tool)
	}}
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

// headlines picks the suite's key figures from its results.
func headlines(results []*report.Result) []Headline {
	var hs []Headline
	add := func(name string, v float64, unit, step string) {
		hs = append(hs, Headline{Name: name, Value: v, Unit: unit, Step: step})
	}
	for _, r := range results {
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
		case "churn":
			if v, ok := r.FigureNamed("changes acknowledged"); ok && r.MeasuredSeconds > 0 {
				add("churn changes/s", v/r.MeasuredSeconds, "/s", r.Label)
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
