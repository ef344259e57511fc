package healthcheck

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/naming"
)

func TestMain(m *testing.M) {
	if os.Getenv(listenerProcessEnv) != "" {
		serveListenerProcess() // the benchmark's listeners, in a process of their own
		return
	}
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen promptly.
const waitTimeout = 10 * time.Second

// eventually polls cond until it holds, failing the test if it does not in
// time.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

var (
	svcA = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "a"}
	svcB = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "b"}
)

// report is one call of Config.Report.
type report struct {
	svc     naming.Service
	addr    Address
	healthy bool
}

// store plays the Raft store: it lists targets, and applies the reports
// (unless fail says no).
type store struct {
	mu      sync.Mutex
	targets []Target
	fail    func(report) error // nil: every report applies

	calls   atomic.Int64
	reports chan report // every applied report
}

func newStore(targets ...Target) *store {
	return &store{targets: targets, reports: make(chan report, 4096)}
}

func (s *store) Targets() []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Target(nil), s.targets...)
}

func (s *store) set(targets ...Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = targets
}

func (s *store) Report(_ context.Context, svc naming.Service, addr Address, healthy bool) error {
	s.calls.Add(1)
	r := report{svc, addr, healthy}
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(r); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for i := range s.targets {
		if s.targets[i].Service == svc && s.targets[i].Address == addr {
			s.targets[i].Healthy = healthy
		}
	}
	s.mu.Unlock()
	s.reports <- r
	return nil
}

// healthy returns the stored health of the target at addr of svc.
func (s *store) healthy(t testing.TB, svc naming.Service, addr Address) bool {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tg := range s.targets {
		if tg.Service == svc && tg.Address == addr {
			return tg.Healthy
		}
	}
	t.Fatalf("no target %v %v", svc, addr)
	return false
}

// next returns the next applied report.
func (s *store) next(t testing.TB) report {
	t.Helper()
	select {
	case r := <-s.reports:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("no report")
		return report{}
	}
}

// start builds a scheduler of st with cfg and starts it; it stops at the
// end of the test.
func start(t testing.TB, st *store, cfg Config) *Scheduler {
	t.Helper()
	s := build(t, st, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func build(t testing.TB, st *store, cfg Config) *Scheduler {
	t.Helper()
	cfg.Targets, cfg.Report = st.Targets, st.Report
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tcpServer accepts connections on 127.0.0.1 and closes them; stop closes
// the listener.
type tcpServer struct {
	ln      net.Listener
	done    chan struct{}
	accepts atomic.Int64
}

func listenTCP(t testing.TB, addr string) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *tcpServer) stop() {
	_ = s.ln.Close()
	<-s.done
}

// address returns the server's address as a target's.
func (s *tcpServer) address(cluster string) Address {
	a := s.ln.Addr().(*net.TCPAddr)
	return Address{IP: a.IP.String(), Port: a.Port, Cluster: cluster}
}

// closedPort returns a port of 127.0.0.1 where nothing listens.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

func gauge(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// checks returns the checks of type typ (typeIndexTCP, typeIndexHTTP) with
// outcome o so far.
func checks(t testing.TB, s *Scheduler, typ int, o outcome) float64 {
	t.Helper()
	return metrictest.CounterValue(t, s.m.checks[typ][o])
}

// allChecks counts every check so far.
func allChecks(t testing.TB, s *Scheduler) float64 {
	t.Helper()
	var n float64
	for typ := range numTypes {
		for o := range numOutcomes {
			n += checks(t, s, typ, o)
		}
	}
	return n
}

// logBuffer collects log output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns the number of lines containing substr.
func (l *logBuffer) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), substr)
}

func newLogger(level hclog.Level) (hclog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: level}), buf
}

// gatedDial is a Dial whose calls for the addresses in block wait for a
// token on release (or the end of their context); the others dial for real.
// It counts the calls per address.
type gatedDial struct {
	mu      sync.Mutex
	calls   map[string]int
	block   map[string]bool
	release chan error // the token: nil connects (to a pipe), else the error returned
	entered chan string
}

func newGatedDial(block ...string) *gatedDial {
	g := &gatedDial{calls: map[string]int{}, block: map[string]bool{}, release: make(chan error),
		entered: make(chan string, 1024)}
	for _, a := range block {
		g.block[a] = true
	}
	return g
}

func (g *gatedDial) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	g.mu.Lock()
	g.calls[addr]++
	blocked := g.block[addr]
	g.mu.Unlock()
	if !blocked {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	g.entered <- addr
	select {
	case err := <-g.release:
		if err != nil {
			return nil, err
		}
		a, b := net.Pipe()
		_ = b.Close()
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gatedDial) count(addr string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[addr]
}

var errNoQuorum = errors.New("raft: no quorum")
