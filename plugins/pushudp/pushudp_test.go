package pushudp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

// allNil fails t unless every error is nil, one per target.
func allNil(t *testing.T, errs []error, targets int) {
	t.Helper()
	if len(errs) != targets {
		t.Fatalf("%d results for %d targets", len(errs), targets)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("target %d: %v", i, err)
		}
	}
}

func TestPushesTheServiceInfoAsNacos1ClientsReadIt(t *testing.T) {
	e := newExecutor(t, Config{})
	sub := newSubscriber(t, ackString)
	data := info(1)
	allNil(t, e.Push(context.Background(), batch(data, sub.addr)), 1)
	got := sub.received()
	if len(got) != 1 {
		t.Fatalf("the subscriber got %d pushes, want 1", len(got))
	}
	d := got[0]
	if d.Type != "dom" || d.Data != string(data) || d.Ref <= 0 {
		t.Errorf("got type %q, lastRefTime %d, data %s; want dom, a positive lastRefTime, the ServiceInfo", d.Type, d.Ref, d.Data)
	}
	want := fmt.Sprintf(`{"type":"dom","data":%s,"lastRefTime":%d}`, quote(data), d.Ref)
	if string(d.raw) != want {
		t.Errorf("datagram\n%s\nwant\n%s", d.raw, want)
	}
	if c := e.Counters(); c.Datagrams != 1 || c.Acked != 1 || c.Failed != 0 || c.Pending != 0 {
		t.Errorf("counters %+v, want 1 datagram, 1 acked, none failed or pending", c)
	}
}

// quote is s as a JSON string, <, > and & left alone.
func quote(s []byte) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(s))
	return strings.TrimSuffix(b.String(), "\n")
}

func TestGzipsOver1KiBOnly(t *testing.T) {
	// The JSON of a push around data of n bytes is n plus its frame.
	frame := len(encode(nil, 1700000000000000000))
	for _, tc := range []struct {
		size    int // of the JSON
		gzipped bool
	}{{100, false}, {GzipOver, false}, {GzipOver + 1, true}, {3000, true}} {
		data := bytes.Repeat([]byte("x"), tc.size-frame)
		raw := encode(data, 1700000000000000000)
		if gz := bytes.HasPrefix(raw, []byte{0x1f, 0x8b}); gz != tc.gzipped {
			t.Errorf("a push of %d bytes of JSON: gzipped %v, want %v", tc.size, gz, tc.gzipped)
		}
		if d := decode(t, raw); len(d.text) != tc.size || d.Data != string(data) {
			t.Errorf("a push of %d bytes of JSON decodes to %d bytes, its data %d bytes", tc.size, len(d.text), len(d.Data))
		}
	}

	// And on the wire.
	e := newExecutor(t, Config{})
	small, large := newSubscriber(t, ackString), newSubscriber(t, ackNumber)
	allNil(t, e.Push(context.Background(), batch(info(1), small.addr)), 1)
	allNil(t, e.Push(context.Background(), batch(info(10), large.addr)), 1)
	if d := small.received()[0]; d.gzipped || d.Data != string(info(1)) {
		t.Errorf("the small push: gzipped %v (%d bytes), want not", d.gzipped, len(d.raw))
	}
	if d := large.received()[0]; !d.gzipped || d.Data != string(info(10)) || len(d.raw) >= len(d.text) {
		t.Errorf("the large push: gzipped %v, %d bytes for %d of JSON; want gzipped, smaller", d.gzipped, len(d.raw), len(d.text))
	}
}

func TestAcksCountFromTheAddressPushedWithThePushsLastRefTime(t *testing.T) {
	e := newExecutor(t, Config{})
	stringAcks, numberAcks := newSubscriber(t, ackString), newSubscriber(t, ackNumber)
	allNil(t, e.Push(context.Background(), batch(info(1), stringAcks.addr, numberAcks.addr)), 2)

	// Each push has a lastRefTime of its own, increasing.
	refs := []int64{stringAcks.received()[0].Ref, numberAcks.received()[0].Ref}
	allNil(t, e.Push(context.Background(), batch(info(1), stringAcks.addr)), 1)
	if next := stringAcks.received()[1].Ref; next <= refs[0] {
		t.Errorf("a later push's lastRefTime %d is not greater than %d", next, refs[0])
	}

	// Two targets at one address get one datagram, and its ack.
	allNil(t, e.Push(context.Background(), batch(info(1), numberAcks.addr, numberAcks.addr)), 2)
	if n := len(numberAcks.received()); n != 2 {
		t.Errorf("the subscriber of two targets got %d pushes in all, want 2", n)
	}
	if c := e.Counters(); c.Acked != 5 || c.Datagrams != 4 {
		t.Errorf("counters %+v, want 5 targets acked, 4 datagrams", c)
	}
}

func TestAcksThatMatchNoPushAreIgnored(t *testing.T) {
	e := newExecutor(t, Config{RetryDelays: []string{"10ms", "20ms"}})
	p := newPeer(t, e)
	// A subscriber whose acks are all wrong: another lastRefTime, and the
	// right one from another address (p's).
	sub := newSubscriber(t, func(_ int, d datagram) []byte {
		p.send(t, ackString(0, d))
		return ackString(0, datagram{Ref: d.Ref + 1})
	})
	errs := e.Push(context.Background(), batch(info(1), sub.addr))
	if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "no ack from "+sub.addr) {
		t.Fatalf("Push = %v, want no ack from %s", errs, sub.addr)
	}
	p.barrier(t)
	sends := int64(len(sub.received()))
	if c := e.Counters(); c.ForeignAcks != sends || c.StaleAcks != sends || c.TimedOut != 1 || c.Failed != 1 || c.Acked != 0 {
		t.Errorf("counters %+v, want %d foreign and stale acks, 1 timed out", c, sends)
	}
}

func TestALostDatagramIsResent(t *testing.T) {
	e := newExecutor(t, Config{RetryDelays: []string{"10ms", "1s", "2s"}})
	sub := newSubscriber(t, func(n int, d datagram) []byte {
		if n == 1 {
			return nil // lost
		}
		return ackString(n, d)
	})
	start := time.Now()
	allNil(t, e.Push(context.Background(), batch(info(1), sub.addr)), 1)
	got := sub.received()
	if len(got) != 2 || got[0].Ref != got[1].Ref || !bytes.Equal(got[0].raw, got[1].raw) {
		t.Fatalf("the subscriber got %d pushes, want the same twice", len(got))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the push took %v: the resend at 10ms should have been acknowledged", took)
	}
	if c := e.Counters(); c.Resends != 1 || c.Acked != 1 || c.Failed != 0 {
		t.Errorf("counters %+v, want 1 resend, acked", c)
	}
}

func TestATargetFailsAfterTheLastResendsWait(t *testing.T) {
	e := newExecutor(t, Config{RetryDelays: []string{"10ms", "30ms", "60ms"}})
	sub := newSubscriber(t, never)
	start := time.Now()
	errs := e.Push(context.Background(), batch(info(1), sub.addr))
	took := time.Since(start)
	if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "4 datagrams sent") {
		t.Fatalf("Push = %v, want no ack after 4 datagrams", errs)
	}
	// Sent at 0, 10, 30 and 60 ms; failed at 90 ms, as long after the last as
	// it came after the one before.
	if took < 90*time.Millisecond {
		t.Errorf("the target failed after %v, before 90ms", took)
	}
	got := sub.received()
	if len(got) != 4 {
		t.Fatalf("the subscriber got %d pushes, want 4", len(got))
	}
	for i, at := range []time.Duration{0, 10 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond} {
		if d := got[i].at.Sub(got[0].at); d < at-5*time.Millisecond || got[i].Ref != got[0].Ref {
			t.Errorf("send %d came %v after the first, lastRefTime %d; want %v, %d", i, d, got[i].Ref, at, got[0].Ref)
		}
	}
	if c := e.Counters(); c.Resends != 3 || c.TimedOut != 1 || c.Failed != 1 || c.Pending != 0 {
		t.Errorf("counters %+v, want 3 resends, 1 timed out, none pending", c)
	}
}

func TestScheduleFromRetryDelays(t *testing.T) {
	for _, tc := range []struct {
		delays  []string
		resends []time.Duration
		giveUp  time.Duration
	}{
		{DefaultRetryDelays(), []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}, 3500 * time.Millisecond},
		{[]string{"10s"}, []time.Duration{10 * time.Second}, 20 * time.Second}, // Nacos's
		{[]string{"1s", "1500ms"}, []time.Duration{time.Second, 1500 * time.Millisecond}, 2 * time.Second},
	} {
		resends, giveUp, err := schedule(tc.delays)
		if err != nil || !slices.Equal(resends, tc.resends) || giveUp != tc.giveUp {
			t.Errorf("schedule(%q) = %v, %v, %v; want %v, %v", tc.delays, resends, giveUp, err, tc.resends, tc.giveUp)
		}
	}
}

func TestPushReturnsByItsContextsDeadline(t *testing.T) {
	e := newExecutor(t, Config{RetryDelays: []string{"10s"}})
	sub := newSubscriber(t, never)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	errs := e.Push(ctx, batch(info(1), sub.addr, sub.addr))
	if took := time.Since(start); took > time.Second {
		t.Errorf("Push returned %v after it started, its deadline 50ms", took)
	}
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("target %d: %v, want the deadline exceeded", i, err)
		}
	}
	if len(errs) != 2 {
		t.Errorf("%d results for 2 targets", len(errs))
	}
	// A context already over sends nothing.
	errs = e.Push(ctx, batch(info(1), sub.addr))
	if len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("Push with an ended context = %v", errs)
	}
	if c := e.Counters(); c.Cancelled != 3 || c.Failed != 3 || c.Pending != 0 || c.Datagrams != 1 {
		t.Errorf("counters %+v, want 3 cancelled, 1 datagram", c)
	}
}

func TestBadAddressesFailAtOnce(t *testing.T) {
	e := newExecutor(t, Config{})
	sub := newSubscriber(t, ackString)
	bad := []string{"", "localhost:8080", "10.0.0.1", "10.0.0.1:0", "0.0.0.0:8080", "[::]:8080", "224.0.0.1:8080",
		"10.0.0.1:99999", "10.0.0.1:http", "[fe80::1%eth0]", "not an address"}
	errs := e.Push(context.Background(), batch(info(1), append(bad, sub.addr)...))
	for i, a := range bad {
		if errs[i] == nil || !strings.Contains(errs[i].Error(), "address") {
			t.Errorf("target at %q: %v, want a bad address", a, errs[i])
		}
	}
	if errs[len(bad)] != nil {
		t.Errorf("the target at %s: %v", sub.addr, errs[len(bad)])
	}
	if c := e.Counters(); c.BadAddress != int64(len(bad)) || c.Failed != int64(len(bad)) || c.Acked != 1 {
		t.Errorf("counters %+v, want %d bad addresses", c, len(bad))
	}
}

func TestMalformedAndOversizedDatagramsAreCounted(t *testing.T) {
	e := newExecutor(t, Config{})
	p := newPeer(t, e)
	for _, d := range []string{
		"not JSON",
		`{"type":"push-ack","lastRefTime":"soon","data":""}`,
		`{"type":"push-ack","data":""}`,
		`{"type":"push-ack","lastRefTime":1.5}`,
		`{"type":"dump","lastRefTime":{}}`,
		"\x1f\x8b\x08\x00 a gzip header",
	} {
		p.send(t, []byte(d))
	}
	p.send(t, []byte(`{"type":"unknow-ack","lastRefTime":"1","data":""}`)) // the Go SDK v1's answer to a type it does not know
	p.send(t, []byte(`{"type":"push-ack","lastRefTime":"12345","data":""}`))
	p.send(t, bytes.Repeat([]byte(" "), MaxInbound+1))
	p.send(t, bytes.Repeat([]byte(" "), 60000))
	p.barrier(t)
	c := e.Counters()
	if c.Malformed != 6 || c.UnknownType != 1 || c.StaleAcks != 1 || c.Oversized != 2 || c.ForeignAcks != 0 {
		t.Errorf("counters %+v, want 6 malformed, 1 unknown type, 1 stale ack, 2 oversized", c)
	}
	// It still pushes.
	allNil(t, e.Push(context.Background(), batch(info(1), newSubscriber(t, ackString).addr)), 1)
}

func TestTooLargeAPushFailsAtOnce(t *testing.T) {
	e := newExecutor(t, Config{})
	sub := newSubscriber(t, ackString)
	errs := e.Push(context.Background(), batch(incompressible(80000), sub.addr, sub.addr))
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "over the 65507 bytes a UDP datagram carries") {
			t.Errorf("target %d: %v, want too large", i, err)
		}
	}
	if c := e.Counters(); c.TooLarge != 2 || c.Failed != 2 || c.Datagrams != 0 {
		t.Errorf("counters %+v, want 2 too large, no datagram", c)
	}

	// Over what the Go SDK v1 reads, but within a datagram: sent, counted.
	allNil(t, e.Push(context.Background(), batch(incompressible(6000), sub.addr)), 1)
	if d := sub.received()[0]; len(d.raw) <= GoV1ReadSize || len(d.raw) > MaxDatagram {
		t.Fatalf("the push is %d bytes, want between %d and %d", len(d.raw), GoV1ReadSize, MaxDatagram)
	}
	if c := e.Counters(); c.OverGoV1 != 1 {
		t.Errorf("counters %+v, want 1 over the Go SDK v1's 4024 bytes", c)
	}
}

// incompressible returns a ServiceInfo that gzip hardly shrinks, with n
// random bytes in it (in base64).
func incompressible(n int) []byte {
	random := make([]byte, n)
	_, _ = rand.Read(random)
	return []byte(`{"name":"DEFAULT_GROUP@@orders","hosts":[],"x":"` + base64.StdEncoding.EncodeToString(random) + `"}`)
}

func TestMaxPendingBoundsTheAcksAwaited(t *testing.T) {
	e := newExecutor(t, Config{MaxPending: 2, RetryDelays: []string{"10s"}})
	silent := newSubscriber(t, never)
	acking := []*subscriber{newSubscriber(t, ackString), newSubscriber(t, ackString)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []error)
	go func() { done <- e.Push(ctx, batch(info(1), silent.addr)) }()
	<-silent.got // its ack is awaited

	errs := e.Push(context.Background(), batch(info(1), acking[0].addr, acking[1].addr))
	if errs[0] != nil {
		t.Errorf("the target within max_pending: %v", errs[0])
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "max_pending") {
		t.Errorf("the target over max_pending: %v, want an error naming max_pending", errs[1])
	}
	if n := len(acking[1].received()); n != 0 {
		t.Errorf("the target over max_pending was pushed %d times", n)
	}
	if c := e.Counters(); c.PendingFull != 1 || c.Pending != 1 {
		t.Errorf("counters %+v, want 1 over max_pending, 1 pending", c)
	}
	cancel()
	if errs := <-done; errs[0] == nil {
		t.Errorf("the silent target: no error")
	}
	if c := e.Counters(); c.Pending != 0 {
		t.Errorf("%d acks still awaited", c.Pending)
	}
}

func TestDumpAnswersWithTheLastPushOfEachService(t *testing.T) {
	e := newExecutor(t, Config{})
	sub := newSubscriber(t, ackString)
	payments := push.Service{Namespace: "dev", Group: "G", Name: "payments"}
	allNil(t, e.Push(context.Background(), batch(info(1), sub.addr)), 1)
	allNil(t, e.Push(context.Background(), batch(info(2), sub.addr)), 1) // replaces the first
	b := batch(info(3), sub.addr)
	b.Service, b.Clusters = payments, "c1,c2"
	allNil(t, e.Push(context.Background(), b), 1)

	p := newPeer(t, e)
	for _, ref := range []string{`"42"`, `42`} {
		p.send(t, []byte(`{"type":"dump","lastRefTime":`+ref+`,"data":""}`))
		var a struct {
			Type        string          `json:"type"`
			LastRefTime json.RawMessage `json:"lastRefTime"`
			Data        string          `json:"data"`
		}
		if err := json.Unmarshal(p.receive(t), &a); err != nil {
			t.Fatal(err)
		}
		var data map[string]json.RawMessage
		if err := json.Unmarshal([]byte(a.Data), &data); err != nil {
			t.Fatalf("the dump's data is not a JSON object: %v", err)
		}
		if a.Type != "dump-ack" || string(a.LastRefTime) != ref || len(data) != 2 {
			t.Errorf("answer %s (lastRefTime %s), %d services; want dump-ack, %s, 2", a.Type, a.LastRefTime, len(data), ref)
		}
		for key, want := range map[string][]byte{"public##DEFAULT_GROUP@@orders": info(2), "dev##G@@payments@@c1,c2": info(3)} {
			var compact bytes.Buffer
			_ = json.Compact(&compact, want)
			if got := data[key]; !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("the dump of %s is %s, want %s", key, got, compact.Bytes())
			}
		}
	}
	if c := e.Counters(); c.Dumps != 2 {
		t.Errorf("counters %+v, want 2 dumps", c)
	}
}

func TestADumpFitsOneDatagram(t *testing.T) {
	e := newExecutor(t, Config{})
	sub := newSubscriber(t, ackString)
	const services = 40 // of 2.5 KB each, in JSON: 100 KB
	for i := range services {
		b := batch(info(8), sub.addr)
		b.Service.Name = "svc-" + strconv.Itoa(i)
		allNil(t, e.Push(context.Background(), b), 1)
	}
	p := newPeer(t, e)
	p.send(t, []byte(`{"type":"dump","lastRefTime":1}`))
	raw := p.receive(t)
	var a struct{ Data string }
	var data map[string]json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(a.Data), &data); err != nil {
		t.Fatal(err)
	}
	c := e.Counters()
	if len(raw) > MaxDatagram || len(data) == 0 || len(data) == services || int(c.DumpTrimmed) != services-len(data) {
		t.Errorf("a dump of %d bytes, %d services, %d trimmed; want within a datagram, trimmed", len(raw), len(data), c.DumpTrimmed)
	}
	if _, ok := data["public##DEFAULT_GROUP@@svc-"+strconv.Itoa(services-1)]; !ok {
		t.Errorf("the dump lacks the service pushed last")
	}
}

func TestDumpsAreRateLimited(t *testing.T) {
	e, err := New(Config{Bind: "127.0.0.1:0", RetryDelays: DefaultRetryDelays(), MaxPending: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p := newPeer(t, e)
	p.send(t, []byte(`{"type":"dump","lastRefTime":1}`))
	p.receive(t)
	p.send(t, []byte(`{"type":"dump","lastRefTime":2}`))
	// The executor reads its socket in order: once it has the ack of a push
	// that follows the second dump request, it has read that.
	allNil(t, e.Push(context.Background(), batch(info(1), newSubscriber(t, ackString).addr)), 1)
	if c := e.Counters(); c.Dumps != 1 || c.DumpsLimited != 1 {
		t.Errorf("counters %+v, want 1 dump answered, 1 limited", c)
	}
}

func TestDumpForgetsTheServicePushedLongestAgo(t *testing.T) {
	e := newExecutor(t, Config{})
	for i := range MaxDumpServices + 2 {
		e.remember(push.Batch{Service: push.Service{Name: strconv.Itoa(i)}, ServiceInfo: []byte(`{}`)})
	}
	e.remember(push.Batch{Service: push.Service{Name: "2"}, ServiceInfo: []byte(`{}`)}) // known: nothing forgotten
	if _, ok := e.dumped["##@@0"]; ok || len(e.dumped) != MaxDumpServices || e.Counters().DumpForgotten != 2 {
		t.Errorf("%d services kept, %d forgotten; want %d, the first 2", len(e.dumped), e.Counters().DumpForgotten, MaxDumpServices)
	}
	if _, ok := e.dumped["##@@1"]; ok {
		t.Errorf("service 1 was kept, and it was pushed before all others")
	}
}

func TestDualStackSocketMatchesIPv4Acks(t *testing.T) {
	e := newExecutor(t, Config{Bind: ":0"})
	allNil(t, e.Push(context.Background(), batch(info(1), newSubscriber(t, ackNumber).addr)), 1)
	if conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil { // when the host has IPv6
		conn.Close()
		sub := newSubscriberOn(t, "[::1]:0")
		allNil(t, e.Push(context.Background(), batch(info(1), sub)), 1)
	}
}

// newSubscriberOn returns the address of an acknowledging subscriber
// listening on addr, until the test ends.
func newSubscriberOn(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteTo(ackString(0, decode(t, buf[:n])), from)
		}
	}()
	return conn.LocalAddr().String()
}

func TestCloseReleasesTheSocketAndFailsPushes(t *testing.T) {
	e, err := New(Config{Bind: "127.0.0.1:0", RetryDelays: []string{"10s"}, MaxPending: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, never)
	done := make(chan []error)
	go func() { done <- e.Push(context.Background(), batch(info(1), sub.addr)) }()
	<-sub.got
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if errs := <-done; !errors.Is(errs[0], errClosed) {
		t.Errorf("the push in flight: %v, want closed", errs[0])
	}
	if errs := e.Push(context.Background(), batch(info(1), sub.addr)); !errors.Is(errs[0], errClosed) {
		t.Errorf("a push after Close: %v, want closed", errs[0])
	}
	if err := e.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	again, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(e.Addr()))
	if err != nil {
		t.Fatalf("the socket's address is still taken: %v", err)
	}
	again.Close()
}

func TestEmptyBatch(t *testing.T) {
	e := newExecutor(t, Config{})
	if errs := e.Push(context.Background(), batch(info(1))); errs == nil || len(errs) != 0 {
		t.Errorf("Push of no targets = %#v, want an empty slice", errs)
	}
}

func TestLastRefTimesIncreaseStrictly(t *testing.T) {
	e := newExecutor(t, Config{})
	const goroutines, each = 8, 1000
	refs := make([][]int64, goroutines)
	var wg sync.WaitGroup
	for g := range refs {
		wg.Go(func() {
			for range each {
				refs[g] = append(refs[g], e.nextRef())
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, rs := range refs {
		for i, r := range rs {
			if seen[r] || (i > 0 && r <= rs[i-1]) {
				t.Fatalf("lastRefTime %d repeated or not increasing", r)
			}
			seen[r] = true
		}
	}
}

func TestConfig(t *testing.T) {
	if err := Plugin.Config.Validate(); err != nil {
		t.Fatalf("the schema: %v", err)
	}
	exec, _, err := push.NewExecutor(Plugin, []byte(`{"bind":"127.0.0.1:0"}`), push.Host{})
	if err != nil {
		t.Fatal(err)
	}
	e := exec.(*Executor)
	defer e.Close()
	if e.maxPending != DefaultMaxPending || e.giveUp != 3500*time.Millisecond || len(e.resends) != 3 {
		t.Errorf("defaults: max_pending %d, resends %v, give up after %v", e.maxPending, e.resends, e.giveUp)
	}

	// A configuration's retry_delays leave the defaults be.
	checked, err := Plugin.Config.Check(map[string]any{"bind": "127.0.0.1:0", "retry_delays": []any{"1s", "2s", "3s", "4s"}, "max_pending": 7})
	if err != nil {
		t.Fatal(err)
	}
	exec, _, err = push.NewExecutor(Plugin, checked, push.Host{})
	if err != nil {
		t.Fatal(err)
	}
	e = exec.(*Executor)
	defer e.Close()
	if e.maxPending != 7 || len(e.resends) != 4 || !slices.Equal(DefaultRetryDelays(), []string{"100ms", "500ms", "2s"}) {
		t.Errorf("max_pending %d, resends %v, defaults %v", e.maxPending, e.resends, DefaultRetryDelays())
	}

	for config, want := range map[string]string{
		`{"retry_delays":[]}`:             "config.retry_delays: give at least one delay",
		`{"retry_delays":["soon"]}`:       `config.retry_delays: item 0: "soon" is not a duration`,
		`{"retry_delays":["1s","500ms"]}`: "config.retry_delays: item 1: 500ms is not after 1s",
		`{"retry_delays":["0s"]}`:         "config.retry_delays: item 0: 0s is not positive",
		`{"max_pending":0}`:               "config.max_pending: 0 is not positive",
		`{"bind":"nowhere:x"}`:            "config.bind:",
		`{"colour":"blue"}`:               `unknown field "colour"`,
	} {
		if _, _, err := push.NewExecutor(Plugin, []byte(config), push.Host{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %s: %v, want %q", config, err, want)
		}
	}
	if _, err := Plugin.Config.Check(map[string]any{"retry_delays": "1s"}); err == nil {
		t.Errorf("retry_delays as a string passed the schema")
	}
	if Plugin.Name != "pushudp" || Plugin.Role != push.RoleUDP || Plugin.Version == "" {
		t.Errorf("plugin %q %q role %q", Plugin.Name, Plugin.Version, Plugin.Role)
	}
	var _ sdk.Info = Plugin.Info
}

func TestASendTheSocketRefusesFailsAtOnce(t *testing.T) {
	e := newExecutor(t, Config{RetryDelays: []string{"10s"}}) // an IPv4 socket
	sub := newSubscriber(t, ackString)
	start := time.Now()
	errs := e.Push(context.Background(), batch(info(1), "[2001:db8::1]:8080", sub.addr))
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "sending to [2001:db8::1]:8080") {
		t.Errorf("the IPv6 target of an IPv4 socket: %v, want a send error", errs[0])
	}
	if errs[1] != nil || time.Since(start) > 5*time.Second {
		t.Errorf("the other target: %v, after %v", errs[1], time.Since(start))
	}
	if c := e.Counters(); c.SendErrors != 1 || c.Failed != 1 || c.Acked != 1 || c.Pending != 0 {
		t.Errorf("counters %+v, want 1 send error, 1 failed, 1 acked", c)
	}
}

func TestIgnoredDatagramsAreLoggedSparingly(t *testing.T) {
	var log bytes.Buffer
	var mu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &log, mu: &mu}, JSONFormat: true})
	e, err := open(Config{Bind: "127.0.0.1:0", RetryDelays: DefaultRetryDelays(), MaxPending: 10}, logger, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(t, e)
	p.send(t, []byte("not JSON"))
	p.send(t, []byte(`{"type":"what"}`))
	p.barrier(t)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	want := []string{"pushing to UDP subscribers", "ignored a datagram on the UDP push socket", "stopped pushing to UDP subscribers"}
	var got []string
	for _, l := range lines {
		got = append(got, l["@message"].(string))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("log lines %q, want %q", got, want)
	}
	if a := lines[0]["address"]; a != e.Addr().String() {
		t.Errorf("the start line's address is %v, want %s", a, e.Addr())
	}
	if r := lines[1]["reason"]; r != "a datagram that is not JSON" || lines[1]["ignored_since_last_line"] != 1.0 {
		t.Errorf("the first ignored datagram's line: %v", lines[1])
	}
	if lines[2]["malformed"] != 1.0 || lines[2]["unknown_type"] != 1.0 || lines[2]["dumps"] != 1.0 {
		t.Errorf("the counters logged at the stop: %v", lines[2])
	}
}

// lockedWriter writes to w holding mu.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
