package consensus

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// fill sets every field of v, recursively, to a value that is not zero; a
// field of a kind it does not know fails the test (a raft upgrade added
// something this package's codec must learn to carry).
func fill(t *testing.T, v reflect.Value, r *rand.Rand, path string) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(0, r.Int64N(1<<62)+1)))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i), r, path+"."+v.Type().Field(i).Name)
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(r.Uint64()>>(64-v.Type().Bits()) | 1)
	case reflect.Int, reflect.Int64:
		v.SetInt(r.Int64N(1<<40) - 1<<39 | 1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		n := 1 + r.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(t, s.Index(i), r, path+"[]")
		}
		v.Set(s)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), r, path)
	default:
		t.Fatalf("%s: a field of kind %s the codec does not carry", path, v.Kind())
	}
}

func roundTrip[T any](t *testing.T, encode func(*T) []byte, decode func([]byte, *T) error) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		var in, out T
		fill(t, reflect.ValueOf(&in).Elem(), r, reflect.TypeFor[T]().Name())
		if err := decode(encode(&in), &out); err != nil {
			t.Fatalf("%T: %v", in, err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("%T changed on the way:\n%+v\n%+v", in, in, out)
		}
		var zero, back T
		if err := decode(encode(&zero), &back); err != nil || !reflect.DeepEqual(zero, back) {
			t.Fatalf("a zero %T: %+v, %v", zero, back, err)
		}
	}
}

// TestCodecCoversEveryField fills every field of raft's RPC structs and
// checks that each comes back: a field raft adds is caught here.
func TestCodecCoversEveryField(t *testing.T) {
	roundTrip(t, encodeAppendRequest, decodeAppendRequest)
	roundTrip(t, encodeAppendResponse, decodeAppendResponse)
	roundTrip(t, encodeVoteRequest, decodeVoteRequest)
	roundTrip(t, encodeVoteResponse, decodeVoteResponse)
	roundTrip(t, encodePreVoteRequest, decodePreVoteRequest)
	roundTrip(t, encodePreVoteResponse, decodePreVoteResponse)
	roundTrip(t, encodeInstallRequest, decodeInstallRequest)
	roundTrip(t, encodeInstallResponse, decodeInstallResponse)
	roundTrip(t, encodeTimeoutRequest, decodeTimeoutRequest)
	roundTrip(t, encodeTimeoutResponse, decodeTimeoutResponse)
	st := status{hasState: true, lastIndex: 9, term: 3, leader: addr(1)}
	if back, err := decodeStatus(encodeStatus(st)); err != nil || back != st {
		t.Fatalf("status %+v, %v", back, err)
	}
}

// FuzzDecode feeds every decoder arbitrary bytes: none may panic, or
// allocate beyond what the message can hold.
func FuzzDecode(f *testing.F) {
	f.Add(encodeAppendRequest(sampleAppend(3, 16)))
	f.Add(encodeInstallRequest(&raft.InstallSnapshotRequest{Size: 5, Leader: []byte("x")}))
	f.Add(encodeForward([]*op{{cmd: []byte("set a b")}, {read: true}}))
	f.Add(encodeOutcomes([]outcome{{result: []byte("r")}, {err: errNotLeader}}))
	f.Add(encodeChunk(1, 0, chunkFirst, []byte{1, 2}, []byte("data")))
	f.Add([]byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(_ *testing.T, b []byte) {
		_ = decodeAppendRequest(b, new(raft.AppendEntriesRequest))
		_ = decodeAppendResponse(b, new(raft.AppendEntriesResponse))
		_ = decodeVoteRequest(b, new(raft.RequestVoteRequest))
		_ = decodeVoteResponse(b, new(raft.RequestVoteResponse))
		_ = decodePreVoteRequest(b, new(raft.RequestPreVoteRequest))
		_ = decodePreVoteResponse(b, new(raft.RequestPreVoteResponse))
		_ = decodeInstallRequest(b, new(raft.InstallSnapshotRequest))
		_ = decodeInstallResponse(b, new(raft.InstallSnapshotResponse))
		_ = decodeTimeoutRequest(b, new(raft.TimeoutNowRequest))
		_ = decodeTimeoutResponse(b, new(raft.TimeoutNowResponse))
		_, _ = decodeForward(b)
		_, _ = decodeOutcomes(b, 3)
		_, _ = decodeStatus(b)
	})
}

// sampleAppend is an AppendEntries as a busy leader sends it: n entries
// of size bytes.
func sampleAppend(n, size int) *raft.AppendEntriesRequest {
	req := &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: 3, ID: []byte("10.0.0.1:8848"), Addr: []byte("10.0.0.1:8848")},
		Term:              7,
		PrevLogEntry:      100000,
		PrevLogTerm:       7,
		LeaderCommitIndex: 99990,
	}
	now := time.Now()
	for i := range n {
		req.Entries = append(req.Entries, &raft.Log{Index: uint64(100001 + i), Term: 7, Type: raft.LogCommand,
			Data: bytes.Repeat([]byte{'x'}, size), AppendedAt: now})
	}
	return req
}

// BenchmarkCodec compares this package's codec of AppendEntries, the hot
// path, with go-msgpack (raft's NetworkTransport's), gob and JSON: a
// heartbeat, and 64 entries of 256 bytes (a busy leader's batch).
func BenchmarkCodec(b *testing.B) {
	for _, c := range []struct {
		name string
		req  *raft.AppendEntriesRequest
	}{{"heartbeat", &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte("10.0.0.1:8848"), Addr: []byte("10.0.0.1:8848")}, Term: 7}},
		{"64x256B", sampleAppend(64, 256)}} {
		codecs := []struct {
			name   string
			encode func(*raft.AppendEntriesRequest) []byte
			decode func([]byte, *raft.AppendEntriesRequest) error
		}{
			{"binary", encodeAppendRequest, decodeAppendRequest},
			{"msgpack", func(r *raft.AppendEntriesRequest) []byte {
				var out []byte
				if err := codec.NewEncoderBytes(&out, &codec.MsgpackHandle{}).Encode(r); err != nil {
					panic(err)
				}
				return out
			}, func(p []byte, r *raft.AppendEntriesRequest) error {
				return codec.NewDecoderBytes(p, &codec.MsgpackHandle{}).Decode(r)
			}},
			{"gob", func(r *raft.AppendEntriesRequest) []byte {
				var out bytes.Buffer
				if err := gob.NewEncoder(&out).Encode(r); err != nil {
					panic(err)
				}
				return out.Bytes()
			}, func(p []byte, r *raft.AppendEntriesRequest) error {
				return gob.NewDecoder(bytes.NewReader(p)).Decode(r)
			}},
			{"json", func(r *raft.AppendEntriesRequest) []byte {
				out, err := json.Marshal(r)
				if err != nil {
					panic(err)
				}
				return out
			}, func(p []byte, r *raft.AppendEntriesRequest) error { return json.Unmarshal(p, r) }},
		}
		for _, k := range codecs {
			b.Run(c.name+"/"+k.name, func(b *testing.B) {
				b.ReportAllocs()
				var size int
				for b.Loop() {
					msg := k.encode(c.req)
					size = len(msg)
					if err := k.decode(msg, new(raft.AppendEntriesRequest)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size), "bytes/msg")
			})
		}
	}
}
