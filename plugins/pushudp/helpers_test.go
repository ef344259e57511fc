package pushudp

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/sdk/push"
)

// What the unit tests share: executors, and subscribers that answer pushes
// as told.

// newExecutor returns an executor on 127.0.0.1 with cfg's other keys, closed
// when the test ends. It answers dump requests at any pace, as barrier needs.
func newExecutor(t *testing.T, cfg Config) *Executor {
	t.Helper()
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = DefaultRetryDelays()
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	e, err := open(cfg, nil, 0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// datagram is one push a subscriber got.
type datagram struct {
	raw     []byte // as it came
	gzipped bool
	text    []byte // gunzipped
	Type    string `json:"type"`
	Data    string `json:"data"`
	Ref     int64  `json:"lastRefTime"`
	at      time.Time
}

// decode reads a push datagram as the clients do.
func decode(t *testing.T, raw []byte) datagram {
	t.Helper()
	d := datagram{raw: bytes.Clone(raw), text: raw, at: time.Now()}
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		d.gzipped = true
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Errorf("a gzipped push does not gunzip: %v", err)
			return d
		}
		if d.text, err = io.ReadAll(zr); err != nil {
			t.Errorf("a gzipped push does not gunzip: %v", err)
		}
	}
	if err := json.Unmarshal(d.text, &d); err != nil {
		t.Errorf("a push is not the JSON clients read: %v: %s", err, d.text)
	}
	return d
}

// subscriber is a UDP subscriber: it records the pushes it gets and answers
// each as answer says.
type subscriber struct {
	conn *net.UDPConn
	addr string
	got  chan datagram // every push, as it comes

	mu     sync.Mutex
	pushes []datagram
}

// answer returns the ack of the nth push (from 1) a subscriber got, or nil
// for none.
type answer func(n int, d datagram) []byte

// ackString acknowledges as the Go SDK v1 does: lastRefTime a string.
func ackString(_ int, d datagram) []byte {
	return []byte(`{"data":"","lastRefTime":"` + strconv.FormatInt(d.Ref, 10) + `","type":"push-ack"}`)
}

// ackNumber acknowledges with lastRefTime a number.
func ackNumber(_ int, d datagram) []byte {
	return []byte(`{"type": "push-ack", "lastRefTime": ` + strconv.FormatInt(d.Ref, 10) + `, "data": ""}`)
}

// never acknowledges nothing.
func never(int, datagram) []byte { return nil }

// newSubscriber listens on 127.0.0.1 until the test ends.
func newSubscriber(t *testing.T, ans answer) *subscriber {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &subscriber{conn: conn, addr: conn.LocalAddr().String(), got: make(chan datagram, 64)}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			d := decode(t, buf[:n])
			s.mu.Lock()
			s.pushes = append(s.pushes, d)
			count := len(s.pushes)
			s.mu.Unlock()
			if ack := ans(count, d); ack != nil {
				_, _ = conn.WriteToUDPAddrPort(ack, from)
			}
			select {
			case s.got <- d:
			default:
			}
		}
	}()
	return s
}

// received returns the pushes the subscriber got so far.
func (s *subscriber) received() []datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]datagram(nil), s.pushes...)
}

// peer is a socket of the test's that talks to the executor directly.
type peer struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func newPeer(t *testing.T, e *Executor) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), e.Addr().Port())
	return &peer{conn: conn, to: to}
}

func (p *peer) send(t *testing.T, datagram []byte) {
	t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(datagram, p.to); err != nil {
		t.Fatal(err)
	}
}

// receive returns the next datagram that comes to p.
func (p *peer) receive(t *testing.T) []byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer from the executor: %v", err)
	}
	return buf[:n]
}

// barrier returns once the executor has read every datagram p sent before:
// it answers a dump request, and reads its socket in order.
func (p *peer) barrier(t *testing.T) {
	t.Helper()
	p.send(t, []byte(`{"type":"dump","lastRefTime":"-1","data":""}`))
	for {
		var a struct {
			Type        string `json:"type"`
			LastRefTime string `json:"lastRefTime"`
		}
		if json.Unmarshal(p.receive(t), &a) == nil && a.Type == "dump-ack" && a.LastRefTime == "-1" {
			return
		}
	}
}

var orders = push.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}

// info returns a ServiceInfo of orders as 1.x clients read it, with n
// instances.
func info(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"name":"DEFAULT_GROUP@@orders","groupName":"DEFAULT_GROUP","clusters":"","cacheMillis":10000,"hosts":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"instanceId":"10.0.` + strconv.Itoa(i/250) + `.` + strconv.Itoa(i%250) + `#8080#DEFAULT#DEFAULT_GROUP@@orders",` +
			`"ip":"10.0.` + strconv.Itoa(i/250) + `.` + strconv.Itoa(i%250) + `","port":8080,"weight":1.0,"healthy":true,` +
			`"enabled":true,"ephemeral":true,"clusterName":"DEFAULT","serviceName":"DEFAULT_GROUP@@orders","metadata":{"a":"<&>"}}`)
	}
	b.WriteString(`],"lastRefTime":1700000000000,"checksum":"","allIPs":false,"reachProtectionThreshold":false,"valid":true}`)
	return b.Bytes()
}

// batch returns a batch of orders for subscribers at addrs.
func batch(serviceInfo []byte, addrs ...string) push.Batch {
	b := push.Batch{Service: orders, ServiceInfo: serviceInfo}
	for i, a := range addrs {
		b.Targets = append(b.Targets, push.Target{ClientID: "client-" + strconv.Itoa(i), Address: a})
	}
	return b
}
