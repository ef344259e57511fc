// Package suite runs Sextant's standard benchmark: for each step it starts a
// fresh standalone server from a given binary on free ports, runs one
// scenario against it, stops it, and finally writes a report with the
// headline figures, for people (bench.txt) and machines (bench.json). The
// register and query steps run against the ceiling too — the same gRPC wire
// with no logic (sextant-bench serve-ceiling) — and the report leads with
// Sextant ÷ ceiling, which varies less between runs than either figure.
package suite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/procstat"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/scenario"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
)

// Options configure a suite run.
type Options struct {
	Server  string // path of the sextant binary
	Out     string // directory the report is written to
	Profile string // a key of Profiles
	Tool    string // this tool's name and version
	// Ceiling is the command that serves the ceiling, before its flags
	// (--port, --hosts): this tool and "serve-ceiling".
	Ceiling []string
	// Log, if set, gets a line as each step starts and ends.
	Log io.Writer
	// Monitor, if set, follows the running scenario.
	Monitor *scenario.Monitor
}

// Report is what a suite run produced.
type Report struct {
	Machine   Machine    `json:"machine"`
	Server    string     `json:"server"` // the binary's "version" output
	Profile   string     `json:"profile"`
	Headlines []Headline `json:"headlines"`
	// Ceiling compares Sextant with the ceiling, scenario by scenario.
	Ceiling  []Ratio          `json:"ceiling"`
	Results  []*report.Result `json:"results"`
	Failures []string         `json:"failures,omitempty"`
}

// Headline is one of the suite's key figures.
type Headline struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Step  string  `json:"step"`
}

// Run runs every step of the profile and writes the report into o.Out. A
// step that fails is recorded and the others still run; the error lists the
// failures.
func Run(ctx context.Context, o Options) (*Report, error) {
	steps, ok := Profiles[o.Profile]
	if !ok {
		return nil, fmt.Errorf("unknown profile %q (want short or full)", o.Profile)
	}
	if _, err := os.Stat(o.Server); err != nil {
		return nil, fmt.Errorf("server binary: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(o.Out, "logs"), 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Machine: machine(), Server: serverVersion(ctx, o.Server), Profile: o.Profile}
	for _, st := range steps {
		if ctx.Err() != nil {
			rep.Failures = append(rep.Failures, st.name+": "+ctx.Err().Error())
			continue
		}
		logf(o.Log, "step %s", st.name)
		res, err := runStep(o, st, rep.Server)
		if err != nil {
			rep.Failures = append(rep.Failures, st.name+": "+err.Error())
			logf(o.Log, "step %s failed: %v", st.name, err)
			continue
		}
		if res.Failed() {
			rep.Failures = append(rep.Failures, st.name+": a check failed or nothing succeeded")
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Ceiling = ratios(rep.Results)
	rep.Headlines = headlines(rep.Results, rep.Ceiling)
	if err := rep.write(o.Out); err != nil {
		return rep, err
	}
	if len(rep.Failures) > 0 {
		return rep, errors.New(strings.Join(rep.Failures, "; "))
	}
	return rep, nil
}

// process is a server a step runs against: Sextant or the ceiling.
type process interface {
	HTTPAddr() string
	GRPCAddr() string
	PID() int
	Logs() []byte
	stop() error
}

// runStep starts a server, runs the step against it and stops it.
func runStep(o Options, st step, version string) (*report.Result, error) {
	var srv process
	var err error
	if st.ceiling {
		version = ceilingVersion
		srv, err = startCeiling(o.Ceiling, st.hosts)
	} else {
		srv, err = startServer(o.Server, st.env, st.config)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = os.WriteFile(filepath.Join(o.Out, "logs", st.name+".log"), srv.Logs(), 0o644)
	}()
	c := &scenario.Common{
		Targets:        []target.Target{{HTTP: srv.HTTPAddr(), GRPC: srv.GRPCAddr()}},
		Duration:       time.Minute,
		Concurrency:    64,
		Seed:           1,
		Timeout:        5 * time.Second,
		SetupTimeout:   2 * time.Minute,
		Grace:          10 * time.Second,
		HealthInterval: 5 * time.Second,
		Namespace:      "public",
		Group:          "DEFAULT_GROUP",
		Prefix:         "suite",
		ClientVersion:  o.Tool,
		PID:            srv.PID(),
		Monitor:        o.Monitor,
	}
	res := st.run(c, o.Tool)
	stopErr := srv.stop()
	res.Label = st.name
	res.Targets[0].Version = version
	if st.ceiling {
		res.Notes = append(res.Notes, fmt.Sprintf("the ceiling server (no logic, fixed answers of %d hosts) started for this step", st.hosts))
	} else {
		res.Notes = append(res.Notes, "server started for this step with "+envText(st.env, st.config))
	}
	if stopErr != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("the server did not stop cleanly: %v", stopErr))
	}
	return res, nil
}

func envText(env []string, config string) string {
	var parts []string
	if len(env) > 0 {
		parts = append(parts, strings.Join(env, " "))
	}
	if config != "" {
		parts = append(parts, "the configuration file "+strings.Join(strings.Fields(config), " "))
	}
	if len(parts) == 0 {
		return "its defaults"
	}
	return strings.Join(parts, " and ")
}

// Machine describes where the suite ran.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

func machine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb >> 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// idle starts nothing: it samples the freshly started server after it has
// been left alone for a while.
func idle(wait time.Duration) func(c *scenario.Common, tool string) *report.Result {
	return func(c *scenario.Common, tool string) *report.Result {
		res := &report.Result{Scenario: "idle", Tool: tool, Started: time.Now().UTC(),
			Params: report.Params{{Name: "wait", Value: wait}}, Errors: map[string]int64{}}
		for _, t := range c.Targets {
			res.Targets = append(res.Targets, report.Target{HTTP: t.HTTP, GRPC: t.GRPC, Version: target.Unknown})
		}
		before, _, err := procstat.ReadTree("/proc", c.PID)
		if err != nil {
			res.Checks = append(res.Checks, report.Check{Name: "server sampled", Detail: err.Error()})
			return res
		}
		time.Sleep(wait)
		after, n, err := procstat.ReadTree("/proc", c.PID)
		if err != nil {
			res.Checks = append(res.Checks, report.Check{Name: "server sampled", Detail: err.Error()})
			return res
		}
		res.Process = &report.Process{PID: c.PID, Processes: n,
			Before: report.Sample{RSSBytes: before.RSS, CPUSeconds: before.CPU.Seconds()},
			After:  report.Sample{RSSBytes: after.RSS, CPUSeconds: after.CPU.Seconds()}}
		res.Figures = []report.Figure{{Name: "idle RSS", Value: float64(after.RSS) / (1 << 20), Unit: "MiB"}}
		res.Checks = []report.Check{{Name: "server sampled", OK: true,
			Detail: fmt.Sprintf("pid %d and %d processes below it, after %s", c.PID, n-1, wait)}}
		res.ElapsedSeconds = wait.Seconds()
		return res
	}
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "suite: "+format+"\n", args...)
	}
}
