package suite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
)

// write saves the report as bench.txt and bench.json in dir.
func (rep *Report) write(dir string) error {
	var txt bytes.Buffer
	if err := rep.WriteText(&txt); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.txt"), txt.Bytes(), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "bench.json"), append(js, '\n'), 0o644)
}

// WriteText writes the headlines, then every result in full.
func (rep *Report) WriteText(w *bytes.Buffer) error {
	m := rep.Machine
	fmt.Fprintf(w, "sextant benchmark suite, profile %s\n", rep.Profile)
	fmt.Fprintf(w, "server   %s\n", rep.Server)
	fmt.Fprintf(w, "machine  %s, %d cores, %d MB, Linux %s, %s\n\n", m.CPU, m.Cores, m.MemoryMB, m.Kernel, m.Go)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(rep.Ceiling) > 0 {
		fmt.Fprintln(w, "Sextant ÷ ceiling (the same gRPC wire with no logic), measured in this run:")
		fmt.Fprintln(tw, "scenario\tSextant /s\tceiling /s\tthroughput ratio\tSextant CPU µs/req\tceiling CPU µs/req\tCPU ratio\tserver's own µs/req")
		for _, r := range rep.Ceiling {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.1f\t%.1f\t%.2f\t%.1f\n", r.Scenario, r.SextantRate, r.CeilingRate, r.Throughput,
				r.SextantCPU, r.CeilingCPU, r.CPUPerRequest, r.OwnCPU)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(tw, "figure\tvalue\tstep")
	for _, h := range rep.Headlines {
		fmt.Fprintf(tw, "%s\t%s %s\t%s\n", h.Name, strconv.FormatFloat(h.Value, 'f', 2, 64), h.Unit, h.Step)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
	for _, r := range rep.Results {
		fmt.Fprintf(w, "\n--- step %s\n", r.Label)
		if err := report.WriteText(w, r); err != nil {
			return err
		}
	}
	return nil
}
