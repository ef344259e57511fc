package natstransport

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startNATS runs a NATS server in the test process on a free loopback port,
// as configure sets it up, until the test ends.
func startNATS(t testing.TB, configure func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true}
	if configure != nil {
		configure(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("the NATS server is not ready after 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// member are the NATS permissions of the node whose self is self, as the
// README gives them; listen is its cluster address ("" lets it subscribe
// to any member's subjects, for nodes whose port the test does not know
// beforehand).
func member(prefix, self, listen string) *server.Permissions {
	sub := prefix + ".member.>"
	if listen != "" {
		sub = prefix + ".member." + Token(listen) + ".*.*"
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{prefix + ".member.*." + Token(self) + ".*"}},
		Subscribe: &server.SubjectPermission{Allow: []string{sub, prefix + ".inbox." + Token(self) + ".>"}},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// configOf is the configuration block of a node on srv, with extra keys.
func configOf(t testing.TB, srv *server.Server, extra map[string]any) Config {
	t.Helper()
	block := map[string]any{"servers": []string{srv.ClientURL()}, "request_timeout": "3s"}
	for k, v := range extra {
		block[k] = v
	}
	raw, err := json.Marshal(block)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// freeAddress returns a loopback address nobody listens on.
func freeAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// node starts a transport as the node self, listening on a free loopback
// address, and closes it when the test ends; it returns the transport and
// the address its peers call it at.
func node(t testing.TB, cfg Config, self string, in transport.Inbound) (*Transport, string) {
	t.Helper()
	tr := New(cfg, transport.Host{Inbound: in})
	t.Cleanup(func() { tr.Close() })
	address := freeAddress(t)
	if err := tr.Listen(context.Background(), address, self); err != nil {
		t.Fatal(err)
	}
	return tr, address
}

func timeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// await waits until cond holds, failing the test after 10 s.
func await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10s", what)
		}
	}
}

// inbound is a node's host in the tests: it answers kind "echo" with the
// payload, fails kind "fail", waits for its context on kind "hang" and
// answers kind "big" with a payload of the size the payload names; its
// snapshot is the chunks, then snapshotErr.
type inbound struct {
	mu          sync.Mutex
	calls       []call
	hung        chan context.Context
	chunks      [][]byte
	snapshotErr error
	snapshots   []string             // who asked
	snapshotCtx chan context.Context // the contexts of snapshots, as they start
}

type call struct{ from, kind, payload string }

func newInbound() *inbound {
	return &inbound{hung: make(chan context.Context, 100), snapshotCtx: make(chan context.Context, 100)}
}

func (in *inbound) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	in.mu.Lock()
	p := string(payload)
	if len(p) > 100 {
		p = p[:100]
	}
	in.calls = append(in.calls, call{from, kind, p})
	in.mu.Unlock()
	switch kind {
	case "fail":
		return nil, errors.New("inbound says no")
	case "hang":
		in.hung <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	case "big":
		var n int
		if err := json.Unmarshal(payload, &n); err != nil {
			return nil, err
		}
		return pattern(n), nil
	case "panic":
		panic("inbound out of luck")
	}
	return payload, nil
}

func (in *inbound) Snapshot(ctx context.Context, from string, fn func([]byte) error) error {
	in.mu.Lock()
	in.snapshots = append(in.snapshots, from)
	chunks, err := in.chunks, in.snapshotErr
	in.mu.Unlock()
	in.snapshotCtx <- ctx
	buf := make([]byte, 0, 1<<20)
	for _, c := range chunks {
		buf = append(buf[:0], c...) // reused: the transport must copy
		if err := fn(buf); err != nil {
			return err
		}
	}
	return err
}

func (in *inbound) received() []call {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]call(nil), in.calls...)
}

// pattern returns n bytes that do not repeat soon.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}
