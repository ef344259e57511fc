package transporttest

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sextantd/sextant/sdk/internal/kit"
)

// auth starts node C with each of the blocks of Auth.Refused and checks
// that node B refuses it.
func (k *transportKit) auth(t kit.Reporter) {
	t.Helper()
	// A snapshot that works: a stranger's must fail for being refused.
	k.b.inbound.setSnapshot(func(fn func([]byte) error) error { return fn([]byte("node B's snapshot")) })
	for _, name := range slices.Sorted(maps.Keys(k.strangers)) {
		k.stranger(t, name, k.strangers[name])
	}
	k.expectAnswer(t, "a call from node A to node B after the strangers' were refused", k.a, k.b, []byte("still friends?"))
}

// stranger checks that node C, configured with config, gets no call and no
// snapshot request through to node B's server.
func (k *transportKit) stranger(t kit.Reporter, name string, config []byte) {
	t.Helper()
	c := newNode("C", k.opts)
	c.config = config
	defer func() {
		c.close(t)
		if count, first := c.panics.Take(); count > 0 {
			t.Errorf("node C's transport panicked %s; the first time: %s", kit.Plural(count, "time"), first)
		}
	}()
	what := fmt.Sprintf("node C, with %s (Auth.Refused[%q])", name, name)
	c.Handshake(t)
	c.start(t)
	c.listen(t)
	calls, snapshots := k.b.inbound.seen()

	res, err := k.roundTrip(c, k.b.address, []byte("let me in"), time.Now().Add(kit.ResultWait), kit.ResultWait+kit.Grace,
		fmt.Sprintf("within %v", kit.ResultWait+kit.Grace))
	switch {
	case err != nil:
		t.Errorf("%s: a call to node B: %v", what, err)
	case res.GetError() == "":
		t.Errorf("%s: a call to node B succeeded, with %s: node B must refuse it", what, describe(res.GetPayload()))
	}
	msg, err := k.snapshotOf(c, k.b.address, kit.ResultWait, func([]byte) error { return nil })
	switch {
	case err != nil:
		t.Errorf("%s: a snapshot of node B: %v", what, err)
	case msg == "":
		t.Errorf("%s: a snapshot of node B succeeded: node B must refuse it", what)
	}
	if got := k.b.inbound.since(calls, snapshots); got != "" {
		t.Errorf("%s: node B's server got %s: a transport must refuse a stranger before it hands anything to the server", what, got)
	}
}
