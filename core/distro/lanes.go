package distro

import (
	"context"
	"errors"
	"runtime/debug"
)

// Each member has a lane: its syncs and verifications run one at a time, in
// order, on a goroutine of the member's own while it has work. A member that
// takes every call to its timeout (a stopped node, before it is marked DOWN)
// then holds up nobody else: were the members' work spread over a few shared
// workers, its calls would delay the verifications of another member behind
// them past the client expiry, and that member would drop the clients of a
// live owner.

var errStopped = errors.New("distro: stopped")

// submit queues task on peer's lane; ctx is unused (a lane does not wait for
// room).
func (d *Distro) submit(_ context.Context, peer string, task func(context.Context)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.laneCtx == nil || d.lanesClosed {
		return errStopped
	}
	w := d.work(peer)
	w.lane = append(w.lane, task)
	d.queued.Add(1)
	if !w.running {
		w.running = true
		d.lanes.Add(1) // under d.mu, before closeLanes: never after Wait began
		go d.runLane(peer, w)
	}
	return nil
}

// runLane runs w's tasks until none is left.
func (d *Distro) runLane(peer string, w *peerWork) {
	defer d.lanes.Done()
	for {
		d.mu.Lock()
		if len(w.lane) == 0 {
			w.running = false
			d.mu.Unlock()
			return
		}
		task := w.lane[0]
		w.lane[0] = nil
		w.lane = w.lane[1:]
		d.mu.Unlock()
		d.queued.Add(-1)
		d.runTask(peer, task)
	}
}

// runTask runs one task of peer's lane; a panic is logged and the lane goes
// on.
func (d *Distro) runTask(peer string, task func(context.Context)) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("a task panicked", "member", peer, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	task(d.laneCtx)
}

// closeLanes takes no more tasks and waits for the queued ones to run until
// ctx is done; then it cancels them and waits for them to return.
func (d *Distro) closeLanes(ctx context.Context) error {
	d.mu.Lock()
	d.lanesClosed = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.lanes.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		if d.cancelLanes != nil {
			d.cancelLanes()
		}
		<-done
		return ctx.Err()
	}
}
