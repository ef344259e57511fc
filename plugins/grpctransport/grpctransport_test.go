package grpctransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	peerv1 "github.com/sextantd/sextant/proto/grpctransport/v1"
	"github.com/sextantd/sextant/sdk/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// inbound is a node's host in the tests: it answers kind "echo" with the
// payload, fails kind "fail", and waits for its context on kind "hang"; its
// snapshot is snapshot, then snapshotErr.
type inbound struct {
	calls       chan call
	hung        chan context.Context
	snapshot    [][]byte
	snapshotErr error
	froms       chan string
}

type call struct{ from, kind, payload string }

func newInbound() *inbound {
	return &inbound{calls: make(chan call, 1000), hung: make(chan context.Context, 10), froms: make(chan string, 10)}
}

func (in *inbound) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	if len(payload) < 100 {
		in.calls <- call{from, kind, string(payload)}
	}
	switch kind {
	case "fail":
		return nil, errors.New("inbound says no")
	case "hang":
		in.hung <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	case "panic":
		panic("inbound out of luck")
	}
	return payload, nil
}

func (in *inbound) Snapshot(_ context.Context, from string, fn func([]byte) error) error {
	in.froms <- from
	for _, c := range in.snapshot {
		if err := fn(c); err != nil {
			return err
		}
	}
	return in.snapshotErr
}

// node starts a transport listening on address (a free loopback port if
// "") as the node named self, and closes it when the test ends.
func node(t testing.TB, self, address string, in transport.Inbound, cfg Config) *Transport {
	t.Helper()
	if address == "" {
		address = "127.0.0.1:0"
	}
	tr := New(cfg, transport.Host{Inbound: in})
	t.Cleanup(func() { tr.Close() })
	if err := tr.Listen(context.Background(), address, self); err != nil {
		t.Fatal(err)
	}
	return tr
}

func addr(tr *Transport) string { return tr.Addr().String() }

func timeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// freeAddress returns a loopback address nobody listens on.
func freeAddress(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestCallsBothWays(t *testing.T) {
	inA, inB := newInbound(), newInbound()
	a := node(t, "a:8848", "", inA, Config{})
	b := node(t, "b:8848", "", inB, Config{})
	ctx := timeout(t)
	for _, tc := range []struct {
		from, to *Transport
		in       *inbound
		self     string
	}{{a, b, inB, "a:8848"}, {b, a, inA, "b:8848"}} {
		answer, err := tc.from.Call(ctx, addr(tc.to), "echo", []byte("hello"))
		if err != nil || string(answer) != "hello" {
			t.Fatalf("Call = %q, %v", answer, err)
		}
		if got := <-tc.in.calls; got != (call{tc.self, "echo", "hello"}) {
			t.Fatalf("the peer's inbound got %+v", got)
		}
	}

	if _, err := a.Call(ctx, addr(b), "fail", nil); err == nil || err.Error() != "inbound says no" {
		t.Fatalf("a call the peer refused returned %v", err)
	}
	if _, err := a.Call(ctx, addr(b), "panic", nil); err == nil || !strings.Contains(err.Error(), "inbound out of luck") {
		t.Fatalf("a call whose inbound panicked returned %v", err)
	}
	if answer, err := a.Call(ctx, addr(b), "echo", nil); err != nil || len(answer) != 0 {
		t.Fatalf("an empty call returned %q, %v", answer, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	if answer, err := a.Call(ctx, addr(b), "echo", big); err != nil || !bytes.Equal(answer, big) {
		t.Fatalf("an 8 MiB call returned %d bytes, %v", len(answer), err)
	}

	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			payload := fmt.Sprint(i)
			if answer, err := b.Call(ctx, addr(a), "echo", []byte(payload)); err != nil || string(answer) != payload {
				t.Errorf("concurrent call %d = %q, %v", i, answer, err)
			}
		})
	}
	wg.Wait()
}

func TestMessageSizeIsBounded(t *testing.T) {
	cfg := Config{MaxMessageSize: minMessageSize}
	a := node(t, "a", "", newInbound(), cfg)
	b := node(t, "b", "", newInbound(), cfg)
	ctx := timeout(t)
	if _, err := a.Call(ctx, addr(b), "echo", make([]byte, minMessageSize)); err == nil || !strings.Contains(err.Error(), "max_message_size") {
		t.Fatalf("a call too large returned %v", err)
	}
	if answer, err := a.Call(ctx, addr(b), "echo", []byte("ok")); err != nil || string(answer) != "ok" {
		t.Fatalf("after a call too large, Call = %q, %v", answer, err)
	}
}

func TestDeadlineAndCancellationReachThePeer(t *testing.T) {
	in := newInbound()
	a := node(t, "a", "", newInbound(), Config{})
	b := node(t, "b", "", in, Config{})

	ctx, cancel := context.WithCancel(timeout(t))
	errs := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, addr(b), "hang", nil)
		errs <- err
	}()
	hung := <-in.hung
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled call returned %v", err)
	}
	select {
	case <-hung.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the peer's inbound was not cancelled with the call")
	}

	deadline := time.Now().Add(300 * time.Millisecond).Truncate(time.Microsecond)
	ctx, cancel = context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() {
		_, err := a.Call(ctx, addr(b), "hang", nil)
		errs <- err
	}()
	hung = <-in.hung
	if d, ok := hung.Deadline(); !ok || d.Before(deadline.Add(-time.Millisecond)) || d.After(deadline.Add(time.Second)) {
		t.Fatalf("the peer's inbound has the deadline %v, want about the caller's %v", d, deadline)
	}
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call past its deadline returned %v", err)
	}
	<-hung.Done()
}

func TestRefusedConnectionFailsFast(t *testing.T) {
	a := node(t, "a", "", newInbound(), Config{})
	nobody := freeAddress(t)
	for i := range 3 {
		start := time.Now()
		_, err := a.Call(timeout(t), nobody, "echo", nil)
		if !errors.Is(err, transport.ErrUnreachable) || err.Error() != "peer unreachable: "+nobody+": dial tcp "+nobody+": connect: connection refused" {
			t.Fatalf("call %d to a port nobody listens on returned %v", i, err)
		}
		if took := time.Since(start); took > DefaultDialTimeout {
			t.Fatalf("call %d to a port nobody listens on took %v", i, took)
		}
	}
	if err := a.Snapshot(timeout(t), nobody, func([]byte) error { return nil }); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("a snapshot from a port nobody listens on returned %v", err)
	}
}

func TestSilentPeerTimesOut(t *testing.T) {
	// A peer that takes the connection and never speaks gRPC.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	conns.Go(func() {
		var open []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range open {
					c.Close()
				}
				return
			}
			open = append(open, c)
		}
	})
	defer conns.Wait()
	defer l.Close()

	const dial = 300 * time.Millisecond
	a := node(t, "a", "", newInbound(), Config{DialTimeout: dial})
	start := time.Now()
	_, err = a.Call(timeout(t), l.Addr().String(), "echo", nil)
	if !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("a call to a silent peer returned %v", err)
	}
	if took := time.Since(start); took < dial || took > dial+2*time.Second {
		t.Fatalf("a call to a silent peer took %v with a dial timeout of %v", took, dial)
	}
	a.Close() // before the listener, so that no connection attempt is left
}

func TestReconnectsAfterThePeerRestarts(t *testing.T) {
	a := node(t, "a", "", newInbound(), Config{})
	b := node(t, "b", "", newInbound(), Config{})
	address := addr(b)
	ctx := timeout(t)
	if _, err := a.Call(ctx, address, "echo", []byte("1")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := a.Call(ctx, address, "echo", []byte("2")); err == nil {
		t.Fatal("a call to a closed peer succeeded")
	}
	in := newInbound()
	node(t, "b", address, in, Config{})
	for {
		answer, err := a.Call(ctx, address, "echo", []byte("3"))
		if err == nil && string(answer) == "3" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no call reached the restarted peer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := <-in.calls; got.from != "a" {
		t.Fatalf("the restarted peer got %+v", got)
	}
}

func TestSnapshots(t *testing.T) {
	in := newInbound()
	for i, size := range []int{3 << 20, 1, 1000, 1 << 20, 3 << 20, 77777, 0, 12345} { // 7 MiB and a bit
		in.snapshot = append(in.snapshot, bytes.Repeat([]byte{byte('a' + i)}, size))
	}
	a := node(t, "a", "", newInbound(), Config{})
	b := node(t, "b", "", in, Config{})
	var got [][]byte
	if err := a.Snapshot(timeout(t), addr(b), func(c []byte) error {
		got = append(got, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in.snapshot) {
		t.Fatalf("%d chunks came, %d were written", len(got), len(in.snapshot))
	}
	for i := range got {
		if !bytes.Equal(got[i], in.snapshot[i]) {
			t.Fatalf("chunk %d is %d bytes, not the %d written", i, len(got[i]), len(in.snapshot[i]))
		}
	}
	if from := <-in.froms; from != "a" {
		t.Fatalf("the peer was asked for its snapshot by %q", from)
	}

	// On the wire, no message is larger than a MiB.
	conn, err := grpc.NewClient(addr(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := peerv1.NewPeerClient(conn).Snapshot(metadata.AppendToOutgoingContext(timeout(t), fromKey, "raw"), &peerv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var pieces []int
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(c.GetData()) > chunkSize {
			t.Fatalf("a message of %d bytes", len(c.GetData()))
		}
		if pieces = append(pieces, len(c.GetData())); !c.GetMore() {
			pieces = append(pieces, -1) // the end of a chunk
		}
	}
	want := []int{1 << 20, 1 << 20, 1 << 20, -1, 1, -1, 1000, -1, 1 << 20, -1, 1 << 20, 1 << 20, 1 << 20, -1, 77777, -1, 0, -1, 12345, -1}
	if !slices.Equal(pieces, want) {
		t.Fatalf("the pieces on the wire were %v, want %v", pieces, want)
	}
	<-in.froms

	stop := errors.New("enough")
	if err := a.Snapshot(timeout(t), addr(b), func([]byte) error { return stop }); err != stop {
		t.Fatalf("a snapshot whose fn failed returned %v", err)
	}
	in.snapshot = [][]byte{[]byte("the start")}
	in.snapshotErr = errors.New("the snapshot broke")
	if err := a.Snapshot(timeout(t), addr(b), func([]byte) error { return nil }); err == nil || err.Error() != "the snapshot broke" {
		t.Fatalf("a snapshot that broke returned %v", err)
	}
}

// brokenPeer serves a snapshot of pieces and ends it well.
type brokenPeer struct {
	peerv1.UnimplementedPeerServer
	pieces []*peerv1.Chunk
}

func (p brokenPeer) Snapshot(_ *peerv1.SnapshotRequest, stream peerv1.Peer_SnapshotServer) error {
	for _, c := range p.pieces {
		if err := stream.Send(c); err != nil {
			return err
		}
	}
	return nil
}

func TestBrokenChunksAreRefused(t *testing.T) {
	a := node(t, "a", "", newInbound(), Config{MaxMessageSize: minMessageSize})
	for _, tc := range []struct {
		pieces []*peerv1.Chunk
		want   string
	}{
		{[]*peerv1.Chunk{{Data: []byte("x"), More: true}}, "ended in the middle of a chunk"},
		{[]*peerv1.Chunk{{Data: make([]byte, chunkSize), More: true}, {Data: make([]byte, overhead+1)}}, "has a chunk larger than max_message_size"},
	} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		peerv1.RegisterPeerServer(srv, brokenPeer{pieces: tc.pieces})
		go srv.Serve(l)
		err = a.Snapshot(timeout(t), l.Addr().String(), func([]byte) error { return nil })
		srv.Stop()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("a snapshot of pieces %v returned %v, want an error saying %q", tc.pieces, err, tc.want)
		}
	}
}

func TestClose(t *testing.T) {
	a := node(t, "a", "", newInbound(), Config{})
	in := newInbound()
	b := node(t, "b", "", in, Config{})
	ctx := timeout(t)
	if _, err := a.Call(ctx, addr(b), "echo", nil); err != nil {
		t.Fatal(err)
	}
	// A call in flight on b when it closes: Close ends it.
	errs := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, addr(b), "hang", nil)
		errs <- err
	}()
	hung := <-in.hung
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if hung.Err() == nil {
		t.Fatal("Close returned while the inbound still served a call")
	}
	if err := <-errs; err == nil {
		t.Fatal("a call in flight when the peer closed succeeded")
	}
	if c, err := net.Dial("tcp", addr(b)); err == nil {
		c.Close()
		t.Fatal("the port still accepts connections after Close")
	}
	if _, err := b.Call(ctx, addr(a), "echo", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("a call on a closed transport returned %v", err)
	}
	if err := b.Listen(ctx, "127.0.0.1:0", "b"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Listen on a closed transport returned %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("a second Close returned %v", err)
	}
}

func TestCallBeforeListen(t *testing.T) {
	a := New(Config{}, transport.Host{Inbound: newInbound()})
	defer a.Close()
	if _, err := a.Call(timeout(t), "127.0.0.1:1", "echo", nil); err == nil || !strings.Contains(err.Error(), "Listen first") {
		t.Fatalf("a call before Listen returned %v", err)
	}
	if err := a.Listen(timeout(t), "127.0.0.1:0", ""); err == nil {
		t.Fatal("Listen without self was accepted")
	}
	if err := a.Listen(timeout(t), "127.0.0.1:0", "a"); err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(timeout(t), "127.0.0.1:0", "a"); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("a second Listen returned %v", err)
	}
}

func TestStreamsWithoutFromAreRefused(t *testing.T) {
	b := node(t, "b", "", newInbound(), Config{})
	conn, err := grpc.NewClient(addr(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := peerv1.NewPeerClient(conn).Call(timeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fromKey) {
		t.Fatalf("a stream without %s got %v", fromKey, err)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   Config
		err    string
	}{
		{"", Config{DialTimeout: DefaultDialTimeout, MaxMessageSize: DefaultMaxMessageSize}, ""},
		{"{}", Config{DialTimeout: DefaultDialTimeout, MaxMessageSize: DefaultMaxMessageSize}, ""},
		{`{"dial_timeout":"500ms","max_message_size":16777216}`, Config{DialTimeout: 500 * time.Millisecond, MaxMessageSize: 16 << 20}, ""},
		{`{"secret":"0123456789abcdef0123456789abcdef"}`, Config{DialTimeout: DefaultDialTimeout, MaxMessageSize: DefaultMaxMessageSize, Secret: []byte("0123456789abcdef0123456789abcdef")}, ""},
		{`{"dial_timeout":"0s"}`, Config{}, "config.dial_timeout: must be positive"},
		{`{"max_message_size":1000}`, Config{}, "config.max_message_size: must be at least"},
		{`{"dial_timeout":"soon"}`, Config{}, "soon"},
		{`{"colour":"blue"}`, Config{}, `unknown field "colour"`},
		{`{"secret":"short"}`, Config{}, "config.secret: must be at least 32 bytes, not 5"},
		{`{"tls_ca_file":"ca.pem"}`, Config{}, "set all three, or none"},
		{`{"tls_ca_file":"/nonexistent/ca.pem","tls_cert_file":"c.pem","tls_key_file":"k.pem"}`, Config{}, "config.tls_ca_file: open /nonexistent/ca.pem"},
	} {
		got, err := ParseConfig([]byte(tc.config))
		if tc.err == "" && (err != nil || !reflect.DeepEqual(got, tc.want)) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseConfig(%s) = %+v, %v", tc.config, got, err)
		}
	}
	if err := Plugin.Config.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Plugin.Config.Check(map[string]any{"dial_timeout": "1s", "max_message_size": 1 << 24}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCall measures small calls between two nodes on loopback, many
// in flight at once as Distro makes them.
func BenchmarkCall(b *testing.B) {
	a := node(b, "a", "", newInbound(), Config{})
	peer := node(b, "b", "", discard{}, Config{})
	ctx := context.Background()
	payload := make([]byte, 256)
	if _, err := a.Call(ctx, addr(peer), "echo", payload); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Call(ctx, addr(peer), "echo", payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSnapshot measures a 64 MiB snapshot between two nodes on loopback.
func BenchmarkSnapshot(b *testing.B) {
	const size = 64 << 20
	a := node(b, "a", "", newInbound(), Config{})
	peer := node(b, "b", "", discard{snapshot: make([]byte, size)}, Config{})
	b.SetBytes(size)
	for b.Loop() {
		n := 0
		if err := a.Snapshot(context.Background(), addr(peer), func(c []byte) error { n += len(c); return nil }); err != nil || n != size {
			b.Fatal(n, err)
		}
	}
}

// discard is an inbound that echoes without recording, and whose snapshot
// is written 256 KiB at a time.
type discard struct{ snapshot []byte }

func (discard) Handle(_ context.Context, _, _ string, payload []byte) ([]byte, error) {
	return payload, nil
}

func (d discard) Snapshot(_ context.Context, _ string, fn func([]byte) error) error {
	for p := d.snapshot; len(p) > 0; {
		n := min(len(p), 256<<10)
		if err := fn(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// BenchmarkBigCall measures calls of 8 MiB each way between two nodes.
func BenchmarkBigCall(b *testing.B) {
	a := node(b, "a", "", newInbound(), Config{})
	peer := node(b, "b", "", discard{}, Config{})
	payload := make([]byte, 8<<20)
	b.SetBytes(2 * int64(len(payload)))
	for b.Loop() {
		if _, err := a.Call(context.Background(), addr(peer), "echo", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallOneAtATime measures the round trip of one small call.
func BenchmarkCallOneAtATime(b *testing.B) {
	a := node(b, "a", "", newInbound(), Config{})
	peer := node(b, "b", "", discard{}, Config{})
	payload := make([]byte, 256)
	for b.Loop() {
		if _, err := a.Call(context.Background(), addr(peer), "echo", payload); err != nil {
			b.Fatal(err)
		}
	}
}
