package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/transport"
)

const (
	// refusedWait is how soon a call to a port nobody listens on must fail.
	refusedWait = 5 * time.Second
	// concurrentCalls is how many calls are in flight at once.
	concurrentCalls = 100
	// callKind is the kind of the kit's calls.
	callKind = "transporttest.call"
)

// The sizes of the large call and of the snapshot. (The kit's own tests
// make them smaller: the race detector makes copying bytes slow.)
var (
	bigPayload   = 8 << 20
	snapshotSize = 20 << 20
)

// mib says n bytes in MiB: "8 MiB", "0.5 MiB".
func mib(n int) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB"
}

func (k *transportKit) handshake(t kit.Reporter) {
	t.Helper()
	for _, n := range k.nodes() {
		n.Handshake(t)
	}
}

func (k *transportKit) describe(t kit.Reporter) {
	t.Helper()
	auth := k.opts.Auth
	if auth == nil {
		auth = &Auth{}
	}
	d, config := k.a.Describe(t, k.block(auth.A))
	k.a.config, k.b.config = config, config
	if k.opts.Auth == nil {
		return
	}
	check := func(what string, block map[string]any) []byte {
		t.Helper()
		checked, err := d.Config.Check(block)
		if err != nil {
			t.Fatalf("%s does not pass the plugin's configuration schema: %v", what, err)
		}
		return checked
	}
	k.b.config = check("Options.Auth.B (over Options.Config)", k.block(auth.B))
	k.strangers = make(map[string][]byte)
	for name, block := range auth.Refused {
		k.strangers[name] = check(fmt.Sprintf("Options.Auth.Refused[%q] (over Options.Config)", name), k.block(block))
	}
}

func (k *transportKit) configure(t kit.Reporter) {
	t.Helper()
	for _, n := range k.nodes() {
		n.start(t)
	}
}

// start configures the node's plugin with its block and opens its Call
// stream.
func (n *node) start(t kit.Reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kit.ResultWait)
	defer cancel()
	if err := n.configure(ctx, n.config); err != nil {
		t.Fatalf("node %s: Configure failed (New returned an error, or the plugin could not reach the host): %s%s", n.name, status.Convert(err).Message(), n.StderrTail())
	}
	if err := n.openCalls(); err != nil {
		t.Fatalf("node %s: opening the Call stream failed: %v%s", n.name, err, n.StderrTail())
	}
}

func (k *transportKit) listen(t kit.Reporter) {
	t.Helper()
	for _, n := range k.nodes() {
		n.listen(t)
	}
}

// listen has the node's plugin listen on a free loopback port.
func (n *node) listen(t kit.Reporter) {
	t.Helper()
	var err error
	for range 3 { // a free port may be taken before the plugin listens on it
		if n.address, err = freeLoopback(); err != nil {
			t.Fatalf("finding a free loopback port: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), kit.ResultWait)
		_, err = n.rpc().Listen(ctx, &pluginv1.ListenRequest{Address: n.address, Self: n.self})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("node %s: Listen on %s failed: %s%s", n.name, n.address, status.Convert(err).Message(), n.StderrTail())
	}
	c, err := net.DialTimeout("tcp", n.address, kit.ResultWait)
	if err != nil {
		t.Fatalf("node %s's Listen returned, but nothing accepts connections on %s (%v): Listen must return once it listens", n.name, n.address, err)
	}
	c.Close()
}

func (k *transportKit) call(t kit.Reporter) {
	t.Helper()
	for _, pair := range [][2]*node{{k.a, k.b}, {k.b, k.a}} {
		from, to := pair[0], pair[1]
		payload := []byte("hello from node " + from.name)
		what := fmt.Sprintf("a call from node %s to node %s", from.name, to.name)
		if !k.expectAnswer(t, what, from, to, payload) {
			continue
		}
		if ok, instead := to.inbound.got(from.self, callKind, payload); !ok {
			t.Errorf("%s: node %s's server did not get it from %q (node %s's self, as Listen was given it), of kind %q, with %s; %s",
				what, to.name, from.self, from.name, callKind, describe(payload), instead)
		}
	}
}

func (k *transportKit) inboundErrors(t kit.Reporter) {
	t.Helper()
	k.b.inbound.refuse()
	const what = "a call that node B's server refuses"
	res, err := k.roundTrip(k.a, k.b.address, []byte("refuse me"), time.Now().Add(kit.ResultWait), kit.ResultWait+kit.Grace, fmt.Sprintf("within %v", kit.ResultWait+kit.Grace))
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case res.GetError() == "":
		t.Errorf("%s succeeded at node A, with %s: Call must return the error the peer's Inbound.Handle returned", what, describe(res.GetPayload()))
	case !strings.Contains(res.GetError(), refusal("B")):
		t.Errorf("%s failed at node A with %q, which does not carry the server's error, %q", what, res.GetError(), refusal("B"))
	}
	k.b.inbound.answer()
	k.expectAnswer(t, "a call after a refused one", k.a, k.b, []byte("and now?"))
}

func (k *transportKit) sizes(t kit.Reporter) {
	t.Helper()
	k.expectAnswer(t, "a call with an empty payload", k.a, k.b, []byte{})
	k.expectAnswer(t, "a call with a payload of "+mib(bigPayload)+" (and an answer a little larger)", k.a, k.b, pattern(bigPayload, 1))
}

func (k *transportKit) concurrency(t kit.Reporter) {
	t.Helper()
	deadline := time.Now().Add(kit.ResultWait)
	results := make([]<-chan *pluginv1.CallResult, concurrentCalls)
	for i := range results {
		var err error
		if _, results[i], err = k.a.calls.call(k.b.address, callKind, []byte(fmt.Sprintf("call %d", i)), deadline); err != nil {
			t.Fatalf("sending call %d of %d: %v", i+1, concurrentCalls, err)
		}
	}
	var wrong []error
	for i, ch := range results {
		payload := []byte(fmt.Sprintf("call %d", i))
		res, err := k.a.await(ch, time.Until(deadline)+kit.Grace, fmt.Sprintf("within %v", kit.ResultWait+kit.Grace))
		if err == nil {
			err = checkAnswer(res, k.b, payload)
		}
		if err != nil {
			wrong = append(wrong, fmt.Errorf("call %d: %w", i, err))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d calls from node A to node B in flight at once got the wrong result; the first, %v", len(wrong), concurrentCalls, wrong[0])
	}
}

func (k *transportKit) deadline(t kit.Reporter) {
	t.Helper()
	hung := k.b.inbound.hang()
	defer k.b.inbound.answer()
	const what = "a call to node B, whose server never answers"
	deadline := time.Now().Add(kit.ShortDeadline)
	res, err := k.roundTrip(k.a, k.b.address, []byte("wait for me"), deadline, kit.ShortDeadline+kit.Grace,
		fmt.Sprintf("%v past its deadline; Call must return by its context's deadline", kit.Grace))
	switch {
	case err != nil:
		t.Errorf("%s, with a deadline %v away: %v", what, kit.ShortDeadline, err)
	case res.GetError() == "":
		t.Errorf("%s, with a deadline %v away, succeeded with %s", what, kit.ShortDeadline, describe(res.GetPayload()))
	}
	select {
	case ctx := <-hung:
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(deadline.Add(kit.Grace))):
			t.Errorf("%s: node B's server was still handling the call %v past its deadline: the peer's Inbound.Handle context must end with the caller's deadline", what, kit.Grace)
		}
	default: // it never reached the server
	}
}

func (k *transportKit) cancel(t kit.Reporter) {
	t.Helper()
	hung := k.b.inbound.hang()
	defer k.b.inbound.answer()
	const what = "a call withdrawn by node A's host while node B's server handles it"
	id, results, err := k.a.calls.call(k.b.address, callKind, []byte("withdraw me"), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var handling context.Context
	select {
	case handling = <-hung:
	case res := <-results:
		t.Errorf("%s: it was answered before it reached node B's server (error %q)", what, res.GetError())
		return
	case <-k.a.calls.done:
		t.Fatalf("%s: %v%s", what, k.a.calls.err, k.StderrTail())
	case <-time.After(kit.ResultWait):
		t.Fatalf("%s: in %v the call neither reached node B's server nor was answered", what, kit.ResultWait)
	}
	if err := k.a.calls.cancel(id); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	withdrawn := time.Now()
	res, err := k.a.await(results, kit.Grace, fmt.Sprintf("%v after the host withdrew it; Call must return soon after its context is cancelled", kit.Grace))
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case res.GetError() == "":
		t.Errorf("%s succeeded with %s", what, describe(res.GetPayload()))
	}
	select {
	case <-handling.Done():
	case <-time.After(time.Until(withdrawn.Add(kit.Grace))):
		t.Errorf("%s: node B's server was still handling it %v later: the peer's Inbound.Handle context must end when the caller withdraws the call", what, kit.Grace)
	}
}

func (k *transportKit) refused(t kit.Reporter) {
	t.Helper()
	nobody, err := freeLoopback()
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	late := fmt.Sprintf("within %v; a call to a peer that refuses the connection must fail fast, as the cluster marks that peer DOWN", refusedWait)
	for _, which := range []string{"a call", "a second call"} {
		what := fmt.Sprintf("%s from node A to %s, where nobody listens", which, nobody)
		res, err := k.roundTrip(k.a, nobody, []byte("anyone?"), time.Now().Add(time.Minute), refusedWait, late)
		switch {
		case err != nil:
			t.Errorf("%s: %v", what, err)
		case res.GetError() == "":
			t.Errorf("%s, succeeded with %s", what, describe(res.GetPayload()))
		case !strings.HasPrefix(res.GetError(), transport.ErrUnreachable.Error()):
			t.Errorf("%s, failed with %q, which does not say the peer is unreachable: wrap transport.ErrUnreachable in the error", what, res.GetError())
		}
	}
	what := fmt.Sprintf("a snapshot node A asks of %s, where nobody listens", nobody)
	msg, err := k.snapshotOf(k.a, nobody, refusedWait, func([]byte) error { return nil })
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case msg == "":
		t.Errorf("%s, succeeded", what)
	case !strings.HasPrefix(msg, transport.ErrUnreachable.Error()):
		t.Errorf("%s, failed with %q, which does not say the peer is unreachable: wrap transport.ErrUnreachable in the error", what, msg)
	}
}

func (k *transportKit) snapshot(t kit.Reporter) {
	t.Helper()
	data := pattern(snapshotSize, 2)
	// The chunks node B's server writes: of many sizes, some larger than a
	// MiB, as Distro's are.
	var chunks [][]byte
	sizes := []int{1, 1000, 64 << 10, 1<<20 + 12345, 300001, 7, 3 << 20}
	for i, p := 0, data; len(p) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(p))
		chunks, p = append(chunks, p[:n]), p[n:]
	}
	k.b.inbound.setSnapshot(func(fn func([]byte) error) error {
		for _, c := range chunks {
			if err := fn(c); err != nil {
				return err
			}
		}
		return nil
	})
	what := fmt.Sprintf("node B's snapshot of %s in %d chunks, asked for by node A", mib(snapshotSize), len(chunks))
	got, offset := 0, 0
	msg, err := k.snapshotOf(k.a, k.b.address, kit.ResultWait, func(c []byte) error {
		switch {
		case got == len(chunks):
			return fmt.Errorf("more than the %d chunks node B's server wrote came", len(chunks))
		case len(c) != len(chunks[got]):
			return fmt.Errorf("chunk %d, at byte %d, is %s, but node B's server wrote %s there: "+
				"a transport must pass each chunk on as the peer's server wrote it", got, offset, kit.Plural(len(c), "byte"), kit.Plural(len(chunks[got]), "byte"))
		case !bytes.Equal(c, chunks[got]):
			return fmt.Errorf("chunk %d, at byte %d, is not what node B's server wrote there", got, offset)
		}
		got++
		offset += len(c)
		return nil
	})
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case msg != "":
		t.Errorf("%s failed after %d chunks: %s", what, got, msg)
	case got != len(chunks):
		t.Errorf("%s ended after %d chunks, without an error", what, got)
	}
	if askers := k.b.inbound.askers(); len(askers) == 0 || askers[len(askers)-1] != k.a.self {
		t.Errorf("%s: node B's server was asked for it by %q, want %q (node A's self, as Listen was given it)", what, askers, k.a.self)
	}

	k.b.inbound.setSnapshot(func(fn func([]byte) error) error {
		if err := fn(data[:len(data)/2]); err != nil {
			return err
		}
		return errors.New("transporttest: node B's snapshot broke")
	})
	msg, err = k.snapshotOf(k.a, k.b.address, kit.ResultWait, func([]byte) error { return nil })
	switch {
	case err != nil:
		t.Errorf("a snapshot that fails at node B half-way: %v", err)
	case msg == "":
		t.Errorf("a snapshot that fails at node B half-way ended without an error at node A: node A would load a partial snapshot as if it were whole")
	}
}

func (k *transportKit) closing(t kit.Reporter) {
	t.Helper()
	k.a.closed = true
	if err := k.a.calls.closeSend(); err != nil {
		t.Fatalf("ending node A's Call stream: %v", err)
	}
	select {
	case <-k.a.calls.done:
		if !errors.Is(k.a.calls.err, io.EOF) {
			t.Errorf("closing node A's transport failed: %v", k.a.calls.err)
		}
	case <-time.After(kit.ResultWait):
		t.Fatalf("node A's transport did not close within %v of its host ending the Call stream: Close must return promptly", kit.ResultWait)
	}
	for deadline := time.Now().Add(kit.Grace); ; {
		c, err := net.DialTimeout("tcp", k.a.address, kit.Grace)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Errorf("%v after node A's transport was closed, its port %s still accepts connections: Close must stop listening", kit.Grace, k.a.address)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := k.roundTrip(k.b, k.a.address, []byte("still there?"), time.Now().Add(time.Minute), refusedWait,
		fmt.Sprintf("within %v; a call to a peer that is gone must fail fast", refusedWait))
	switch {
	case err != nil:
		t.Errorf("a call from node B to node A once A is closed: %v", err)
	case res.GetError() == "":
		t.Errorf("a call from node B to node A succeeded once A was closed, with %s", describe(res.GetPayload()))
	}
}

// expectAnswer calls to from from and checks that the answer is to's; it
// reports whether it was.
func (k *transportKit) expectAnswer(t kit.Reporter, what string, from, to *node, payload []byte) bool {
	t.Helper()
	res, err := k.roundTrip(from, to.address, payload, time.Now().Add(kit.ResultWait), kit.ResultWait+kit.Grace, fmt.Sprintf("within %v", kit.ResultWait+kit.Grace))
	if err == nil {
		err = checkAnswer(res, to, payload)
	}
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	return true
}

// checkAnswer returns what is wrong with res as to's answer to payload.
func checkAnswer(res *pluginv1.CallResult, to *node, payload []byte) error {
	if msg := res.GetError(); msg != "" {
		return fmt.Errorf("the call failed: %s", msg)
	}
	if want := answerOf(to.name, payload); !bytes.Equal(res.GetPayload(), want) {
		return fmt.Errorf("the answer is %s, want node %s's, %s", describe(res.GetPayload()), to.name, describe(want))
	}
	return nil
}

// roundTrip sends a call from a node to target and waits for its result for
// wait at most; late says what it means when none comes.
func (k *transportKit) roundTrip(from *node, target string, payload []byte, deadline time.Time, wait time.Duration, late string) (*pluginv1.CallResult, error) {
	_, results, err := from.calls.call(target, callKind, payload, deadline)
	if err != nil {
		return nil, err
	}
	return from.await(results, wait, late)
}

// await returns the result that comes on ch within wait, or why none came:
// "no result " and late when time ran out.
func (n *node) await(ch <-chan *pluginv1.CallResult, wait time.Duration, late string) (*pluginv1.CallResult, error) {
	select {
	case res := <-ch:
		return res, nil
	case <-n.calls.done:
		return nil, fmt.Errorf("no result: %w (did node %s's plugin crash?)%s", n.calls.err, n.name, n.StderrTail())
	case <-time.After(wait):
		return nil, errors.New("no result " + late)
	}
}

// snapshotOf asks node n's plugin for the snapshot of the peer at target,
// passing its chunks to fn, and returns the plugin's error message ("" for
// none). An error means the kit could not get an answer within wait, or fn
// failed.
func (k *transportKit) snapshotOf(n *node, target string, wait time.Duration, fn func([]byte) error) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	stream, err := n.rpc().Snapshot(ctx, &pluginv1.SnapshotRequest{Target: target})
	for err == nil {
		var chunk *pluginv1.Chunk
		if chunk, err = stream.Recv(); err == nil {
			if err := fn(chunk.GetData()); err != nil {
				return "", err
			}
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		return "", nil
	case ctx.Err() != nil:
		return "", fmt.Errorf("no end of the snapshot within %v", wait)
	}
	if msg := status.Convert(err).Message(); msg != "" {
		return msg, nil
	}
	return err.Error(), nil
}

// freeLoopback returns a loopback address nobody listens on, for now.
func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// pattern returns n bytes that do not repeat, the same for the same seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}
