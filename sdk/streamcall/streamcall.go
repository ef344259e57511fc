// Package streamcall carries many concurrent calls over one bidirectional gRPC
// stream, in either direction: every request has an id, its result comes back
// with that id, and the same id sent again with cancel set withdraws it.
//
// A message on an open stream costs a few microseconds where a unary call
// through go-plugin costs a few hundred, so hot paths use this.
package streamcall

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Request is what request messages have in common.
type Request interface {
	GetId() uint64
	GetCancel() bool
	GetDeadlineUnixNano() int64
}

// Result is what result messages have in common.
type Result interface {
	GetId() uint64
}

// Stream is one side of a bidirectional stream: it sends Out and receives In.
type Stream[Out, In any] interface {
	Send(Out) error
	Recv() (In, error)
}

// ErrClosed is returned for calls on a stream that has ended.
var ErrClosed = errors.New("stream closed")

// Caller makes calls over a stream.
type Caller[Req any, Res Result] struct {
	stream Stream[Req, Res]
	cancel func(id uint64) Req // builds the withdrawal of a request
	sendMu sync.Mutex

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan Res
	err     error         // why the stream ended
	done    chan struct{} // closed when it has
}

// NewCaller starts receiving results on s; cancel builds the message that
// withdraws request id. The caller ends when s does (close it by cancelling
// the context s was opened with).
func NewCaller[Req any, Res Result](s Stream[Req, Res], cancel func(id uint64) Req) *Caller[Req, Res] {
	c := &Caller[Req, Res]{stream: s, cancel: cancel, waiting: make(map[uint64]chan Res), done: make(chan struct{})}
	go c.receive()
	return c
}

// Done is closed when the stream has ended.
func (c *Caller[Req, Res]) Done() <-chan struct{} { return c.done }

// Err says why the stream ended, once Done is closed.
func (c *Caller[Req, Res]) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Call sends the request build makes from its id and ctx's deadline (unix
// nanoseconds, 0 for none) and waits for its result. It returns an error, and
// withdraws the request, if ctx ends first; it returns an error wrapping
// ErrClosed if the stream ends first.
func (c *Caller[Req, Res]) Call(ctx context.Context, build func(id uint64, deadline int64) Req) (Res, error) {
	var zero Res
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}
	ch := make(chan Res, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return zero, err
	}
	c.next++
	id := c.next
	c.waiting[id] = ch
	c.mu.Unlock()

	if err := c.send(build(id, deadline)); err != nil {
		c.forget(id)
		return zero, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	select {
	case res := <-ch:
		return res, nil
	case <-c.done:
		return zero, c.Err()
	case <-ctx.Done():
		if c.forget(id) {
			_ = c.send(c.cancel(id))
		}
		return zero, ctx.Err()
	}
}

func (c *Caller[Req, Res]) send(m Req) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(m)
}

// forget stops waiting for id; it reports whether the call was still waiting.
func (c *Caller[Req, Res]) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.waiting[id]
	delete(c.waiting, id)
	return ok
}

func (c *Caller[Req, Res]) receive() {
	for {
		res, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("%w: %v", ErrClosed, err)
			c.waiting = nil
			c.mu.Unlock()
			close(c.done)
			return
		}
		c.mu.Lock()
		ch := c.waiting[res.GetId()]
		delete(c.waiting, res.GetId())
		c.mu.Unlock()
		if ch != nil {
			ch <- res
		}
	}
}

// Serve answers the calls arriving on s until it ends, running handle for each
// request concurrently. handle's context carries the request's deadline and is
// cancelled when the request is withdrawn or the stream ends; result builds
// the answer with the request's id from what handle returned. Serve returns
// once every handler has returned.
func Serve[Req Request, Res, Out any](s Stream[Res, Req], handle func(context.Context, Req) Out, result func(id uint64, out Out) Res) error {
	ctx, cancelAll := context.WithCancel(context.Background())
	var (
		sendMu   sync.Mutex
		mu       sync.Mutex
		inflight = make(map[uint64]context.CancelFunc)
		handlers sync.WaitGroup
	)
	defer func() {
		cancelAll() // the stream is gone: nobody waits for these results
		handlers.Wait()
	}()
	for {
		req, err := s.Recv()
		if err != nil {
			return err
		}
		id := req.GetId()
		if req.GetCancel() {
			mu.Lock()
			if cancel := inflight[id]; cancel != nil {
				cancel()
			}
			mu.Unlock()
			continue
		}
		var callCtx context.Context
		var cancel context.CancelFunc
		if d := req.GetDeadlineUnixNano(); d != 0 {
			callCtx, cancel = context.WithDeadline(ctx, time.Unix(0, d))
		} else {
			callCtx, cancel = context.WithCancel(ctx)
		}
		mu.Lock()
		inflight[id] = cancel
		mu.Unlock()
		handlers.Go(func() {
			out := handle(callCtx, req)
			mu.Lock()
			delete(inflight, id)
			mu.Unlock()
			cancel()
			sendMu.Lock()
			defer sendMu.Unlock()
			_ = s.Send(result(id, out)) // a failed send means the stream is ending
		})
	}
}
