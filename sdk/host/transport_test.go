package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/transport"
)

// loopback is a transport whose peers are its own host: a call to target
// reaches the host's Inbound as if from target. Targets steer it:
// "refused" is unreachable, "panic" panics.
type loopback struct {
	host   transport.Host
	closed chan struct{}

	mu      sync.Mutex
	address string
	self    string
}

func (l *loopback) Listen(_ context.Context, address, self string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.address, l.self = address, self
	return nil
}

func (l *loopback) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	switch target {
	case "refused":
		return nil, fmt.Errorf("dialing %s: %w", target, transport.ErrUnreachable)
	case "panic":
		panic("out of luck")
	}
	return l.host.Inbound.Handle(ctx, target, kind, payload)
}

func (l *loopback) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	if target == "refused" {
		return fmt.Errorf("%w: connection refused", transport.ErrUnreachable)
	}
	return l.host.Inbound.Snapshot(ctx, target, fn)
}

func (l *loopback) Close() error {
	close(l.closed)
	return nil
}

var loopbackPlugin = transport.Plugin{
	Info: sdk.Info{Name: "loopback", Version: "0.1.0", Config: sdk.Schema{{Key: "greeting", Type: sdk.String}}},
	New: func(config []byte, h transport.Host) (transport.Transport, error) {
		var cfg struct {
			Greeting string `json:"greeting"`
		}
		if err := sdk.DecodeConfig(config, &cfg); err != nil {
			return nil, err
		}
		switch cfg.Greeting {
		case "nil":
			return nil, nil
		case "panic":
			panic("no greeting")
		}
		return &loopback{host: h, closed: make(chan struct{})}, nil
	},
}

// inbound is the host's transport.Inbound in the tests: it answers "echo:" and the
// payload, fails kind "fail", waits for its context on kind "hang", and
// writes snapshot as its snapshot (failing when snapshotErr is set).
type inbound struct {
	calls       chan call
	hung        chan context.Context
	snapshot    [][]byte
	snapshotErr error
}

type call struct{ from, kind, payload string }

func newInbound() *inbound {
	return &inbound{calls: make(chan call, 200), hung: make(chan context.Context, 10)}
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
	return append([]byte("echo:"), payload...), nil
}

func (in *inbound) Snapshot(_ context.Context, from string, fn func([]byte) error) error {
	for _, c := range in.snapshot {
		if err := fn(c); err != nil {
			return err
		}
	}
	return in.snapshotErr
}

// dispenseTransport serves p over a real go-plugin gRPC connection and
// returns the host's side of it.
func dispenseTransport(t *testing.T, p transport.Plugin) *host.Transport {
	t.Helper()
	c := dispense[*host.Transport](t, host.KindTransport, p)
	t.Cleanup(func() {
		// A plugin process exits with its host; in a test, the plugin's
		// connection to the host's services closes with its Call stream.
		if tr, err := c.Transport(context.Background()); err == nil {
			tr.Close()
		}
	})
	return c
}

// open configures a dispensed loopback plugin and opens its transport.
func open(t *testing.T, in transport.Inbound) *host.RemoteTransport {
	t.Helper()
	ctx := context.Background()
	c := dispenseTransport(t, loopbackPlugin)
	if err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), in); err != nil {
		t.Fatal(err)
	}
	streamCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	tr, err := c.Transport(streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Listen(ctx, "127.0.0.1:9849", "10.0.0.1:8848"); err != nil {
		t.Fatal(err)
	}
	return tr
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDescribe(t *testing.T) {
	desc, err := dispenseTransport(t, loopbackPlugin).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := host.Description{Info: loopbackPlugin.Info, Kind: host.KindTransport}
	if !reflect.DeepEqual(desc, want) {
		t.Fatalf("Describe = %+v, want %+v", desc, want)
	}
}

func TestCallsOverGRPC(t *testing.T) {
	in := newInbound()
	tr := open(t, in)
	ctx := timeout(t)

	answer, err := tr.Call(ctx, "10.0.0.2:8848", "sync", []byte("data"))
	if err != nil || string(answer) != "echo:data" {
		t.Fatalf("Call = %q, %v", answer, err)
	}
	if got := <-in.calls; got != (call{"10.0.0.2:8848", "sync", "data"}) {
		t.Fatalf("the inbound got %+v", got)
	}

	if _, err := tr.Call(ctx, "peer", "fail", nil); err == nil || err.Error() != "inbound says no" {
		t.Fatalf("a call the inbound refused returned %v", err)
	}
	if _, err := tr.Call(ctx, "peer", "panic", nil); err == nil || !strings.Contains(err.Error(), "inbound out of luck") {
		t.Fatalf("a call whose inbound panicked returned %v", err)
	}
	_, err = tr.Call(ctx, "refused", "sync", nil)
	if !errors.Is(err, transport.ErrUnreachable) || err.Error() != "peer unreachable: dialing refused: peer unreachable" {
		t.Fatalf("a call to an unreachable peer returned %v", err)
	}
	if _, err := tr.Call(ctx, "panic", "sync", nil); err == nil || !strings.Contains(err.Error(), "the transport panicked in Call: out of luck") {
		t.Fatalf("a call that panicked in the transport returned %v", err)
	}

	// 3 MiB: go-plugin's test connection has gRPC's default 4 MiB limit on
	// the plugin's side; the transport kit checks larger ones on a real one.
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16)
	if answer, err := tr.Call(ctx, "peer", "sync", big); err != nil || !bytes.Equal(answer, append([]byte("echo:"), big...)) {
		t.Fatalf("a 3 MiB call returned %d bytes, %v", len(answer), err)
	}
	if _, err := tr.Call(ctx, "peer", "sync", make([]byte, sdk.MaxMessageSize)); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("a call too large for a message returned %v", err)
	}
	if answer, err := tr.Call(ctx, "peer", "sync", []byte("still there")); err != nil || string(answer) != "echo:still there" {
		t.Fatalf("after a call too large, Call = %q, %v", answer, err)
	}
	if answer, err := tr.Call(ctx, "peer", "sync", nil); err != nil || string(answer) != "echo:" {
		t.Fatalf("an empty call returned %q, %v", answer, err)
	}

	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			payload := fmt.Sprint(i)
			if answer, err := tr.Call(ctx, "peer", "sync", []byte(payload)); err != nil || string(answer) != "echo:"+payload {
				t.Errorf("concurrent call %d = %q, %v", i, answer, err)
			}
		})
	}
	wg.Wait()
}

func TestCancellationReachesTheInbound(t *testing.T) {
	in := newInbound()
	tr := open(t, in)
	ctx, cancel := context.WithCancel(timeout(t))
	errs := make(chan error, 1)
	go func() {
		_, err := tr.Call(ctx, "peer", "hang", nil)
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
		t.Fatal("the inbound's context was not cancelled when the call was")
	}

	deadline := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	ctx, cancel = context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() {
		_, err := tr.Call(ctx, "peer", "hang", nil)
		errs <- err
	}()
	if d, ok := (<-in.hung).Deadline(); !ok || !d.Equal(deadline) {
		t.Fatalf("the inbound's deadline is %v, want the caller's %v", d, deadline)
	}
	cancel()
	<-errs
}

func TestSnapshotsOverGRPC(t *testing.T) {
	in := newInbound()
	for i, size := range []int{3 << 20, 1, 1000, 1 << 20, 0, 77777, 12345} {
		in.snapshot = append(in.snapshot, bytes.Repeat([]byte{byte('a' + i)}, size))
	}
	tr := open(t, in)
	var got [][]byte
	err := tr.Snapshot(timeout(t), "peer", func(c []byte) error {
		got = append(got, c)
		return nil
	})
	if err != nil {
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

	in.snapshot = [][]byte{make([]byte, sdk.MaxMessageSize)}
	if err := tr.Snapshot(timeout(t), "peer", func([]byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "a snapshot chunk is 268435456 bytes, more than") {
		t.Fatalf("a snapshot with a chunk too large for a message returned %v", err)
	}
	in.snapshot = [][]byte{[]byte("small")}

	stop := errors.New("enough")
	if err := tr.Snapshot(timeout(t), "peer", func([]byte) error { return stop }); err != stop {
		t.Fatalf("a snapshot whose fn failed returned %v", err)
	}
	in.snapshotErr = errors.New("the snapshot broke")
	if err := tr.Snapshot(timeout(t), "peer", func([]byte) error { return nil }); err == nil || err.Error() != "the snapshot broke" {
		t.Fatalf("a snapshot that broke returned %v", err)
	}
	if err := tr.Snapshot(timeout(t), "refused", func([]byte) error { return nil }); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("a snapshot of an unreachable peer returned %v", err)
	}
}

func TestCloseClosesThePluginsTransport(t *testing.T) {
	ctx := context.Background()
	var lb *loopback
	p := loopbackPlugin
	p.New = func(config []byte, h transport.Host) (transport.Transport, error) {
		tr, err := loopbackPlugin.New(config, h)
		lb, _ = tr.(*loopback)
		return tr, err
	}
	c := dispenseTransport(t, p)
	if err := c.Configure(ctx, []byte("{}"), newInbound()); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lb.closed: // Close waits for it
	default:
		t.Fatal("Close returned before the plugin closed its transport")
	}
	<-tr.Done()
	if _, err := tr.Call(timeout(t), "peer", "sync", nil); err == nil {
		t.Fatal("a call after Close succeeded")
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("a second Close returned %v", err)
	}
	if _, err := c.Transport(ctx); err != nil {
		t.Fatal(err) // opening works; the plugin refuses it on the stream
	}
}

func TestASecondCallStreamIsRefused(t *testing.T) {
	c := dispenseTransport(t, loopbackPlugin)
	ctx := timeout(t)
	if err := c.Configure(ctx, []byte("{}"), newInbound()); err != nil {
		t.Fatal(err)
	}
	first, err := c.Transport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := first.Call(ctx, "peer", "sync", nil); err != nil { // served
		t.Fatal(err)
	}
	second, err := c.Transport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Call(ctx, "peer", "sync", nil); err == nil || !strings.Contains(err.Error(), "the Call stream was opened before") {
		t.Fatalf("a call on a second stream returned %v", err)
	}
	if _, err := first.Call(ctx, "peer", "sync", nil); err != nil {
		t.Fatalf("the first stream broke: %v", err)
	}
}

func TestTransportConfigureRefusesBadConfigurationAndRepeats(t *testing.T) {
	ctx := timeout(t)
	c := dispenseTransport(t, loopbackPlugin)
	for config, want := range map[string]string{
		`{"greting":"hi"}`:     `unknown field "greting"`,
		`{"greeting":"nil"}`:   "New returned no transport",
		`{"greeting":"panic"}`: "starting the transport panicked: no greeting",
	} {
		if err := c.Configure(ctx, []byte(config), newInbound()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Configure(%s) = %v, want an error saying %q", config, err, want)
		}
	}
	if err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), newInbound()); err != nil {
		t.Fatal(err)
	}
	if err := c.Configure(ctx, []byte(`{"greeting":"hi"}`), newInbound()); err == nil {
		t.Fatal("a second Configure was accepted")
	}
}

func TestCallsBeforeConfigureAreRefused(t *testing.T) {
	c := dispenseTransport(t, loopbackPlugin)
	ctx := timeout(t)
	tr, err := c.Transport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Listen(ctx, "a", "b"); err == nil || err.Error() != "Listen before Configure" {
		t.Errorf("Listen before Configure returned %v", err)
	}
	if _, err := tr.Call(ctx, "a", "b", nil); err == nil || !strings.Contains(err.Error(), "Call before Configure") {
		t.Errorf("Call before Configure returned %v", err)
	}
}
