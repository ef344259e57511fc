package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// startLimitServer starts a server on a loopback port, stopped when the test ends.
func startLimitServer(t *testing.T, change func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	s, reg := newLimitServer(t, func(c *Config) {
		c.Addr = "127.0.0.1:0"
		if change != nil {
			change(c)
		}
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return s, reg
}

// forEachTransport runs test once on each transport, as a subtest named
// after it.
func forEachTransport(t *testing.T, test func(t *testing.T, transport string)) {
	for _, transport := range []string{TransportGRPC, TransportH2} {
		t.Run(transport, func(t *testing.T) { test(t, transport) })
	}
}

// client is a gRPC client connection to s.
type client struct {
	cc  *grpc.ClientConn
	rpc nacos.RequestClient
}

func dialClient(t *testing.T, s *Server) *client {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+s.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return &client{cc: cc, rpc: nacos.NewRequestClient(cc)}
}

// call makes a unary request and returns the response's errorCode (0 on success).
func (c *client) call(typ string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	p, err := c.rpc.Request(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(`{"requestId":"1"}`)}})
	if err != nil {
		return 0, err
	}
	var r struct{ ErrorCode int }
	if err := json.Unmarshal(p.GetBody().GetValue(), &r); err != nil {
		return 0, err
	}
	return r.ErrorCode, nil
}

// openStream opens the bi-stream and, if setup, completes the connection setup.
func (c *client) openStream(t *testing.T, setup bool) nacos.BiRequestStream_RequestBiStreamClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	t.Cleanup(cancel)
	stream, err := nacos.NewBiRequestStreamClient(c.cc).RequestBiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !setup {
		return stream
	}
	if err := stream.Send(&nacos.Payload{Metadata: &nacos.Metadata{Type: typeConnectionSetup}, Body: &anypb.Any{Value: []byte(`{"clientVersion":"test"}`)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection is set up", func() bool {
		code, err := c.call(typeHealthCheck)
		return err == nil && code == 0
	})
	return stream
}

// TestSetupTimeout checks the set-up deadline: a TCP connection that has not
// completed ConnectionSetupRequest SetupTimeout after it was accepted is
// closed and counted, whether it opened the stream or sent nothing at all; a
// set-up connection stays.
func TestSetupTimeout(t *testing.T) { forEachTransport(t, testSetupTimeout) }

func testSetupTimeout(t *testing.T, transport string) {
	const timeout = time.Second // long enough for the kept connection to set up on a loaded machine
	s, reg := startLimitServer(t, func(c *Config) { c.Transport = transport; c.SetupTimeout = timeout })

	kept := dialClient(t, s)
	kept.openStream(t, true)

	start := time.Now()
	silent := dialRaw(t, s)
	unset := dialClient(t, s)
	if code, err := unset.call(typeServerCheck); err != nil || code != 0 {
		t.Fatalf("ServerCheckRequest: %d, %v", code, err)
	}
	stream := unset.openStream(t, false)

	if _, err := stream.Recv(); err == nil {
		t.Fatal("the stream without setup got a message")
	}
	if err := silent.SetReadDeadline(time.Now().Add(limitTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, silent); err != nil {
		t.Fatalf("the connection that sent nothing: %v, want it closed", err)
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("closed after %s, before the setup timeout %s", elapsed, timeout)
	}
	if got := metricValue(t, reg, "sextant_remote_connections_closed_total", "reason", "setup_timeout"); got != 2 {
		t.Errorf("closed for the setup timeout: counted %v, want 2", got)
	}
	// The set-up connection was accepted first, so its deadline would have
	// passed too.
	if code, err := kept.call(typeHealthCheck); err != nil || code != 0 {
		t.Errorf("the set-up connection: %d, %v; want it served", code, err)
	}
}

// dialRaw opens a TCP connection to s and waits until the server has accepted
// it (it writes its HTTP/2 SETTINGS first).
func dialRaw(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if !accepted(t, c) {
		t.Fatal("the connection was refused")
	}
	return c
}

// accepted reports whether the server accepted c (it sent a frame) or closed it.
func accepted(t *testing.T, c net.Conn) bool {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(limitTimeout)); err != nil {
		t.Fatal(err)
	}
	var header [9]byte
	_, err := io.ReadFull(c, header[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server neither answered nor closed a connection")
	}
	return err == nil
}

// TestMaxConnections checks that TCP connections over MaxConnections are
// closed at accept, before any HTTP/2, and counted, and that a place freed is
// taken again.
func TestMaxConnections(t *testing.T) { forEachTransport(t, testMaxConnections) }

func testMaxConnections(t *testing.T, transport string) {
	s, reg := startLimitServer(t, func(c *Config) { c.Transport = transport; c.MaxConnections = 2 })
	first := dialRaw(t, s)
	dialRaw(t, s)

	over, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if accepted(t, over) {
		t.Fatal("a third connection was served; MaxConnections is 2")
	}
	if got := metricValue(t, reg, "sextant_remote_connections_refused_total"); got != 1 {
		t.Errorf("refused connections counted %v, want 1", got)
	}

	_ = first.Close()
	deadline := time.Now().Add(limitTimeout)
	for {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ok := accepted(t, c)
		_ = c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection was accepted after one of the two closed")
		}
		time.Sleep(5 * time.Millisecond) // until the server sees the close
	}
}

func TestMaxConnectionsFor(t *testing.T) {
	for nofile, want := range map[uint64]int{
		1 << 20: 1<<20 - 256,
		4096:    4096 - 256,
		1024:    768,
		300:     150,
		10:      minMaxConnections,
		0:       minMaxConnections,
		1 << 63: maxMaxConnections,
	} {
		if got := maxConnectionsFor(nofile); got != want {
			t.Errorf("maxConnectionsFor(%d) = %d, want %d", nofile, got, want)
		}
	}
	if got := DefaultMaxConnections(); got < minMaxConnections {
		t.Errorf("DefaultMaxConnections() = %d", got)
	}
}

// HTTP/2 framing, enough to open streams by hand (RFC 9113).
const (
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	flagEndHeaders    = 0x4
	flagAck           = 0x1
	settingMaxStreams = 0x3
	errRefusedStream  = 0x7
)

func writeFrame(w io.Writer, typ, flags byte, stream uint32, payload []byte) error {
	h := make([]byte, 9, 9+len(payload))
	h[0], h[1], h[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	h[3], h[4] = typ, flags
	binary.BigEndian.PutUint32(h[5:], stream)
	_, err := w.Write(append(h, payload...))
	return err
}

func readFrame(r io.Reader) (typ, flags byte, stream uint32, payload []byte, err error) {
	var h [9]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	payload = make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
	_, err = io.ReadFull(r, payload)
	return h[3], h[4], binary.BigEndian.Uint32(h[5:]) & 0x7fffffff, payload, err
}

// hpackLiteral encodes header fields as HPACK literals without indexing.
func hpackLiteral(fields ...string) []byte {
	var b bytes.Buffer
	for i := 0; i+1 < len(fields); i += 2 {
		b.WriteByte(0)
		b.WriteByte(byte(len(fields[i])))
		b.WriteString(fields[i])
		b.WriteByte(byte(len(fields[i+1])))
		b.WriteString(fields[i+1])
	}
	return b.Bytes()
}

// TestMaxStreamsPerConnection checks that the client port advertises
// MAX_CONCURRENT_STREAMS and refuses a stream over it from a client that
// ignores it, as a hostile one would.
func TestMaxStreamsPerConnection(t *testing.T) { forEachTransport(t, testMaxStreamsPerConnection) }

func testMaxStreamsPerConnection(t *testing.T, transport string) {
	const limit = 3
	s, _ := startLimitServer(t, func(c *Config) { c.Transport = transport; c.MaxStreams = limit })
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(limitTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(c, frameSettings, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	advertised := -1
	for advertised < 0 {
		typ, flags, _, payload, err := readFrame(c)
		if err != nil {
			t.Fatalf("reading the server's settings: %v", err)
		}
		if typ != frameSettings || flags&flagAck != 0 {
			continue
		}
		advertised = 0
		for i := 0; i+6 <= len(payload); i += 6 {
			if binary.BigEndian.Uint16(payload[i:]) == settingMaxStreams {
				advertised = int(binary.BigEndian.Uint32(payload[i+2:]))
			}
		}
		if err := writeFrame(c, frameSettings, flagAck, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if advertised != limit {
		t.Errorf("the server advertised MAX_CONCURRENT_STREAMS %d, want %d", advertised, limit)
	}

	headers := hpackLiteral(":method", "POST", ":scheme", "http", ":path", "/BiRequestStream/requestBiStream",
		":authority", "sextant", "content-type", "application/grpc", "te", "trailers")
	for i := range limit + 1 {
		if err := writeFrame(c, frameHeaders, flagEndHeaders, uint32(2*i+1), headers); err != nil {
			t.Fatal(err)
		}
	}
	over := uint32(2*limit + 1)
	for {
		typ, _, stream, payload, err := readFrame(c)
		if err != nil {
			t.Fatalf("waiting for the stream over the limit to be refused: %v", err)
		}
		if typ != frameRSTStream {
			continue
		}
		code := binary.BigEndian.Uint32(payload)
		if stream != over {
			t.Fatalf("stream %d (within the limit) was reset with code %d", stream, code)
		}
		if code != errRefusedStream {
			t.Fatalf("stream %d over the limit was reset with code %d, want REFUSED_STREAM", stream, code)
		}
		return
	}
}
