// Package notify is the in-process event bus: typed events, one ordered queue
// and goroutine per event type, and one shared queue for slow or rare event
// types. Queues are bounded; a full queue makes Publish wait, it never drops.
package notify

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Errors returned by the Bus.
var (
	// ErrNotStarted is returned by Publish before Start.
	ErrNotStarted = errors.New("notify: bus not started")
	// ErrStarted is returned by Start, Subscribe and UseSharedQueue after Start.
	ErrStarted = errors.New("notify: bus already started")
	// ErrStopped is returned once Stop has begun.
	ErrStopped = errors.New("notify: bus stopped")
)

const defaultQueueSize = 16384

// sharedQueueName is the QueueDepths key of the shared queue.
const sharedQueueName = "shared"

// Config configures a Bus.
type Config struct {
	QueueSize       int          // per event type; default 16384 when 0
	SharedQueueSize int          // default 16384 when 0
	Logger          hclog.Logger // default hclog.NewNullLogger()
}

type state int

const (
	created state = iota
	running
	stopped
)

// Bus delivers events to the handlers subscribed to their type. Handlers are
// subscribed while wiring the server, before Start.
type Bus struct {
	log       hclog.Logger
	queueSize int
	shared    chan func() // events of shared types, bound to their topic

	// stopping is cancelled when Stop begins: it wakes blocked publishers.
	stopping context.Context
	stop     context.CancelFunc
	// dropping is cancelled when Stop's ctx ends: queues drop what is left.
	dropping context.Context
	drop     context.CancelFunc
	wg       sync.WaitGroup // one per queue goroutine

	// mu is held shared by Publish while it enqueues, and exclusively to
	// change state or topics, so queues are closed only when no publisher
	// is sending.
	mu     sync.RWMutex
	state  state
	topics map[reflect.Type]queue
	done   chan struct{} // closed when every queue goroutine has exited; nil before Start
}

// New returns a Bus that is ready for subscriptions.
func New(cfg Config) *Bus {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = defaultQueueSize
	}
	if cfg.SharedQueueSize <= 0 {
		cfg.SharedQueueSize = defaultQueueSize
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	b := &Bus{
		log:       cfg.Logger,
		queueSize: cfg.QueueSize,
		shared:    make(chan func(), cfg.SharedQueueSize),
		topics:    make(map[reflect.Type]queue),
	}
	b.stopping, b.stop = context.WithCancel(context.Background())
	b.dropping, b.drop = context.WithCancel(context.Background())
	return b
}

// Subscribe registers handler for events of type E. Handlers of one event
// type run in subscription order, on that type's goroutine, one event at a
// time, in publish order. A panicking handler is recovered and logged with
// name. Events are matched by the type parameter E, not by dynamic type.
// Subscribe must be called before Start.
func Subscribe[E any](b *Bus, name string, handler func(E)) error {
	if handler == nil {
		return fmt.Errorf("notify: subscriber %q: nil handler", name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := topicOf[E](b)
	if err != nil {
		return err
	}
	t.handlers = append(t.handlers, subscriber[E]{name: name, handle: handler})
	return nil
}

// UseSharedQueue routes events of type E through the shared queue, meant for
// slow or rare events, instead of a queue of their own. It must be called
// before Start.
func UseSharedQueue[E any](b *Bus) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := topicOf[E](b)
	if err != nil {
		return err
	}
	t.shared = true
	return nil
}

// Publish enqueues e for the subscribers of E. It returns nil at once when E
// has no subscriber, ErrNotStarted before Start and ErrStopped once Stop has
// begun. While E's queue is full it waits for room until ctx is done, then
// returns ctx.Err().
func Publish[E any](ctx context.Context, b *Bus, e E) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.state == stopped {
		return ErrStopped
	}
	t, _ := b.topics[reflect.TypeFor[E]()].(*topic[E])
	if t == nil || len(t.handlers) == 0 {
		return nil
	}
	if b.state != running {
		return ErrNotStarted
	}
	if t.shared {
		return send(ctx, b, b.shared, func() { t.deliver(e) })
	}
	return send(ctx, b, t.events, e)
}

// send puts v on ch, waiting while ch is full.
func send[T any](ctx context.Context, b *Bus, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	default:
	}
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stopping.Done():
		return ErrStopped
	}
}

// Start launches the queue goroutines. They run until Stop; ctx is not
// retained.
func (b *Bus) Start(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.wiringErr(); err != nil {
		return err
	}
	b.state = running
	b.wg.Add(1)
	go consume(b, sharedQueueName, b.shared, func(deliver func()) { deliver() })
	for _, q := range b.topics {
		q.startQueue(b)
	}
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	b.done = done
	return nil
}

// Stop stops accepting events, delivers what is already queued until ctx is
// done, and returns once every bus goroutine has exited. When ctx ends first,
// the events still queued are dropped (and logged), the handlers already
// running are waited for, and ctx.Err() is returned.
func (b *Bus) Stop(ctx context.Context) error {
	b.stop()
	b.mu.Lock()
	if b.state == running {
		for _, q := range b.topics {
			q.closeQueue()
		}
		close(b.shared)
	}
	b.state = stopped
	done := b.done
	b.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	b.drop()
	b.log.Warn("stop deadline passed")
	<-done
	return ctx.Err()
}

// QueueDepths reports the number of queued events per queue, keyed by event
// type name (reflect.Type.String) or "shared", for metrics.
func (b *Bus) QueueDepths() map[string]int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	depths := map[string]int{sharedQueueName: len(b.shared)}
	for _, q := range b.topics {
		if name, n, ok := q.depth(); ok {
			depths[name] = n
		}
	}
	return depths
}

// wiringErr reports why the bus can no longer be wired; b.mu must be held.
func (b *Bus) wiringErr() error {
	switch b.state {
	case running:
		return ErrStarted
	case stopped:
		return ErrStopped
	}
	return nil
}

// consume delivers the values of ch in order until ch is closed, or drops
// what is left once b.dropping is cancelled.
func consume[T any](b *Bus, name string, ch <-chan T, deliver func(T)) {
	defer b.wg.Done()
	for v := range ch {
		if b.dropping.Err() != nil {
			b.log.Warn("dropping queued events", "queue", name, "dropped", 1+len(ch))
			return
		}
		deliver(v)
	}
}

// queue is what the Bus needs of a topic without knowing its event type.
type queue interface {
	startQueue(b *Bus) // starts the topic's own queue, if it has one
	closeQueue()       // closes the topic's own queue, if it has one
	depth() (name string, n int, ok bool)
}

// topic holds the subscribers of one event type and, unless the type uses the
// shared queue, its own queue.
type topic[E any] struct {
	name     string
	log      hclog.Logger
	shared   bool
	handlers []subscriber[E]
	events   chan E // created by Start when the topic has its own queue
}

type subscriber[E any] struct {
	name   string
	handle func(E)
}

// topicOf returns the topic of E, creating it; b.mu must be held exclusively.
func topicOf[E any](b *Bus) (*topic[E], error) {
	if err := b.wiringErr(); err != nil {
		return nil, err
	}
	typ := reflect.TypeFor[E]()
	if q, ok := b.topics[typ]; ok {
		return q.(*topic[E]), nil
	}
	t := &topic[E]{name: typ.String(), log: b.log}
	b.topics[typ] = t
	return t, nil
}

func (t *topic[E]) ownQueue() bool { return !t.shared && len(t.handlers) > 0 }

func (t *topic[E]) startQueue(b *Bus) {
	if !t.ownQueue() {
		return
	}
	t.events = make(chan E, b.queueSize)
	b.wg.Add(1)
	go consume(b, t.name, t.events, t.deliver)
}

func (t *topic[E]) closeQueue() {
	if t.events != nil {
		close(t.events)
	}
}

func (t *topic[E]) depth() (string, int, bool) {
	return t.name, len(t.events), t.ownQueue()
}

// deliver hands e to every subscriber in subscription order.
func (t *topic[E]) deliver(e E) {
	for _, s := range t.handlers {
		t.call(s, e)
	}
}

// call runs one handler, recovering and logging a panic.
func (t *topic[E]) call(s subscriber[E], e E) {
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("event handler panicked", "subscriber", s.name, "event", t.name,
				"panic", r, "stack", string(debug.Stack()))
		}
	}()
	s.handle(e)
}
