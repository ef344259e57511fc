package natstransport

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// This file serves the node's peers: what arrives on its subjects. All of
// it comes from the one goroutine of the subscription, in the order each
// peer sent it; what takes time (the host's Handle and Snapshot, waiting
// for a snapshot's next piece) runs on goroutines of its own.

// partial is a peer's call arriving in pieces.
type partial struct {
	size  int    // the payload's size, reserved against the budget
	buf   []byte // the pieces so far
	next  int    // the number of the next part
	timer *time.Timer
}

// session is an answer or a snapshot a peer pulls, piece by piece.
type session struct {
	ctx     context.Context // ends with the session: the host's Snapshot returns
	cancel  context.CancelFunc
	next    func(ctx context.Context) (chunkPiece, error)
	last    string // the kind of its last piece: pieceLast for an answer, pieceEnd for a snapshot
	seq     int    // the piece the peer pulls next
	serving bool   // a pull is being answered
	timer   *time.Timer
}

// chunkPiece is a piece of an answer or a snapshot, as served: pieceMore,
// pieceLast or pieceEnd, or an error.
type chunkPiece struct {
	data []byte
	kind string
	err  error
}

// receive serves one message from a peer. A panic is logged and counted,
// never the end of the process.
func (t *Transport) receive(m *nats.Msg) {
	defer func() {
		if r := recover(); r != nil {
			t.logger.Error("serving a peer's message panicked", "subject", m.Subject, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			t.drop("?", fmt.Errorf("serving it panicked: %v", r))
		}
	}()
	from, op, err := t.subj.parse(m.Subject)
	if err != nil {
		t.refuse("?", m, err)
		return
	}
	switch op {
	case opCall:
		t.onCall(from, m)
	case opPart:
		t.onPart(from, m)
	case opSnap:
		t.onSnapshot(from, m)
	case opPull:
		t.onPull(from, m)
	case opCancel:
		t.onCancel(from, m)
	case opPing:
		t.respond(m, nats.Header{hSeq: {"0"}, hPiece: {pieceLast}}, nil)
	default:
		t.refuse(from, m, fmt.Errorf("natstransport: an unknown op %.40q", op))
	}
}

// drop counts a message dropped (or answered with an error) for why, and
// logs it.
func (t *Transport) drop(from string, why error) {
	t.dropped.Add(1)
	t.logRefusal("dropped a peer's message", from, why)
}

// logRefusal logs a refused or dropped message, at most one line every
// logInterval; the line counts those not logged since the last.
func (t *Transport) logRefusal(msg, from string, why error) {
	now := time.Now().UnixNano()
	if last := t.lastLine.Load(); now-last >= int64(logInterval) && t.lastLine.CompareAndSwap(last, now) {
		t.logger.Warn(msg, "from", from, "reason", why.Error(), "dropped_total", t.dropped.Load(), "busy_total", t.busy.Load(),
			"unlogged_since_last_line", t.unlogged.Swap(0))
	} else {
		t.unlogged.Add(1)
	}
}

// respond answers m, if it asks for an answer.
func (t *Transport) respond(m *nats.Msg, h nats.Header, data []byte) {
	if m.Reply == "" {
		return
	}
	_ = m.RespondMsg(&nats.Msg{Header: h, Data: data})
}

// refuse answers m with err (which is counted and logged as dropped).
func (t *Transport) refuse(from string, m *nats.Msg, err error) {
	t.drop(from, err)
	t.answerError(m, err)
}

// answerError answers m with err's message, cut to what a NATS message
// holds.
func (t *Transport) answerError(m *nats.Msg, err error) {
	msg := err.Error()
	if msg == "" {
		msg = "error"
	}
	if len(msg) > minPiece {
		msg = msg[:minPiece]
	}
	t.respond(m, nats.Header{hStatus: {statusError}}, []byte(msg))
}

// idOf is m's id: 16 lower-case hex digits.
func idOf(m *nats.Msg) (string, error) {
	id := m.Header.Get(hID)
	if len(id) != 16 || slices.ContainsFunc([]byte(id), func(c byte) bool { return !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') }) {
		return "", fmt.Errorf("a message without a valid %s (%.40q)", hID, id)
	}
	return id, nil
}

// intOf is m's header name as an integer from lo to hi; def when it is
// absent.
func intOf(m *nats.Msg, name string, lo, hi, def int64) (int64, error) {
	s := m.Header.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("a message whose %s is %.40q, not a number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}

// inFlight is how many calls and sessions are being served (t.mu held).
func (t *Transport) inFlight() int { return len(t.calls) + len(t.sessions) }

// budget bounds the bytes of all the calls arriving in pieces.
func (t *Transport) budget() int { return 2 * t.cfg.MaxMessageSize }

// onCall serves a peer's call: its payload is m's data, after the parts
// that came before if it came in pieces.
func (t *Transport) onCall(from string, m *nats.Msg) {
	if m.Reply == "" {
		t.drop(from, errors.New("a call without a reply subject"))
		return
	}
	id, err := idOf(m)
	if err != nil {
		t.refuse(from, m, err)
		return
	}
	kind := m.Header.Get(hKind)
	timeout, err := intOf(m, hTimeout, 1, int64(maxRequestTimeout), int64(t.cfg.RequestTimeout))
	if err == nil {
		err = checkKind(kind)
	}
	parts, err2 := intOf(m, hParts, 0, int64(t.cfg.MaxMessageSize/minPiece)+1, 0)
	if err = errors.Join(err, err2); err != nil {
		t.refuse(from, m, err)
		return
	}
	k := key{from, id}
	ctx, payload, err := t.startCall(k, m.Data, int(parts), time.Duration(timeout))
	switch {
	case errors.Is(err, ErrClosed):
		t.answerError(m, errClosing)
		return
	case errors.Is(err, errBusy):
		t.busy.Add(1)
		t.logRefusal("refused a peer's call", from, err)
		t.answerError(m, err)
		return
	case err != nil:
		t.refuse(from, m, err)
		return
	}
	go func() {
		defer t.work.Done()
		t.serveCall(ctx, k, kind, payload, m)
	}()
}

var (
	// errBusy refuses a call or a snapshot over max_in_flight.
	errBusy = errors.New("natstransport: busy")
	// errClosing answers what arrives while the transport closes.
	errClosing = errors.New("natstransport: the peer is closing")
)

// startCall registers the call k, joining its payload to the parts before
// it, and returns the context to serve it with; t.work counts its
// goroutine.
func (t *Transport) startCall(k key, last []byte, parts int, timeout time.Duration) (context.Context, []byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, ErrClosed
	}
	payload := last
	if p := t.partials[k]; parts > 0 || p != nil {
		t.dropPartial(k)
		switch {
		case p == nil:
			return nil, nil, errors.New("natstransport: the call's first pieces never arrived, or were over this node's limits")
		case p.next != parts || len(p.buf)+len(last) != p.size:
			return nil, nil, fmt.Errorf("natstransport: the call came in %d pieces of %d bytes, but says %d pieces of %d bytes", p.next+1, len(p.buf)+len(last), parts+1, p.size)
		}
		payload = append(p.buf, last...)
	}
	if len(payload) > t.cfg.MaxMessageSize {
		return nil, nil, fmt.Errorf("natstransport: a payload of %d bytes is more than max_message_size (%d)", len(payload), t.cfg.MaxMessageSize)
	}
	if _, dup := t.calls[k]; dup {
		return nil, nil, fmt.Errorf("natstransport: the call id %s is in use", k.id)
	}
	if n := t.inFlight(); n >= t.cfg.MaxInFlight {
		return nil, nil, fmt.Errorf("%w: %d calls and snapshots in flight, max_in_flight is %d", errBusy, n, t.cfg.MaxInFlight)
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	t.calls[k] = cancel
	t.work.Add(1)
	return ctx, payload, nil
}

// serveCall hands a call to the host and answers it: at once if the answer
// fits in a NATS message, else with its first piece, the peer pulling the
// others.
func (t *Transport) serveCall(ctx context.Context, k key, kind string, payload []byte, m *nats.Msg) {
	answer, err := t.handle(ctx, k.from, kind, payload)
	t.mu.Lock()
	t.calls[k]()
	delete(t.calls, k)
	t.mu.Unlock()
	if err == nil && len(answer) > t.cfg.MaxMessageSize {
		err = fmt.Errorf("natstransport: an answer of %d bytes is more than max_message_size (%d)", len(answer), t.cfg.MaxMessageSize)
	}
	piece := 0
	if err == nil {
		piece, err = pieceSize(t.conn())
	}
	if err != nil {
		t.answerError(m, err)
		return
	}
	if len(answer) <= piece {
		t.respond(m, nats.Header{hSeq: {"0"}, hPiece: {pieceLast}}, answer)
		return
	}
	rest := answer[piece:]
	next := func(context.Context) (chunkPiece, error) {
		n := min(len(rest), piece)
		p := chunkPiece{data: rest[:n], kind: pieceMore}
		if rest = rest[n:]; len(rest) == 0 {
			p.kind = pieceLast
		}
		return p, nil
	}
	if _, err := t.startSession(k, next, pieceLast); err != nil {
		t.answerError(m, err)
		return
	}
	t.respond(m, nats.Header{hSeq: {"0"}, hPiece: {pieceMore}}, answer[:piece])
}

// handle hands a call to the host, answering its panic as an error.
func (t *Transport) handle(ctx context.Context, from, kind string, payload []byte) (answer []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			t.logger.Error("the host's inbound panicked", "from", from, "kind", kind, "panic", fmt.Sprint(r))
			answer, err = nil, fmt.Errorf("the peer's inbound panicked: %v", r)
		}
	}()
	return t.inbound.Handle(ctx, from, kind, payload)
}

// onPart takes a piece of a call before its last.
func (t *Transport) onPart(from string, m *nats.Msg) {
	id, err := idOf(m)
	var seq, size int64
	if err == nil {
		seq, err = intOf(m, hSeq, 0, int64(t.cfg.MaxMessageSize/minPiece), -1)
	}
	if err == nil {
		size, err = intOf(m, hSize, 1, int64(t.cfg.MaxMessageSize), -1)
	}
	if err == nil && (seq < 0 || size < 0) {
		err = fmt.Errorf("a part without %s or %s", hSeq, hSize)
	}
	if err == nil {
		err = t.addPart(key{from, id}, int(seq), int(size), m.Data)
	}
	if err != nil {
		t.drop(from, err)
	}
}

// addPart adds a part to the call k.
func (t *Transport) addPart(k key, seq, size int, data []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	p := t.partials[k]
	if seq == 0 {
		if p != nil {
			t.dropPartial(k)
			return fmt.Errorf("natstransport: the call %s began again", k.id)
		}
		if err := t.admit(k.from, size); err != nil {
			return err
		}
		p = &partial{size: size, buf: make([]byte, 0, size)}
		p.timer = time.AfterFunc(t.idle, func() { t.expirePartial(k, p) })
		t.partials[k] = p
		t.partialBytes += size
	}
	switch {
	case p == nil:
		return fmt.Errorf("natstransport: part %d of the call %s, whose first part is not here", seq, k.id)
	case seq != p.next || size != p.size || len(data) < minPiece || len(p.buf)+len(data) >= size:
		t.dropPartial(k)
		return fmt.Errorf("natstransport: part %d of %d bytes of the call %s does not follow (part %d of %d bytes expected next)", seq, len(data), k.id, p.next, p.size-len(p.buf))
	}
	p.buf = append(p.buf, data...)
	p.next++
	p.timer.Reset(t.idle)
	return nil
}

// admit reports whether a call of size bytes from a peer may start arriving
// in pieces (t.mu held).
func (t *Transport) admit(from string, size int) error {
	if t.partialBytes+size > t.budget() {
		t.busy.Add(1)
		return fmt.Errorf("%w: calls of %d bytes are arriving in pieces already, %d more would be over %d", errBusy, t.partialBytes, size, t.budget())
	}
	n := 0
	for k := range t.partials {
		if k.from == from {
			n++
		}
	}
	if n >= maxPartials {
		t.busy.Add(1)
		return fmt.Errorf("%w: %d calls of %s are arriving in pieces already", errBusy, n, from)
	}
	return nil
}

// dropPartial forgets the call k arriving in pieces (t.mu held).
func (t *Transport) dropPartial(k key) {
	if p := t.partials[k]; p != nil {
		p.timer.Stop()
		t.partialBytes -= p.size
		delete(t.partials, k)
	}
}

// expirePartial forgets p, whose pieces stopped coming.
func (t *Transport) expirePartial(k key, p *partial) {
	t.mu.Lock()
	expired := t.partials[k] == p
	if expired {
		t.dropPartial(k)
	}
	t.mu.Unlock()
	if expired {
		t.drop(k.from, fmt.Errorf("natstransport: the pieces of the call %s stopped coming", k.id))
	}
}

// onSnapshot starts serving this node's snapshot to a peer, and answers
// with its first piece.
func (t *Transport) onSnapshot(from string, m *nats.Msg) {
	if m.Reply == "" {
		t.drop(from, errors.New("a snapshot request without a reply subject"))
		return
	}
	id, err := idOf(m)
	if err != nil {
		t.refuse(from, m, err)
		return
	}
	piece, err := pieceSize(t.conn())
	if err != nil {
		t.answerError(m, err)
		return
	}
	pieces := make(chan chunkPiece, 2)
	next := func(ctx context.Context) (chunkPiece, error) {
		select {
		case p := <-pieces:
			return p, nil
		case <-ctx.Done():
			return chunkPiece{}, errors.New("natstransport: the snapshot was withdrawn, or stopped")
		}
	}
	k := key{from, id}
	s, err := t.startSession(k, next, pieceEnd)
	switch {
	case errors.Is(err, ErrClosed):
		t.answerError(m, errClosing)
		return
	case errors.Is(err, errBusy):
		t.busy.Add(1)
		t.logRefusal("refused a peer's snapshot", from, err)
		t.answerError(m, err)
		return
	case err != nil:
		t.refuse(from, m, err)
		return
	}
	go func() {
		defer t.work.Done()
		t.produce(s.ctx, from, piece, pieces)
	}()
	t.onPull(from, m)
}

// produce runs the host's snapshot for from, cutting its chunks into pieces
// for pieces; it ends with a pieceEnd or an error, or when ctx does.
func (t *Transport) produce(ctx context.Context, from string, piece int, pieces chan<- chunkPiece) {
	send := func(p chunkPiece) error {
		select {
		case pieces <- p:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := t.snapshot(ctx, from, func(chunk []byte) error {
		if len(chunk) > t.cfg.MaxMessageSize {
			return fmt.Errorf("natstransport: a snapshot chunk of %d bytes is more than max_message_size (%d)", len(chunk), t.cfg.MaxMessageSize)
		}
		for len(chunk) > piece {
			if err := send(chunkPiece{data: slices.Clone(chunk[:piece]), kind: pieceMore}); err != nil {
				return err
			}
			chunk = chunk[piece:]
		}
		return send(chunkPiece{data: slices.Clone(chunk), kind: pieceLast})
	})
	if err != nil {
		_ = send(chunkPiece{err: err})
		return
	}
	_ = send(chunkPiece{kind: pieceEnd})
}

// snapshot runs the host's snapshot, answering its panic as an error.
func (t *Transport) snapshot(ctx context.Context, from string, fn func([]byte) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			t.logger.Error("the host's snapshot panicked", "from", from, "panic", fmt.Sprint(r))
			err = fmt.Errorf("the peer's snapshot panicked: %v", r)
		}
	}()
	return t.inbound.Snapshot(ctx, from, fn)
}

// startSession registers the session k, whose pieces next gives, the last
// of kind last. A snapshot's (last is pieceEnd) counts against
// max_in_flight, and t.work counts its producer; an answer's takes the
// place of its call.
func (t *Transport) startSession(k key, next func(context.Context) (chunkPiece, error), last string) (*session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	snapshot := last == pieceEnd
	switch n := t.inFlight(); {
	case t.closed:
		return nil, ErrClosed
	case t.sessions[k] != nil:
		return nil, fmt.Errorf("natstransport: the id %s is in use", k.id)
	case snapshot && n >= t.cfg.MaxInFlight:
		return nil, fmt.Errorf("%w: %d calls and snapshots in flight, max_in_flight is %d", errBusy, n, t.cfg.MaxInFlight)
	}
	ctx, cancel := context.WithCancel(t.ctx)
	s := &session{ctx: ctx, cancel: cancel, next: next, last: last}
	if !snapshot {
		s.seq = 1 // the call's answer was piece 0
	}
	s.timer = time.AfterFunc(t.idle, func() { t.expireSession(k, s) })
	t.sessions[k] = s
	if snapshot {
		t.work.Add(1)
	}
	return s, nil
}

// endSession forgets the session k, and ends its context (t.mu held).
func (t *Transport) endSession(k key) {
	if s := t.sessions[k]; s != nil {
		s.timer.Stop()
		s.cancel()
		delete(t.sessions, k)
	}
}

// expireSession ends s, which nobody pulled for too long.
func (t *Transport) expireSession(k key, s *session) {
	t.mu.Lock()
	expired := t.sessions[k] == s && !s.serving
	if expired {
		t.endSession(k)
	}
	t.mu.Unlock()
	if expired {
		t.drop(k.from, fmt.Errorf("natstransport: the answer or snapshot %s was not pulled for %v", k.id, t.idle))
	}
}

// onPull answers a pull of the next piece of an answer or a snapshot.
func (t *Transport) onPull(from string, m *nats.Msg) {
	if m.Reply == "" {
		t.drop(from, errors.New("a pull without a reply subject"))
		return
	}
	id, err := idOf(m)
	var seq int64
	if err == nil {
		seq, err = intOf(m, hSeq, 0, 1<<40, -1)
	}
	if err != nil {
		t.refuse(from, m, err)
		return
	}
	k := key{from, id}
	t.mu.Lock()
	s := t.sessions[k]
	switch {
	case t.closed:
		err = ErrClosed
	case s == nil:
		err = fmt.Errorf("natstransport: no answer or snapshot %s here (it ended, was withdrawn, or was not pulled for %v)", id, t.idle)
	case s.serving || int64(s.seq) != seq:
		t.endSession(k)
		err = fmt.Errorf("natstransport: piece %d of %s pulled, not %d", seq, id, s.seq)
	default:
		s.serving = true
		s.timer.Stop()
		t.work.Add(1)
	}
	t.mu.Unlock()
	switch {
	case errors.Is(err, ErrClosed):
		t.answerError(m, errClosing)
		return
	case err != nil:
		t.refuse(from, m, err)
		return
	}
	go func() {
		defer t.work.Done()
		t.servePiece(k, s, m)
	}()
}

// servePiece answers m with the next piece of s.
func (t *Transport) servePiece(k key, s *session, m *nats.Msg) {
	p, err := s.next(s.ctx)
	if err == nil {
		err = p.err
	}
	t.mu.Lock()
	s.serving = false
	seq := s.seq
	s.seq++
	if t.sessions[k] == s {
		if err != nil || p.kind == s.last {
			t.endSession(k)
		} else {
			s.timer.Reset(t.idle)
		}
	}
	t.mu.Unlock()
	if err != nil {
		t.answerError(m, err)
		return
	}
	t.respond(m, nats.Header{hSeq: {strconv.Itoa(seq)}, hPiece: {p.kind}}, p.data)
}

// onCancel ends what a peer withdrew: a call being served, a call arriving
// in pieces, or an answer or a snapshot being pulled.
func (t *Transport) onCancel(from string, m *nats.Msg) {
	id, err := idOf(m)
	if err != nil {
		t.drop(from, err)
		return
	}
	k := key{from, id}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cancel := t.calls[k]; cancel != nil {
		cancel()
	}
	t.dropPartial(k)
	t.endSession(k)
}
