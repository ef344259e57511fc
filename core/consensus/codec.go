//lint:file-ignore SA1019 raft still sends and reads the deprecated Leader and Candidate fields (older peers, installSnapshot without an ID): the codec carries every field.

package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// This file encodes raft's RPC structs for the cluster transport: a version
// byte, then each field in declaration order — unsigned integers as
// uvarints, signed ones as zig-zag varints, byte slices with their length
// first, booleans as one byte, a time as a flag byte and its Unix
// nanoseconds. AppendEntries is the hot path: measured against
// go-msgpack (raft's own NetworkTransport codec), encoding/gob and JSON by
// BenchmarkCodec, this is several times faster and smaller. The struct
// fields are listed here by hand, so TestCodecCoversEveryField fills every
// field of every struct by reflection and fails when a raft upgrade adds
// one this file does not carry.

// codecVersion starts every encoded RPC; a message of another version is
// refused.
const codecVersion = 1

// errMalformed is wrapped by the error of a message that does not decode.
var errMalformed = errors.New("consensus: malformed message")

// enc appends fields to a buffer.
type enc struct{ b []byte }

func newEnc(size int) *enc {
	e := &enc{b: make([]byte, 0, size)}
	e.b = append(e.b, codecVersion)
	return e
}

func (e *enc) u(v uint64)     { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)      { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(p []byte) { e.u(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.i(t.UnixNano())
}

func (e *enc) header(h raft.RPCHeader) {
	e.i(int64(h.ProtocolVersion))
	e.bytes(h.ID)
	e.bytes(h.Addr)
}

// dec reads fields from a message; the first error sticks, and later reads
// return zero values.
type dec struct {
	b   []byte
	err error
}

// newDec starts reading msg, checking its version. The byte slices it
// returns alias msg.
func newDec(msg []byte) *dec {
	d := &dec{b: msg}
	if len(msg) == 0 || msg[0] != codecVersion {
		d.fail("unknown version")
		return d
	}
	d.b = msg[1:]
	return d
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
	d.b = nil
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed slice of the message (nil when empty).
func (d *dec) bytes() []byte {
	n := d.u()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length past the end")
		return nil
	}
	if n == 0 {
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("short")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bad bool")
		return false
	}
}

func (d *dec) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.i())
	default:
		d.fail("bad time")
		return time.Time{}
	}
}

func (d *dec) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(d.i()), ID: d.bytes(), Addr: d.bytes()}
}

// done checks that the whole message was read.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// minEntrySize is the fewest bytes an encoded log entry takes: it bounds
// the entries a message can claim before any is allocated.
const minEntrySize = 6

func encodeAppendRequest(r *raft.AppendEntriesRequest) []byte {
	size := 64 + len(r.ID) + len(r.Addr) + len(r.Leader)
	for _, l := range r.Entries {
		size += 40 + len(l.Data) + len(l.Extensions)
	}
	e := newEnc(size)
	e.header(r.RPCHeader)
	e.u(r.Term)
	e.bytes(r.Leader)
	e.u(r.PrevLogEntry)
	e.u(r.PrevLogTerm)
	e.u(uint64(len(r.Entries)))
	for _, l := range r.Entries {
		e.u(l.Index)
		e.u(l.Term)
		e.b = append(e.b, byte(l.Type))
		e.bytes(l.Data)
		e.bytes(l.Extensions)
		e.time(l.AppendedAt)
	}
	e.u(r.LeaderCommitIndex)
	return e.b
}

// decodeAppendRequest decodes msg into r; the entries' data alias msg,
// which the caller must not change afterwards.
func decodeAppendRequest(msg []byte, r *raft.AppendEntriesRequest) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.Term = d.u()
	r.Leader = d.bytes()
	r.PrevLogEntry = d.u()
	r.PrevLogTerm = d.u()
	n := d.u()
	if n > uint64(len(d.b)/minEntrySize) {
		d.fail("too many entries")
	}
	if d.err == nil && n > 0 {
		logs := make([]raft.Log, n)
		r.Entries = make([]*raft.Log, n)
		for i := range logs {
			l := &logs[i]
			l.Index = d.u()
			l.Term = d.u()
			l.Type = raft.LogType(d.byte())
			l.Data = d.bytes()
			l.Extensions = d.bytes()
			l.AppendedAt = d.time()
			r.Entries[i] = l
		}
	}
	r.LeaderCommitIndex = d.u()
	return d.done()
}

func encodeAppendResponse(r *raft.AppendEntriesResponse) []byte {
	e := newEnc(32 + len(r.ID) + len(r.Addr))
	e.header(r.RPCHeader)
	e.u(r.Term)
	e.u(r.LastLog)
	e.bool(r.Success)
	e.bool(r.NoRetryBackoff)
	return e.b
}

func decodeAppendResponse(msg []byte, r *raft.AppendEntriesResponse) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.Term = d.u()
	r.LastLog = d.u()
	r.Success = d.bool()
	r.NoRetryBackoff = d.bool()
	return d.done()
}

func encodeVoteRequest(r *raft.RequestVoteRequest) []byte {
	e := newEnc(48 + len(r.ID) + len(r.Addr) + len(r.Candidate))
	e.header(r.RPCHeader)
	e.u(r.Term)
	e.bytes(r.Candidate)
	e.u(r.LastLogIndex)
	e.u(r.LastLogTerm)
	e.bool(r.LeadershipTransfer)
	return e.b
}

func decodeVoteRequest(msg []byte, r *raft.RequestVoteRequest) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.Term = d.u()
	r.Candidate = d.bytes()
	r.LastLogIndex = d.u()
	r.LastLogTerm = d.u()
	r.LeadershipTransfer = d.bool()
	return d.done()
}

func encodeVoteResponse(r *raft.RequestVoteResponse) []byte {
	e := newEnc(32 + len(r.ID) + len(r.Addr) + len(r.Peers))
	e.header(r.RPCHeader)
	e.u(r.Term)
	e.bytes(r.Peers)
	e.bool(r.Granted)
	return e.b
}

func decodeVoteResponse(msg []byte, r *raft.RequestVoteResponse) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.Term = d.u()
	r.Peers = d.bytes()
	r.Granted = d.bool()
	return d.done()
}

func encodePreVoteRequest(r *raft.RequestPreVoteRequest) []byte {
	e := newEnc(40 + len(r.ID) + len(r.Addr))
	e.header(r.RPCHeader)
	e.u(r.Term)
	e.u(r.LastLogIndex)
	e.u(r.LastLogTerm)
	return e.b
}

func decodePreVoteRequest(msg []byte, r *raft.RequestPreVoteRequest) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.Term = d.u()
	r.LastLogIndex = d.u()
	r.LastLogTerm = d.u()
	return d.done()
}

func encodePreVoteResponse(r *raft.RequestPreVoteResponse) []byte {
	e := newEnc(24 + len(r.ID) + len(r.Addr))
	e.header(r.RPCHeader)
	e.u(r.Term)
	e.bool(r.Granted)
	return e.b
}

func decodePreVoteResponse(msg []byte, r *raft.RequestPreVoteResponse) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.Term = d.u()
	r.Granted = d.bool()
	return d.done()
}

func encodeInstallRequest(r *raft.InstallSnapshotRequest) []byte {
	e := newEnc(80 + len(r.ID) + len(r.Addr) + len(r.Leader) + len(r.Peers) + len(r.Configuration))
	e.header(r.RPCHeader)
	e.i(int64(r.SnapshotVersion))
	e.u(r.Term)
	e.bytes(r.Leader)
	e.u(r.LastLogIndex)
	e.u(r.LastLogTerm)
	e.bytes(r.Peers)
	e.bytes(r.Configuration)
	e.u(r.ConfigurationIndex)
	e.i(r.Size)
	return e.b
}

func decodeInstallRequest(msg []byte, r *raft.InstallSnapshotRequest) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.SnapshotVersion = raft.SnapshotVersion(d.i())
	r.Term = d.u()
	r.Leader = d.bytes()
	r.LastLogIndex = d.u()
	r.LastLogTerm = d.u()
	r.Peers = d.bytes()
	r.Configuration = d.bytes()
	r.ConfigurationIndex = d.u()
	r.Size = d.i()
	return d.done()
}

func encodeInstallResponse(r *raft.InstallSnapshotResponse) []byte {
	e := newEnc(24 + len(r.ID) + len(r.Addr))
	e.header(r.RPCHeader)
	e.u(r.Term)
	e.bool(r.Success)
	return e.b
}

func decodeInstallResponse(msg []byte, r *raft.InstallSnapshotResponse) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	r.Term = d.u()
	r.Success = d.bool()
	return d.done()
}

func encodeTimeoutRequest(r *raft.TimeoutNowRequest) []byte {
	e := newEnc(16 + len(r.ID) + len(r.Addr))
	e.header(r.RPCHeader)
	return e.b
}

func decodeTimeoutRequest(msg []byte, r *raft.TimeoutNowRequest) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	return d.done()
}

func encodeTimeoutResponse(r *raft.TimeoutNowResponse) []byte {
	e := newEnc(16 + len(r.ID) + len(r.Addr))
	e.header(r.RPCHeader)
	return e.b
}

func decodeTimeoutResponse(msg []byte, r *raft.TimeoutNowResponse) error {
	d := newDec(msg)
	r.RPCHeader = d.header()
	return d.done()
}
