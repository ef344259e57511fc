package scenario

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// fakeUDPPusher is the part of a Nacos server udp-push speaks to: the v1
// instance API, which records the UDP subscribers that poll instance/list
// and pushes each registration to them after a delay, with faults to
// inject.
type fakeUDPPusher struct {
	conn  *net.UDPConn
	delay time.Duration
	gzip  bool // gzip every push
	dup   bool // send every push twice
	// drop pushes nothing to the first subscriber that polled.
	drop bool
	// garbage sends every subscriber a datagram that is no push, once.
	garbage bool

	mu      sync.Mutex
	subs    []netip.AddrPort
	ref     int64
	hosts   []wire.Instance
	polls   int
	sentBad bool

	acks, datagrams atomic.Int64
}

func startFakeUDPPusher(t *testing.T, f *fakeUDPPusher) string {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	done := make(chan struct{})
	go func() { // the acks
		defer close(done)
		buf := make([]byte, 1024)
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var ack struct {
				Type        string `json:"type"`
				LastRefTime string `json:"lastRefTime"`
			}
			if json.Unmarshal(buf[:n], &ack) == nil && ack.Type == "push-ack" && ack.LastRefTime != "" {
				f.acks.Add(1)
			}
		}
	}()
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		conn.Close()
		<-done
	})
	return strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeUDPPusher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	svc := r.Form.Get("serviceName")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method + " " + r.URL.Path {
	case "GET " + instanceListPath:
		f.polls++
		ap, err := netip.ParseAddrPort(r.Form.Get("clientIP") + ":" + r.Form.Get("udpPort"))
		if err != nil {
			http.Error(w, "clientIP, udpPort: "+err.Error(), 400)
			return
		}
		known := false
		for _, s := range f.subs {
			known = known || s == ap
		}
		if !known {
			f.subs = append(f.subs, ap)
		}
		_, _ = w.Write(f.info(svc))
	case "POST " + instancePath:
		port, _ := strconv.Atoi(r.Form.Get("port"))
		weight, _ := strconv.ParseFloat(r.Form.Get("weight"), 64)
		f.hosts = []wire.Instance{{IP: r.Form.Get("ip"), Port: port, Weight: weight, Healthy: true, Enabled: true}}
		f.ref++
		info, subs := f.info(svc), append([]netip.AddrPort(nil), f.subs...)
		time.AfterFunc(f.delay, func() { f.push(info, subs) })
		_, _ = w.Write([]byte("ok"))
	case "DELETE " + instancePath:
		f.hosts = nil
		_, _ = w.Write([]byte("ok"))
	default:
		http.NotFound(w, r)
	}
}

// info is the service's ServiceInfo; f.mu is held.
func (f *fakeUDPPusher) info(svc string) []byte {
	b, _ := json.Marshal(wire.ServiceInfo{Name: svc, CacheMillis: 10000, Hosts: f.hosts, LastRefTime: f.ref})
	return b
}

// push sends info to the subscribers as one push.
func (f *fakeUDPPusher) push(info []byte, subs []netip.AddrPort) {
	f.mu.Lock()
	ref := time.Now().UnixNano()
	garbage := f.garbage && !f.sentBad
	f.sentBad = f.sentBad || garbage
	f.mu.Unlock()
	data, _ := json.Marshal(string(info))
	payload := fmt.Appendf(nil, `{"type":"dom","data":%s,"lastRefTime":%d}`, data, ref)
	if f.gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(payload)
		_ = zw.Close()
		payload = b.Bytes()
	}
	for i, s := range subs {
		if f.drop && i == 0 {
			continue
		}
		sends := 1
		if f.dup {
			sends = 2
		}
		for range sends {
			if _, err := f.conn.WriteToUDPAddrPort(payload, s); err == nil {
				f.datagrams.Add(1)
			}
		}
		if garbage {
			_, _ = f.conn.WriteToUDPAddrPort([]byte("not a push"), s)
		}
	}
}

func udpCommon(addr string) *Common {
	c := common("127.0.0.1:1")
	c.Targets = []target.Target{{HTTP: addr, GRPC: "127.0.0.1:1"}}
	return c
}

func figureOf(t *testing.T, r *report.Result, name string) float64 {
	t.Helper()
	v, ok := r.FigureNamed(name)
	if !ok {
		t.Fatalf("no figure %q in %+v", name, r.Figures)
	}
	return v
}

func TestUDPPushAgainstAFake(t *testing.T) {
	f := &fakeUDPPusher{delay: 20 * time.Millisecond, gzip: true}
	c := udpCommon(startFakeUDPPusher(t, f))
	c.Count = 3
	start := time.Now()
	r := UDPPush(c, UDPPushOptions{Subscribers: 5, MergeWindow: 20 * time.Millisecond, Repoll: 100 * time.Millisecond,
		Writer: WriterHTTP, ClientIP: "127.0.0.1"}, "test")
	if took := time.Since(start); took > bound(c) {
		t.Errorf("took %s, over the bound %s", took, bound(c))
	}
	if r.Failed() || len(r.Errors) != 0 {
		t.Fatalf("failed: errors %v, checks %+v, notes %v", r.Errors, r.Checks, r.Notes)
	}
	p := r.SeriesNamed("push")
	if p == nil || p.OK != 15 || p.Latency == nil || p.Latency.Min < 15 {
		t.Errorf("push %+v, want 3 rounds × 5 subscribers, each after the fake's 20 ms", p)
	}
	// Each push is read after it arrived (stamped by the kernel on Linux).
	if rd := r.SeriesNamed("push read"); rd == nil || rd.OK != 15 || rd.Latency.P50 < p.Latency.P50 || rd.Latency.Max < p.Latency.Max {
		t.Errorf("push read %+v, push %+v", rd, p)
	}
	if _, ok := r.FigureNamed("push read by the subscriber p99 beyond merge window"); ok == (runtime.GOOS != "linux") {
		t.Errorf("figures %+v, notes %v", r.Figures, r.Notes)
	}
	if s := r.SeriesNamed("first push"); s == nil || s.OK != 5 {
		t.Errorf("first push %+v", s)
	}
	if s := r.SeriesNamed("repoll"); s == nil || s.OK == 0 {
		t.Errorf("repoll %+v: the subscribers did not poll again", s)
	}
	d := figureOf(t, r, "datagrams received")
	if d != 20 || figureOf(t, r, "acks sent") != 20 || figureOf(t, r, "gzipped datagrams") != 20 {
		t.Errorf("figures %+v, want the 4 pushes of 5 subscribers, gzipped, each acknowledged", r.Figures)
	}
	if figureOf(t, r, "duplicate datagrams (a push received again: resent before its ack arrived)") != 0 ||
		figureOf(t, r, "lost (a subscriber not pushed a round within merge window + timeout)") != 0 {
		t.Errorf("figures %+v", r.Figures)
	}
	// The acks reached the pusher's address.
	deadline := time.Now().Add(5 * time.Second)
	for f.acks.Load() != 20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := f.acks.Load(); n != 20 {
		t.Errorf("the pusher got %d acks, want 20", n)
	}
	if w, _ := r.Params.Get("writer").(string); w != WriterHTTP || r.SeriesNamed("deregister").OK != 1 {
		t.Errorf("params %v, deregister %+v", r.Params, r.SeriesNamed("deregister"))
	}
}

func TestUDPPushCountsLostDuplicateAndUnreadablePushes(t *testing.T) {
	f := &fakeUDPPusher{delay: 10 * time.Millisecond, dup: true, drop: true, garbage: true}
	c := udpCommon(startFakeUDPPusher(t, f))
	c.Count = 2
	r := UDPPush(c, UDPPushOptions{Subscribers: 4, Repoll: time.Second, Writer: WriterHTTP, ClientIP: "127.0.0.1"}, "test")
	p := r.SeriesNamed("push")
	if p == nil || p.OK != 6 || p.Errors["lost"] != 2 {
		t.Errorf("push %+v, want 2 rounds × 3 subscribers and the dropped one lost twice", p)
	}
	if r.Errors["first push: lost"] != 1 || r.Errors["last subscriber: incomplete round"] != 2 {
		t.Errorf("errors %v", r.Errors)
	}
	// 3 pushes to 3 subscribers, each sent twice.
	if got := figureOf(t, r, "duplicate datagrams (a push received again: resent before its ack arrived)"); got != 9 {
		t.Errorf("%v duplicates, want 9", got)
	}
	if got := figureOf(t, r, "lost (a subscriber not pushed a round within merge window + timeout)"); got != 2 {
		t.Errorf("%v lost, want 2", got)
	}
	if !r.Failed() || len(r.Checks) != 2 || r.Checks[0].OK || !strings.Contains(r.Checks[0].Detail, "3 of 21") {
		t.Errorf("checks %+v: want the unreadable datagrams to fail the first", r.Checks)
	}
}

func TestUDPPushOptions(t *testing.T) {
	ok := UDPPushOptions{Subscribers: 1, Repoll: time.Second, Writer: WriterGRPC}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*UDPPushOptions)
		want   string
	}{
		{func(o *UDPPushOptions) { o.Subscribers = 0 }, "--subscribers must be at least 1"},
		{func(o *UDPPushOptions) { o.Subscribers = 70000 }, "more UDP sockets than"},
		{func(o *UDPPushOptions) { o.MergeWindow = -1 }, "--merge-window"},
		{func(o *UDPPushOptions) { o.Interval = -1 }, "--interval"},
		{func(o *UDPPushOptions) { o.Repoll = 0 }, "--repoll must be positive"},
		{func(o *UDPPushOptions) { o.Writer = "udp" }, `--writer must be grpc or http, got "udp"`},
		{func(o *UDPPushOptions) { o.ClientIP = "localhost" }, "--client-ip"},
		{func(o *UDPPushOptions) { o.ClientIP = "::1" }, "--client-ip"},
		{func(o *UDPPushOptions) { o.ClientIP = "0.0.0.0" }, "--client-ip"},
	} {
		o := ok
		tc.change(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", o, err, tc.want)
		}
	}
}
