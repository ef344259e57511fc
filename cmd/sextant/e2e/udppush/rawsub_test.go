package udppush_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// A raw subscriber speaks the 1.x UDP push wire itself, as the Java and Go
// 1.x clients do: it polls instance/list with its udpPort and clientIP,
// receives {"type":"dom","data":"<ServiceInfo>","lastRefTime":N} datagrams
// (gzipped when they start with 1F 8B) and, unless told not to, answers
// each with {"type":"push-ack","lastRefTime":"N","data":""} to the sender.

// serviceInfo is the part of a ServiceInfo the tests read.
type serviceInfo struct {
	Name        string `json:"name"`
	Clusters    string `json:"clusters"`
	CacheMillis int64  `json:"cacheMillis"`
	LastRefTime int64  `json:"lastRefTime"`
	Hosts       []host `json:"hosts"`
}

// host is an instance as the 1.x form of a ServiceInfo lists it.
type host struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	ServiceName string            `json:"serviceName"`
	Metadata    map[string]string `json:"metadata"`
}

// hosts lists the instances as "ip:port w=weight", sorted.
func (s serviceInfo) hosts() []string {
	out := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		out[i] = fmt.Sprintf("%s:%d w=%g", h.IP, h.Port, h.Weight)
	}
	slices.Sort(out)
	return out
}

// datagram is one datagram a raw subscriber received.
type datagram struct {
	at      time.Time
	from    netip.AddrPort
	size    int  // as received
	plain   int  // bytes of its JSON (after gunzip)
	gzipped bool // it started with the gzip magic 1F 8B
	Type    string
	ref     int64 // its lastRefTime
	info    serviceInfo
	err     error // why it could not be read
}

// rawSubscriber is a subscriber on a UDP socket of its own on 127.0.0.1.
type rawSubscriber struct {
	srv  *servertest.Server
	svc  string
	conn *net.UDPConn
	acks bool
	done chan struct{} // closed when the reader has ended

	mu      sync.Mutex
	got     []datagram
	changed chan struct{} // closed and replaced on every datagram

	polls atomic.Int64
}

// newRawSubscriber opens a subscriber of svc; it acknowledges the pushes it
// gets when acks is set. It does not poll yet.
func newRawSubscriber(t *testing.T, srv *servertest.Server, svc string, acks bool) *rawSubscriber {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &rawSubscriber{srv: srv, svc: svc, conn: conn, acks: acks, done: make(chan struct{}), changed: make(chan struct{})}
	go s.read()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

// port is the subscriber's UDP port.
func (s *rawSubscriber) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

// clientID is the id the server knows the subscriber by.
func (s *rawSubscriber) clientID() string { return "127.0.0.1:" + strconv.Itoa(s.port()) + "#true" }

// read receives datagrams until the socket closes.
func (s *rawSubscriber) read() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		d := decodeDatagram(buf[:n])
		d.at, d.from = time.Now(), from
		if s.acks && d.err == nil {
			ack := `{"type":"push-ack","lastRefTime":"` + strconv.FormatInt(d.ref, 10) + `","data":""}`
			_, _ = s.conn.WriteToUDPAddrPort([]byte(ack), from)
		}
		s.mu.Lock()
		s.got = append(s.got, d)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// decodeDatagram reads a push as a 1.x client does.
func decodeDatagram(b []byte) datagram {
	d := datagram{size: len(b), gzipped: bytes.HasPrefix(b, []byte{0x1f, 0x8b})}
	if d.gzipped {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			d.err = fmt.Errorf("gzip: %w", err)
			return d
		}
		if b, err = io.ReadAll(zr); err != nil {
			d.err = fmt.Errorf("gunzip: %w", err)
			return d
		}
	}
	d.plain = len(b)
	var msg struct {
		Type        string          `json:"type"`
		Data        string          `json:"data"`
		LastRefTime json.RawMessage `json:"lastRefTime"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		d.err = fmt.Errorf("not a push: %w: %.200q", err, b)
		return d
	}
	d.Type = msg.Type
	// The clients read lastRefTime as a number (the Go SDK v1: int64).
	ref, err := strconv.ParseInt(string(msg.LastRefTime), 10, 64)
	if err != nil {
		d.err = fmt.Errorf("lastRefTime %s is not an integer", msg.LastRefTime)
		return d
	}
	d.ref = ref
	if msg.Type != "dom" {
		d.err = fmt.Errorf("type %q, want dom", msg.Type)
		return d
	}
	if err := json.Unmarshal([]byte(msg.Data), &d.info); err != nil {
		d.err = fmt.Errorf("data is not a ServiceInfo: %w: %.200q", err, msg.Data)
	}
	return d
}

// datagrams returns what the subscriber received so far.
func (s *rawSubscriber) datagrams() []datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// await waits until what the subscriber received satisfies ok, and returns
// it; a datagram that could not be read fails the test.
func (s *rawSubscriber) await(t *testing.T, what string, ok func([]datagram) bool) []datagram {
	t.Helper()
	deadline := time.After(awaitTimeout)
	for {
		s.mu.Lock()
		got, changed := slices.Clone(s.got), s.changed
		s.mu.Unlock()
		for _, d := range got {
			if d.err != nil {
				t.Fatalf("subscriber %d received a datagram it cannot read: %v", s.port(), d.err)
			}
		}
		if ok(got) {
			return got
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("subscriber %d: no %s within %v; received %s", s.port(), what, awaitTimeout, describe(got))
		}
	}
}

// current returns the newest view the subscriber was pushed — the one with
// the greatest ServiceInfo lastRefTime, as the server raises it on every
// change — and false if it was pushed none.
func current(ds []datagram) (serviceInfo, bool) {
	var best serviceInfo
	found := false
	for _, d := range ds {
		if d.err == nil && (!found || d.info.LastRefTime > best.LastRefTime) {
			best, found = d.info, true
		}
	}
	return best, found
}

// currentIs is a condition: the newest view lists exactly hosts.
func currentIs(hosts ...string) func([]datagram) bool {
	return func(ds []datagram) bool {
		info, ok := current(ds)
		return ok && slices.Equal(info.hosts(), hosts)
	}
}

// describe renders datagrams for failure messages.
func describe(ds []datagram) string {
	if len(ds) == 0 {
		return "nothing"
	}
	var b bytes.Buffer
	for i, d := range ds {
		if i > 0 {
			b.WriteString("; ")
		}
		if d.err != nil {
			fmt.Fprintf(&b, "unreadable (%v)", d.err)
			continue
		}
		fmt.Fprintf(&b, "ref %d from %s: %v", d.ref, d.from, d.info.hosts())
	}
	return fmt.Sprintf("%d datagrams: %s", len(ds), b.String())
}

// listParams are the parameters of the subscriber's poll.
func (s *rawSubscriber) listParams() url.Values {
	return url.Values{"serviceName": {s.svc}, "udpPort": {strconv.Itoa(s.port())}, "clientIP": {"127.0.0.1"}}
}

// poll polls instance/list with the subscriber's udpPort and clientIP, as a
// 1.x client does (which makes it, or keeps it, a UDP subscriber), and
// returns the answer.
func (s *rawSubscriber) poll(t *testing.T) serviceInfo {
	t.Helper()
	info, err := s.tryPoll()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func (s *rawSubscriber) tryPoll() (serviceInfo, error) {
	resp, err := http.Get("http://" + s.srv.HTTPAddr() + "/nacos/v1/ns/instance/list?" + s.listParams().Encode())
	if err != nil {
		return serviceInfo{}, fmt.Errorf("poll: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return serviceInfo{}, fmt.Errorf("poll: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return serviceInfo{}, fmt.Errorf("poll: %d %s", resp.StatusCode, body)
	}
	var info serviceInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return serviceInfo{}, fmt.Errorf("poll: %w: %s", err, body)
	}
	s.polls.Add(1)
	return info, nil
}

// keepPolling polls every interval, as a 1.x client does, until the
// returned function (also run when the test ends) is called.
func (s *rawSubscriber) keepPolling(t *testing.T, interval time.Duration) (stop func()) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				if _, err := s.tryPoll(); err != nil {
					t.Errorf("subscriber %d: %v", s.port(), err)
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(quit)
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}
