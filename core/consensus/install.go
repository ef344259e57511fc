package consensus

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// This file carries InstallSnapshot. A snapshot can be far larger than one
// cluster message should be, so the leader cuts it into chunks of at most
// chunkSize, each one call of kind KindInstall, one after the other: the
// first carries the encoded InstallSnapshotRequest, the last is flagged.
// The follower appends the chunks, in order, to a file of its own in
// DataDir/raft/incoming, refusing a snapshot larger than its
// MaxSnapshotSize at the first chunk (the request gives the size) and any
// chunk past that size; at the last one it hands raft the whole file as
// one RPC and answers with raft's response. Each member has at most one
// transfer in progress (a new first chunk replaces the old transfer), and a
// transfer without a chunk for installIdle is dropped when the next
// message of this kind arrives, or at Close.

// chunkSize is the most snapshot data one message carries.
const chunkSize = 1 << 20

// installIdle is how long a transfer may wait for its next chunk.
const installIdle = time.Minute

// Flags of a chunk.
const (
	chunkFirst = 1 << iota
	chunkLast
)

// installs sends snapshots chunk by chunk, and receives them.
type installs struct {
	t              *raftTransport
	dir            string
	max            int64
	installTimeout time.Duration
	chunk          int // chunkSize; tests use less

	mu       sync.Mutex
	sessions map[string]*session // by sender
	closed   bool
}

// session is one snapshot being received.
type session struct {
	mu      sync.Mutex
	id      uint64
	next    uint64 // the next chunk's number
	req     *raft.InstallSnapshotRequest
	file    *os.File
	written int64
	touched time.Time
}

func newInstalls(t *raftTransport, dir string, max int64, installTimeout time.Duration) *installs {
	return &installs{t: t, dir: dir, max: max, installTimeout: installTimeout, chunk: chunkSize,
		sessions: make(map[string]*session)}
}

// prepare empties the directory of received snapshots (what a crash left).
func (in *installs) prepare() error {
	if err := os.RemoveAll(in.dir); err != nil {
		return err
	}
	return os.MkdirAll(in.dir, 0o700)
}

// encodeChunk is one chunk's message: the session, the chunk's number, its
// flags, the request (first chunk only), and the data.
func encodeChunk(id, seq uint64, flags byte, head, data []byte) []byte {
	e := newEnc(32 + len(head) + len(data))
	e.u(id)
	e.u(seq)
	e.b = append(e.b, flags)
	e.bytes(head)
	e.bytes(data)
	return e.b
}

// send streams a snapshot to the member target, chunk by chunk.
func (in *installs) send(target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if args.Size < 0 {
		return fmt.Errorf("consensus: a snapshot of %d bytes", args.Size)
	}
	id := rand.Uint64()
	head := encodeInstallRequest(args)
	buf := make([]byte, min(int64(in.chunk), args.Size))
	var sent int64
	for seq := uint64(0); ; seq++ {
		n := min(int64(len(buf)), args.Size-sent)
		if _, err := io.ReadFull(data, buf[:n]); err != nil {
			return fmt.Errorf("consensus: reading the snapshot for %s: %w", target, err)
		}
		sent += n
		var flags byte
		if seq == 0 {
			flags |= chunkFirst
		}
		timeout := in.t.callTimeout
		if sent == args.Size {
			flags |= chunkLast
			timeout = in.installTimeout
		}
		msg := encodeChunk(id, seq, flags, head, buf[:n])
		head = nil
		answer, err := in.t.call(target, KindInstall, msg, timeout)
		if err != nil {
			return fmt.Errorf("consensus: sending the snapshot to %s (chunk %d, %d of %d bytes): %w", target, seq, sent, args.Size, err)
		}
		if flags&chunkLast != 0 {
			return decodeInstallResponse(answer, resp)
		}
	}
}

// handle takes one chunk from the member from.
func (in *installs) handle(ctx context.Context, from string, payload []byte) ([]byte, error) {
	d := newDec(payload)
	id, seq, flags := d.u(), d.u(), d.byte()
	head, data := d.bytes(), d.bytes()
	if err := d.done(); err != nil {
		return nil, err
	}
	in.sweep()
	s, err := in.session(from, id, seq, flags, head)
	if err != nil {
		in.t.metrics.installs.WithLabelValues("refused").Inc()
		return nil, err
	}
	s.mu.Lock()
	if s.written+int64(len(data)) > s.req.Size {
		s.mu.Unlock()
		in.abort(from, s)
		in.t.metrics.installs.WithLabelValues("refused").Inc()
		return nil, fmt.Errorf("consensus: the snapshot from %s is larger than its %d bytes", from, s.req.Size)
	}
	_, err = s.file.Write(data)
	s.written += int64(len(data))
	s.next++
	s.touched = time.Now()
	last := flags&chunkLast != 0
	if err == nil && last && s.written != s.req.Size {
		err = fmt.Errorf("consensus: the snapshot from %s ended at %d of its %d bytes", from, s.written, s.req.Size)
	}
	s.mu.Unlock()
	if err != nil {
		in.abort(from, s)
		in.t.metrics.installs.WithLabelValues("failed").Inc()
		return nil, err
	}
	if !last {
		return nil, nil
	}
	// The whole snapshot is here: the transfer is over, and the file is
	// this call's.
	in.forget(from, s)
	defer removeFile(s.file)
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	reader := io.LimitReader(bufio.NewReaderSize(s.file, 64<<10), s.req.Size)
	resp, err := answer[raft.InstallSnapshotResponse](in.t.dispatch(ctx, s.req, reader, false))
	if err != nil {
		in.t.metrics.installs.WithLabelValues("failed").Inc()
		return nil, err
	}
	in.t.metrics.installs.WithLabelValues("ok").Inc()
	return encodeInstallResponse(resp), nil
}

// session returns the transfer a chunk belongs to: a new one for a first
// chunk (replacing the sender's former one), else the sender's current
// one, if the chunk is its next.
func (in *installs) session(from string, id, seq uint64, flags byte, head []byte) (*session, error) {
	if flags&chunkFirst == 0 {
		in.mu.Lock()
		s := in.sessions[from]
		in.mu.Unlock()
		if s == nil || s.id != id {
			return nil, fmt.Errorf("consensus: a snapshot chunk from %s of no transfer in progress", from)
		}
		s.mu.Lock()
		next := s.next
		s.mu.Unlock()
		if seq != next {
			in.abort(from, s)
			return nil, fmt.Errorf("consensus: snapshot chunk %d from %s where %d was due", seq, from, next)
		}
		return s, nil
	}
	if seq != 0 {
		return nil, fmt.Errorf("consensus: a first snapshot chunk numbered %d from %s", seq, from)
	}
	req := new(raft.InstallSnapshotRequest)
	if err := decodeInstallRequest(head, req); err != nil {
		return nil, err
	}
	if err := in.t.checkSender(from, KindInstall, req.RPCHeader, req.Leader); err != nil {
		return nil, err
	}
	if req.Size < 0 || req.Size > in.max {
		return nil, fmt.Errorf("%w: a snapshot of %d bytes from %s (at most %d)", ErrTooLarge, req.Size, from, in.max)
	}
	// The request's byte fields alias the message: keep a copy of its own.
	req.ID, req.Addr, req.Leader = clone(req.ID), clone(req.Addr), clone(req.Leader)
	req.Peers, req.Configuration = clone(req.Peers), clone(req.Configuration)
	file, err := os.CreateTemp(in.dir, "install-*")
	if err != nil {
		return nil, fmt.Errorf("consensus: a file for the snapshot from %s: %w", from, err)
	}
	s := &session{id: id, next: 0, req: req, file: file, touched: time.Now()}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		removeFile(file)
		return nil, ErrStopped
	}
	old := in.sessions[from]
	in.sessions[from] = s
	in.mu.Unlock()
	if old != nil {
		closeSession(old)
	}
	return s, nil
}

func clone(p []byte) []byte {
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}

// forget ends the sender's transfer s, if it is still its current one.
func (in *installs) forget(from string, s *session) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sessions[from] != s {
		return false
	}
	delete(in.sessions, from)
	return true
}

// abort drops the sender's transfer s and its file.
func (in *installs) abort(from string, s *session) {
	if in.forget(from, s) {
		closeSession(s)
	}
}

// sweep drops the transfers that have waited too long for a chunk.
func (in *installs) sweep() {
	var stale []*session
	in.mu.Lock()
	for from, s := range in.sessions {
		s.mu.Lock()
		idle := time.Since(s.touched) > installIdle
		s.mu.Unlock()
		if idle {
			delete(in.sessions, from)
			stale = append(stale, s)
		}
	}
	in.mu.Unlock()
	for _, s := range stale {
		closeSession(s)
	}
}

// close drops every transfer in progress; later ones are refused.
func (in *installs) close() {
	in.mu.Lock()
	sessions := in.sessions
	in.sessions = make(map[string]*session)
	in.closed = true
	in.mu.Unlock()
	for _, s := range sessions {
		closeSession(s)
	}
}

func closeSession(s *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	removeFile(s.file)
}

// removeFile closes and removes a received snapshot's file. Errors are
// ignored: prepare empties the directory at the next start anyway.
func removeFile(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// incomingDir is where a node keeps the snapshots it receives.
func incomingDir(dataDir string) string { return filepath.Join(dataDir, "raft", "incoming") }
