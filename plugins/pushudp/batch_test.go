package pushudp

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestABatchLargerThanOneSystemCallIsSentAndAcknowledged(t *testing.T) {
	// One resend after 10 s: on a loaded machine, 259 subscribers may take
	// longer than the default first delay (100 ms) to answer, and batching,
	// not resending, is under test.
	e := newExecutor(t, Config{RetryDelays: []string{"10s"}})
	n := 2*sendBatch + 3 // three sendmmsg calls; the acks take several recvmmsg
	var addrs []string
	for range n {
		addrs = append(addrs, newSubscriber(t, ackString).addr)
	}
	addrs = append(addrs, addrs[0]) // a second target at the first address: one datagram, one ack
	allNil(t, e.Push(context.Background(), batch(info(1), addrs...)), n+1)
	if c := e.Counters(); c.Datagrams != int64(n) || c.Acked != int64(n+1) || c.Resends != 0 || c.StaleAcks != 0 || c.Pending != 0 {
		t.Errorf("counters %+v, want %d datagrams, %d acked, no resend, none pending", c, n, n+1)
	}
}

func TestADatagramRefusedAmidABatchFailsAlone(t *testing.T) {
	e := newExecutor(t, Config{RetryDelays: []string{"10s"}}) // an IPv4 socket: it refuses IPv6 targets
	subs := []string{newSubscriber(t, ackString).addr, newSubscriber(t, ackString).addr, newSubscriber(t, ackString).addr}
	errs := e.Push(context.Background(), batch(info(1), subs[0], "[2001:db8::1]:8080", subs[1], "[2001:db8::2]:8080", "[2001:db8::2]:8080", subs[2]))
	for i, want := range []string{"", "sending to [2001:db8::1]:8080", "", "sending to [2001:db8::2]:8080", "sending to [2001:db8::2]:8080", ""} {
		if got := errs[i]; (want == "") != (got == nil) || got != nil && !strings.Contains(got.Error(), want) {
			t.Errorf("target %d: %v, want %q", i, got, want)
		}
	}
	if c := e.Counters(); c.Datagrams != 3 || c.SendErrors != 2 || c.Failed != 3 || c.Acked != 3 || c.Pending != 0 {
		t.Errorf("counters %+v, want 3 datagrams, 2 send errors, 3 failed, 3 acked", c)
	}
}

// FuzzParsePlain checks that what parsePlain reads, encoding/json reads
// alike.
func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{
		`{"type":"push-ack","lastRefTime":"1700000000000000000","data":""}`,
		`{"data":"","lastRefTime":"17","type":"push-ack"}`,
		`{"type": "push-ack", "lastRefTime": 17, "data": ""}`,
		` { "type" : "dump" , "lastRefTime" : -1 } `, `{}`, `{"type":"x",}`, `{"type":1}`, `{"Type":"push-ack"}`,
		`{"type":"push-ack","type":"dump"}`, `{"lastRefTime":01}`, `{"lastRefTime":1.5}`, `{"lastRefTime":"a\"b"}`,
		`{"data":{"a":1}}`, `{"type":"push-ack"}x`, `[1]`, ``, `{"type":"\u00e9"}`, "{\"type\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := parsePlain(data)
		if !ok {
			return
		}
		var want inbound
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("parsePlain read %q, which encoding/json refuses: %v", data, err)
		}
		if got.Type != want.Type || !bytes.Equal(got.LastRefTime, want.LastRefTime) {
			t.Fatalf("%q: parsePlain read %+v, encoding/json %+v", data, got, want)
		}
	})
}

func TestParsePlainReadsTheClientsAcks(t *testing.T) {
	for in, want := range map[string]inbound{
		`{"type":"push-ack","lastRefTime":"17","data":""}`:    {"push-ack", json.RawMessage(`"17"`)}, // Go SDK v1
		`{"type": "push-ack", "lastRefTime": 17, "data": ""}`: {"push-ack", json.RawMessage(`17`)},
		`{"type":"dump","lastRefTime":"-1","data":""}`:        {"dump", json.RawMessage(`"-1"`)},
	} {
		got, ok := parsePlain([]byte(in))
		if !ok || got.Type != want.Type || !bytes.Equal(got.LastRefTime, want.LastRefTime) {
			t.Errorf("%s: %+v %v, want %+v", in, got, ok, want)
		}
	}
}

func TestADatagramASystemCallWhereThereIsNoSendmmsg(t *testing.T) {
	e, err := openBatching(Config{Bind: "127.0.0.1:0", RetryDelays: []string{"10s"}, MaxPending: DefaultMaxPending}, nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if e.batch != nil {
		t.Fatal("batching")
	}
	a, b := newSubscriber(t, ackString).addr, newSubscriber(t, ackNumber).addr
	errs := e.Push(context.Background(), batch(info(1), a, "[2001:db8::1]:8080", b, a))
	if errs[0] != nil || errs[2] != nil || errs[3] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "sending to [2001:db8::1]:8080") {
		t.Errorf("errors %v", errs)
	}
	if c := e.Counters(); c.Datagrams != 2 || c.SendErrors != 1 || c.Acked != 3 || c.Failed != 1 || c.Pending != 0 {
		t.Errorf("counters %+v, want 2 datagrams, 1 send error, 3 acked, 1 failed", c)
	}
}
