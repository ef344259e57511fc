package healthcheck

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/naming"
)

// listenerProcessEnv, set to a number N, makes the test binary a listener
// process: it listens on N ports of 127.0.0.1, prints them on a line,
// accepts and closes connections, and exits when its stdin closes. The
// benchmarks' targets live there, so that the CPU they measure is the
// checker's alone (save the loopback's kernel work, which is charged to
// whichever side runs it).
const listenerProcessEnv = "SEXTANT_HEALTHCHECK_LISTENERS"

func serveListenerProcess() {
	n, err := strconv.Atoi(os.Getenv(listenerProcessEnv))
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "bad", listenerProcessEnv)
		os.Exit(2)
	}
	ports := make([]string, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ports[i] = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					continue
				}
				_ = c.Close()
			}
		}()
	}
	fmt.Println(strings.Join(ports, ","))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark closes it
	os.Exit(0)
}

// startListenerProcess runs a listener process with n ports and returns
// them; it ends with the benchmark.
func startListenerProcess(b *testing.B, n int) []int {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), listenerProcessEnv+"="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("listener process: %v", err)
	}
	var ports []int
	for f := range strings.SplitSeq(strings.TrimSpace(line), ",") {
		p, err := strconv.Atoi(f)
		if err != nil {
			b.Fatalf("listener process said %q", line)
		}
		ports = append(ports, p)
	}
	return ports
}

// benchTargets returns n healthy TCP targets spread over ports: 10
// instances per service, each its own cluster.
func benchTargets(n int, ports []int) []Target {
	targets := make([]Target, n)
	for i := range targets {
		targets[i] = Target{
			Service: naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "svc-" + strconv.Itoa(i/10)},
			Address: Address{IP: "127.0.0.1", Port: ports[i%len(ports)], Cluster: "c" + strconv.Itoa(i)},
			Healthy: true,
		}
	}
	return targets
}

// cpuTime returns the CPU time this process used so far, in user and
// system mode.
func cpuTime(b *testing.B) (user, sys time.Duration) {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// cpuMeter measures the CPU time of rounds.
type cpuMeter struct{ user, sys time.Duration }

func startCPU(b *testing.B) cpuMeter {
	u, s := cpuTime(b)
	return cpuMeter{u, s}
}

// report reports the CPU time per round (user, system, and both), and the
// share of a core both are at one round per DefaultInterval.
func (m cpuMeter) report(b *testing.B, rounds int) {
	u, s := cpuTime(b)
	user, sys := (u-m.user)/time.Duration(rounds), (s-m.sys)/time.Duration(rounds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(user), "user-ms/round")
	b.ReportMetric(ms(sys), "sys-ms/round")
	b.ReportMetric(ms(user+sys), "cpu-ms/round")
	b.ReportMetric(100*float64(user+sys)/float64(DefaultInterval), "%core@5s")
}

const benchTargetCount = 10000

// BenchmarkRound10k: one full round of 10,000 TCP targets (healthy: every
// check connects), 1,000 services, on 8 listening ports of another process,
// with the default 128 workers, every check started at once (checkNow, no
// spreading). ns/op is the round's wall time; cpu-ms/round this process's
// CPU per round (getrusage), %core@5s that CPU at one round per 5 s.
func BenchmarkRound10k(b *testing.B) {
	ports := startListenerProcess(b, 8)
	st := newStore(benchTargets(benchTargetCount, ports)...)
	s := build(b, st, Config{TCPTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	s.startWorkers(ctx, &wg)
	defer func() {
		cancel()
		wg.Wait()
	}()
	s.checkNow(ctx) // warm up
	cpu, rounds := startCPU(b), 0
	for b.Loop() {
		s.checkNow(ctx)
		rounds++
	}
	cpu.report(b, rounds)
	if ok := checks(b, s, typeIndexTCP, outcomeSuccess); ok != float64(benchTargetCount*(rounds+1)) || st.calls.Load() != 0 {
		b.Fatalf("%v successful checks in %d rounds of %d, %d reports", ok, rounds+1, benchTargetCount, st.calls.Load())
	}
}

// BenchmarkScheduled10k: the running scheduler, as in production, over
// 10,000 TCP targets as in BenchmarkRound10k, at the default 5 s interval
// (the checks spread over it); an op is one round, so 5 s. cpu-ms/round is
// this process's CPU per round, Targets' copy of the 10,000 included.
func BenchmarkScheduled10k(b *testing.B) {
	ports := startListenerProcess(b, 8)
	st := newStore(benchTargets(benchTargetCount, ports)...)
	var dials atomic.Int64
	roundDone := make(chan struct{}, 64)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1)%benchTargetCount == 0 {
			roundDone <- struct{}{}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	s := start(b, st, Config{TCPTimeout: 5 * time.Second, Dial: dial})
	<-roundDone // the first round, to warm up
	cpu, rounds := startCPU(b), 0
	for b.Loop() {
		<-roundDone
		rounds++
	}
	cpu.report(b, rounds)
	if n := metrictest.CounterValue(b, s.m.late); n != 0 {
		b.Errorf("%v late rounds", n)
	}
}
