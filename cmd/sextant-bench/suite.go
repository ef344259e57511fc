package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/scenario"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/suite"
)

// runSuite runs "suite [flags]": the standard benchmark against fresh
// servers started from a given binary.
func runSuite(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sextant-bench suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("server", "", "the sextant binary to start for each step (required)")
	out := fs.String("out", "reports", "directory for bench.txt, bench.json and the servers' logs")
	profile := fs.String("profile", "short", "steps and sizes: short, full (the figures of BENCHMARKS.md) or smoke")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of text")
	quiet := fs.Bool("quiet", false, "show no progress")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *bin == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "sextant-bench suite: give --server PATH and no other argument")
		return 2
	}
	if _, ok := suite.Profiles[*profile]; !ok {
		fmt.Fprintf(stderr, "sextant-bench suite: unknown profile %q\n", *profile)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "sextant-bench suite: finding this program, to serve the ceiling: %v\n", err)
		return 1
	}
	o := suite.Options{Server: *bin, Out: *out, Profile: *profile, Tool: "sextant-bench " + version,
		Ceiling: []string{self, "serve-ceiling"}}
	if !*quiet {
		o.Log = stderr
		o.Monitor = &scenario.Monitor{}
		defer startProgress(stderr, 5e9, o.Monitor.Line)()
	}
	rep, err := suite.Run(ctx, o)
	if rep != nil {
		var b bytes.Buffer
		if *asJSON {
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			_ = rep.WriteText(&b)
		}
		_, _ = stdout.Write(b.Bytes())
	}
	if err != nil {
		fmt.Fprintf(stderr, "sextant-bench suite: %v\n", err)
		return 1
	}
	return 0
}
