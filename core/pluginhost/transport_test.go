package pluginhost_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sextantd/sextant/core/pluginhost"
)

// recordingInbound answers what the transport hands the host and records
// who it was from.
type recordingInbound struct{ from chan string }

func (r recordingInbound) Handle(_ context.Context, from, kind string, payload []byte) ([]byte, error) {
	r.from <- from
	return append([]byte(kind+" handled: "), payload...), nil
}

func (recordingInbound) Snapshot(context.Context, string, func([]byte) error) error {
	return errors.New("no snapshot")
}

func startTransport(t *testing.T, inbound recordingInbound) (testHost, fake) {
	t.Helper()
	tr := newFake(t, "transport")
	h := start(t, pluginhost.Config{
		Push:          []pluginhost.Spec{rpcSpec(t)},
		Transport:     &pluginhost.Spec{Name: "transport", Path: tr.path},
		Inbound:       inbound,
		Self:          "10.0.0.1:8848",
		ClusterListen: "127.0.0.1:0",
	})
	return h, tr
}

func TestTransportCall(t *testing.T) {
	t.Parallel()
	h, _ := startTransport(t, recordingInbound{from: make(chan string, 1)})
	got, err := h.Transport().Call(t.Context(), "10.0.0.5:9848", "sync", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sync from 10.0.0.1:8848 to 10.0.0.5:9848: payload"; string(got) != want {
		t.Errorf("Call answered %q, want %q", got, want)
	}
}

func TestTransportHandsInboundToTheHost(t *testing.T) {
	t.Parallel()
	inbound := recordingInbound{from: make(chan string, 1)}
	h, _ := startTransport(t, inbound)
	got, err := h.Transport().Call(t.Context(), "inbound", "verify", []byte("checksums"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "verify handled: checksums"; string(got) != want {
		t.Errorf("Call answered %q, want %q", got, want)
	}
	if from := <-inbound.from; from != inboundPeer {
		t.Errorf("Inbound.Handle from %q, want %q", from, inboundPeer)
	}
}

func TestTransportCallWaitsForARestart(t *testing.T) {
	t.Parallel()
	h, tr := startTransport(t, recordingInbound{from: make(chan string, 1)})
	release := tr.hold(t)
	kill(t, tr.pid(t))
	eventually(t, "the restarted plugin to be held", tr.held)
	answers := make(chan error, 1)
	go func() {
		_, err := h.Transport().Call(t.Context(), "10.0.0.5:9848", "sync", nil)
		answers <- err
	}()
	pending(t, answers, "Call")
	release()
	if err := <-answers; err != nil {
		t.Errorf("Call across a restart: %v", err)
	}
	if n := h.counter(t, restartsMetric, "transport"); n != 1 {
		t.Errorf("%s{plugin=transport} = %v, want 1", restartsMetric, n)
	}
}
