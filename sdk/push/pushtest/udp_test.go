package pushtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/kit/kittest"
	"github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/push/pushtest"
)

// The kit's checks of udp plugins, against a small udp plugin of the
// tests' own (plugins/pushudp is the real one), whole and broken.

func TestUDPPluginPasses(t *testing.T) {
	t.Parallel()
	pushtest.Run(t, pushtest.Options{Plugin: udpPlugin(udpFlaws{})})
}

// A udp plugin whose author steers deliveries: the kit's receivers at the
// targets' addresses only listen.
func TestUDPPluginWithDeliveriesPasses(t *testing.T) {
	t.Parallel()
	var sink sink
	p := sink.plugin()
	p.Role = push.RoleUDP
	pushtest.Run(t, pushtest.Options{Plugin: p, Deliveries: &sink})
}

// The kit closes the executor (an io.Closer) of an in-process plugin: its
// socket and reading goroutine are gone, as are the kit's receivers.
func TestUDPLeavesNoGoroutineBehind(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"))
	t.Run("in process", func(t *testing.T) { pushtest.Run(t, pushtest.Options{Plugin: udpPlugin(udpFlaws{})}) })
}

func TestBrokenUDPPluginsFail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flaws udpFlaws
		want  []failure
	}{{
		name:  "takes an ack from any address",
		flaws: udpFlaws{anyAddress: true},
		want: []failure{
			{Check: "failures", Says: "a batch of 3 targets whose acks come from another address than the one pushed " +
				"(an ack counts only from the target's Address): 3 of 3 targets got the wrong result:\n" +
				"target 0 (client-0) got no error, but its delivery failed"},
		},
	}, {
		name:  "never resends",
		flaws: udpFlaws{noResend: true},
		want: []failure{{Check: "failures", Says: "a batch of 4 targets whose subscribers lose the first datagram of each push " +
			"(UDP loses datagrams: send an unacknowledged push again, within the kit's wait): 4 of 4 targets got the wrong result:\n" +
			`target 0 (client-0) got the error "no ack", but its delivery succeeded`}},
	}, {
		name:  "reports pushes it never sent delivered",
		flaws: udpFlaws{noSend: true},
		want: []failure{
			{Check: "results", Says: "a batch of 1 target, deliveries succeeding: the plugin reported every target delivered, " +
				"but the kit's receivers at their addresses (Target.Address) sent 0 acks"},
			{Check: "results", Says: "a batch of 500 targets, deliveries succeeding: the plugin reported every target delivered"},
			{Check: "failures", Says: "a batch of 5 targets, deliveries failing: 5 of 5 targets got the wrong result"},
			{Check: "failures", Says: "a batch of 6 targets whose subscribers 1, 3 and 5 never acknowledge: 3 of 6 targets got the wrong result"},
			{Check: "deadline", Says: "got no error, but its delivery failed"},
			{Check: "cancel", Says: "got no error, but its delivery failed"},
		},
	}, {
		name:  "sends the ServiceInfo as an object",
		flaws: udpFlaws{rawData: true},
		want: []failure{
			{Check: "results", Says: "datagrams that Nacos 1.x clients could not read, and acknowledged none of them. A push to a Target.Address " +
				`is one datagram, gzipped or not, of the JSON {"type":"dom","data":"<Batch.ServiceInfo as a JSON string>","lastRefTime":<an integer>}. The first:`},
			{Check: "results", Says: `receiver 0 got from 127.0.0.1:`},
			{Check: "results", Says: `a datagram that is not JSON (nor gzipped JSON): json: cannot unmarshal object into Go struct field .data of type string`},
			{Check: "results", Says: "a batch of 500 targets, deliveries succeeding: 500 of 500 targets got the wrong result"},
			{Check: "failures", Says: "that Nacos 1.x clients could not read"},
			{Check: "failures", Says: "a batch of 4 targets whose subscribers lose the first datagram of each push"},
			{Check: "deadline", Says: "that Nacos 1.x clients could not read"},
			{Check: "cancel", Says: "that Nacos 1.x clients could not read"},
			{Check: "concurrency", Says: "16 of 16 batches sent at once, deliveries succeeding, got wrong results"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := record(pushtest.Options{Plugin: udpPlugin(tc.flaws)}).Failures
			kittest.Expect(t, got, tc.want)
		})
	}
}

// udpFlaws break the tests' udp plugin.
type udpFlaws struct {
	anyAddress bool // takes an ack with a push's lastRefTime from any address
	noResend   bool // sends each push once
	noSend     bool // sends nothing, and reports every target delivered
	rawData    bool // sends the ServiceInfo as a JSON object, not a string
}

// udpPlugin returns a udp plugin that sends each batch one datagram per
// address, resends it 100 and 300 ms later, and gives up a second after
// the first send.
func udpPlugin(flaws udpFlaws) *push.Plugin {
	return &push.Plugin{
		Info: sdk.Info{Name: "udp", Version: "1.0.0"},
		Role: push.RoleUDP,
		New:  func([]byte, push.Host) (push.Executor, error) { return newUDPExecutor(flaws) },
	}
}

type udpExecutor struct {
	flaws udpFlaws
	conn  *net.UDPConn
	done  chan struct{} // closed when read returns
	ref   atomic.Int64

	mu      sync.Mutex
	waiting map[ackKey]chan struct{} // closed on the ack
}

// ackKey is an ack awaited: with a push's lastRefTime, from where it went.
type ackKey struct {
	ref  int64
	from netip.AddrPort
}

func newUDPExecutor(flaws udpFlaws) (*udpExecutor, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	// Room for a burst of acks: a flawed plugin that never resends must
	// not lose one.
	_ = conn.SetReadBuffer(4 << 20)
	e := &udpExecutor{flaws: flaws, conn: conn, done: make(chan struct{}), waiting: map[ackKey]chan struct{}{}}
	e.ref.Store(time.Now().UnixNano())
	go e.read()
	return e, nil
}

// Close implements io.Closer, which the kit calls.
func (e *udpExecutor) Close() error {
	err := e.conn.Close()
	<-e.done
	return err
}

func (e *udpExecutor) read() {
	defer close(e.done)
	buf := make([]byte, 1024)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var ack struct {
			Type        string          `json:"type"`
			LastRefTime json.RawMessage `json:"lastRefTime"`
		}
		if json.Unmarshal(buf[:n], &ack) != nil || ack.Type != "push-ack" {
			continue
		}
		ref, err := strconv.ParseInt(strings.Trim(string(ack.LastRefTime), `"`), 10, 64)
		if err != nil {
			continue
		}
		e.mu.Lock()
		for key, acked := range e.waiting {
			if key.ref == ref && (e.flaws.anyAddress || key.from == netip.AddrPortFrom(from.Addr().Unmap(), from.Port())) {
				delete(e.waiting, key)
				close(acked)
				break
			}
		}
		e.mu.Unlock()
	}
}

func (e *udpExecutor) Push(ctx context.Context, b push.Batch) []error {
	errs := make([]error, len(b.Targets))
	data, _ := json.Marshal(string(b.ServiceInfo))
	if e.flaws.rawData {
		data = b.ServiceInfo
	}
	ref := e.ref.Add(1)
	datagram := fmt.Appendf(nil, `{"type":"dom","data":%s,"lastRefTime":%d}`, data, ref)
	var wg sync.WaitGroup
	for i, t := range b.Targets {
		wg.Go(func() { errs[i] = e.deliver(ctx, datagram, ref, t.Address) })
	}
	wg.Wait()
	return errs
}

func (e *udpExecutor) deliver(ctx context.Context, datagram []byte, ref int64, address string) error {
	if e.flaws.noSend {
		return nil
	}
	to, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	key, acked := ackKey{ref, to}, make(chan struct{})
	e.mu.Lock()
	e.waiting[key] = acked
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.waiting, key)
		e.mu.Unlock()
	}()
	resends := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}
	if e.flaws.noResend {
		resends = nil
	}
	start := time.Now()
	giveUp := time.NewTimer(time.Second)
	defer giveUp.Stop()
	for try := 0; ; try++ {
		if _, err := e.conn.WriteToUDPAddrPort(datagram, to); err != nil {
			return err
		}
		next := giveUp.C
		if try < len(resends) {
			next = time.After(time.Until(start.Add(resends[try])))
		}
		select {
		case <-acked:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
			if try >= len(resends) {
				return errors.New("no ack")
			}
		}
	}
}
