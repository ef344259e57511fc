package remote

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// limitTimeout bounds every wait in the limit tests.
const limitTimeout = 10 * time.Second

// newLimitServer returns a server that is not listening, with cfg changed by
// change, and the registry its metrics are in.
func newLimitServer(t *testing.T, change func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		MaxMessageSize: 1 << 20,
		IdleTimeout:    time.Minute,
		DetectInterval: time.Minute,
		DetectTimeout:  time.Minute,
		Registry: naming.NewRegistry(naming.Config{
			Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10},
			Bus:    notify.New(notify.Config{}),
		}),
		Logger:  hclog.NewNullLogger(),
		Metrics: reg,
	}
	if change != nil {
		change(&cfg)
	}
	s := New(cfg)
	s.SetReady(true)
	return s, reg
}

// metricValue returns the value of the counter or gauge name whose labels
// include labels (name=value pairs), or 0 if there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// stuckWriter is a stream whose Send blocks, as on a client that stopped
// reading, until the client reads again (release) or the connection is
// closed.
type stuckWriter struct {
	started  chan *nacos.Payload // every write, as it starts
	released chan struct{}
	closed   chan struct{}
	once     sync.Once
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{
		started:  make(chan *nacos.Payload, outboundQueue),
		released: make(chan struct{}),
		closed:   make(chan struct{}),
	}
}

func (w *stuckWriter) write(m serveropts.Message) error {
	w.started <- decoded(m)
	select {
	case <-w.released:
		return nil
	case <-w.closed:
		return errors.New("connection closed")
	}
}

// release makes the client read again: every write completes.
func (w *stuckWriter) release() { close(w.released) }

// close is the TCP connection closing: a blocked write fails.
func (w *stuckWriter) close() { w.once.Do(func() { close(w.closed) }) }

// next returns the write that started next.
func (w *stuckWriter) next(t *testing.T) *nacos.Payload {
	t.Helper()
	select {
	case p := <-w.started:
		return p
	case <-time.After(limitTimeout):
		t.Fatal("no write started")
		return nil
	}
}

// stuckConn returns a connection of s, set up, whose stream blocks every write.
// A limit that closes it goes through s.dropConn, as on a real stream.
func stuckConn(t *testing.T, s *Server, id string) (*conn, *stuckWriter) {
	t.Helper()
	w := newStuckWriter()
	var c *conn
	c = s.newStreamConn(id, "", w.write, func(err error) {
		s.dropConn(c, err)
		w.close()
	})
	if err := s.register(c, []byte(`{"clientVersion":"test"}`)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.close()
		c.close()
		s.unregister(c)
	})
	return c, w
}

// sized returns a payload whose encoded size is about n bytes.
func sized(typ string, n int) *nacos.Payload {
	return &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(strings.Repeat("x", n))}}
}

// notifyBody is a NotifySubscriberRequest body for service name with the cluster filter.
func notifyBody(name, clusters string, hosts int) []byte {
	return fmt.Appendf(nil, `{"module":"naming","namespace":"public","serviceName":%q,"groupName":"DEFAULT_GROUP",`+
		`"serviceInfo":{"name":%q,"groupName":"DEFAULT_GROUP","clusters":%q,"cacheMillis":10000,"hosts":[%s],"lastRefTime":1}}`,
		name, name, clusters, strings.TrimSuffix(strings.Repeat(`{"ip":"10.0.0.1","port":80},`, hosts), ","))
}

func TestCoalesceKey(t *testing.T) {
	a := coalesceKey(typeNotifySubscriber, notifyBody("a", "", 1000))
	if a == "" {
		t.Fatal("a NotifySubscriberRequest has no coalescing key")
	}
	if again := coalesceKey(typeNotifySubscriber, notifyBody("a", "", 0)); again != a {
		t.Errorf("two pushes of one service and filter have keys %q and %q", a, again)
	}
	for what, body := range map[string][]byte{
		"another service": notifyBody("b", "", 1),
		"another filter":  notifyBody("a", "c1", 1),
		"another group":   []byte(`{"module":"naming","namespace":"public","serviceName":"a","groupName":"g2","serviceInfo":{"name":"a","groupName":"g2","clusters":""}}`),
		"another ns":      []byte(`{"module":"naming","namespace":"dev","serviceName":"a","groupName":"DEFAULT_GROUP","serviceInfo":{"name":"a","groupName":"DEFAULT_GROUP","clusters":""}}`),
	} {
		if k := coalesceKey(typeNotifySubscriber, body); k == a || k == "" {
			t.Errorf("%s: key %q (the first service's is %q)", what, k, a)
		}
	}
	for what, body := range map[string][]byte{
		"no clusters":  []byte(`{"serviceName":"a","groupName":"g","serviceInfo":{"name":"a","hosts":[]}}`),
		"no service":   []byte(`{"groupName":"g","serviceInfo":{"clusters":""}}`),
		"not JSON":     []byte(`{"serviceName":`),
		"not a object": []byte(`[]`),
	} {
		if k := coalesceKey(typeNotifySubscriber, body); k != "" {
			t.Errorf("%s: key %q, want none", what, k)
		}
	}
	if k := coalesceKey(typeClientDetection, notifyBody("a", "", 1)); k != "" {
		t.Errorf("a ClientDetectionRequest has the key %q, want none", k)
	}
}

// TestOutboundBudget checks the byte budget of a connection's queue: within
// it requests queue; one over it closes the connection, fails everything
// queued and is counted; a message larger than the budget is accepted when
// nothing else is queued.
func TestOutboundBudget(t *testing.T) {
	s, reg := newLimitServer(t, func(c *Config) { c.MaxOutboundBytes = 1000 })
	c, w := stuckConn(t, s, "budget")
	now := time.Now()

	if _, err := c.send("R", "1", sized("R", 5000), now); err != nil {
		t.Fatal(err)
	}
	w.next(t) // being written: not counted against the budget
	first, err := c.send("R", "2", sized("R", 400), now)
	if err != nil {
		t.Fatalf("a request within the budget: %v", err)
	}
	if _, err := c.send("R", "3", sized("R", 400), now); err != nil {
		t.Fatalf("a second request within the budget: %v", err)
	}
	if got := metricValue(t, reg, "sextant_remote_outbound_queued_bytes"); got < 5800 {
		t.Errorf("queued bytes gauge %v, want the 800 queued and the 5000 being written", got)
	}
	_, err = c.send("R", "4", sized("R", 400), now)
	if !errors.Is(err, errOutboundBudget) {
		t.Fatalf("a request over the budget: %v, want %v", err, errOutboundBudget)
	}
	select {
	case err := <-first.result:
		if !errors.Is(err, errConnectionClosed) || !errors.Is(err, errOutboundBudget) {
			t.Errorf("a queued request got %v, want %v for %v", err, errConnectionClosed, errOutboundBudget)
		}
	case <-time.After(limitTimeout):
		t.Fatal("a request queued on a connection closed for its budget never failed")
	}
	if _, err := c.send("R", "5", sized("R", 1), now); !errors.Is(err, errConnectionClosed) {
		t.Errorf("a send after the close: %v, want %v", err, errConnectionClosed)
	}
	if got := metricValue(t, reg, "sextant_remote_connections_closed_total", "reason", "outbound_budget"); got != 1 {
		t.Errorf("closed for the budget: counted %v, want 1", got)
	}
	c.close() // the stream ends once the TCP connection is closed
	if got := metricValue(t, reg, "sextant_remote_outbound_queued_bytes"); got != 0 {
		t.Errorf("queued bytes gauge %v after the close, want 0", got)
	}

	// A message larger than the whole budget, on an otherwise empty queue.
	big, w2 := stuckConn(t, s, "big")
	if _, err := big.send("R", "1", sized("R", 10), now); err != nil {
		t.Fatal(err)
	}
	w2.next(t)
	if _, err := big.send("R", "2", sized("R", 5000), now); err != nil {
		t.Fatalf("a message over the budget on an empty queue: %v, want it accepted", err)
	}
	if _, err := big.send("R", "3", sized("R", 10), now); !errors.Is(err, errOutboundBudget) {
		t.Fatalf("a message behind one over the budget: %v, want %v", err, errOutboundBudget)
	}
	if got := metricValue(t, reg, "sextant_remote_connections_closed_total", "reason", "outbound_budget"); got != 2 {
		t.Errorf("closed for the budget: counted %v, want 2", got)
	}
}

// TestNewerPushReplacesUnsentOne checks coalescing: a push of a service and
// cluster filter replaces the connection's older unsent push of the same; the
// older one's Request returns at once, as delivered by its replacement, and
// is counted as superseded, not ok. Other services' pushes keep their place.
func TestNewerPushReplacesUnsentOne(t *testing.T) {
	s, reg := newLimitServer(t, func(c *Config) { c.MaxOutboundBytes = 1 << 20 })
	c, w := stuckConn(t, s, "sub")
	if _, err := c.send("R", "0", sized("R", 10), time.Now()); err != nil {
		t.Fatal(err)
	}
	w.next(t) // the stream is stuck writing it

	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 3)
	request := func(name string, body []byte) {
		go func() {
			results <- result{name, s.Request(ctx, typeNotifySubscriber, body, []string{"sub"})[0]}
		}()
		// Await the request's queueing, so the three queue in this order.
		waitFor(t, "the request "+name+" is queued", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, o := range c.queue {
				if strings.Contains(string(o.m), `"lastRefTime":`+name) {
					return true
				}
			}
			return false
		})
	}
	request("1", notifyBodyAt("a", 1))
	request("2", notifyBodyAt("b", 2))
	request("3", notifyBodyAt("a", 3))

	select {
	case r := <-results:
		if r.name != "1" || r.err != nil {
			t.Fatalf("first to return: request %s with %v, want the replaced request 1 with nil", r.name, r.err)
		}
	case <-time.After(limitTimeout):
		t.Fatal("the replaced request did not return")
	}
	c.mu.Lock()
	queued := len(c.queue)
	c.mu.Unlock()
	if queued != 2 {
		t.Errorf("%d requests queued after the replacement, want 2", queued)
	}
	if got := metricValue(t, reg, "sextant_server_requests_total", "result", "superseded"); got != 1 {
		t.Errorf("superseded requests counted %v, want 1", got)
	}

	// The stream moves again: b, then the newer a (it went to the end of the
	// queue, so requestIds still rise), each answered.
	w.release()
	for _, want := range []string{"2", "3"} {
		p := w.next(t)
		if !strings.Contains(string(p.GetBody().GetValue()), `"lastRefTime":`+want) {
			t.Fatalf("written %s, want the push with lastRefTime %s", p.GetBody().GetValue(), want)
		}
		if err := answerPayload(c, p, 200); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if r := <-results; r.err != nil {
			t.Errorf("request %s: %v", r.name, r.err)
		}
	}
	if got := metricValue(t, reg, "sextant_server_requests_total", "result", "ok"); got != 2 {
		t.Errorf("ok requests counted %v, want 2", got)
	}
}

// notifyBodyAt is a push of service name, all clusters, marked with lastRefTime at.
func notifyBodyAt(name string, at int) []byte {
	return fmt.Appendf(nil, `{"module":"naming","namespace":"public","serviceName":%q,"groupName":"DEFAULT_GROUP",`+
		`"serviceInfo":{"name":%q,"groupName":"DEFAULT_GROUP","clusters":"","hosts":[],"lastRefTime":%d}}`, name, name, at)
}

// answerPayload answers the request p with resultCode, as the client would.
func answerPayload(c *conn, p *nacos.Payload, resultCode int) error {
	body := p.GetBody().GetValue()
	const prefix = `{"requestId":"`
	if !strings.HasPrefix(string(body), prefix) {
		return fmt.Errorf("written without a requestId: %.80s", body)
	}
	id, _, _ := strings.Cut(string(body[len(prefix):]), `"`)
	_, err := c.answer(fmt.Appendf(nil, `{"requestId":%q,"resultCode":%d}`, id, resultCode))
	return err
}

// waitFor polls cond until it holds, failing the test after limitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWriteTimeout checks the write deadline: a stream that does not take a
// message within WriteTimeout has its connection closed, the requests on it
// failed and the close counted; writes that complete in time close nothing.
func TestWriteTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	s, reg := newLimitServer(t, func(c *Config) { c.WriteTimeout = timeout })

	fast := s.newStreamConn("fast", "", func(serveropts.Message) error { return nil }, func(err error) {
		t.Errorf("a connection whose writes complete was closed: %v", err)
	})
	for i := range 20 {
		if _, err := fast.send("R", strconv.Itoa(i), sized("R", 10), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	fast.close()

	_, w := stuckConn(t, s, "stuck")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	err := s.Request(ctx, typeNotifySubscriber, notifyBody("a", "", 1), []string{"stuck"})[0]
	if !errors.Is(err, errConnectionClosed) || !errors.Is(err, errWriteTimeout) {
		t.Fatalf("a request on a stuck stream: %v, want %v for %v", err, errConnectionClosed, errWriteTimeout)
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("closed after %s, before the write timeout %s", elapsed, timeout)
	}
	select {
	case <-w.closed:
	default:
		t.Error("the stuck connection was not closed")
	}
	if got := metricValue(t, reg, "sextant_remote_connections_closed_total", "reason", "write_timeout"); got != 1 {
		t.Errorf("closed for the write timeout: counted %v, want 1", got)
	}
}
