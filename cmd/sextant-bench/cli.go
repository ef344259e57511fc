package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/procstat"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/scenario"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
)

// scenarios are the scenarios by name, each with its default duration (the
// bound of its measured phase).
var scenarios = map[string]time.Duration{
	"register":   time.Minute,
	"query":      10 * time.Second,
	"push":       time.Minute,
	"churn":      10 * time.Second,
	"visibility": time.Minute,
	// The HTTP Open API (1.x clients).
	"http-register": time.Minute,
	"beats":         20 * time.Second,
	"udp-push":      time.Minute,
	// PersistentInstanceRequest: registrations through the Raft store.
	"persistent-register": 10 * time.Second,
}

// invocation is a parsed command line of a scenario.
type invocation struct {
	scenario   string
	common     scenario.Common
	register   scenario.RegisterOptions
	query      scenario.QueryOptions
	push       scenario.PushOptions
	churn      scenario.ChurnOptions
	visibility scenario.VisibilityOptions
	httpReg    scenario.HTTPRegisterOptions
	beats      scenario.BeatsOptions
	udpPush    scenario.UDPPushOptions
	persistent scenario.PersistentRegisterOptions

	json          bool
	quiet         bool
	progressEvery time.Duration
	// pid is the server process to sample: 0 finds it by the first target's
	// port when that target is local, -1 samples none.
	pid int
}

// listFlag collects a flag given several times or as a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseArgs reads "SCENARIO [flags]".
func parseArgs(args []string, stderr io.Writer) (*invocation, error) {
	if len(args) == 0 {
		return nil, errors.New("no scenario given")
	}
	name := args[0]
	defaultDuration, ok := scenarios[name]
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q", name)
	}
	inv := &invocation{scenario: name}
	c := &inv.common
	fs := flag.NewFlagSet("sextant-bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)

	var targets listFlag
	var grpcPort int
	fs.Var(&targets, "target", "server HTTP address host:port; repeat (or separate by commas) for a cluster")
	fs.IntVar(&grpcPort, "grpc-port", 0, "client gRPC port of the targets (default: HTTP port + 1000)")
	fs.DurationVar(&c.Duration, "duration", defaultDuration, "bound of the measured phase")
	fs.Int64Var(&c.Count, "count", 0, "operations to measure (0: the scenario's default, or until --duration)")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "operations in flight at once")
	fs.Float64Var(&c.Rate, "rate", 0, "operations per second on an open-loop schedule (0: as fast as they complete)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "run operations this long before measuring")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the run's random choices")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Second, "bound of each request")
	fs.DurationVar(&c.SetupTimeout, "setup-timeout", time.Minute, "bound of connecting and populating")
	fs.DurationVar(&c.Grace, "grace", 10*time.Second, "bound of waiting for what is in flight after the measured phase")
	fs.DurationVar(&c.HealthInterval, "health-interval", 5*time.Second, "idle time before a connection sends a health check (0: none)")
	fs.StringVar(&c.Namespace, "namespace", "public", "namespace of the services")
	fs.StringVar(&c.Group, "group", "DEFAULT_GROUP", "group of the services")
	fs.StringVar(&c.Prefix, "prefix", "", "start of every service name (default: bench- and a random suffix)")
	fs.StringVar(&c.ClientVersion, "client-version", "sextant-bench/"+version, "client version announced in the connection setup")
	fs.IntVar(&inv.pid, "pid", 0, "server process to sample in /proc (0: the process listening on the target's port, if local; -1: none)")
	fs.BoolVar(&inv.json, "json", false, "write the result as JSON")
	fs.BoolVar(&inv.quiet, "quiet", false, "show no progress")
	fs.DurationVar(&inv.progressEvery, "progress-interval", 5*time.Second, "interval of progress lines when stderr is not a terminal")

	switch name {
	case "register":
		fs.IntVar(&inv.register.Connections, "connections", 100, "client connections")
		fs.IntVar(&inv.register.Instances, "instances", 10, "instances each connection registers (each in its own service)")
		fs.IntVar(&inv.register.Services, "services", 100, "services the instances are spread over")
		fs.DurationVar(&inv.register.Hold, "hold", 0, "keep the connections and their instances this long after the check")
		fs.BoolVar(&inv.register.SkipCheck, "skip-check", false, "do not query every service at the end to check the registry (for a server that keeps none, as serve-ceiling)")
	case "query":
		fs.IntVar(&inv.query.Connections, "connections", 16, "connections that query")
		fs.IntVar(&inv.query.Services, "services", 100, "services in the registry")
		fs.IntVar(&inv.query.Instances, "instances", 10, "instances per service (one provider connection each)")
		fs.IntVar(&inv.query.VerifyEvery, "verify-every", 64, "decode and check every n-th answer in full")
	case "push":
		fs.IntVar(&inv.push.Subscribers, "subscribers", 100, "subscriber connections")
		fs.IntVar(&inv.push.Services, "services", 1, "services the subscribers are spread over")
		fs.DurationVar(&inv.push.MergeWindow, "merge-window", 500*time.Millisecond, "the server's push merge window, as configured there (reported)")
		fs.DurationVar(&inv.push.Interval, "interval", 0, "pause between rounds")
	case "churn":
		fs.IntVar(&inv.churn.Providers, "providers", 50, "provider connections, each with an instance that comes and goes")
		fs.IntVar(&inv.churn.Subscribers, "subscribers", 10, "subscriber connections, each watching every service")
		fs.IntVar(&inv.churn.Services, "services", 5, "services the providers are spread over")
	case "visibility":
		fs.DurationVar(&inv.visibility.MergeWindow, "merge-window", 500*time.Millisecond, "the servers' push merge window, as configured there (reported)")
		fs.DurationVar(&inv.visibility.Interval, "interval", 0, "pause between rounds")
	case "http-register":
		fs.IntVar(&inv.httpReg.Clients, "clients", 100, "HTTP clients (instance addresses ip:port); --concurrency keep-alive connections carry them")
		fs.IntVar(&inv.httpReg.Instances, "instances", 10, "instances each client registers (each in its own service)")
		fs.IntVar(&inv.httpReg.Services, "services", 100, "services the instances are spread over")
	case "beats":
		fs.IntVar(&inv.beats.Clients, "clients", 1000, "1.x clients, each beating for one instance; the rate is --clients / --interval")
		fs.IntVar(&inv.beats.Services, "services", 100, "services the instances are spread over")
		fs.DurationVar(&inv.beats.Interval, "interval", 5*time.Second, "each client's beat interval")
		fs.BoolVar(&inv.beats.FullBeats, "full-beats", false, "send the beat JSON with every beat (nacos-sdk-go v1), not only until the server enables light beats (Java SDK)")
	case "udp-push":
		fs.IntVar(&inv.udpPush.Subscribers, "subscribers", 100, "UDP subscribers, each a socket of its own that polls instance/list with its udpPort")
		fs.DurationVar(&inv.udpPush.MergeWindow, "merge-window", 500*time.Millisecond, "the server's push merge window, as configured there (reported)")
		fs.DurationVar(&inv.udpPush.Interval, "interval", 0, "pause between rounds")
		fs.DurationVar(&inv.udpPush.Repoll, "repoll", 5*time.Second, "how often each subscriber polls again to stay subscribed; below the server's push.udp.expiry (10s)")
		fs.StringVar(&inv.udpPush.Writer, "writer", scenario.WriterGRPC, "how the changes are made: grpc (a connection moves its instance) or http (the v1 API re-registers it with a new weight)")
		fs.StringVar(&inv.udpPush.ClientIP, "client-ip", "", "IPv4 address the subscribers listen on and announce as clientIP (default: the one this host reaches the target from)")
	case "persistent-register":
		fs.IntVar(&inv.persistent.Connections, "connections", 16, "client connections, each with one registration in flight (--concurrency defaults to this)")
		fs.IntVar(&inv.persistent.Services, "services", 100, "services the instances are spread over")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if name == "persistent-register" {
		concurrencySet := false
		fs.Visit(func(f *flag.Flag) { concurrencySet = concurrencySet || f.Name == "concurrency" })
		if !concurrencySet {
			c.Concurrency = inv.persistent.Connections
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.Targets, err = target.Parse(targets, grpcPort); err != nil {
		return nil, err
	}
	if c.Prefix == "" {
		c.Prefix = randomPrefix()
	}
	if inv.progressEvery <= 0 {
		return nil, fmt.Errorf("--progress-interval must be positive, got %s", inv.progressEvery)
	}
	if inv.pid < -1 {
		return nil, fmt.Errorf("--pid %d is not a process id", inv.pid)
	}
	return inv, errors.Join(c.Validate(), inv.validate())
}

func (inv *invocation) validate() error {
	switch inv.scenario {
	case "register":
		return inv.register.Validate()
	case "query":
		return inv.query.Validate()
	case "push":
		return inv.push.Validate()
	case "churn":
		return inv.churn.Validate()
	case "http-register":
		return inv.httpReg.Validate()
	case "udp-push":
		return inv.udpPush.Validate()
	case "persistent-register":
		return inv.persistent.Validate()
	case "beats":
		if inv.common.Rate != 0 {
			return fmt.Errorf("--rate does not apply to beats: their rate is --clients / --interval")
		}
		return inv.beats.Validate()
	default:
		return inv.visibility.Validate()
	}
}

// execute runs the scenario.
func (inv *invocation) execute() *report.Result {
	c, tool := &inv.common, "sextant-bench "+version
	switch inv.scenario {
	case "register":
		return scenario.Register(c, inv.register, tool)
	case "query":
		return scenario.Query(c, inv.query, tool)
	case "push":
		return scenario.Push(c, inv.push, tool)
	case "churn":
		return scenario.Churn(c, inv.churn, tool)
	case "http-register":
		return scenario.HTTPRegister(c, inv.httpReg, tool)
	case "beats":
		return scenario.Beats(c, inv.beats, tool)
	case "udp-push":
		return scenario.UDPPush(c, inv.udpPush, tool)
	case "persistent-register":
		return scenario.PersistentRegister(c, inv.persistent, tool)
	default:
		return scenario.Visibility(c, inv.visibility, tool)
	}
}

// bound is how long the run may take at most, teardown included.
func (inv *invocation) bound() time.Duration {
	c := inv.common
	return c.SetupTimeout + c.Warmup + 2*inv.beats.Interval + c.Duration + 2*c.Grace + c.Timeout + inv.register.Hold
}

// serverPID resolves --pid: the process listening on the first target's
// HTTP port when it is a local address. It returns 0 and why when there is
// none to sample.
func (inv *invocation) serverPID() (int, string) {
	switch {
	case inv.pid > 0:
		return inv.pid, ""
	case inv.pid < 0:
		return 0, ""
	}
	addr := inv.common.Targets[0].HTTP
	host, _, _ := net.SplitHostPort(addr)
	if !isLocal(host) {
		return 0, fmt.Sprintf("target %s is not local: its process is not sampled (give --pid if it is)", addr)
	}
	pid, err := procstat.FindListener("/proc", target.Port(addr))
	if err != nil {
		return 0, fmt.Sprintf("server process not sampled: %v", err)
	}
	return pid, ""
}

// isLocal reports whether host names this machine.
func isLocal(host string) bool {
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	addrs, _ := net.InterfaceAddrs()
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return true
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// randomPrefix returns a service name prefix of its own for a run, so that
// runs against the same server do not see each other's services.
func randomPrefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "bench-" + hex.EncodeToString(b)
}
