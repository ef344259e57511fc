// Package report holds the result of a benchmark run and renders it as a
// table for people or as JSON for machines.
package report

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
)

// Result is everything one scenario run reports.
type Result struct {
	// Label names the run within a suite.
	Label    string    `json:"label,omitempty"`
	Scenario string    `json:"scenario"`
	Tool     string    `json:"tool"`
	Started  time.Time `json:"started"`
	// ElapsedSeconds is the whole run, set-up and teardown included;
	// MeasuredSeconds the phase the rates are computed over.
	ElapsedSeconds  float64  `json:"elapsed_s"`
	MeasuredSeconds float64  `json:"measured_s"`
	Params          Params   `json:"params"`
	Targets         []Target `json:"targets"`
	Series          []Series `json:"series"`
	// Primary names the series the scenario measures.
	Primary string   `json:"primary"`
	Figures []Figure `json:"figures,omitempty"`
	Checks  []Check  `json:"checks,omitempty"`
	// Errors totals every series' errors by "series: kind".
	Errors map[string]int64 `json:"errors"`
	// Process is the server's resource use, when it is a local process;
	// Generator is this tool's own, which shares the machine with a local
	// server.
	Process   *Process `json:"process,omitempty"`
	Generator *Process `json:"generator,omitempty"`
	Notes     []string `json:"notes,omitempty"`
}

// Target is a server the run spoke to.
type Target struct {
	HTTP    string `json:"http"`
	GRPC    string `json:"grpc"`
	Version string `json:"version"`
}

// Param is one parameter of the run.
type Param struct {
	Name  string
	Value any
}

// Params are the run's parameters in the order they were given; they encode
// as a JSON object in that order.
type Params []Param

// MarshalJSON implements json.Marshaler.
func (ps Params) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(p.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(jsonValue(p.Value))
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON implements json.Unmarshaler (in key order of the input).
func (ps *Params) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return err
	}
	*ps = nil
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*ps = append(*ps, Param{Name: k.(string), Value: v})
	}
	_, err := dec.Token()
	return err
}

// Get returns the value of the named parameter, or nil.
func (ps Params) Get(name string) any {
	for _, p := range ps {
		if p.Name == name {
			return p.Value
		}
	}
	return nil
}

// jsonValue renders durations as their text ("500ms"), as flags take them.
func jsonValue(v any) any {
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	return v
}

// Series is the outcome of one kind of operation.
type Series struct {
	Name   string           `json:"name"`
	OK     int64            `json:"ok"`
	Errors map[string]int64 `json:"errors"`
	// Rate is successes per second over the measured phase; 0 when the series
	// is not a throughput (pushes received, set-up).
	Rate    float64  `json:"rate_per_s,omitempty"`
	Latency *Latency `json:"latency_ms,omitempty"`
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// NewLatency converts a summary to milliseconds; nil when it is empty.
func NewLatency(s stats.Summary) *Latency {
	if s.Count == 0 {
		return nil
	}
	return &Latency{Min: ms(s.Min), Mean: ms(s.Mean), P50: ms(s.P50), P90: ms(s.P90), P99: ms(s.P99), P999: ms(s.P999), Max: ms(s.Max)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// FromSeries reports a stats.Series; with rateOver > 0 it gets a rate.
func FromSeries(s *stats.Series, rateOver time.Duration) Series {
	ok, _ := s.Counts()
	out := Series{Name: s.Name(), OK: ok, Errors: s.Errors(), Latency: NewLatency(s.Latency().Summary())}
	if rateOver > 0 {
		out.Rate = float64(ok) / rateOver.Seconds()
	}
	return out
}

// Figure is one derived number, such as a latency beyond a window.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Check is a consistency check of the run's outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Process is a process's resource use around the run: before it, when the
// measured phase began, and when it ended (before teardown).
type Process struct {
	PID int `json:"pid"`
	// Processes is how many processes the figures add up: the process and
	// its descendants, such as a server's plugins.
	Processes int     `json:"processes"`
	Before    Sample  `json:"before"`
	Measure   *Sample `json:"measure_start,omitempty"`
	After     Sample  `json:"after"`
}

// MeasuredCPU is the CPU time used during the measured phase, if known.
func (p *Process) MeasuredCPU() (float64, bool) {
	if p == nil || p.Measure == nil {
		return 0, false
	}
	return p.After.CPUSeconds - p.Measure.CPUSeconds, true
}

// Sample is a process's resource use at one moment.
type Sample struct {
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_s"`
}

// TotalErrors fills Errors from the series and returns the sum.
func (r *Result) TotalErrors() int64 {
	r.Errors = make(map[string]int64)
	var n int64
	for _, s := range r.Series {
		for kind, c := range s.Errors {
			r.Errors[s.Name+": "+kind] += c
			n += c
		}
	}
	return n
}

// Failed reports whether a check failed or the primary series (if any) had
// no success.
func (r *Result) Failed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return true
		}
	}
	if r.Primary == "" {
		return false
	}
	s := r.SeriesNamed(r.Primary)
	return s == nil || s.OK == 0
}

// SeriesNamed returns the named series, or nil.
func (r *Result) SeriesNamed(name string) *Series {
	for i := range r.Series {
		if r.Series[i].Name == name {
			return &r.Series[i]
		}
	}
	return nil
}

// FigureNamed returns the named figure's value and whether there is one.
func (r *Result) FigureNamed(name string) (float64, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
