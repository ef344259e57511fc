package h2serve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo answers each request with its own class and body, and records what
// the bi-streams carry.
type echo struct {
	mu       sync.Mutex
	streamed []string
	peers    []string
}

func (e *echo) unary(ctx context.Context, p *nacos.Payload) *serveropts.Answer {
	if pr, ok := peer.FromContext(ctx); ok {
		e.mu.Lock()
		e.peers = append(e.peers, pr.Addr.String())
		e.mu.Unlock()
	}
	return &serveropts.Answer{Type: p.GetMetadata().GetType() + "Response", Body: [][]byte{p.GetBody().GetValue()}}
}

func (e *echo) stream(context.Context, *Stream) Receiver { return e }

// Receive records the class of what came on a bi-stream.
func (e *echo) Receive(p *nacos.Payload) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.streamed = append(e.streamed, p.GetMetadata().GetType())
	return nil
}

func (e *echo) Closed() {}

func start(t *testing.T, o Options) (*echo, *grpc.ClientConn) {
	t.Helper()
	e, cc, _ := startServer(t, o)
	return e, cc
}

func startServer(t *testing.T, o Options) (*echo, *grpc.ClientConn, *Server) {
	t.Helper()
	e := &echo{}
	srv := New(Handlers{Unary: e.unary, Stream: e.stream}, o)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		if err := <-served; !errors.Is(err, ErrStopped) {
			t.Errorf("Serve returned %v, want ErrStopped", err)
		}
	})
	return e, cc, srv
}

// TestAnIdleConnectionHoldsNoReadBuffer: a connection gives its read
// buffer back once idle, and takes one again when a call comes.
func TestAnIdleConnectionHoldsNoReadBuffer(t *testing.T) {
	_, cc, srv := startServer(t, Options{MaxMessageSize: 4 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := call(ctx, cc, "Q", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if n := srv.Reading(); n != 1 {
		t.Fatalf("%d connections hold a read buffer right after a call, want 1", n)
	}
	for srv.Reading() != 0 {
		if ctx.Err() != nil {
			t.Fatalf("the connection still holds its read buffer %v after its last call", 10*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := call(ctx, cc, "Q", []byte("again")); err != nil || string(got.GetBody().GetValue()) != "again" {
		t.Fatalf("a call on the idle connection: %v", err)
	}
}

func call(ctx context.Context, cc *grpc.ClientConn, typ string, body []byte) (*nacos.Payload, error) {
	out := new(nacos.Payload)
	in := &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: body}}
	err := cc.Invoke(ctx, UnaryPath, in, out)
	return out, err
}

// TestUnaryCallsAreAnsweredToAGRPCGoClient: grpc-go's client gets each
// call's own answer, with many calls in flight on one connection, answers
// and requests larger than HTTP/2's initial windows (flow control both
// ways), and its address reaches the handler.
func TestUnaryCallsAreAnsweredToAGRPCGoClient(t *testing.T) {
	e, cc := start(t, Options{MaxMessageSize: 4 << 20, MaxStreams: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				body := []byte(strings.Repeat("x", g*10+i))
				got, err := call(ctx, cc, "Q", body)
				if err != nil || got.GetMetadata().GetType() != "QResponse" || !bytes.Equal(got.GetBody().GetValue(), body) {
					errs <- errors.Join(err, errors.New("a wrong answer to "+string(body)))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for _, size := range []int{70_000, 300_000, 1 << 20} {
		body := bytes.Repeat([]byte{'b'}, size)
		got, err := call(ctx, cc, "Big", body)
		if err != nil || !bytes.Equal(got.GetBody().GetValue(), body) {
			t.Fatalf("a %d-byte call: %v (%d bytes back)", size, err, len(got.GetBody().GetValue()))
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.peers) == 0 || !strings.HasPrefix(e.peers[0], "127.0.0.1:") {
		t.Fatalf("peers %v", e.peers[:min(3, len(e.peers))])
	}
}

// TestTheBiStreamCarriesMessagesUntilTheClientEndsIt: what a client sends on
// its bi-stream reaches Stream in order, and the client's end of the stream
// is answered with status OK.
func TestTheBiStreamCarriesMessagesUntilTheClientEndsIt(t *testing.T) {
	e, cc := start(t, Options{MaxMessageSize: 4 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := nacos.NewBiRequestStreamClient(cc).RequestBiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConnectionSetupRequest", "A", "B"}
	for _, typ := range want {
		if err := st.Send(&nacos.Payload{Metadata: &nacos.Metadata{Type: typ}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client's end: %v, want io.EOF (status OK)", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if strings.Join(e.streamed, ",") != strings.Join(want, ",") {
		t.Fatalf("streamed %v, want %v", e.streamed, want)
	}
}

// TestWhatIsNotANacosCallIsRefusedWithAStatus: another method and a
// message over the limit get gRPC errors, and the connection still serves.
func TestWhatIsNotANacosCallIsRefusedWithAStatus(t *testing.T) {
	_, cc := start(t, Options{MaxMessageSize: 1000, MaxStreams: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	err := cc.Invoke(ctx, "/grpc.health.v1.Health/Check", &nacos.Payload{}, new(nacos.Payload))
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("another method: %v, want Unimplemented", err)
	}
	if _, err := call(ctx, cc, "Big", make([]byte, 2000)); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limit of 1000") {
		t.Fatalf("over the limit: %v, want ResourceExhausted naming the limit", err)
	}
	long := "/" + strings.Repeat("x", 10_000)
	err = cc.Invoke(ctx, long, &nacos.Payload{}, new(nacos.Payload))
	if st := status.Convert(err); st.Code() != codes.Unimplemented || len(st.Message()) > 2000 {
		t.Fatalf("a method with a 10 KB name: %v (%d bytes of message), want Unimplemented, shortened", st.Code(), len(st.Message()))
	}
	if _, err := call(ctx, cc, "Q", []byte("still")); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
}

// FuzzConnection: whatever a client sends after the preface, the
// connection's goroutine neither panics nor outlives the client.
func FuzzConnection(f *testing.F) {
	var frames bytes.Buffer
	fr := http2.NewFramer(&frames, nil)
	_ = fr.WriteSettings()
	_ = fr.WritePing(false, [8]byte{1})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(":method", "POST", ":path", UnaryPath), EndHeaders: true})
	_ = fr.WriteData(1, true, []byte{0, 0, 0, 0, 2, 0x12, 0})
	_ = fr.WriteWindowUpdate(0, 100)
	_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	f.Add(frames.Bytes())
	f.Add([]byte{0, 0, 4, 8, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff})
	e := &echo{}
	srv := New(Handlers{Unary: e.unary, Stream: e.stream}, Options{MaxMessageSize: 1 << 10, MaxStreams: 8})
	f.Fuzz(func(t *testing.T, input []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		srv.wg.Add(1) // as Serve counts a connection
		go func() {
			defer close(done)
			srv.serveConn(server)
			srv.wg.Wait() // the connection may have moved to another goroutine
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_, _ = client.Write([]byte(http2.ClientPreface))
		_, _ = client.Write(input)
		client.Close()
		<-done
	})
}
