package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
)

// localRaft commits entries straight into an FSM, as a single-node Raft
// would, through the Response encoding a forwarded write takes.
type localRaft struct {
	fsm   *FSM
	index uint64
}

func (l *localRaft) Apply(_ context.Context, cmd []byte) ([]byte, error) {
	l.index++
	return EncodeResponse(l.fsm.Apply(&raft.Log{Index: l.index, Type: raft.LogCommand, Data: cmd}))
}

func newRegistry(t *testing.T) *naming.Registry {
	t.Helper()
	bus := notify.New(notify.Config{})
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(context.Background()) })
	return naming.NewRegistry(naming.Config{Bus: bus, Limits: naming.Limits{MaxNameLength: 512, MaxMetadataBytes: 16384, MaxBatchSize: 100}})
}

// TestStoreMirrorsIntoTheRegistry: what the store writes shows in the
// registry's views (persistent, with the service's definition), per-op
// refusals come back, and an address held by an ephemeral instance is
// refused before anything is committed.
func TestStoreMirrorsIntoTheRegistry(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	fsm := New(Config{Registry: reg})
	log := &localRaft{fsm: fsm}
	store := NewStore(fsm, log, reg)

	db := inst("10.0.0.2", 5432)
	results, err := store.Write(ctx,
		PutInstance{Service: svcA, Instance: db},
		PutService{Service: svcA, Definition: ServiceDefinition{ProtectThreshold: 0.3, Metadata: map[string]string{"team": "db"}}},
		RemoveInstance{Service: svcA, IP: "10.9.9.9", Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	if results[0] != nil || results[1] != nil || !errors.Is(results[2], naming.ErrInstanceNotFound) {
		t.Fatalf("results %v", results)
	}
	var view struct {
		Hosts []struct {
			IP        string
			Ephemeral bool
		}
	}
	if err := json.Unmarshal(reg.View(svcA, naming.ViewFilter{}), &view); err != nil {
		t.Fatal(err)
	}
	if len(view.Hosts) != 1 || view.Hosts[0].IP != "10.0.0.2" || view.Hosts[0].Ephemeral {
		t.Fatalf("the registry shows %+v", view.Hosts)
	}
	if d, err := reg.ServiceDetail(svcA); err != nil || !d.Defined || d.Meta.ProtectThreshold != 0.3 {
		t.Fatalf("the registry's definition: %+v, %v", d, err)
	}

	if err := reg.Connect("eph", nil); err != nil {
		t.Fatal(err)
	}
	eph := naming.Instance{IP: "10.0.0.3", Port: 80, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true}
	if err := reg.Register(ctx, "eph", svcA, eph); err != nil {
		t.Fatal(err)
	}
	before := log.index
	err = store.Do(ctx, PutInstance{Service: svcA, Instance: inst("10.0.0.3", 80)})
	if inv, ok := errors.AsType[*naming.InvalidError](err); !ok || !strings.Contains(inv.Reason, "ephemeral") {
		t.Errorf("a persistent instance at an ephemeral one's address: %v", err)
	}
	if log.index != before {
		t.Error("the refused write was committed")
	}
	bad := db
	bad.Weight = -1
	if err := store.Do(ctx, PutInstance{Service: svcA, Instance: bad}); err == nil || log.index != before {
		t.Errorf("a negative weight: %v, committed %v", err, log.index != before)
	}

	if all := fsm.AllInstances(); len(all) != 1 || len(all[svcA]) != 1 || all[svcA][0].IP != db.IP {
		t.Errorf("AllInstances = %+v, want only %s of %s", all, db.IP, svcA)
	}
	if err := store.Do(ctx, RemoveInstance{Service: svcA, IP: db.IP, Port: db.Port}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(reg.View(svcA, naming.ViewFilter{}), &view); err != nil {
		t.Fatal(err)
	}
	if len(view.Hosts) != 1 || view.Hosts[0].IP != "10.0.0.3" {
		t.Fatalf("after removing the persistent one, the registry shows %+v", view.Hosts)
	}
}

// TestTheMirrorFollowsEveryBatch: after batches of random puts, health
// changes and removals — several clusters at one address, the same address
// in one batch twice — the registry holds exactly the store's persistent
// instances (the mirror changes only the addresses a batch touched), and a
// registry given the whole state at once agrees.
func TestTheMirrorFollowsEveryBatch(t *testing.T) {
	reg := newRegistry(t)
	fsm := New(Config{Registry: reg})
	rng := rand.New(rand.NewPCG(1, 2))
	services := []naming.Service{svcA, svcB}
	clusters := []string{naming.DefaultCluster, "c2", "c3"}
	index := uint64(0)
	for round := range 60 {
		var logs []*raft.Log
		for range 1 + rng.IntN(8) {
			svc := services[rng.IntN(len(services))]
			in := inst(fmt.Sprintf("10.0.0.%d", rng.IntN(4)), 80+rng.IntN(2))
			in.Cluster = clusters[rng.IntN(len(clusters))]
			in.Weight = float64(1 + rng.IntN(3))
			var op Op = PutInstance{Service: svc, Instance: in}
			switch rng.IntN(4) {
			case 0:
				op = RemoveInstance{Service: svc, IP: in.IP, Port: in.Port, Cluster: in.Cluster}
			case 1:
				op = SetHealth{Service: svc, IP: in.IP, Port: in.Port, Cluster: in.Cluster, Healthy: rng.IntN(2) == 0}
			}
			index++
			logs = append(logs, &raft.Log{Index: index, Type: raft.LogCommand, Data: encode(t, op)})
		}
		fsm.ApplyBatch(logs)

		whole := newRegistry(t)
		for _, svc := range services {
			var all []naming.Instance
			for _, in := range fsm.Instances(svc) {
				all = append(all, in.Naming(svc))
			}
			if err := whole.SetPersistent(context.Background(), svc, all); err != nil {
				t.Fatal(err)
			}
			got, want := publishers(t, reg, svc), publishers(t, whole, svc)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, %s: the mirror holds %v, the store %v", round, svc, got, want)
			}
		}
	}
}

// publishers returns svc's persistent instances in reg, by client.
func publishers(t *testing.T, reg *naming.Registry, svc naming.Service) map[string][]naming.Instance {
	t.Helper()
	pubs, err := reg.Publishers(svc)
	if err != nil {
		t.Fatal(err)
	}
	return pubs
}

// gatedRaft is localRaft whose commits wait for open to close, counting
// the entries and ops that reached it.
type gatedRaft struct {
	mu           sync.Mutex
	raft         localRaft
	open         chan struct{}
	entries, ops int
}

func (g *gatedRaft) Apply(ctx context.Context, cmd []byte) ([]byte, error) {
	d, err := decode(cmd, DefaultMaxOpsPerEntry)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.entries++
	g.ops += len(d)
	g.mu.Unlock()
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.raft.Apply(ctx, cmd)
}

func (g *gatedRaft) counts() (entries, ops int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.entries, g.ops
}

// TestConcurrentWritesShareEntries: writes that wait while entries are in
// flight are committed together, each getting its own ops' results — a
// refused op refuses only itself — in fewer entries than writes; an entry
// over the size bound is split down to single writes, and every write is
// still answered.
func TestConcurrentWritesShareEntries(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mergedSize int
	}{{"merged", maxMergedBytes}, {"split to single writes", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry(t)
			fsm := New(Config{Registry: reg})
			gate := &gatedRaft{raft: localRaft{fsm: fsm}, open: make(chan struct{})}
			store := NewStore(fsm, gate, reg)
			store.mergedSize = tc.mergedSize
			const writers = 20
			type answer struct {
				i       int
				results []error
				err     error
			}
			answers := make(chan answer, writers)
			total := 0
			for i := range writers {
				ops := []Op{PutInstance{Service: svcA, Instance: inst(fmt.Sprintf("10.0.1.%d", i), 80)}}
				if i%5 == 0 { // and one refused op of its own
					ops = append(ops, RemoveInstance{Service: svcA, IP: "10.9.9.9", Port: 1})
				}
				total += len(ops)
				go func() {
					results, err := store.Write(context.Background(), ops...)
					answers <- answer{i, results, err}
				}()
			}
			if tc.mergedSize > 1 {
				// Every write reached the gate or waits before anything
				// commits: those waiting share entries.
				deadline := time.Now().Add(10 * time.Second)
				for {
					store.mu.Lock()
					waiting := 0
					for _, w := range store.waiting {
						waiting += len(w.ops)
					}
					store.mu.Unlock()
					if _, ops := gate.counts(); ops+waiting == total {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the writes neither reached the gate nor waited")
					}
					runtime.Gosched()
				}
			}
			close(gate.open)
			for range writers {
				a := <-answers
				if a.err != nil {
					t.Fatalf("write %d: %v", a.i, a.err)
				}
				want := 1
				if a.i%5 == 0 {
					want = 2
				}
				if len(a.results) != want || a.results[0] != nil || (want == 2 && !errors.Is(a.results[1], naming.ErrInstanceNotFound)) {
					t.Errorf("write %d: results %v", a.i, a.results)
				}
			}
			if got := len(fsm.Instances(svcA)); got != writers {
				t.Errorf("%d instances stored, want %d", got, writers)
			}
			switch entries, _ := gate.counts(); {
			case tc.mergedSize == 1 && entries != writers:
				t.Errorf("%d entries for %d writes each over the size bound", entries, writers)
			case tc.mergedSize > 1 && entries > 2*maxCombiners:
				t.Errorf("%d entries for %d writes: those that waited were not merged", entries, writers)
			}
		})
	}
}
