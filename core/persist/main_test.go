package persist

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/naming"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	svcA = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "a"}
	svcB = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "b"}
	svcD = naming.Service{Namespace: "dev", Group: "G", Name: "db"}
)

func inst(ip string, port int) Instance {
	return Instance{IP: ip, Port: port, Cluster: naming.DefaultCluster, Weight: 1, Healthy: true, Enabled: true}
}

// harness is an FSM with a log index of its own and the changes it reported.
type harness struct {
	*FSM
	index   uint64
	changes []Change
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{}
	cfg.OnChange = func(c Change) { h.changes = append(h.changes, c) }
	h.FSM = New(cfg)
	return h
}

// encode encodes ops, failing the test if they cannot be.
func encode(t testing.TB, ops ...Op) []byte {
	t.Helper()
	data, err := Encode(ops...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// applyData applies one log entry of data at the next index.
func (h *harness) applyData(data []byte) Response {
	h.index++
	return h.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data}).(Response)
}

// apply applies ops as one entry and returns the results.
func (h *harness) apply(t testing.TB, ops ...Op) []error {
	t.Helper()
	r := h.applyData(encode(t, ops...))
	if r.Err != nil {
		t.Fatalf("entry refused: %v", r.Err)
	}
	if len(r.Results) != len(ops) {
		t.Fatalf("%d results for %d ops", len(r.Results), len(ops))
	}
	return r.Results
}

// must applies ops as one entry, failing the test if any is refused.
func (h *harness) must(t testing.TB, ops ...Op) {
	t.Helper()
	for i, err := range h.apply(t, ops...) {
		if err != nil {
			t.Fatalf("op %d (%T): %v", i, ops[i], err)
		}
	}
}

// snapshotBytes persists a snapshot of f and returns the stream.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed %v, cancelled %v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// stateBytes is snapshotBytes without the header, which holds the log
// index: equal states give equal bytes.
func stateBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	_, rest, _ := bytes.Cut(snapshotBytes(t, f), []byte("\n"))
	return rest
}

// restore restores f from data.
func restore(f *FSM, data []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(data)))
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
	failAfter         int // if > 0, writes fail once this many bytes are written
}

func (s *memSink) ID() string { return "mem" }

func (s *memSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}

func (s *memSink) Close() error {
	s.closed = true
	return nil
}

func (s *memSink) Cancel() error {
	s.cancelled = true
	return nil
}

var _ raft.SnapshotSink = (*memSink)(nil)

// field returns the field a *naming.InvalidError names, or "".
func field(err error) string {
	var inv *naming.InvalidError
	if errors.As(err, &inv) {
		return inv.Field
	}
	return ""
}

// limitOf returns the limit a *naming.InvalidError names, or "".
func limitOf(err error) string {
	var inv *naming.InvalidError
	if errors.As(err, &inv) {
		return inv.Limit
	}
	return ""
}
