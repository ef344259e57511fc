package suite

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sextantd/sextant/cmd/internal/sextantproc"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
)

// ceilingPrefix starts the label of a step run against the ceiling; the rest
// is the label of the step against Sextant it is compared with.
const ceilingPrefix = "ceiling-"

// ceilingProcess is a running "sextant-bench serve-ceiling".
type ceilingProcess struct {
	port    int
	cmd     *exec.Cmd
	logs    strings.Builder // written by the process until exited is closed
	exited  chan struct{}
	exitErr error
}

// startCeiling runs command (the ceiling server's program and arguments,
// before its flags) on free ports, answering queries with hosts instances,
// and waits until it is ready.
func startCeiling(command []string, hosts int) (*ceilingProcess, error) {
	if len(command) == 0 {
		return nil, fmt.Errorf("no command to run the ceiling server with")
	}
	var err error
	for range 4 { // free ports taken meanwhile by someone else are chosen again
		var ports []int
		if ports, err = sextantproc.FreePorts(1); err != nil {
			return nil, err
		}
		var c *ceilingProcess
		if c, err = tryCeiling(command, ports[0], hosts); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func tryCeiling(command []string, port, hosts int) (*ceilingProcess, error) {
	c := &ceilingProcess{port: port, exited: make(chan struct{})}
	args := append(command[1:len(command):len(command)], "--port", strconv.Itoa(port), "--hosts", strconv.Itoa(hosts))
	c.cmd = exec.Command(command[0], args...)
	c.cmd.Stdout, c.cmd.Stderr = &c.logs, &c.logs
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the ceiling server: %w", err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		close(c.exited)
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(sextantproc.StartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return nil, fmt.Errorf("the ceiling server exited before it was ready: %v\n%s", c.exitErr, c.logs.String())
		default:
		}
		if resp, err := client.Get("http://" + c.HTTPAddr() + "/nacos/v1/console/health/readiness"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	return nil, fmt.Errorf("the ceiling server was not ready within %v", sextantproc.StartTimeout)
}

func (c *ceilingProcess) HTTPAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
}

func (c *ceilingProcess) GRPCAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port+target.GRPCOffset))
}

func (c *ceilingProcess) PID() int { return c.cmd.Process.Pid }

// Logs is what the process wrote; only once it has exited.
func (c *ceilingProcess) Logs() []byte {
	select {
	case <-c.exited:
		return []byte(c.logs.String())
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for the exit, killing the process after
// sextantproc.StopTimeout.
func (c *ceilingProcess) stop() error {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-c.exited:
		return c.exitErr
	case <-time.After(sextantproc.StopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("the ceiling server did not exit within %v of SIGTERM", sextantproc.StopTimeout)
	}
}

// Ratio compares Sextant with the ceiling on one scenario of the same run:
// throughput (Sextant ÷ ceiling: 1 at best) and server CPU per request
// (Sextant ÷ ceiling: 1 at best). OwnCPU is the difference of the CPU per
// request, the server's own work.
type Ratio struct {
	Scenario      string  `json:"scenario"`
	SextantStep   string  `json:"sextant_step"`
	CeilingStep   string  `json:"ceiling_step"`
	SextantRate   float64 `json:"sextant_per_s"`
	CeilingRate   float64 `json:"ceiling_per_s"`
	Throughput    float64 `json:"throughput_ratio"`
	SextantCPU    float64 `json:"sextant_cpu_us"`
	CeilingCPU    float64 `json:"ceiling_cpu_us"`
	CPUPerRequest float64 `json:"cpu_per_request_ratio"`
	OwnCPU        float64 `json:"own_cpu_us"`
}

// ratios pairs every step run against the ceiling with the step of the same
// name against Sextant.
func ratios(results []*report.Result) []Ratio {
	var out []Ratio
	for _, c := range results {
		name, ok := strings.CutPrefix(c.Label, ceilingPrefix)
		if !ok {
			continue
		}
		for _, s := range results {
			if s.Label != name || s.Scenario != c.Scenario {
				continue
			}
			r := Ratio{Scenario: s.Scenario, SextantStep: s.Label, CeilingStep: c.Label}
			r.SextantRate, r.SextantCPU = rateAndCPU(s)
			r.CeilingRate, r.CeilingCPU = rateAndCPU(c)
			if r.CeilingRate > 0 {
				r.Throughput = r.SextantRate / r.CeilingRate
			}
			if r.CeilingCPU > 0 {
				r.CPUPerRequest = r.SextantCPU / r.CeilingCPU
			}
			if r.SextantCPU > 0 && r.CeilingCPU > 0 {
				r.OwnCPU = r.SextantCPU - r.CeilingCPU
			}
			out = append(out, r)
		}
	}
	return out
}

// rateAndCPU returns a result's throughput of its primary series and the
// server CPU per operation of it (0 when not measured).
func rateAndCPU(r *report.Result) (rate, cpu float64) {
	if s := r.SeriesNamed(r.Primary); s != nil {
		rate = s.Rate
	}
	cpu, _ = r.FigureNamed("server CPU per " + r.Primary)
	return rate, cpu
}
