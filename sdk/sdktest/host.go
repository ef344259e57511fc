package sdktest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/streamcall"
	"github.com/sextantd/sextant/sdk/push"
)

// host fakes the server's Connections service. Unless the plugin's author
// steers deliveries elsewhere, it is the kit's Deliveries: its requests
// succeed, fail or hang as the checks need.
type host struct {
	released chan struct{} // closed when the kit ends: hanging requests return
	release  func()        // closes released

	mu   sync.Mutex
	fail func(connection string) bool // nil: every request succeeds
	hang func()                       // non-nil: every request hangs, calling it first
}

func newHost() *host {
	released := make(chan struct{})
	return &host{released: released, release: sync.OnceFunc(func() { close(released) })}
}

// Succeed makes every request succeed.
func (h *host) Succeed() { h.set(nil, nil) }

// Fail makes every request fail.
func (h *host) Fail() { h.set(func(string) bool { return true }, nil) }

// failOnly makes requests fail for these connections and succeed for others.
func (h *host) failOnly(connections map[string]bool) {
	h.set(func(id string) bool { return connections[id] }, nil)
}

// Hang makes requests wait until the plugin withdraws them.
func (h *host) Hang() <-chan struct{} {
	hung := make(chan struct{})
	h.set(nil, sync.OnceFunc(func() { close(hung) }))
	return hung
}

func (h *host) set(fail func(string) bool, hang func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail, h.hang = fail, hang
}

// Request implements push.Connections.
func (h *host) Request(ctx context.Context, _ string, _ []byte, ids []string) []error {
	h.mu.Lock()
	fail, hang := h.fail, h.hang
	h.mu.Unlock()
	errs := make([]error, len(ids))
	if hang != nil {
		hang()
		select {
		case <-ctx.Done():
		case <-h.released:
		}
		for i := range errs {
			errs[i] = errors.New("sdktest: the request was withdrawn")
		}
		return errs
	}
	for i, id := range ids {
		if fail != nil && fail(id) {
			errs[i] = fmt.Errorf("sdktest: connection %s did not answer", id)
		}
	}
	return errs
}

// connectionsServer serves the host's Connections to the plugin, as the
// server does.
type connectionsServer struct {
	pluginv1.UnimplementedConnectionsServer
	conns push.Connections
}

func (s connectionsServer) Request(stream pluginv1.Connections_RequestServer) error {
	return streamcall.Serve(stream, func(ctx context.Context, req *pluginv1.ConnectionRequest) []string {
		errs := s.conns.Request(ctx, req.GetType(), req.GetBody(), req.GetConnectionIds())
		out := make([]string, len(errs))
		for i, err := range errs {
			if err != nil {
				out[i] = err.Error()
			}
		}
		return out
	}, func(id uint64, errs []string) *pluginv1.ConnectionResult {
		return &pluginv1.ConnectionResult{Id: id, Errors: errs}
	})
}

// stream is the host's end of a plugin's push stream. It speaks the protocol
// itself, not through push.RemoteExecutor, so that the kit sees what the
// plugin really answers: how many results, and when.
type stream struct {
	sendMu sync.Mutex
	s      pluginv1.PushExecutor_PushClient

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan []string
	done    chan struct{} // closed when the stream has ended...
	err     error         // ...for this reason, set before
}

func newStream(s pluginv1.PushExecutor_PushClient) *stream {
	st := &stream{s: s, waiting: make(map[uint64]chan []string), done: make(chan struct{})}
	go st.receive()
	return st
}

// push sends b with a deadline; the plugin's results arrive on the channel.
func (s *stream) push(b push.Batch, deadline time.Time) (uint64, <-chan []string, error) {
	ch := make(chan []string, 1)
	s.mu.Lock()
	s.next++
	id := s.next
	s.waiting[id] = ch
	s.mu.Unlock()
	req := &pluginv1.PushRequest{
		Id:               id,
		DeadlineUnixNano: deadline.UnixNano(),
		Service:          &pluginv1.Service{Namespace: b.Service.Namespace, Group: b.Service.Group, Name: b.Service.Name},
		Clusters:         b.Clusters,
		ServiceInfo:      b.ServiceInfo,
	}
	for _, t := range b.Targets {
		req.Targets = append(req.Targets, &pluginv1.Target{ClientId: t.ClientID, ConnectionId: t.ConnectionID, App: t.App})
	}
	return id, ch, s.send(req)
}

// cancel withdraws batch id, as the host does when a push's context ends.
func (s *stream) cancel(id uint64) error {
	return s.send(&pluginv1.PushRequest{Id: id, Cancel: true})
}

func (s *stream) send(req *pluginv1.PushRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if err := s.s.Send(req); err != nil {
		return fmt.Errorf("sending on the push stream: %w", err)
	}
	return nil
}

func (s *stream) receive() {
	for {
		res, err := s.s.Recv()
		if err != nil {
			s.err = fmt.Errorf("the push stream ended: %w", err)
			close(s.done)
			return
		}
		s.mu.Lock()
		ch := s.waiting[res.GetId()]
		delete(s.waiting, res.GetId())
		s.mu.Unlock()
		if ch != nil {
			ch <- res.GetErrors()
		}
	}
}
