package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/notify"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
	"github.com/sextantd/sextant/sdk/transport"
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

// refused is a transport's error for a peer whose connection was refused.
func refused(target string) error {
	return fmt.Errorf("%w: dial tcp %s: connect: connection refused", transport.ErrUnreachable, target)
}

// newCluster returns a cluster wired to a router and a bus of its own (not
// started).
func newCluster(t *testing.T, tr *fakeTransport) *Cluster {
	t.Helper()
	c, _, _ := wire(t, tr)
	return c
}

func wire(t *testing.T, tr *fakeTransport) (*Cluster, *Router, *notify.Bus) {
	t.Helper()
	router, bus := NewRouter(), notify.New(notify.Config{})
	c, err := New(Config{Self: "10.0.0.1:8848", Version: "test", ReportInterval: 10 * time.Millisecond, Transport: tr,
		Router: router, Bus: bus,
		Logger: hclog.NewNullLogger(), LocalIPs: func() []string { return []string{"10.0.0.1", "127.0.0.1"} }})
	if err != nil {
		t.Fatal(err)
	}
	return c, router, bus
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
	if err := c.AwaitMembers(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The members know this node by two addresses: it cannot go on.
	select {
	case <-c.Failed():
	default:
		t.Fatal("a list holding this node twice did not fail the cluster")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), `holds this node as 127.0.0.1:8848 as well as 10.0.0.1:8848`) ||
		!strings.Contains(err.Error(), `set cluster.self = "127.0.0.1:8848"`) {
		t.Errorf("the error %v does not name both addresses and the setting", err)
	}
}

// TestSelfIsFoundByListeningAddresses: this node under another address is
// its port on one of its listening addresses, which may be fewer than the
// machine's; another port, or an address it does not listen on, is another
// member. A list with this node once fails nothing.
func TestSelfIsFoundByListeningAddresses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		listening []string
		list      []string
		aliases   []string // what the error names; none: no failure
	}{
		{"self once", []string{"10.0.0.1", "127.0.0.1"}, []string{"10.0.0.1:8848", "10.0.0.2:8848"}, nil},
		{"other ports of this host", []string{"10.0.0.1", "127.0.0.1"}, []string{"10.0.0.1:8848", "127.0.0.1:8849", "10.0.0.1:8850"}, nil},
		{"bound to one address", []string{"10.0.0.1"}, []string{"10.0.0.1:8848", "127.0.0.1:8848"}, nil},
		{"listed twice", []string{"10.0.0.1", "127.0.0.1", "192.168.1.5"}, []string{"10.0.0.1:8848", "192.168.1.5:8848", "127.0.0.1:8848", "10.0.0.2:8848"},
			[]string{"127.0.0.1:8848 and 192.168.1.5:8848"}},
		{"known only by another address", []string{"10.0.0.1", "127.0.0.1"}, []string{"127.0.0.1:8848", "127.0.0.1:8849"},
			[]string{"127.0.0.1:8848 as well as 10.0.0.1:8848", `set cluster.self = "127.0.0.1:8848"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Self: "10.0.0.1:8848", ReportInterval: time.Second, Transport: &fakeTransport{},
				Router: NewRouter(), Bus: notify.New(notify.Config{}), Logger: hclog.NewNullLogger(),
				LocalIPs: func() []string { return tc.listening }})
			if err != nil {
				t.Fatal(err)
			}
			c.SetMembers(tc.list)
			selves := 0
			for _, m := range c.Members() {
				if c.isSelf(m.Address) || m.Address == c.Self() {
					selves++
				}
			}
			if selves != 1 {
				t.Errorf("the table %v holds this node %d times", c.Members(), selves)
			}
			err = c.Err()
			if len(tc.aliases) == 0 {
				if err != nil {
					t.Errorf("failed: %v", err)
				}
				return
			}
			for _, want := range tc.aliases {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want one saying %q", err, want)
				}
			}
		})
	}
}

// TestStateChangesSayWhy: each change of a member's state is logged with
// its states before and after, and the reason.
func TestStateChangesSayWhy(t *testing.T) {
	var logs strings.Builder
	c, err := New(Config{Self: "10.0.0.1:8848", ReportInterval: time.Second, Transport: &fakeTransport{},
		Router: NewRouter(), Bus: notify.New(notify.Config{}),
		Logger: hclog.New(&hclog.LoggerOptions{Output: &logs}), LocalIPs: func() []string { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	c.SetMembers([]string{"10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"})
	slow := errors.New("context deadline exceeded")
	c.record("10.0.0.2:8848", slow, "")
	c.record("10.0.0.2:8848", slow, "")
	c.record("10.0.0.2:8848", slow, "")
	c.record("10.0.0.3:8848", refused("10.0.0.3:9849"), "")
	c.record("10.0.0.3:8848", nil, "it sent this node a health report")
	for _, want := range []string{
		`member state changed: member=10.0.0.2:8848 from=UP to=SUSPICIOUS reason="1 health reports in a row failed (3 make it DOWN), the last: context deadline exceeded"`,
		`member state changed: member=10.0.0.2:8848 from=SUSPICIOUS to=DOWN reason="3 health reports in a row failed`,
		`member state changed: member=10.0.0.3:8848 from=UP to=DOWN reason="it cannot be reached: `,
		`member state changed: member=10.0.0.3:8848 from=DOWN to=UP reason="it sent this node a health report"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "member state changed"); n != 4 {
		t.Errorf("%d state changes logged, want 4:\n%s", n, logs.String())
	}
}

func TestReportsDriveStates(t *testing.T) {
	tr := &fakeTransport{errs: map[string]error{
		"10.0.0.2:9849": nil,
		"10.0.0.3:9849": refused("10.0.0.3:9849"),
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
	// Unreachable: DOWN at once. Timing out: SUSPICIOUS, then DOWN after three.
	await(map[string]State{"10.0.0.2:8848": Up, "10.0.0.3:8848": Down, "10.0.0.4:8848": Down})
	// A member that answers again is UP again.
	tr.mu.Lock()
	tr.errs["10.0.0.4:9849"] = nil
	tr.mu.Unlock()
	await(map[string]State{"10.0.0.2:8848": Up, "10.0.0.3:8848": Down, "10.0.0.4:8848": Up})
	if c.IsUp("10.0.0.3:8848") || !c.IsUp("10.0.0.4:8848") {
		t.Fatal("IsUp disagrees with the table")
	}
	// The last failure is kept while it lasts, and forgotten once it ends.
	for _, m := range c.Members() {
		switch m.Address {
		case "10.0.0.3:8848":
			if !strings.Contains(m.LastError, "10.0.0.3:9849") {
				t.Errorf("the unreachable member's last error is %q", m.LastError)
			}
		case "10.0.0.2:8848", "10.0.0.4:8848":
			if m.LastError != "" {
				t.Errorf("%s answers, yet its last error is %q", m.Address, m.LastError)
			}
		}
	}
}

func TestHearingFromAMemberMakesItUp(t *testing.T) {
	c := newCluster(t, &fakeTransport{})
	c.SetMembers([]string{"10.0.0.2:8848"})
	c.record("10.0.0.2:8848", refused("10.0.0.2:9849"), "")
	if c.IsUp("10.0.0.2:8848") {
		t.Fatal("an unreachable member is UP")
	}
	payload, _ := proto.Marshal(&clusterv1.Report{Version: "x"})
	// Before Start this node answers no report: its sender must not see it
	// UP while it starts, and it takes nothing from the report either.
	if _, err := c.handleReport("10.0.0.2:8848", payload); !errors.Is(err, errStarting) {
		t.Fatalf("a report before Start: %v, want %v", err, errStarting)
	}
	if c.IsUp("10.0.0.2:8848") {
		t.Fatal("a report answered with an error made its sender UP")
	}
	start(t, c)
	if _, err := c.handleReport("10.0.0.2:8848", payload); err != nil {
		t.Fatal(err)
	}
	if !c.IsUp("10.0.0.2:8848") {
		t.Fatal("a member that just reported is not UP")
	}
}

// start starts c until the test ends.
func start(t *testing.T, c *Cluster) {
	t.Helper()
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
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

	c.record("10.0.0.3:8848", refused("10.0.0.3:9849"), "")
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

// TestOnlyTheTransportsErrorMakesAMemberDownAtOnce: an error that merely
// says "connection refused" (a peer's handler may, or a proxy in between)
// is an ordinary failure; only transport.ErrUnreachable means the peer
// could not be reached at all.
func TestOnlyTheTransportsErrorMakesAMemberDownAtOnce(t *testing.T) {
	c := newCluster(t, &fakeTransport{})
	c.SetMembers([]string{"10.0.0.2:8848", "10.0.0.3:8848"})
	c.record("10.0.0.2:8848", errors.New("rpc error: code = Unavailable desc = dial tcp: connect: connection refused"), "")
	c.record("10.0.0.3:8848", fmt.Errorf("calling: %w", refused("10.0.0.3:9849")), "")
	got := states(c)
	if got["10.0.0.2:8848"] != Suspicious {
		t.Errorf("after an error reading \"connection refused\", the member is %s, want %s", got["10.0.0.2:8848"], Suspicious)
	}
	if got["10.0.0.3:8848"] != Down {
		t.Errorf("after an error wrapping transport.ErrUnreachable, the member is %s, want %s", got["10.0.0.3:8848"], Down)
	}
}

// TestReportsReachTheClusterThroughItsRouter: New registers the health
// reports on the router it is given.
func TestReportsReachTheClusterThroughItsRouter(t *testing.T) {
	c, router, _ := wire(t, &fakeTransport{})
	c.SetMembers([]string{"10.0.0.2:8848"})
	c.record("10.0.0.2:8848", refused("10.0.0.2:9849"), "")
	start(t, c)
	payload, _ := proto.Marshal(&clusterv1.Report{Version: "x"})
	raw, err := router.Handle(context.Background(), "10.0.0.2:8848", ReportKind, payload)
	if err != nil {
		t.Fatal(err)
	}
	var answer clusterv1.ReportAnswer
	if err := proto.Unmarshal(raw, &answer); err != nil || answer.Version != "test" {
		t.Fatalf("answer %v, %v", &answer, err)
	}
	if !c.IsUp("10.0.0.2:8848") {
		t.Fatal("a member whose report came through the router is not UP")
	}
	if err := router.Register(ReportKind, func(context.Context, string, []byte) ([]byte, error) { return nil, nil }); err == nil {
		t.Fatal("the report kind could be registered a second time")
	}
}

// TestMemberListsReachTheClusterThroughTheBus: a MembersReported event
// published on the bus (as the membership plugin's host does) replaces the
// member list.
func TestMemberListsReachTheClusterThroughTheBus(t *testing.T) {
	c, _, bus := wire(t, &fakeTransport{})
	ctx := context.Background()
	if err := bus.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer bus.Stop(ctx)
	if err := notify.Publish(ctx, bus, MembersReported{Addresses: []string{"10.0.0.2:8848", "10.0.0.3:8848"}}); err != nil {
		t.Fatal(err)
	}
	awaitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.AwaitMembers(awaitCtx); err != nil {
		t.Fatal("the member list never arrived:", err)
	}
	if peers := c.Peers(false); !slices.Equal(peers, []string{"10.0.0.2:8848", "10.0.0.3:8848"}) {
		t.Fatalf("peers %v", peers)
	}
	if _, own := bus.QueueDepths()["cluster.MembersReported"]; own {
		t.Fatal("member lists have a queue of their own, not the shared one")
	}
}

// TestOnlyMembersAreHeard: the router takes messages and snapshot requests
// from the other members of the table only; another address, this node's
// own included, is refused with an error naming it, and counted.
func TestOnlyMembersAreHeard(t *testing.T) {
	ctx := context.Background()
	c, router, _ := wire(t, &fakeTransport{})
	handled := 0
	if err := errors.Join(
		router.Register("sync", func(context.Context, string, []byte) ([]byte, error) { handled++; return nil, nil }),
		router.RegisterSnapshot(func(context.Context, string, func([]byte) error) error { handled++; return nil }),
	); err != nil {
		t.Fatal(err)
	}
	c.SetMembers([]string{"10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"})
	for _, from := range []string{"6.6.6.6:6666", "10.0.0.1:8848", "10.0.0.2", "10.0.0.4:8848"} {
		_, err := router.Handle(ctx, from, "sync", nil)
		if !errors.Is(err, ErrNotMember) || !strings.Contains(err.Error(), from) {
			t.Errorf("a sync from %s: %v, want a refusal naming it", from, err)
		}
		if err := router.Snapshot(ctx, from, func([]byte) error { return nil }); !errors.Is(err, ErrNotMember) || !strings.Contains(err.Error(), from) {
			t.Errorf("a snapshot request from %s: %v, want a refusal naming it", from, err)
		}
	}
	if _, err := router.Handle(ctx, "evil:6666", ReportKind, mustMarshal(t, &clusterv1.Report{})); !errors.Is(err, ErrNotMember) {
		t.Errorf("a report from a stranger: %v", err)
	}
	if handled != 0 {
		t.Fatalf("handlers saw %d messages of strangers", handled)
	}
	if got := metrictest.CounterValue(t, router.refused.WithLabelValues("sync")); got != 4 {
		t.Errorf("%v refused syncs counted, want 4", got)
	}
	if _, err := router.Handle(ctx, "10.0.0.2:8848", "sync", nil); err != nil {
		t.Fatal(err)
	}
	if err := router.Snapshot(ctx, "10.0.0.3:8848", func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// A member that leaves the table is a stranger.
	c.SetMembers([]string{"10.0.0.1:8848", "10.0.0.3:8848"})
	if _, err := router.Handle(ctx, "10.0.0.2:8848", "sync", nil); !errors.Is(err, ErrNotMember) {
		t.Fatalf("a former member: %v", err)
	}
	if handled != 2 {
		t.Fatalf("handled %d messages of members, want 2", handled)
	}
}

// TestAMessageBeforeTheFirstMemberListWaitsForIt: the member list arrives
// shortly after start; a member heard from before is not refused for it,
// and a stranger is refused once the list is known.
func TestAMessageBeforeTheFirstMemberListWaitsForIt(t *testing.T) {
	ctx := context.Background()
	c, router, _ := wire(t, &fakeTransport{})
	if err := router.Register("sync", func(context.Context, string, []byte) ([]byte, error) { return []byte("ok"), nil }); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 2)
	for _, from := range []string{"10.0.0.2:8848", "6.6.6.6:6666"} {
		go func() {
			_, err := router.Handle(ctx, from, "sync", nil)
			results <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	c.SetMembers([]string{"10.0.0.1:8848", "10.0.0.2:8848"})
	var errs []error
	for range 2 {
		errs = append(errs, <-results)
	}
	if n := slices.IndexFunc(errs, func(err error) bool { return err != nil }); n < 0 || errors.Join(errs...) == nil ||
		!errors.Is(errs[n], ErrNotMember) || !strings.Contains(errs[n].Error(), "6.6.6.6:6666") || errs[1-n] != nil {
		t.Fatalf("the member and the stranger got %v", errs)
	}

	// Without a list, within the caller's deadline: refused, saying why.
	_, router2, _ := wire(t, &fakeTransport{})
	if err := router2.Register("sync", func(context.Context, string, []byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := router2.Handle(short, "10.0.0.2:8848", "sync", nil); !errors.Is(err, ErrNotMember) || !strings.Contains(err.Error(), "no member list yet") {
		t.Fatalf("before any list: %v", err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
