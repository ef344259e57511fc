package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes results as indented JSON: one object, or an array when
// there are several.
func WriteJSON(w io.Writer, results ...*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if len(results) == 1 {
		return enc.Encode(results[0])
	}
	return enc.Encode(results)
}

// WriteText writes r as a table for people.
func WriteText(w io.Writer, r *Result) error {
	p := &printer{w: w}
	p.f("== %s  (%s, started %s)\n", r.Scenario, r.Tool, r.Started.Format(time.RFC3339))
	for _, t := range r.Targets {
		p.f("target   %s  (gRPC %s, version %s)\n", t.HTTP, t.GRPC, t.Version)
	}
	var params []string
	for _, pa := range r.Params {
		params = append(params, pa.Name+"="+formatValue(pa.Value))
	}
	p.f("params   %s\n", strings.Join(params, " "))
	p.f("time     %.2fs measured, %.2fs in all\n\n", r.MeasuredSeconds, r.ElapsedSeconds)

	if err := writeSeries(w, r.Series); err != nil {
		return err
	}

	if len(r.Figures) > 0 {
		p.f("\nfigures\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range r.Figures {
			decimals := 2
			if f.Value == math.Trunc(f.Value) {
				decimals = 0
			}
			fmt.Fprintf(tw, "  %s\t%s %s\n", f.Name, thousands(f.Value, decimals), f.Unit)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Checks) > 0 {
		p.f("\nchecks\n")
		for _, c := range r.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			p.f("  %s  %s: %s\n", mark, c.Name, c.Detail)
		}
	}
	if len(r.Errors) > 0 {
		p.f("\nerrors\n")
		for _, k := range sortedKeys(r.Errors) {
			p.f("  %-50s %d\n", k, r.Errors[k])
		}
	}
	for _, pr := range []struct {
		what string
		p    *Process
	}{{"server", r.Process}, {"load generator", r.Generator}} {
		if pr.p == nil {
			continue
		}
		used := pr.p.After.CPUSeconds - pr.p.Before.CPUSeconds
		p.f("\n%s process %d", pr.what, pr.p.PID)
		if n := pr.p.Processes - 1; n > 0 {
			p.f(" and %d below it, added up", n)
		}
		p.f("\n  RSS  %s -> %s\n", mib(pr.p.Before.RSSBytes), mib(pr.p.After.RSSBytes))
		p.f("  CPU  %.2fs -> %.2fs (%.2fs used", pr.p.Before.CPUSeconds, pr.p.After.CPUSeconds, used)
		if m, ok := pr.p.MeasuredCPU(); ok && r.MeasuredSeconds > 0 {
			p.f("; %.2fs in the measured phase, %.0f%% of one core", m, 100*m/r.MeasuredSeconds)
		}
		p.f(")\n")
	}
	for _, n := range r.Notes {
		p.f("note: %s\n", n)
	}
	return p.err
}

// writeSeries writes the series as a table; nothing when there are none.
func writeSeries(w io.Writer, series []Series) error {
	if len(series) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "series\tok\terrors\trate/s\tmin ms\tp50\tp90\tp99\tp99.9\tmax\tmean\t")
	for _, s := range series {
		var errs int64
		for _, n := range s.Errors {
			errs += n
		}
		rate := "-"
		if s.Rate > 0 {
			rate = thousands(s.Rate, 1)
		}
		cols := []string{s.Name, thousands(float64(s.OK), 0), thousands(float64(errs), 0), rate}
		if l := s.Latency; l != nil {
			for _, v := range []float64{l.Min, l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean} {
				cols = append(cols, strconv.FormatFloat(v, 'f', 2, 64))
			}
		} else {
			cols = append(cols, "-", "-", "-", "-", "-", "-", "-")
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	return tw.Flush()
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func formatValue(v any) string {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		if x == "" {
			return `""`
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// thousands formats v with the given decimals and commas between thousands.
func thousands(v float64, decimals int) string {
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteString("." + frac)
	}
	return sign + b.String()
}
