package h2serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/core/tlsconfig/tlstest"
	"github.com/sextantd/sextant/proto/nacos"
)

// pusher is a bi-stream handler that keeps each stream to write to it, and
// refuses a message of class "Refuse".
type pusher struct {
	mu      sync.Mutex
	streams []*Stream
	opened  chan *Stream
	closed  chan struct{}
}

func newPusher() *pusher {
	return &pusher{opened: make(chan *Stream, 16), closed: make(chan struct{}, 16)}
}

func (p *pusher) stream(_ context.Context, s *Stream) Receiver {
	p.mu.Lock()
	p.streams = append(p.streams, s)
	p.mu.Unlock()
	p.opened <- s
	return pusherStream{p}
}

type pusherStream struct{ p *pusher }

func (r pusherStream) Receive(m *nacos.Payload) error {
	if m.GetMetadata().GetType() == "Refuse" {
		return errors.New("refused: " + string(m.GetBody().GetValue()))
	}
	return nil
}

func (r pusherStream) Closed() { r.p.closed <- struct{}{} }

// servePusher serves a pusher's bi-streams, and echo's calls, with o until
// the test ends, and returns the pusher and a client of the server.
func servePusher(t *testing.T, o Options) (*pusher, *grpc.ClientConn) {
	t.Helper()
	p := newPusher()
	_, addr := serve(t, Handlers{Unary: (&echo{}).unary, Stream: p.stream}, o)
	return p, dial(t, addr)
}

// serve runs a Server with h on a loopback listener until the test ends.
func serve(t *testing.T, h Handlers, o Options) (*Server, string) {
	t.Helper()
	srv := New(h, o)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; !errors.Is(err, ErrStopped) {
			t.Errorf("Serve returned %v, want ErrStopped", err)
		}
	})
	return srv, lis.Addr().String()
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func payload(typ string, body []byte) *nacos.Payload {
	return &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: body}}
}

// message is payload(typ, body) encoded, as the server sends it.
func message(typ string, body []byte) serveropts.Message {
	m, err := serveropts.EncodeMessage(payload(typ, body))
	if err != nil {
		panic(err)
	}
	return m
}

// openStream opens a bi-stream on cc, for as long as ctx lasts, and sends
// first on it.
func openStream(t *testing.T, ctx context.Context, cc *grpc.ClientConn, first *nacos.Payload) grpc.BidiStreamingClient[nacos.Payload, nacos.Payload] {
	t.Helper()
	client, err := nacos.NewBiRequestStreamClient(cc).RequestBiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Send(first); err != nil {
		t.Fatal(err)
	}
	return client
}

// TestTheServerWritesToABiStream: what other goroutines Send reaches the
// client in order, messages larger than the client's windows included
// (they wait for its WINDOW_UPDATEs), while unary calls go on.
func TestTheServerWritesToABiStream(t *testing.T) {
	p, cc := servePusher(t, Options{MaxMessageSize: 4 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := openStream(t, ctx, cc, payload("ConnectionSetupRequest", nil))
	server := <-p.opened
	sizes := []int{10, 70_000, 200_000, 5, 1 << 20}
	sent := make(chan error, 1)
	go func() {
		for i, n := range sizes {
			if err := server.Send(message("Push", bytes.Repeat([]byte{byte('a' + i)}, n))); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i, n := range sizes {
		got, err := client.Recv()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := bytes.Repeat([]byte{byte('a' + i)}, n); got.GetMetadata().GetType() != "Push" || !bytes.Equal(got.GetBody().GetValue(), want) {
			t.Fatalf("message %d: %s of %d bytes, want Push of %d", i, got.GetMetadata().GetType(), len(got.GetBody().GetValue()), n)
		}
		if _, err := call(ctx, cc, "Q", []byte("meanwhile")); err != nil {
			t.Fatalf("a call between pushes: %v", err)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := client.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client's end: %v, want io.EOF (status OK)", err)
	}
	<-p.closed
	if err := server.Send(message("Late", nil)); !errors.Is(err, errStreamEnded) {
		t.Fatalf("a Send after the stream ended: %v, want errStreamEnded", err)
	}
}

// TestAReceiverErrorEndsTheStreamWithItsText: the client sees UNKNOWN and
// the error's text; the Receiver is told the stream ended.
func TestAReceiverErrorEndsTheStreamWithItsText(t *testing.T) {
	p, cc := servePusher(t, Options{MaxMessageSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := openStream(t, ctx, cc, payload("Refuse", []byte("bad setup"))).Recv()
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "refused: bad setup") {
		t.Fatalf("%v, want Unknown with the receiver's text", err)
	}
	<-p.closed
}

// TestAStreamEndsWithItsConnection: a client that goes away ends its
// stream; a Send waiting for a window it will never get fails.
func TestAStreamEndsWithItsConnection(t *testing.T) {
	p, cc := servePusher(t, Options{MaxMessageSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	openStream(t, ctx, cc, payload("ConnectionSetupRequest", nil))
	server := <-p.opened
	sent := make(chan error, 1)
	// The client never reads: a message past its windows waits.
	go func() { sent <- server.Send(message("Huge", make([]byte, 1<<20))) }()
	cc.Close()
	<-p.closed
	if err := <-sent; err == nil {
		t.Fatal("a Send to a client that went away succeeded")
	}
}

// TestABlockingCallLetsTheOthersGoOn: a call Blocking names waits on a
// goroutine of its own while other calls on the connection are answered.
func TestABlockingCallLetsTheOthersGoOn(t *testing.T) {
	release := make(chan struct{})
	e := &echo{}
	unary := func(ctx context.Context, p *nacos.Payload) *serveropts.Answer {
		if p.GetMetadata().GetType() == "Slow" {
			<-release
		}
		return e.unary(ctx, p)
	}
	blocking := func(p *nacos.Payload) bool { return p.GetMetadata().GetType() == "Slow" }
	_, addr := serve(t, Handlers{Unary: unary, Blocking: blocking, Stream: e.stream}, Options{MaxMessageSize: 1 << 20})
	cc := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow := make(chan error, 1)
	go func() {
		got, err := call(ctx, cc, "Slow", []byte("waited"))
		if err == nil && string(got.GetBody().GetValue()) != "waited" {
			err = errors.New("wrong answer " + string(got.GetBody().GetValue()))
		}
		slow <- err
	}()
	for range 10 {
		if _, err := call(ctx, cc, "Fast", []byte("x")); err != nil {
			t.Fatalf("a call while another waits: %v", err)
		}
	}
	select {
	case err := <-slow:
		t.Fatalf("the blocking call returned before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// rawClient is an HTTP/2 client written with the framer, for what grpc-go
// does not do on purpose.
type rawClient struct {
	nc net.Conn
	fr *http2.Framer
}

func rawDial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{nc: nc, fr: http2.NewFramer(nc, nc)}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// goAway reads frames until a GOAWAY, which it returns.
func (c *rawClient) goAway(t *testing.T) *http2.GoAwayFrame {
	t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			return ga
		}
	}
}

// TestStopSendsGoAway: a stopping server tells each client with a GOAWAY
// naming the last stream it took, then closes the connection.
func TestStopSendsGoAway(t *testing.T) {
	e := &echo{}
	srv, addr := serve(t, Handlers{Unary: e.unary, Stream: e.stream}, Options{MaxMessageSize: 1 << 20})
	c := rawDial(t, addr)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: headerBlock(":method", "POST", ":path", StreamPath), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WritePing(false, [8]byte{7}); err != nil { // answered once the stream is open
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			break
		}
	}
	go srv.Stop()
	ga := c.goAway(t)
	if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 3 {
		t.Fatalf("GOAWAY %v, last stream %d; want NO_ERROR, 3", ga.ErrCode, ga.LastStreamID)
	}
	if _, err := c.fr.ReadFrame(); err == nil {
		t.Fatal("the connection stayed open after the GOAWAY")
	}
}

// TestTooManyPingsAreRefused: PINGs closer than MinPingInterval, more than
// twice, get GOAWAY ENHANCE_YOUR_CALM "too_many_pings", as from grpc-go.
func TestTooManyPingsAreRefused(t *testing.T) {
	e := &echo{}
	_, addr := serve(t, Handlers{Unary: e.unary, Stream: e.stream}, Options{MaxMessageSize: 1 << 20, MinPingInterval: time.Minute})
	c := rawDial(t, addr)
	for i := range 4 {
		if err := c.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ga := c.goAway(t)
	if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
		t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
	}
}

// TestTLS: a gRPC client over TLS negotiates h2 and is answered, on the
// bi-stream too; a plaintext client is not.
func TestTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "h2serve")
	p := newPusher()
	e := &echo{}
	srv, addr := serve(t, Handlers{Unary: e.unary, Stream: p.stream},
		Options{MaxMessageSize: 1 << 20, TLS: &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS(t)}, MinVersion: tls.VersionTLS12}})
	cc := dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := call(ctx, cc, "Q", []byte("over tls")); err != nil || string(got.GetBody().GetValue()) != "over tls" {
		t.Fatalf("a call over TLS: %v", err)
	}
	client := openStream(t, ctx, cc, payload("ConnectionSetupRequest", nil))
	if err := (<-p.opened).Send(message("Push", []byte("pushed over tls"))); err != nil {
		t.Fatal(err)
	}
	if got, err := client.Recv(); err != nil || string(got.GetBody().GetValue()) != "pushed over tls" {
		t.Fatalf("a push over TLS: %v", err)
	}
	// Idle, the connection gives its buffer back and waits on a new
	// goroutine; TLS survives the read deadline that takes it there.
	for srv.Reading() != 0 {
		if ctx.Err() != nil {
			t.Fatal("the idle TLS connection kept its read buffer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := call(ctx, cc, "Q", []byte("after idle")); err != nil || string(got.GetBody().GetValue()) != "after idle" {
		t.Fatalf("a call over TLS after idling: %v", err)
	}

	plain := dial(t, addr)
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := call(short, plain, "Q", []byte("plaintext")); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a plaintext call to a TLS server: %v, want it to fail", err)
	}
}

// TestAResetEndsAStream: a client that cancels its bi-stream (RST_STREAM)
// ends it, its Receiver is told, and the connection serves on.
func TestAResetEndsAStream(t *testing.T) {
	p, cc := servePusher(t, Options{MaxMessageSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streamCtx, reset := context.WithCancel(ctx)
	openStream(t, streamCtx, cc, payload("ConnectionSetupRequest", nil))
	server := <-p.opened
	reset()
	<-p.closed
	if err := server.Send(message("Late", nil)); !errors.Is(err, errStreamEnded) {
		t.Fatalf("a Send after the reset: %v, want errStreamEnded", err)
	}
	if _, err := call(ctx, cc, "Q", []byte("after")); err != nil {
		t.Fatalf("a call after the reset: %v", err)
	}
}

// TestAFrameOverTheMaximumSizeEndsTheConnection: a frame larger than
// HTTP/2's default SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR, not
// read into memory: the connection ends (with a GOAWAY, unless the close
// of a connection with unread input resets it first), and a PING after
// the frame is never answered.
func TestAFrameOverTheMaximumSizeEndsTheConnection(t *testing.T) {
	e := &echo{}
	_, addr := serve(t, Handlers{Unary: e.unary, Stream: e.stream}, Options{MaxMessageSize: 1 << 20})
	c := rawDial(t, addr)
	go func() {
		_ = c.fr.WriteRawFrame(0xfe, 0, 0, make([]byte, 1<<20))
		_ = c.fr.WritePing(false, [8]byte{9})
	}()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return // closed
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeFrameSize {
				t.Fatalf("GOAWAY %v, want FRAME_SIZE_ERROR", f.ErrCode)
			}
			return
		case *http2.PingFrame:
			if f.IsAck() {
				t.Fatal("a 1 MiB frame was read, and the connection served on")
			}
		}
	}
}

// closingReceiver refuses every message and, told that its stream ended,
// closes the connection, as core/remote's session does.
type closingReceiver struct{ s *Stream }

func (r closingReceiver) Receive(*nacos.Payload) error { return errors.New("setup refused") }
func (r closingReceiver) Closed()                      { _ = r.s.c.raw.Close() }

// TestAStreamsStatusGoesOutBeforeItsReceiverCloses: the client gets the
// status of a stream whose Receiver closes the connection once it ended.
func TestAStreamsStatusGoesOutBeforeItsReceiverCloses(t *testing.T) {
	h := Handlers{Unary: (&echo{}).unary, Stream: func(_ context.Context, s *Stream) Receiver { return closingReceiver{s: s} }}
	_, addr := serve(t, h, Options{MaxMessageSize: 1 << 20})
	cc := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := openStream(t, ctx, cc, payload("ConnectionSetupRequest", nil))
	if _, err := client.Recv(); status.Code(err) != codes.Unknown || status.Convert(err).Message() != "setup refused" {
		t.Fatalf("%v, want Unknown \"setup refused\"", err)
	}
}

// TestBlockingCallsAreBoundedAndCancelledByAReset: a client that resets
// its blocking calls cancels their contexts, and cannot run more at once
// than it may open streams.
func TestBlockingCallsAreBoundedAndCancelledByAReset(t *testing.T) {
	release := make(chan struct{})
	var running, cancelled atomic.Int64
	unary := func(ctx context.Context, p *nacos.Payload) *serveropts.Answer {
		n := running.Add(1)
		defer running.Add(-1)
		if n > 2 {
			t.Errorf("%d blocking calls at once, MaxStreams 2", n)
		}
		select {
		case <-release:
		case <-ctx.Done():
			cancelled.Add(1)
		}
		return &serveropts.Answer{Type: "R"}
	}
	e := &echo{}
	_, addr := serve(t, Handlers{Unary: unary, Blocking: func(*nacos.Payload) bool { return true }, Stream: e.stream},
		Options{MaxMessageSize: 1 << 20, MaxStreams: 2})
	defer close(release)
	c := rawDial(t, addr)
	raw, err := proto.Marshal(payload("PersistentInstanceRequest", []byte("{}")))
	if err != nil {
		t.Fatal(err)
	}
	msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(raw)))
	msg = append(msg, raw...)
	const calls = 50
	for i := range calls {
		id := uint32(2*i + 1)
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: headerBlock(":method", "POST", ":path", UnaryPath), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if err := c.fr.WriteData(id, true, msg); err != nil {
			t.Fatal(err)
		}
		if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for cancelled.Load() < 2 || running.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d blocking calls cancelled, %d still running, after %d resets", cancelled.Load(), running.Load(), calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStopWhileConnectionsOpen: Stop while connections are being set up
// neither races nor panics.
func TestStopWhileConnectionsOpen(t *testing.T) {
	for i := range 100 {
		e := &echo{}
		srv := New(Handlers{Unary: e.unary, Stream: e.stream}, Options{MaxMessageSize: 1 << 20})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(lis) }()
		var conns []net.Conn
		for range 8 {
			nc, err := net.Dial("tcp", lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, nc)
		}
		time.Sleep(time.Duration(i%40) * 5 * time.Microsecond)
		srv.Stop()
		<-served
		for _, nc := range conns {
			nc.Close()
		}
	}
}

// A Send right after the connection opened, to a client that granted
// large windows and then stops reading, fails within WriteTimeout: the
// write deadline the SETTINGS set, cleared with the preface's, is set again.
func TestAWriteRightAfterOpenHasItsDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 5 * time.Second // a write within its first tenth after open is the case
	p := newPusher()
	_, addr := serve(t, Handlers{Unary: (&echo{}).unary, Stream: p.stream}, Options{MaxMessageSize: 1 << 20, WriteTimeout: timeout})
	c := rawDial(t, addr)
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteWindowUpdate(0, 1<<31-1-65535); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(":method", "POST", ":path", StreamPath), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	s := <-p.opened
	sent := make(chan error, 1)
	go func() { sent <- s.Send(message("Huge", make([]byte, 64<<20))) }()
	select {
	case err := <-sent:
		if err == nil {
			t.Fatal("64 MiB sent to a client that reads nothing")
		}
	case <-time.After(3 * timeout):
		c.nc.Close()
		<-sent
		t.Fatalf("Send still blocked %v after it began (WriteTimeout %v)", 3*timeout, timeout)
	}
}
