package persist

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/naming"
)

// putInstances returns an entry of 100 PutInstance ops, over 10 services,
// every instance of the given weight.
func putInstances(b *testing.B, weight float64) []byte {
	ops := make([]Op, 100)
	for i := range ops {
		in := inst(fmt.Sprintf("10.0.%d.%d", i/10, i%10), 8080)
		in.Weight = weight
		in.Metadata = map[string]string{"version": "1.0", "zone": "eu-1"}
		ops[i] = PutInstance{Service: naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: fmt.Sprintf("svc-%d", i%10)}, Instance: in}
	}
	return encode(b, ops...)
}

// BenchmarkApply100PutInstance applies entries of 100 PutInstance ops
// (decode, validate, apply), each changing every instance it names.
func BenchmarkApply100PutInstance(b *testing.B) {
	f := New(Config{})
	entries := [][]byte{putInstances(b, 1), putInstances(b, 2)}
	b.SetBytes(int64(len(entries[0])))
	b.ReportAllocs()
	var index uint64
	for b.Loop() {
		index++
		r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: entries[index%2]}).(Response)
		if r.Err != nil || r.Results[99] != nil {
			b.Fatal(r)
		}
	}
}

// BenchmarkSnapshot takes a snapshot (under the lock) of 10,000 services of
// 10 instances each.
func BenchmarkSnapshot(b *testing.B) {
	f := New(Config{})
	var index uint64
	for s := range 1000 {
		ops := make([]Op, 0, 100)
		for i := range 100 {
			svc := naming.Service{Namespace: "public", Group: "G", Name: fmt.Sprintf("svc-%d-%d", s, i/10)}
			ops = append(ops, PutInstance{Service: svc, Instance: inst(fmt.Sprintf("10.0.0.%d", i%10), 80)})
		}
		index++
		f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: encode(b, ops...)})
	}
	b.ReportAllocs()
	for b.Loop() {
		snap, _ := f.Snapshot()
		snap.Release()
	}
}
