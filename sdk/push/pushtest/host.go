package pushtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/streamcall"
)

// connections fakes the server's Connections service. Unless the plugin's
// author steers deliveries elsewhere, it is the kit's Deliveries: its
// requests succeed, fail or hang as the checks need.
type connections struct {
	released chan struct{} // closed when the kit ends: hanging requests return
	release  func()        // closes released

	mu       sync.Mutex
	fail     func(connection string) bool // nil: every request succeeds
	hang     func()                       // non-nil: every request hangs, calling it first
	requests int                          // how many requests came
}

func newConnections() *connections {
	released := make(chan struct{})
	return &connections{released: released, release: sync.OnceFunc(func() { close(released) })}
}

// Succeed makes every request succeed.
func (c *connections) Succeed() { c.set(nil, nil) }

// Fail makes every request fail.
func (c *connections) Fail() { c.set(func(string) bool { return true }, nil) }

// failOnly makes requests fail for these connections and succeed for others.
func (c *connections) failOnly(ids map[string]bool) {
	c.set(func(id string) bool { return ids[id] }, nil)
}

// Hang makes requests wait until the plugin withdraws them.
func (c *connections) Hang() <-chan struct{} {
	hung := make(chan struct{})
	c.set(nil, sync.OnceFunc(func() { close(hung) }))
	return hung
}

func (c *connections) set(fail func(string) bool, hang func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail, c.hang = fail, hang
}

// received returns how many requests came so far.
func (c *connections) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// Request implements push.Connections.
func (c *connections) Request(ctx context.Context, _ string, _ []byte, ids []string) []error {
	c.mu.Lock()
	fail, hang := c.fail, c.hang
	c.requests++
	c.mu.Unlock()
	errs := make([]error, len(ids))
	if hang != nil {
		hang()
		select {
		case <-ctx.Done():
		case <-c.released:
		}
		for i := range errs {
			errs[i] = errors.New("pushtest: the request was withdrawn")
		}
		return errs
	}
	for i, id := range ids {
		if fail != nil && fail(id) {
			errs[i] = fmt.Errorf("pushtest: connection %s did not answer", id)
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
		return wire.ErrorTexts(s.conns.Request(ctx, req.GetType(), req.GetBody(), req.GetConnectionIds()))
	}, func(id uint64, errs []string) *pluginv1.ConnectionResult {
		return &pluginv1.ConnectionResult{Id: id, Errors: errs}
	})
}

// stream is the host's end of a plugin's push stream. It speaks the protocol
// itself, not through host.RemoteExecutor, so that the kit sees what the
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
		req.Targets = append(req.Targets, &pluginv1.Target{ClientId: t.ClientID, ConnectionId: t.ConnectionID, App: t.App, Address: t.Address})
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
