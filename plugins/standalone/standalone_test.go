package standalone

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk/membership"
)

func TestReportsSelfAlone(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, err := membership.NewProvider(Plugin, []byte(`{}`), membership.Host{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lists := make(chan []string, 10)
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, "Node-1.Example.com:8848", func(m []string) { lists <- m }) }()
	if got := <-lists; !slices.Equal(got, []string{"node-1.example.com:8848"}) {
		t.Errorf("members %q, want the node alone, canonical", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
	if len(lists) != 0 {
		t.Errorf("more lists: %q", <-lists)
	}
}

func TestRefusesABadSelf(t *testing.T) {
	err := Provider{}.Watch(context.Background(), "no such thing", func([]string) { t.Error("an update") })
	if err == nil {
		t.Error("Watch accepted a malformed address for this node")
	}
}
