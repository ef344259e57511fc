package natstransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sextantd/sextant/sdk/transport"
)

// rawConn connects to srv as a peer that speaks the wire by hand.
func rawConn(t testing.TB, srv *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// smallPayload configures a NATS server whose messages hold 8 KiB at most.
func smallPayload(o *server.Options) { o.MaxPayload = 8 << 10 }

func TestCallsAndSnapshotsInPieces(t *testing.T) {
	srv := startNATS(t, smallPayload)
	cfg := configOf(t, srv, nil)
	inA, inB := newInbound(), newInbound()
	a, _ := node(t, cfg, "10.0.0.1:8848", inA)
	_, addrB := node(t, cfg, "10.0.0.2:8848", inB)
	piece := 8<<10 - headroom

	// Count the pieces on the wire.
	var mu sync.Mutex
	ops := map[string]int{}
	watcher := rawConn(t, srv)
	_, err := watcher.Subscribe("sextant.member.>", func(m *nats.Msg) {
		mu.Lock()
		ops[m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx := timeout(t)
	payload := pattern(100 << 10)
	answer, err := a.Call(ctx, addrB, "echo", payload)
	if err != nil || !bytes.Equal(answer, payload) {
		t.Fatalf("a call of 100 KiB in pieces of %d: %d bytes back, %v", piece, len(answer), err)
	}
	if got := inB.received(); len(got) != 1 || got[0].from != "10.0.0.1:8848" || got[0].payload != string(payload[:100]) {
		t.Errorf("node B got %v", got)
	}
	answer, err = a.Call(ctx, addrB, "big", []byte("300000"))
	if err != nil || !bytes.Equal(answer, pattern(300000)) {
		t.Fatalf("an answer of 300000 bytes in pieces: %d bytes, %v", len(answer), err)
	}
	n := (len(payload) + piece - 1) / piece
	pieces := 2*n - 1 + (300000+piece-1)/piece // the echo's pieces, the answer's but its first, the big answer's
	await(t, "seeing every piece on the wire", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ops[opPart]+ops[opCall]+ops[opPull] == pieces
	})

	chunks := [][]byte{pattern(1), pattern(piece), pattern(piece + 1), {}, pattern(100000), pattern(50), pattern(3 * piece)}
	inB.chunks = chunks
	var got [][]byte
	err = a.Snapshot(ctx, addrB, func(c []byte) error {
		got = append(got, bytes.Clone(c))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(chunks) {
		t.Fatalf("got %d chunks, want %d", len(got), len(chunks))
	}
	for i := range chunks {
		if !bytes.Equal(got[i], chunks[i]) {
			t.Errorf("chunk %d: %d bytes, not the %d node B wrote", i, len(got[i]), len(chunks[i]))
		}
	}
	if inB.snapshots[0] != "10.0.0.1:8848" {
		t.Errorf("the snapshot was asked for by %q", inB.snapshots[0])
	}
}

func TestErrorsAndPanicsComeBack(t *testing.T) {
	srv := startNATS(t, nil)
	cfg := configOf(t, srv, nil)
	a, _ := node(t, cfg, "a:8848", newInbound())
	inB := newInbound()
	_, addrB := node(t, cfg, "b:8848", inB)
	ctx := timeout(t)
	if _, err := a.Call(ctx, addrB, "fail", nil); err == nil || err.Error() != "inbound says no" {
		t.Errorf("a failing call: %v", err)
	}
	if _, err := a.Call(ctx, addrB, "panic", nil); err == nil || !strings.Contains(err.Error(), "inbound out of luck") {
		t.Errorf("a panicking call: %v", err)
	}
	inB.snapshotErr = errors.New("no snapshot today")
	if err := a.Snapshot(ctx, addrB, func([]byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "no snapshot today") {
		t.Errorf("a failing snapshot: %v", err)
	}
	if _, err := a.Call(ctx, freeAddress(t), "echo", nil); !errors.Is(err, transport.ErrUnreachable) && !strings.HasPrefix(fmt.Sprint(err), transport.ErrUnreachable.Error()) {
		t.Errorf("a call to nobody: %v", err)
	}
	if _, err := a.Call(ctx, addrB, "bad\nkind", nil); err == nil {
		t.Error("a kind with a new line went out")
	}
}

func TestLimits(t *testing.T) {
	srv := startNATS(t, nil)
	a, _ := node(t, configOf(t, srv, map[string]any{"max_message_size": 1 << 20, "max_snapshot_size": 2 << 20}), "a:8848", newInbound())
	inB := newInbound()
	b, addrB := node(t, configOf(t, srv, map[string]any{"max_in_flight": 2, "max_message_size": 4 << 20}), "b:8848", inB)
	ctx := timeout(t)

	t.Run("in flight", func(t *testing.T) {
		hangCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { _, _ = a.Call(hangCtx, addrB, "hang", nil) })
		}
		<-inB.hung
		<-inB.hung
		if _, err := a.Call(ctx, addrB, "echo", []byte("one more")); err == nil || !strings.Contains(err.Error(), "busy") {
			t.Errorf("a third call with max_in_flight 2: %v", err)
		}
		if err := a.Snapshot(ctx, addrB, func([]byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "busy") {
			t.Errorf("a snapshot with max_in_flight 2 calls in flight: %v", err)
		}
		if _, busy := b.dropped.Load(), b.busy.Load(); busy != 2 {
			t.Errorf("node B counted %d refused, want 2", busy)
		}
		cancel()
		wg.Wait()
		await(t, "node B done with the hung calls", func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.inFlight() == 0
		})
		if _, err := a.Call(ctx, addrB, "echo", []byte("now")); err != nil {
			t.Errorf("a call once the others ended: %v", err)
		}
	})
	t.Run("message size", func(t *testing.T) {
		if _, err := a.Call(ctx, addrB, "echo", make([]byte, 1<<20+1)); err == nil || !strings.Contains(err.Error(), "max_message_size") {
			t.Errorf("a payload over max_message_size: %v", err)
		}
		if _, err := a.Call(ctx, addrB, "big", []byte(strconv.Itoa(1<<20+1))); err == nil || !strings.Contains(err.Error(), "max_message_size") {
			t.Errorf("an answer over the caller's max_message_size: %v", err)
		}
		if _, err := a.Call(ctx, addrB, "big", []byte(strconv.Itoa(5<<20))); err == nil || !strings.Contains(err.Error(), "max_message_size (4194304)") {
			t.Errorf("an answer over the peer's max_message_size: %v", err)
		}
	})
	t.Run("snapshot size", func(t *testing.T) {
		for _, tc := range []struct {
			chunks [][]byte
			want   string
		}{
			{[][]byte{make([]byte, 1<<20+1)}, "a chunk larger than max_message_size"},
			{[][]byte{make([]byte, 600<<10), make([]byte, 600<<10), make([]byte, 600<<10), make([]byte, 600<<10)}, "larger than max_snapshot_size"},
			{make([][]byte, 9000), "larger than max_snapshot_size"}, // empty chunks count too
		} {
			inB.chunks = tc.chunks
			err := a.Snapshot(ctx, addrB, func([]byte) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("a snapshot of %d chunks: %v, want %q", len(tc.chunks), err, tc.want)
			}
			// Node A withdrew it: node B's snapshot ends.
			awaitDone(t, <-inB.snapshotCtx)
		}
		inB.chunks = nil
	})
}

// awaitDone waits for ctx to end.
func awaitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a context still not done after 10s")
	}
}

// garbage is a message a broken or hostile peer sends, and whether it
// asks for an answer (which must then be an error).
type garbage struct {
	what    string
	op      string
	from    string // the sender's token; "" for "evil:1"
	header  nats.Header
	data    []byte
	request bool
}

func TestAGarbledPeerIsRefusedAndCounted(t *testing.T) {
	srv := startNATS(t, nil)
	inB := newInbound()
	inB.chunks = [][]byte{pattern(1048000)} // more than a piece
	b, addrB := node(t, configOf(t, srv, map[string]any{"max_message_size": 1 << 20}), "b:8848", inB)
	a, _ := node(t, configOf(t, srv, nil), "a:8848", newInbound())
	raw := rawConn(t, srv)
	to, evil := Token(addrB), Token("evil:1")
	h := func(kv ...string) nats.Header {
		out := nats.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	const id = "00000000000000aa"
	piece := pattern(minPiece)
	for _, g := range []garbage{
		{what: "no id", op: opCall, request: true},
		{what: "a bad id", op: opCall, header: h(hID, "XYZ"), request: true},
		{what: "a kind with a control character", op: opCall, header: h(hID, id, hKind, "a\x01b"), request: true},
		{what: "a kind too long", op: opCall, header: h(hID, id, hKind, strings.Repeat("k", 300)), request: true},
		{what: "a negative timeout", op: opCall, header: h(hID, id, hTimeout, "-5"), request: true},
		{what: "a timeout of a year", op: opCall, header: h(hID, id, hTimeout, strconv.FormatInt(int64(365*24*time.Hour), 10)), request: true},
		{what: "parts that never came", op: opCall, header: h(hID, id, hParts, "3", hSize, "9000"), request: true},
		{what: "parts beyond count", op: opCall, header: h(hID, id, hParts, "999999999"), request: true},
		{what: "a call without a reply subject", op: opCall, header: h(hID, id)},
		{what: "an unknown op", op: "frob", header: h(hID, id), request: true},
		{what: "a bad sender", op: opCall, from: "evil%zz", header: h(hID, id), request: true},
		{what: "a pull of nothing", op: opPull, header: h(hID, id, hSeq, "1"), request: true},
		{what: "a pull without a seq", op: opPull, header: h(hID, id), request: true},
		{what: "a snapshot without a reply subject", op: opSnap, header: h(hID, id, hSeq, "0")},
		{what: "a cancel without an id", op: opCancel},
		{what: "a part without a size", op: opPart, header: h(hID, id, hSeq, "0"), data: piece},
		{what: "a part too small", op: opPart, header: h(hID, id, hSeq, "0", hSize, "100000"), data: []byte("tiny")},
		{what: "a part as large as its call", op: opPart, header: h(hID, id, hSeq, "0", hSize, strconv.Itoa(minPiece)), data: piece},
		{what: "a part over max_message_size", op: opPart, header: h(hID, id, hSeq, "0", hSize, strconv.Itoa(2<<20)), data: piece},
		{what: "part 1 without part 0", op: opPart, header: h(hID, "00000000000000bb", hSeq, "1", hSize, "100000"), data: piece},
	} {
		from := evil
		if g.from != "" {
			from = g.from
		}
		msg := &nats.Msg{Subject: "sextant.member." + to + "." + from + "." + g.op, Header: g.header, Data: g.data}
		if !g.request {
			if err := raw.PublishMsg(msg); err != nil {
				t.Fatalf("%s: %v", g.what, err)
			}
			continue
		}
		reply, err := raw.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Errorf("%s: no answer: %v", g.what, err)
			continue
		}
		if reply.Header.Get(hStatus) != statusError {
			t.Errorf("%s: answered %v %q, not with an error", g.what, reply.Header, reply.Data)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}

	// A call in pieces that change their story.
	id2 := "00000000000000cc"
	part := func(seq, size int, data []byte) {
		t.Helper()
		if err := raw.PublishMsg(&nats.Msg{Subject: "sextant.member." + to + "." + evil + ".part", Data: data,
			Header: h(hID, id2, hSeq, strconv.Itoa(seq), hSize, strconv.Itoa(size))}); err != nil {
			t.Fatal(err)
		}
	}
	part(0, 3*minPiece, piece)
	part(2, 3*minPiece, piece) // skips 1: the call is dropped
	reply, err := raw.RequestMsg(&nats.Msg{Subject: "sextant.member." + to + "." + evil + ".call", Data: piece,
		Header: h(hID, id2, hParts, "2", hSize, strconv.Itoa(3*minPiece))}, 5*time.Second)
	if err != nil || reply.Header.Get(hStatus) != statusError {
		t.Errorf("the last piece of a dropped call: %v %v", err, reply)
	}

	// Calls arriving in pieces, over the budget (2 MiB), then over the
	// count per peer (16).
	for _, op := range []string{opPart, opCancel} {
		for i := range 3 {
			if err := raw.PublishMsg(&nats.Msg{Subject: "sextant.member." + to + "." + evil + "." + op, Data: piece,
				Header: h(hID, fmt.Sprintf("%016x", 0x100+i), hSeq, "0", hSize, strconv.Itoa(1<<20))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range maxPartials + 2 {
		if err := raw.PublishMsg(&nats.Msg{Subject: "sextant.member." + to + "." + evil + ".part", Data: piece,
			Header: h(hID, fmt.Sprintf("%016x", 0x1000+i), hSeq, "0", hSize, strconv.Itoa(2*minPiece))}); err != nil {
			t.Fatal(err)
		}
	}
	// A snapshot pulled out of order ends.
	id3 := "00000000000000dd"
	reply, err = raw.RequestMsg(&nats.Msg{Subject: "sextant.member." + to + "." + evil + ".snap", Header: h(hID, id3, hSeq, "0")}, 5*time.Second)
	if err != nil || reply.Header.Get(hPiece) != pieceMore {
		t.Fatalf("a snapshot's first piece: %v %v", err, reply)
	}
	reply, err = raw.RequestMsg(&nats.Msg{Subject: "sextant.member." + to + "." + evil + ".pull", Header: h(hID, id3, hSeq, "5")}, 5*time.Second)
	if err != nil || reply.Header.Get(hStatus) != statusError {
		t.Errorf("a pull out of order: %v %v", err, reply)
	}
	awaitDone(t, <-inB.snapshotCtx)

	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	await(t, "node B counting the garbage", func() bool { return b.dropped.Load() >= 24 })
	b.mu.Lock()
	partials, bytes := len(b.partials), b.partialBytes
	b.mu.Unlock()
	if partials != maxPartials || bytes != maxPartials*2*minPiece {
		t.Errorf("node B holds %d calls in pieces, %d bytes; want %d, %d", partials, bytes, maxPartials, maxPartials*2*minPiece)
	}
	if got := inB.received(); len(got) != 0 {
		t.Errorf("node B's server got %v", got)
	}
	if busy := b.busy.Load(); busy != 3 {
		t.Errorf("node B refused %d calls in pieces as busy, want 3 (one over the budget, two over the count)", busy)
	}
	t.Logf("node B dropped %d messages, refused %d as busy", b.dropped.Load(), b.busy.Load())
	// And it still serves.
	if answer, err := a.Call(timeout(t), addrB, "echo", []byte("still there?")); err != nil || string(answer) != "still there?" {
		t.Errorf("a call after the garbage: %q, %v", answer, err)
	}
}

// fakePeer answers, on the subjects of the node at address, what answer
// says; it returns the ops it received.
func fakePeer(t *testing.T, srv *server.Server, address string, answer func(op string, m *nats.Msg) *nats.Msg) *[]string {
	t.Helper()
	var mu sync.Mutex
	ops := &[]string{}
	raw := rawConn(t, srv)
	_, err := raw.Subscribe("sextant.member."+Token(address)+".*.*", func(m *nats.Msg) {
		op := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		mu.Lock()
		*ops = append(*ops, op)
		mu.Unlock()
		if a := answer(op, m); a != nil {
			_ = m.RespondMsg(a)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	return ops
}

func TestGarbledAnswersFailTheCall(t *testing.T) {
	srv := startNATS(t, nil)
	a, _ := node(t, configOf(t, srv, map[string]any{"max_message_size": 1 << 20, "max_snapshot_size": 2 << 20, "request_timeout": "1s"}), "a:8848", newInbound())
	ctx := timeout(t)
	answer := func(seq, piece string, data []byte) *nats.Msg {
		return &nats.Msg{Header: nats.Header{hSeq: {seq}, hPiece: {piece}}, Data: data}
	}
	for _, tc := range []struct {
		what   string
		answer func(op string, m *nats.Msg) *nats.Msg
		want   string
	}{
		{"no headers", func(string, *nats.Msg) *nats.Msg { return &nats.Msg{Data: []byte("hi")} }, "piece"},
		{"the wrong piece", func(string, *nats.Msg) *nats.Msg { return answer("7", pieceLast, nil) }, "answered with piece"},
		{"an unknown kind of piece", func(string, *nats.Msg) *nats.Msg { return answer("0", "most", nil) }, "of kind"},
		{"a tiny piece that more follow", func(string, *nats.Msg) *nats.Msg { return answer("0", pieceMore, []byte("x")) }, "less than"},
		{"the end of a snapshot", func(string, *nats.Msg) *nats.Msg { return answer("0", pieceEnd, nil) }, "end of a snapshot"},
		{"pieces without end", func(_ string, m *nats.Msg) *nats.Msg {
			return answer(m.Header.Get(hSeq), pieceMore, make([]byte, minPiece))
		}, "max_message_size"},
		{"silence", func(string, *nats.Msg) *nats.Msg { return nil }, "deadline"},
	} {
		target := freeAddress(t)
		ops := fakePeer(t, srv, target, func(op string, m *nats.Msg) *nats.Msg {
			if op == opCancel {
				return nil
			}
			if op == opCall {
				m.Header.Set(hSeq, "0")
			}
			return tc.answer(op, m)
		})
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := a.Call(callCtx, target, "echo", []byte("hello"))
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("a call answered with %s: %v, want an error with %q", tc.what, err, tc.want)
		}
		_ = ops
	}
	for _, tc := range []struct {
		what   string
		answer func(op string, m *nats.Msg) *nats.Msg
		want   string
	}{
		{"a chunk without end", func(_ string, m *nats.Msg) *nats.Msg {
			return answer(m.Header.Get(hSeq), pieceMore, make([]byte, minPiece))
		}, "a chunk larger than max_message_size"},
		{"empty chunks without end", func(_ string, m *nats.Msg) *nats.Msg { return answer(m.Header.Get(hSeq), pieceLast, nil) }, "larger than max_snapshot_size"},
		{"an end with data", func(_ string, m *nats.Msg) *nats.Msg { return answer(m.Header.Get(hSeq), pieceEnd, []byte("x")) }, "of kind"},
		{"an end in the middle of a chunk", func(_ string, m *nats.Msg) *nats.Msg {
			if m.Header.Get(hSeq) == "0" {
				return answer("0", pieceMore, make([]byte, minPiece))
			}
			return answer(m.Header.Get(hSeq), pieceEnd, nil)
		}, "in the middle of a chunk"},
		{"silence after a piece", func(_ string, m *nats.Msg) *nats.Msg {
			if m.Header.Get(hSeq) == "0" {
				return answer("0", pieceLast, []byte("one"))
			}
			return nil
		}, "did not answer within"},
	} {
		target := freeAddress(t)
		var mu sync.Mutex
		withdrawn := false
		fakePeer(t, srv, target, func(op string, m *nats.Msg) *nats.Msg {
			if op == opCancel {
				mu.Lock()
				withdrawn = true
				mu.Unlock()
				return nil
			}
			return tc.answer(op, m)
		})
		err := a.Snapshot(ctx, target, func([]byte) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("a snapshot answered with %s: %v, want an error with %q", tc.what, err, tc.want)
		}
		await(t, "the snapshot withdrawn", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return withdrawn
		})
	}
}

// TestPermissionsMakeTheSenderTheNATSUser runs three nodes on a NATS server
// whose users may each publish only as their own node, as the README sets
// it up: what a node receives comes from whom NATS authenticated, and a
// user that publishes as another node is refused by NATS.
func TestPermissionsMakeTheSenderTheNATSUser(t *testing.T) {
	selfA, selfB, selfD := "10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.4:8848"
	listenA, listenB, listenD := freeAddress(t), freeAddress(t), freeAddress(t)
	srv := startNATS(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "a", Password: "secret-a", Permissions: member("sextant", selfA, listenA)},
			{Username: "b", Password: "secret-b", Permissions: member("sextant", selfB, listenB)},
			{Username: "c", Password: "secret-c", Permissions: member("sextant", "10.0.0.3:8848", freeAddress(t))},
		}
		o.Nkeys = []*server.NkeyUser{{Nkey: seedUser, Permissions: member("sextant", selfD, listenD)}}
	})
	start := func(self, listen string, creds map[string]any, in transport.Inbound) *Transport {
		t.Helper()
		tr := New(configOf(t, srv, creds), transport.Host{Inbound: in})
		t.Cleanup(func() { tr.Close() })
		if err := tr.Listen(context.Background(), listen, self); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	inA, inB, inD := newInbound(), newInbound(), newInbound()
	a := start(selfA, listenA, map[string]any{"user": "a", "password": "secret-a"}, inA)
	start(selfB, listenB, map[string]any{"user": "b", "password": "secret-b"}, inB)
	seedFile := writeFile(t, t.TempDir(), "d.nk", seed)
	d := start(selfD, listenD, map[string]any{"nkey_seed_file": seedFile}, inD)
	ctx := timeout(t)

	for _, from := range []*Transport{a, d} {
		if _, err := from.Call(ctx, listenB, "echo", []byte("hi")); err != nil {
			t.Fatalf("%s calling node B: %v", from.self, err)
		}
	}
	if got := inB.received(); len(got) != 2 || got[0].from != selfA || got[1].from != selfD {
		t.Errorf("node B got %v, want calls from %s and %s", got, selfA, selfD)
	}

	// User c, by hand: NATS refuses what it sends as node A, and its
	// subscribing to what others receive.
	violations := make(chan error, 10)
	c := rawConn(t, srv, nats.UserInfo("c", "secret-c"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	forged := "sextant.member." + Token(listenB) + "." + Token(selfA) + ".call"
	if err := c.PublishMsg(&nats.Msg{Subject: forged, Reply: "sextant.inbox." + Token("10.0.0.3:8848") + ".x",
		Header: nats.Header{hID: {"00000000000000ee"}, hKind: {"echo"}}, Data: []byte("forged")}); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"sextant.member." + Token(listenB) + ".*.*", "sextant.inbox." + Token(selfA) + ".>", "sextant.member.>"} {
		if _, err := c.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Flush()
	for _, want := range []string{"Publish to " + strconv.Quote(forged), "Subscription to", "Subscription to", "Subscription to"} {
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), want) {
				t.Errorf("user c: %v, want a violation of %q", err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("NATS did not refuse user c: no %q", want)
		}
	}

	// A node running with user c's credentials as node A: NATS refuses its
	// messages, and it says so.
	var logs lockedBuffer
	impostor := New(configOf(t, srv, map[string]any{"user": "c", "password": "secret-c"}),
		transport.Host{Inbound: newInbound(), Logger: hclog.New(&hclog.LoggerOptions{Output: &logs})})
	t.Cleanup(func() { impostor.Close() })
	if err := impostor.Listen(ctx, freeAddress(t), selfA); err != nil {
		t.Fatal(err)
	}
	if _, err := impostor.Call(ctx, listenB, "echo", []byte("forged")); err == nil || !strings.Contains(err.Error(), "NATS refuses this node's messages as "+selfA) {
		t.Errorf("a call of the impostor: %v", err)
	}
	if !strings.Contains(logs.String(), "NATS refuses this node's messages as itself") {
		t.Errorf("the impostor's log:\n%s", logs.String())
	}
	if got := inB.received(); len(got) != 2 {
		t.Errorf("node B got %v", got[2:])
	}
}

// lockedBuffer is a log's output, for tests.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestListenWarnsOfLaxPermissions(t *testing.T) {
	srv := startNATS(t, nil)
	var logs lockedBuffer
	tr := New(configOf(t, srv, nil), transport.Host{Inbound: newInbound(), Logger: hclog.New(&hclog.LoggerOptions{Output: &logs})})
	defer tr.Close()
	if err := tr.Listen(context.Background(), freeAddress(t), "a:8848"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "NATS lets this node send as any other node") {
		t.Errorf("no warning in:\n%s", logs.String())
	}
}

func TestIdlePiecesAndSnapshotsExpire(t *testing.T) {
	srv := startNATS(t, nil)
	inB := newInbound()
	inB.chunks = [][]byte{pattern(1 << 20)}
	b := New(configOf(t, srv, nil), transport.Host{Inbound: inB})
	b.idle = 200 * time.Millisecond
	t.Cleanup(func() { b.Close() })
	addrB := freeAddress(t)
	if err := b.Listen(context.Background(), addrB, "b:8848"); err != nil {
		t.Fatal(err)
	}
	raw := rawConn(t, srv)
	subject := "sextant.member." + Token(addrB) + "." + Token("slow:1") + "."
	if err := raw.PublishMsg(&nats.Msg{Subject: subject + opPart, Data: pattern(minPiece),
		Header: nats.Header{hID: {"0000000000000001"}, hSeq: {"0"}, hSize: {"100000"}}}); err != nil {
		t.Fatal(err)
	}
	reply, err := raw.RequestMsg(&nats.Msg{Subject: subject + opSnap, Header: nats.Header{hID: {"0000000000000002"}, hSeq: {"0"}}}, 5*time.Second)
	if err != nil || reply.Header.Get(hPiece) != pieceMore {
		t.Fatalf("the first piece: %v %v", err, reply)
	}
	awaitDone(t, <-inB.snapshotCtx) // never pulled again
	await(t, "the call in pieces forgotten", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.partials) == 0 && b.partialBytes == 0 && len(b.sessions) == 0
	})
}

func TestCloseEndsWhatIsServed(t *testing.T) {
	srv := startNATS(t, nil)
	a, _ := node(t, configOf(t, srv, nil), "a:8848", newInbound())
	inB := newInbound()
	b, addrB := node(t, configOf(t, srv, nil), "b:8848", inB)
	ctx := timeout(t)
	errs := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, addrB, "hang", nil)
		errs <- err
	}()
	hung := <-inB.hung
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	awaitDone(t, hung)
	if err := <-errs; err == nil {
		t.Error("a call to a node that closed succeeded")
	}
	if _, err := b.Call(ctx, addrB, "echo", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("a call on a closed transport: %v", err)
	}
	if _, err := a.Call(ctx, addrB, "echo", nil); err == nil || !strings.HasPrefix(err.Error(), transport.ErrUnreachable.Error()) {
		t.Errorf("a call to the closed node: %v", err)
	}
}

// TestNATSGoneAndBack restarts the NATS server: meanwhile calls fail as
// unreachable, fast; then the nodes reconnect and talk again.
func TestNATSGoneAndBack(t *testing.T) {
	port := freeAddress(t)
	_, p, _ := strings.Cut(port, ":")
	portNum, _ := strconv.Atoi(p)
	opts := func(o *server.Options) { o.Port = portNum }
	srv := startNATS(t, opts)
	cfg := configOf(t, srv, nil)
	a, _ := node(t, cfg, "a:8848", newInbound())
	_, addrB := node(t, cfg, "b:8848", newInbound())
	ctx := timeout(t)
	if _, err := a.Call(ctx, addrB, "echo", nil); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	await(t, "node A disconnected", func() bool { return !a.conn().IsConnected() })
	began := time.Now()
	if _, err := a.Call(ctx, addrB, "echo", nil); err == nil || !strings.HasPrefix(err.Error(), transport.ErrUnreachable.Error()) || time.Since(began) > time.Second {
		t.Errorf("a call with NATS gone: %v after %v", err, time.Since(began))
	}
	startNATS(t, opts)
	await(t, "node A calling node B again", func() bool {
		_, err := a.Call(ctx, addrB, "echo", nil)
		return err == nil
	})
}

// TestTheREADMEPermissions runs the NATS permissions the README gives, its
// tokens replaced by the test's nodes: the nodes talk, and NATS refuses
// node 3 sending as node 1 and subscribing to node 2's subjects.
func TestTheREADMEPermissions(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(readme), "```conf\n")
	block, _, _ = strings.Cut(block, "```")
	if !strings.Contains(block, "allow_responses") {
		t.Fatalf("no NATS configuration in the README: %q", block)
	}
	ports := map[int]string{}
	for i := 1; i <= 3; i++ {
		_, port, _ := net.SplitHostPort(freeAddress(t))
		ports[i] = port
		block = strings.ReplaceAll(block, fmt.Sprintf("10_0_0_%d:9849", i), Token(fmt.Sprintf("10.0.0.%d:%s", i, port)))
	}
	conf := writeFile(t, t.TempDir(), "nats-server.conf", block)
	srv := startNATS(t, func(o *server.Options) {
		fromFile, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("the README's NATS configuration: %v", err)
		}
		*o = *fromFile
		o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	})
	nodes := map[int]*Transport{}
	ins := map[int]*inbound{}
	for i := 1; i <= 3; i++ {
		var logs lockedBuffer
		ins[i] = newInbound()
		nodes[i] = New(configOf(t, srv, map[string]any{"user": fmt.Sprintf("node%d", i), "password": fmt.Sprintf("node%d-secret", i)}),
			transport.Host{Inbound: ins[i], Logger: hclog.New(&hclog.LoggerOptions{Output: &logs})})
		t.Cleanup(func() { nodes[i].Close() })
		if err := nodes[i].Listen(context.Background(), ":"+ports[i], fmt.Sprintf("10.0.0.%d:8848", i)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "NATS lets this node send as any other node") || strings.Contains(logs.String(), "no answer") {
			t.Errorf("node %d at start-up:\n%s", i, logs.String())
		}
	}
	ctx := timeout(t)
	for _, pair := range [][2]int{{1, 2}, {2, 3}, {3, 1}} {
		target := fmt.Sprintf("10.0.0.%d:%s", pair[1], ports[pair[1]])
		if _, err := nodes[pair[0]].Call(ctx, target, "echo", []byte("hi")); err != nil {
			t.Errorf("node %d calling node %d: %v", pair[0], pair[1], err)
		}
		if err := nodes[pair[0]].Snapshot(ctx, target, func([]byte) error { return nil }); err != nil {
			t.Errorf("node %d loading node %d's snapshot: %v", pair[0], pair[1], err)
		}
	}
	if got := ins[2].received(); len(got) != 1 || got[0].from != "10.0.0.1:8848" {
		t.Errorf("node 2 got %v", got)
	}

	violations := make(chan error, 10)
	node3 := rawConn(t, srv, nats.UserInfo("node3", "node3-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	forged := "sextant.member." + Token("10.0.0.2:"+ports[2]) + "." + Token("10.0.0.1:8848") + ".call"
	if err := node3.Publish(forged, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if _, err := node3.SubscribeSync("sextant.member." + Token("10.0.0.2:"+ports[2]) + ".*.*"); err != nil {
		t.Fatal(err)
	}
	_ = node3.Flush()
	for _, want := range []string{"Publish to " + strconv.Quote(forged), "Subscription to"} {
		select {
		case err := <-violations:
			if !strings.Contains(err.Error(), want) {
				t.Errorf("node 3: %v, want a violation of %q", err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("NATS did not refuse node 3: no %q", want)
		}
	}
}
