// Command sextant-bench is a load generator for Nacos 2.x naming servers —
// Sextant, Nacos itself, or any server that speaks the Nacos 2.x gRPC wire —
// and the runner of Sextant's benchmark suite. It speaks only the wire (and,
// for the scenarios of 1.x clients, the HTTP Open API), so it reports the
// same figures for any of them.
//
//	sextant-bench register|query|push|churn|visibility|http-register|beats|udp-push|persistent-register --target host:port [flags]
//	sextant-bench suite --server bin/sextant [--out reports] [--profile short|full]
//	sextant-bench serve-ceiling --port P [--hosts N] [--transport grpc|h2]
//	sextant-bench version
//
// Run "sextant-bench SCENARIO -h" for a scenario's flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/progress"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/scenario"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  sextant-bench SCENARIO --target host:port [flags]   run one scenario against a server
  sextant-bench suite --server PATH [flags]           start PATH on free ports, run every scenario, write a report
  sextant-bench serve-ceiling --port P [--hosts N]    serve the Nacos wire with no logic (fixed answers) on P and P+1000,
                                                      on Sextant's gRPC options: the ceiling the suite compares Sextant with
                                                      (--transport h2: on h2serve, the purpose-built HTTP/2 experiment)
  sextant-bench version

scenarios:
  register    C connections register I instances each over S services: throughput and latency
  query       ServiceQueryRequest over a populated registry, closed-loop or at --rate
  push        W subscribers, a provider changes their service: latency to each push, to the last one
  churn       providers come and go while subscribers watch: pushes, and whether the views end right
  visibility  register on one target, subscribe on each: time until a change is visible
  persistent-register  C connections send PersistentInstanceRequests (ephemeral=false, a new
                 address each) through the Raft store: registrations/s, apply latency as seen

  over the HTTP Open API (Nacos 1.x clients):
  http-register  C clients register I instances each over S services (POST /nacos/v1/ns/instance)
  beats          N clients beat every 5 s (PUT /nacos/v1/ns/instance/beat): beats/s, CPU per beat
  udp-push       N subscribers poll instance/list with a udpPort, a writer changes their service:
                 latency to each UDP push, datagrams and acks/s, lost and duplicate pushes

Run "sextant-bench SCENARIO -h" for its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes a command line and returns the exit code: 0 when the run
// completed with every check passing, 1 when a check failed or nothing
// succeeded, 2 for a bad command line, 3 when a run overran its bound.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version":
		fmt.Fprintf(stdout, "sextant-bench %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "suite":
		return runSuite(args[1:], stdout, stderr)
	case "serve-ceiling":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return runCeiling(ctx, args[1:], stdout, stderr)
	}
	inv, err := parseArgs(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sextant-bench: %v\n", err)
		if _, known := scenarios[args[0]]; !known {
			fmt.Fprint(stderr, usage)
		}
		return 2
	}
	pid, why := inv.serverPID()
	inv.common.PID = pid
	inv.common.Monitor = &scenario.Monitor{}
	stop := func() {}
	if !inv.quiet {
		stop = startProgress(stderr, inv.progressEvery, inv.common.Monitor.Line)
	}
	res, ok := runBounded(inv.execute, inv.bound())
	stop()
	if !ok {
		fmt.Fprintf(stderr, "sextant-bench: the run did not end within its bound of %s\n", inv.bound())
		return 3
	}
	if why != "" {
		res.Notes = append(res.Notes, why)
	}
	if err := write(stdout, inv.json, res); err != nil {
		fmt.Fprintf(stderr, "sextant-bench: %v\n", err)
		return 1
	}
	if res.Failed() {
		return 1
	}
	return 0
}

// runBounded runs fn, but gives up on it after bound: a last line of defence,
// as every phase of a run is bounded by itself.
func runBounded(fn func() *report.Result, bound time.Duration) (*report.Result, bool) {
	done := make(chan *report.Result, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case res := <-done:
		return res, true
	case <-t.C:
		return nil, false
	}
}

// startProgress shows progress on w: in place when it is a terminal.
func startProgress(w io.Writer, every time.Duration, status func() string) func() {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = progress.IsTerminal(f)
	}
	if tty {
		every = 250 * time.Millisecond
	}
	return progress.Start(w, tty, every, status)
}

func write(w io.Writer, asJSON bool, results ...*report.Result) error {
	if asJSON {
		return report.WriteJSON(w, results...)
	}
	for i, r := range results {
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		if err := report.WriteText(w, r); err != nil {
			return err
		}
	}
	return nil
}
