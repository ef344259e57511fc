package natstransport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/sextantd/sextant/sdk/transport"
)

// The headers of the transport's messages. Requests carry an id (16 hex
// digits, the caller's choice; with the sender, it names the call or the
// snapshot); answers say which piece they are, or that they are an error
// (their data is then its message).
const (
	hID      = "Sextant-Id"
	hKind    = "Sextant-Kind"
	hTimeout = "Sextant-Timeout" // nanoseconds left before the caller gives up
	hParts   = "Sextant-Parts"   // on a call: how many part messages came before it
	hSize    = "Sextant-Size"    // on a call in pieces and its parts: the payload's size
	hSeq     = "Sextant-Seq"     // the number of a part, or of a piece pulled
	hPiece   = "Sextant-Piece"   // on an answer: pieceMore, pieceLast or pieceEnd
	hStatus  = "Sextant-Status"  // on an answer: statusError, or absent
)

const (
	// pieceMore is a piece of a message (an answer, a snapshot chunk) that
	// more pieces follow.
	pieceMore = "more"
	// pieceLast is the last piece of a message.
	pieceLast = "last"
	// pieceEnd ends a snapshot, with no data.
	pieceEnd = "end"
	// statusError marks an answer whose data is an error message.
	statusError = "error"
)

const (
	// headroom is room in a NATS message for its subject and headers.
	headroom = 1024
	// minPayload is the least max_payload of a NATS server the transport
	// works with.
	minPayload = 4096
	// minPiece is the least piece of a message that more pieces follow: a
	// peer cannot make a message of tiny pieces.
	minPiece = minPayload - headroom
	// pieceCost is what each piece of a snapshot counts at least against
	// max_snapshot_size: a peer cannot stall a load with empty chunks.
	pieceCost = 256
	// maxKind bounds a call's kind, in bytes.
	maxKind = 256
	// idleTimeout ends an answer or a snapshot nobody pulled, and a call
	// whose pieces stopped coming, after this long.
	idleTimeout = 30 * time.Second
	// connectWait is how long Listen waits for its first connection to NATS.
	connectWait = 2 * time.Second
	// maxPartials bounds the calls one peer may have arriving in pieces.
	maxPartials = 16
	// logInterval spaces the log lines about refused or dropped messages.
	logInterval = 10 * time.Second
)

// ErrClosed is returned for calls on a closed transport.
var ErrClosed = errors.New("natstransport: closed")

// Transport is the NATS transport of one node.
type Transport struct {
	cfg     Config
	inbound transport.Inbound
	logger  hclog.Logger
	subj    subjects
	idle    time.Duration // idleTimeout (shorter in tests)
	// connected gets a value when the first connection to NATS is made
	// after Listen began.
	connected chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	// work are the goroutines that serve peers, and the one that holds the
	// cluster port; Close waits for them.
	work sync.WaitGroup
	counters

	mu           sync.Mutex
	nc           *nats.Conn
	self         string // this node's self, and its token
	selfToken    string
	holder       net.Listener
	subs         []*nats.Subscription // to what is sent to the node
	refused      error                // NATS refused this node's messages, as Listen found
	closed       bool
	calls        map[key]context.CancelFunc // peers' calls being served
	partials     map[key]*partial           // peers' calls arriving in pieces
	sessions     map[key]*session           // answers and snapshots peers pull
	partialBytes int                        // reserved by partials
}

// key names a call or a snapshot: its sender and its id.
type key struct{ from, id string }

// counters count what the transport refused or dropped of what peers sent,
// and log it, at most one line every logInterval.
type counters struct {
	dropped  atomic.Int64 // malformed, out of order, over a limit
	busy     atomic.Int64 // refused: max_in_flight were being served
	lastLine atomic.Int64 // unix nanoseconds
	unlogged atomic.Int64
	// lastNATS spaces the lines about errors of the connection to NATS.
	lastNATS atomic.Int64
}

// New returns the transport of a node whose server takes what peers send
// through host.Inbound. It connects to NATS when it listens.
func New(cfg Config, host transport.Host) *Transport {
	logger := host.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{
		cfg: cfg, inbound: host.Inbound, logger: logger, subj: subjects{prefix: cfg.SubjectPrefix}, idle: idleTimeout,
		connected: make(chan struct{}, 1),
		ctx:       ctx, cancel: cancel,
		calls: map[key]context.CancelFunc{}, partials: map[key]*partial{}, sessions: map[key]*session{},
	}
}

// Listen connects to NATS as the node self and subscribes to what is sent
// to its cluster address: the host of self with the port of address, and
// address itself when it names a host. It holds address's port too (it
// accepts connections there and closes them), so that no other node can
// claim the address and a TCP check of the port sees the node.
//
// A NATS server that cannot be reached, or refuses the node's credentials,
// does not fail Listen: the node keeps trying, and its calls fail as
// unreachable meanwhile. Listen logs it, and what the node's NATS
// permissions get wrong (see the README).
func (t *Transport) Listen(ctx context.Context, address, self string) error {
	if err := checkAddress("self address (the node's own HTTP address)", self); err != nil {
		return err
	}
	selfHost, _, err := net.SplitHostPort(self)
	if err != nil {
		return fmt.Errorf("natstransport: the self address %q: %w", self, err)
	}
	nc, names, err := t.connect(ctx, address, self, selfHost)
	if err != nil {
		return err
	}
	if !nc.IsConnected() {
		wait, cancel := context.WithTimeout(ctx, connectWait)
		defer cancel()
		for !nc.IsConnected() && wait.Err() == nil {
			select {
			case <-t.connected:
			case <-wait.Done():
			}
		}
	}
	t.check(nc, names)
	t.logger.Debug("listening on NATS", "servers", strings.Join(t.cfg.Servers, ","), "as", strings.Join(names, ","), "self", self)
	return nil
}

// connect holds the cluster port, connects to NATS and subscribes to what
// is sent to the node; it returns the connection and the addresses the
// node is called at.
func (t *Transport) connect(ctx context.Context, address, self, selfHost string) (*nats.Conn, []string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, nil, ErrClosed
	case t.nc != nil:
		return nil, nil, fmt.Errorf("natstransport: already listening on %s", t.holder.Addr())
	}
	holder, err := new(net.ListenConfig).Listen(ctx, "tcp", address)
	if err != nil {
		return nil, nil, fmt.Errorf("natstransport: holding the cluster port: %w", err)
	}
	names := clusterNames(address, selfHost, holder.Addr().(*net.TCPAddr).Port)
	nc, err := nats.Connect(strings.Join(t.cfg.Servers, ","), t.options(self)...)
	if err != nil {
		holder.Close()
		return nil, nil, fmt.Errorf("natstransport: connecting to NATS: %w", err)
	}
	t.nc, t.holder, t.self, t.selfToken = nc, holder, self, Token(self)
	for _, name := range names {
		sub, err := nc.Subscribe(t.subj.listen(Token(name)), t.receive)
		if err == nil {
			t.subs = append(t.subs, sub)
			err = sub.SetPendingLimits(1<<16, max(64<<20, 2*t.cfg.MaxMessageSize))
		}
		if err != nil {
			nc.Close()
			holder.Close()
			t.nc, t.subs = nil, nil
			return nil, nil, fmt.Errorf("natstransport: subscribing to %s: %w", t.subj.listen(Token(name)), err)
		}
	}
	t.work.Go(func() { hold(holder) })
	return nc, names, nil
}

// clusterNames are the addresses a node listening on address, whose self
// has the host selfHost, is called at: selfHost with the port, as its peers
// derive it from their member lists, and address when it names another host.
func clusterNames(address, selfHost string, port int) []string {
	names := []string{net.JoinHostPort(selfHost, strconv.Itoa(port))}
	host, _, err := net.SplitHostPort(address)
	if ip := net.ParseIP(host); err == nil && host != "" && host != selfHost && (ip == nil || !ip.IsUnspecified()) {
		names = append(names, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return names
}

// hold accepts connections on the cluster port and closes them, until the
// listener closes.
func hold(l net.Listener) {
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // out of descriptors, say: let it pass
			continue
		}
		c.Close()
	}
}

// options are the NATS connection's options for the node self.
func (t *Transport) options(self string) []nats.Option {
	opts := []nats.Option{
		nats.Name("sextant " + self),
		nats.CustomInboxPrefix(t.subj.inbox(Token(self))),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectBufSize(-1), // fail fast while reconnecting: the peers are unreachable then
		nats.IgnoreAuthErrorAbort(),
		nats.Timeout(connectWait),
		nats.PingInterval(10 * time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) {
			t.logger.Info("connected to NATS", "server", nc.ConnectedUrlRedacted())
			select {
			case t.connected <- struct{}{}:
			default:
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { t.logger.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				t.logger.Warn("disconnected from NATS: calls fail as unreachable until it is back", "error", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			t.logNATS("cannot connect to NATS: calls fail as unreachable until it can", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if !violation(err, t.impostor()) { // refused as it should be: check's probe
				t.logNATS("NATS reports an error", err)
			}
		}),
	}
	opts = append(opts, t.cfg.Auth...)
	if t.cfg.TLS != nil {
		opts = append(opts, nats.Secure(t.cfg.TLS.Clone()))
	}
	return opts
}

// logNATS logs an error of the connection to NATS, at most one line every
// logInterval.
func (t *Transport) logNATS(msg string, err error) {
	now := time.Now().UnixNano()
	if last := t.lastNATS.Load(); now-last >= int64(logInterval) && t.lastNATS.CompareAndSwap(last, now) {
		t.logger.Error(msg, "error", err)
	}
}

// check tries the node's NATS permissions: it must be allowed to publish
// as itself, a ping to itself must come back (it receives what is sent to
// it, and may answer), and a message sent as another node must be refused.
// It logs what is wrong; once NATS refused the node's own messages, its
// calls fail at once with the reason.
func (t *Transport) check(nc *nats.Conn, names []string) {
	if !nc.IsConnected() {
		t.logger.Error("not connected to NATS yet: calls fail as unreachable until the node is", "servers", strings.Join(t.cfg.Servers, ","), "error", nc.LastError())
		return
	}
	wait := min(t.cfg.RequestTimeout, connectWait)
	// A message as itself to nobody: NATS answers a refusal before the
	// flush's pong.
	own := t.subj.member(Token("probe.invalid:0"), t.selfToken, opPing)
	if err := nc.Publish(own, nil); err == nil && nc.FlushTimeout(wait) == nil && violation(nc.LastError(), own) {
		t.mu.Lock()
		t.refused = fmt.Errorf("natstransport: NATS refuses this node's messages as %s (%v): its user's permissions must allow publishing to %s",
			t.self, nc.LastError(), t.subj.member("*", t.selfToken, "*"))
		t.mu.Unlock()
		t.logger.Error("NATS refuses this node's messages as itself: its peers will not hear it; check its NATS permissions (see the README)",
			"subject", own, "error", nc.LastError())
	} else {
		ping := t.subj.member(Token(names[0]), t.selfToken, opPing)
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.RequestTimeout)
		_, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: ping, Header: nats.Header{hID: {newID()}}})
		cancel()
		if err != nil {
			t.logger.Error("a ping of this node to itself through NATS got no answer: its peers will not hear it, or it them; check its NATS permissions (see the README)",
				"subject", ping, "error", err, "last_nats_error", nc.LastError())
		}
	}
	impostor := t.impostor()
	if err := nc.Publish(impostor, nil); err == nil && nc.FlushTimeout(wait) == nil && !violation(nc.LastError(), impostor) {
		t.logger.Warn("NATS lets this node send as any other node: a member's identity is not authenticated; give each node a NATS user that may publish only as itself (see the README)",
			"allowed", impostor)
	}
}

// impostor is the subject check publishes to as another node, and NATS
// should refuse.
func (t *Transport) impostor() string {
	return t.subj.member(Token("probe.invalid:0"), Token("impostor.invalid:0"), opPing)
}

// violation reports whether err is NATS refusing a publication to subject.
func violation(err error, subject string) bool {
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), strconv.Quote(subject))
}

// Close stops listening (once NATS has taken the unsubscription, a call
// to the node finds no one) and ends the calls and snapshots being served,
// which are answered with an error; once their handlers have returned, it
// closes the connection to NATS. Calls in flight fail.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	nc, holder, subs := t.nc, t.holder, t.subs
	for k := range t.partials {
		t.dropPartial(k)
	}
	for k := range t.sessions {
		t.endSession(k)
	}
	t.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	if nc != nil && nc.IsConnected() {
		_ = nc.FlushTimeout(time.Second)
	}
	t.cancel()
	var err error
	if holder != nil {
		err = holder.Close()
	}
	t.work.Wait()
	if nc != nil {
		nc.Close() // sends what the handlers answered first
	}
	return err
}

// conn is the connection to NATS, nil before Listen.
func (t *Transport) conn() *nats.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nc
}

// route returns the connection to send to target on, and target's token.
func (t *Transport) route(target string) (*nats.Conn, string, error) {
	if err := checkAddress("target", target); err != nil {
		return nil, "", err
	}
	t.mu.Lock()
	nc, closed, refused := t.nc, t.closed, t.refused
	t.mu.Unlock()
	switch {
	case closed:
		return nil, "", ErrClosed
	case nc == nil:
		return nil, "", errors.New("natstransport: Listen first: the transport tells peers who calls, and learns it there")
	case refused != nil:
		return nil, "", refused
	case !nc.IsConnected():
		why := "connecting"
		if err := nc.LastError(); err != nil {
			why = err.Error()
		}
		return nil, "", fmt.Errorf("%w: %s: not connected to NATS (%s)", transport.ErrUnreachable, target, why)
	}
	return nc, Token(target), nil
}

// pieceSize is the most a message may carry on nc: the server's max_payload
// less room for the headers.
func pieceSize(nc *nats.Conn) (int, error) {
	mp := nc.MaxPayload()
	if mp < minPayload {
		return 0, fmt.Errorf("natstransport: the NATS server's max_payload is %d bytes; natstransport needs at least %d", mp, minPayload)
	}
	return int(min(mp, 1<<30)) - headroom, nil
}

// newID returns a fresh id for a call or a snapshot.
func newID() string { return fmt.Sprintf("%016x", rand.Uint64()) }

// checkKind checks a call's kind before it goes into a header.
func checkKind(kind string) error {
	if len(kind) > maxKind {
		return fmt.Errorf("natstransport: a kind of %d bytes, more than %d", len(kind), maxKind)
	}
	for i := range len(kind) {
		if c := kind[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("natstransport: the kind %q holds a control character", kind)
		}
	}
	return nil
}

// Call sends payload to the peer at target as a NATS request, in pieces if
// it is larger than a NATS message may be, and returns the peer's answer,
// pulling its pieces if it came in pieces.
func (t *Transport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	nc, to, err := t.route(target)
	if err != nil {
		return nil, err
	}
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if len(payload) > t.cfg.MaxMessageSize {
		return nil, fmt.Errorf("natstransport: a payload of %d bytes is more than max_message_size (%d)", len(payload), t.cfg.MaxMessageSize)
	}
	piece, err := pieceSize(nc)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.RequestTimeout)
		defer cancel()
	}
	id := newID()
	rest, parts := payload, 0
	for ; len(rest) > piece; parts++ {
		err := nc.PublishMsg(&nats.Msg{Subject: t.subj.member(to, t.selfToken, opPart), Data: rest[:piece], Header: nats.Header{
			hID: {id}, hSeq: {strconv.Itoa(parts)}, hSize: {strconv.Itoa(len(payload))},
		}})
		if err != nil {
			return nil, t.failed(ctx, target, err, true)
		}
		rest = rest[piece:]
	}
	h := nats.Header{hID: {id}, hKind: {kind}, hTimeout: {strconv.FormatInt(timeLeft(ctx), 10)}}
	if parts > 0 {
		h[hParts], h[hSize] = []string{strconv.Itoa(parts)}, []string{strconv.Itoa(len(payload))}
	}
	reply, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: t.subj.member(to, t.selfToken, opCall), Data: rest, Header: h})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			t.withdraw(nc, to, id) // the peer stops serving it
		}
		return nil, t.failed(ctx, target, err, true)
	}
	var answer []byte
	for seq := 0; ; seq++ {
		data, kind, err := t.piece(ctx, target, reply, seq)
		if err == nil && kind == pieceEnd {
			err = fmt.Errorf("natstransport: %s answered a call with the end of a snapshot", target)
		}
		if err != nil {
			if seq > 0 {
				t.withdraw(nc, to, id)
			}
			return nil, err
		}
		if kind == pieceLast && answer == nil {
			return data, nil
		}
		if len(answer)+len(data) > t.cfg.MaxMessageSize {
			t.withdraw(nc, to, id)
			return nil, fmt.Errorf("natstransport: the answer of %s is larger than max_message_size (%d)", target, t.cfg.MaxMessageSize)
		}
		answer = append(answer, data...)
		if kind == pieceLast {
			return answer, nil
		}
		if reply, err = t.pull(ctx, nc, to, id, seq+1); err != nil {
			t.withdraw(nc, to, id)
			return nil, t.failed(ctx, target, err, false)
		}
	}
}

// timeLeft is the time until ctx's deadline, in nanoseconds, at least 1.
func timeLeft(ctx context.Context) int64 {
	d, _ := ctx.Deadline()
	return max(int64(time.Until(d)), 1)
}

// piece reads the answer to the request for piece seq of an answer or a
// snapshot: its data and its kind (pieceMore, pieceLast or pieceEnd). An
// error answer is the peer's error, unless ctx has ended (then the peer
// gave up at the deadline too).
func (t *Transport) piece(ctx context.Context, target string, reply *nats.Msg, seq int) ([]byte, string, error) {
	if reply.Header.Get(hStatus) == statusError {
		if err := ended(ctx); err != nil {
			return nil, "", err
		}
		return nil, "", errors.New(string(reply.Data))
	}
	if got := reply.Header.Get(hSeq); got != strconv.Itoa(seq) {
		return nil, "", fmt.Errorf("natstransport: %s answered with piece %.20q, not %d", target, got, seq)
	}
	switch kind := reply.Header.Get(hPiece); {
	case kind == pieceLast || kind == pieceEnd && len(reply.Data) == 0 || kind == pieceMore && len(reply.Data) >= minPiece:
		return reply.Data, kind, nil
	case kind == pieceMore:
		return nil, "", fmt.Errorf("natstransport: %s answered with a piece of %d bytes (less than %d) that more follow", target, len(reply.Data), minPiece)
	default:
		return nil, "", fmt.Errorf("natstransport: %s answered with a piece of kind %.20q and %d bytes", target, kind, len(reply.Data))
	}
}

// ended returns ctx's error, or DeadlineExceeded once its deadline has
// passed, even if its timer has not fired yet.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// pull asks the peer whose token is to for piece seq of the answer or
// snapshot id.
func (t *Transport) pull(ctx context.Context, nc *nats.Conn, to, id string, seq int) (*nats.Msg, error) {
	op := opPull
	if seq == 0 {
		op = opSnap
	}
	return nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: t.subj.member(to, t.selfToken, op), Header: nats.Header{hID: {id}, hSeq: {strconv.Itoa(seq)}}})
}

// withdraw tells the peer whose token is to that this node gave up on id.
func (t *Transport) withdraw(nc *nats.Conn, to, id string) {
	_ = nc.PublishMsg(&nats.Msg{Subject: t.subj.member(to, t.selfToken, opCancel), Header: nats.Header{hID: {id}}})
}

// failed is the error of a request to target that failed with err; first
// says whether it was the first request of the call or snapshot (nothing
// reached the peer if it found no one).
func (t *Transport) failed(ctx context.Context, target string, err error, first bool) error {
	switch {
	case t.ctx.Err() != nil:
		return ErrClosed
	case errors.Is(err, nats.ErrNoResponders) && first:
		return fmt.Errorf("%w: %s: nothing listens there on NATS", transport.ErrUnreachable, target)
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("natstransport: %s went away", target)
	case ctx.Err() != nil:
		return ctx.Err()
	case first && (errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrDisconnected)):
		return fmt.Errorf("%w: %s: not connected to NATS (%v)", transport.ErrUnreachable, target, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("natstransport: %s did not answer within %v", target, t.cfg.RequestTimeout)
	}
	return fmt.Errorf("natstransport: calling %s: %w", target, err)
}

// Snapshot streams the snapshot of the peer at target to fn: it asks for
// the first piece, then pulls the next one each time it has the last, so
// the peer sends no faster than this node loads; each wait is bounded by
// request_timeout. Pieces are joined into the chunks the peer's server
// wrote.
func (t *Transport) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	nc, to, err := t.route(target)
	if err != nil {
		return err
	}
	id := newID()
	var chunk []byte
	var total int64
	for seq := 0; ; seq++ {
		pullCtx, cancel := context.WithTimeout(ctx, t.cfg.RequestTimeout)
		reply, err := t.pull(pullCtx, nc, to, id, seq)
		cancel()
		if err != nil {
			if seq > 0 {
				t.withdraw(nc, to, id)
			}
			return t.failed(ctx, target, err, seq == 0)
		}
		data, kind, err := t.piece(ctx, target, reply, seq)
		switch {
		case err != nil && reply.Header.Get(hStatus) == statusError:
			return fmt.Errorf("natstransport: the snapshot of %s failed there: %w", target, err)
		case err == nil && kind == pieceEnd && chunk != nil:
			err = fmt.Errorf("natstransport: the snapshot of %s ended in the middle of a chunk", target)
		case err == nil && kind == pieceEnd:
			return nil
		}
		if total += int64(max(len(data), pieceCost)); err == nil && total > t.cfg.MaxSnapshotSize {
			err = fmt.Errorf("natstransport: the snapshot of %s is larger than max_snapshot_size (%d)", target, t.cfg.MaxSnapshotSize)
		}
		if err == nil && len(chunk)+len(data) > t.cfg.MaxMessageSize {
			err = fmt.Errorf("natstransport: the snapshot of %s has a chunk larger than max_message_size (%d)", target, t.cfg.MaxMessageSize)
		}
		if err == nil {
			if chunk != nil || kind == pieceMore {
				chunk = append(chunk, data...)
				data = chunk
			}
			if kind == pieceLast {
				chunk = nil
				err = fn(data)
			}
		}
		if err != nil {
			t.withdraw(nc, to, id)
			return err
		}
	}
}
