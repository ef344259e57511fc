package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTransport answers reports from a table of errors by target.
type fakeTransport struct {
	mu     sync.Mutex
	errs   map[string]error
	called chan string
}

func (f *fakeTransport) Call(_ context.Context, target, kind string, payload []byte) ([]byte, error) {
	if kind != ReportKind {
		return nil, errors.New("unexpected kind " + kind)
	}
	var r clusterv1.Report
	if err := proto.Unmarshal(payload, &r); err != nil || r.Version != "test" {
		return nil, fmt.Errorf("bad report %v: %v", &r, err)
	}
	f.mu.Lock()
	err := f.errs[target]
	f.mu.Unlock()
	f.called <- target
	return nil, err
}

func newCluster(t *testing.T, tr *fakeTransport) *Cluster {
	return New(Config{Self: "10.0.0.1:8848", Version: "test", ReportInterval: 10 * time.Millisecond, Transport: tr,
		Logger: hclog.NewNullLogger(), LocalIPs: func() []string { return []string{"10.0.0.1", "127.0.0.1"} }})
}

func states(c *Cluster) map[string]State {
	out := map[string]State{}
	for _, m := range c.Members() {
		out[m.Address] = m.State
	}
	return out
}

func TestSetMembersKeepsSelfAndDropsItsAliases(t *testing.T) {
	c := newCluster(t, &fakeTransport{})
	changes := 0
	c.OnChange(func() { changes++ })
	c.SetMembers([]string{"10.0.0.2:8848", "127.0.0.1:8848", "10.0.0.3:8848"})
	var got []string
	for _, m := range c.Members() {
		got = append(got, m.Address)
	}
	if !slices.Equal(got, []string{"10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"}) {
		t.Fatalf("members %v: self must stay, its loopback alias must not be a peer", got)
	}
	if peers := c.Peers(true); !slices.Equal(peers, []string{"10.0.0.2:8848", "10.0.0.3:8848"}) {
		t.Fatalf("peers %v", peers)
	}
	c.SetMembers([]string{"10.0.0.3:8848", "10.0.0.2:8848"}) // same set
	if changes != 1 {
		t.Fatalf("%d change notifications, want 1", changes)
	}
	if err := c.AwaitMembers(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestReportsDriveStates(t *testing.T) {
	tr := &fakeTransport{errs: map[string]error{
		"10.0.0.2:9849": nil,
		"10.0.0.3:9849": errors.New("rpc error: code = Unavailable desc = dial tcp: connect: connection refused"),
		"10.0.0.4:9849": errors.New("context deadline exceeded"),
	}, called: make(chan string, 100)}
	c := newCluster(t, tr)
	c.SetMembers([]string{"10.0.0.2:8848", "10.0.0.3:8848", "10.0.0.4:8848"})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())

	await := func(want map[string]State) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			got := states(c)
			delete(got, "10.0.0.1:8848")
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			select {
			case <-tr.called:
			case <-deadline:
				t.Fatalf("states %v, want %v", got, want)
			}
		}
	}
	// Refused: DOWN at once. Timing out: SUSPICIOUS, then DOWN after three.
	await(map[string]State{"10.0.0.2:8848": Up, "10.0.0.3:8848": Down, "10.0.0.4:8848": Down})
	// A member that answers again is UP again.
	tr.mu.Lock()
	tr.errs["10.0.0.4:9849"] = nil
	tr.mu.Unlock()
	await(map[string]State{"10.0.0.2:8848": Up, "10.0.0.3:8848": Down, "10.0.0.4:8848": Up})
	if c.IsUp("10.0.0.3:8848") || !c.IsUp("10.0.0.4:8848") {
		t.Fatal("IsUp disagrees with the table")
	}
}

func TestHearingFromAMemberMakesItUp(t *testing.T) {
	c := newCluster(t, &fakeTransport{})
	c.SetMembers([]string{"10.0.0.2:8848"})
	c.record("10.0.0.2:8848", errors.New("connection refused"))
	payload, _ := proto.Marshal(&clusterv1.Report{Version: "x"})
	if _, err := c.HandleReport("10.0.0.2:8848", payload); err != nil {
		t.Fatal(err)
	}
	if !c.IsUp("10.0.0.2:8848") {
		t.Fatal("a member that just reported is not UP")
	}
}

// TestOwnerMovesOnlyWhatItMust checks rendezvous hashing: every key has one
// owner among the UP members, a new member takes about its share and
// nothing moves between the others, and a member going DOWN gives away only
// its own keys.
func TestOwnerMovesOnlyWhatItMust(t *testing.T) {
	c := newCluster(t, &fakeTransport{})
	members := []string{"10.0.0.2:8848", "10.0.0.3:8848", "10.0.0.4:8848"}
	c.SetMembers(members)
	keys := make([]string, 4000)
	owners := func() map[string]string {
		out := map[string]string{}
		for _, k := range keys {
			out[k] = c.Owner(k)
		}
		return out
	}
	for i := range keys {
		keys[i] = fmt.Sprintf("10.9.%d.%d:80", i/256, i%256)
	}
	before := owners()

	c.SetMembers(append(members, "10.0.0.5:8848"))
	after := owners()
	moved := 0
	for k, o := range after {
		if o != before[k] {
			moved++
			if o != "10.0.0.5:8848" {
				t.Fatalf("key %s moved from %s to %s, not to the new member", k, before[k], o)
			}
		}
	}
	if share := len(keys) / 5; moved < share/2 || moved > share*2 {
		t.Fatalf("%d of %d keys moved to the fifth member, want about %d", moved, len(keys), share)
	}

	c.record("10.0.0.3:8848", errors.New("connection refused"))
	for k, o := range owners() {
		if after[k] != "10.0.0.3:8848" && o != after[k] {
			t.Fatalf("key %s moved from %s to %s when another member went DOWN", k, after[k], o)
		}
		if o == "10.0.0.3:8848" {
			t.Fatalf("key %s is owned by a DOWN member", k)
		}
	}
}

func TestAddress(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1:8848": "10.0.0.1:9849", "[::1]:18848": "[::1]:19849"} {
		if got, err := Address(in); err != nil || got != want {
			t.Errorf("Address(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := Address("nohost"); err == nil {
		t.Error("Address accepted an address without a port")
	}
}
