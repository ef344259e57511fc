package pluginhost_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/pluginhost"
)

// memberLists returns a started bus and the member lists published on it.
func memberLists(t *testing.T) (*notify.Bus, <-chan []string) {
	t.Helper()
	bus := notify.New(notify.Config{})
	lists := make(chan []string, 16)
	if err := notify.Subscribe(bus, "test", func(e cluster.MembersReported) { lists <- e.Addresses }); err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(context.Background()) })
	return bus, lists
}

func nextList(t *testing.T, lists <-chan []string) []string {
	t.Helper()
	select {
	case l := <-lists:
		return l
	case <-time.After(15 * time.Second):
		t.Fatal("no member list published")
		return nil
	}
}

func TestMembershipListsReachTheBusAcrossARestart(t *testing.T) {
	t.Parallel()
	bus, lists := memberLists(t)
	members := newFake(t, "members")
	h := start(t, pluginhost.Config{
		Push:       []pluginhost.Spec{rpcSpec(t)},
		Membership: &pluginhost.Spec{Name: "members", Path: members.path, Config: map[string]any{"members": []any{"10.0.0.3:8848"}}},
		Self:       "10.0.0.1:8848",
		Bus:        bus,
	})
	want := []string{"10.0.0.1:8848", "10.0.0.3:8848"}
	if got := nextList(t, lists); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}

	pid := members.pid(t)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := nextList(t, lists); !slices.Equal(got, want) {
		t.Fatalf("after a restart, published %v, want %v", got, want)
	}
	if n := h.counter(t, restartsMetric, "members"); n != 1 {
		t.Errorf("%s{plugin=members} = %v, want 1", restartsMetric, n)
	}
	if newPID := members.pid(t); newPID == pid {
		t.Errorf("the provider still runs as %d", pid)
	}
}
