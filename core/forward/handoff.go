package forward

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/sdk/transport"
)

// takeOver makes the HTTP client id, which this node is responsible for, a
// client of this node if another node holds it (see the package comment);
// its lock is held. A client this node holds nothing of is left to be
// created by the write, once the members were asked whether one of them
// holds it (while the membership settles).
func (f *Forwarder) takeOver(ctx context.Context, id string) error {
	owner, held := f.reg.ClientOwner(id)
	switch {
	case held && owner == "":
		return nil
	case held:
		return f.pull(ctx, id, owner)
	case f.unsettled():
		return f.gather(ctx, id)
	}
	return nil
}

// releaseTimeout bounds one release call within a write.
func (f *Forwarder) releaseTimeout() time.Duration { return f.cfg.CallTimeout / 3 }

// pull takes the client id over from owner, which holds it as its own: with
// what owner releases, or, owner being DOWN, gone or unreachable, from the
// replica this node holds.
func (f *Forwarder) pull(ctx context.Context, id, owner string) error {
	if state, member := f.state(owner); !member || state == cluster.Down {
		_, err := f.adoptReplica(ctx, id, owner)
		return err
	}
	var ans answer
	err := f.call(ctx, owner, message{Op: opRelease, IDs: []string{id}}, f.releaseTimeout(), &ans)
	switch {
	case errors.Is(err, transport.ErrUnreachable):
		// Nothing was delivered: owner is not running (the member table
		// makes it DOWN at once too).
		_, err := f.adoptReplica(ctx, id, owner)
		return err
	case err != nil:
		return &UnavailableError{ClientID: id, Node: f.self, Reason: "cannot take it over from node " + owner + ", which holds it: " + quote(err.Error())}
	}
	switch ans.Status[id] {
	case statusReleased:
		for _, c := range ans.Released {
			if c.ID == id {
				return f.adopt(ctx, id, owner, c)
			}
		}
	case statusNotHeld:
		_, err := f.adoptReplica(ctx, id, owner)
		return err
	}
	return &UnavailableError{ClientID: id, Node: f.self, Reason: "is taking it over from node " + owner + ", which does not see it responsible yet"}
}

// adopt adopts the client id that from released as c.
func (f *Forwarder) adopt(ctx context.Context, id, from string, c wireClient) error {
	h := c.handoff()
	adopted, err := f.reg.AdoptHTTP(ctx, id, &h)
	if err != nil {
		f.log.Warn("a member released an HTTP client this node cannot take", "member", from, "client", id, "error", err)
		return err
	}
	if adopted {
		f.metrics.handoffs.WithLabelValues("adopted").Inc()
		f.notify(move{ID: id, From: from, To: f.self})
	}
	return nil
}

// adoptReplica adopts the replica id of owner, which is DOWN, gone or does
// not hold it.
func (f *Forwarder) adoptReplica(ctx context.Context, id, owner string) (bool, error) {
	if holder, held := f.reg.ClientOwner(id); !held || holder != owner {
		return false, nil // gone, or moved meanwhile
	}
	adopted, err := f.reg.AdoptHTTP(ctx, id, nil)
	if err != nil {
		return false, err
	}
	if adopted {
		f.metrics.handoffs.WithLabelValues("adopted_replica").Inc()
		f.notify(move{ID: id, From: owner, To: f.self})
		f.log.Debug("adopted an HTTP client from its replica", "client", id, "former_owner", owner)
	}
	return adopted, nil
}

// gather asks every member not DOWN to release the client id, which this
// node holds nothing of, and adopts what one gives (the most recent, should
// several have held it). A member that holds it and does not see this node
// responsible yet makes the write wait (503): it must not be created here
// meanwhile.
func (f *Forwarder) gather(ctx context.Context, id string) error {
	var mu sync.Mutex
	var best *wireClient
	var bestFrom, refusedBy string
	var wg sync.WaitGroup
	for _, m := range f.cfg.Members.Members() {
		if m.Self || m.State == cluster.Down {
			continue
		}
		wg.Go(func() {
			var ans answer
			if err := f.call(ctx, m.Address, message{Op: opRelease, IDs: []string{id}}, f.releaseTimeout(), &ans); err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ans.Status[id] == statusRefused {
				refusedBy = m.Address
			}
			for _, c := range ans.Released {
				if c.ID == id && ans.Status[id] == statusReleased && (best == nil || c.Revision > best.Revision) {
					best, bestFrom = &c, m.Address
				}
			}
		})
	}
	wg.Wait()
	if best != nil {
		return f.adopt(ctx, id, bestFrom, *best)
	}
	if refusedBy != "" {
		return &UnavailableError{ClientID: id, Node: f.self, Reason: "is taking it over from node " + refusedBy + ", which does not see it responsible yet"}
	}
	return nil
}

// unsettled reports whether this node may not hold every client yet: its
// registry is loading, or the UP members changed within twice Grace.
func (f *Forwarder) unsettled() bool {
	if f.cfg.Ready != nil && !f.cfg.Ready() {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.Now().Sub(f.changedAt) < 2*f.cfg.Grace
}

// state returns the state of member, and whether it is one.
func (f *Forwarder) state(member string) (cluster.State, bool) {
	for _, m := range f.cfg.Members.Members() {
		if m.Address == member {
			return m.State, true
		}
	}
	return "", false
}

// serveRelease gives up to from the clients it asks for that this node
// holds as its own, when this node too sees from responsible for them, and
// tells the other members.
func (f *Forwarder) serveRelease(ctx context.Context, from string, ids []string) answer {
	ans := answer{Status: make(map[string]string, len(ids))}
	var moved []move
	for _, id := range ids {
		if !naming.IsHTTPClientID(id) {
			ans.Status[id] = statusRefused
			continue
		}
		if owner, held := f.reg.ClientOwner(id); !held || owner != "" {
			ans.Status[id] = statusNotHeld
			continue
		}
		if f.cfg.Members.Owner(id) != from {
			ans.Status[id] = statusRefused
			continue
		}
		unlock, err := f.locks.lock(ctx, id)
		if err != nil {
			ans.Status[id] = statusRefused
			continue
		}
		h, ok := f.reg.ReleaseHTTP(id, from)
		unlock()
		if !ok {
			ans.Status[id] = statusNotHeld
			continue
		}
		ans.Status[id] = statusReleased
		ans.Released = append(ans.Released, handoffToWire(id, h))
		moved = append(moved, move{ID: id, From: f.self, To: from})
		f.metrics.handoffs.WithLabelValues("released").Inc()
		f.log.Debug("released an HTTP client to the node now responsible for it", "client", id, "to", from)
	}
	f.notify(moved...)
	return ans
}

// serveAdopt adopts the clients from handed over, those this node sees
// itself responsible for; it keeps its own copy of one it already holds as
// its own.
func (f *Forwarder) serveAdopt(ctx context.Context, from string, clients []wireClient) answer {
	ans := answer{Status: make(map[string]string, len(clients))}
	var moved []move
	for _, c := range clients {
		if !naming.IsHTTPClientID(c.ID) || f.cfg.Members.Owner(c.ID) != f.self {
			ans.Status[c.ID] = statusRefused
			continue
		}
		unlock, err := f.locks.lock(ctx, c.ID)
		if err != nil {
			ans.Status[c.ID] = statusRefused
			continue
		}
		if owner, held := f.reg.ClientOwner(c.ID); held && owner == "" {
			unlock()
			ans.Status[c.ID] = statusKept
			f.metrics.handoffs.WithLabelValues("kept").Inc()
			continue
		}
		h := c.handoff()
		adopted, err := f.reg.AdoptHTTP(ctx, c.ID, &h)
		unlock()
		switch {
		case err != nil:
			f.log.Warn("a member handed over an HTTP client this node cannot take", "member", from, "client", c.ID, "error", err)
			ans.Status[c.ID] = statusRefused
		case adopted:
			ans.Status[c.ID] = statusAdopted
			f.metrics.handoffs.WithLabelValues("adopted").Inc()
			moved = append(moved, move{ID: c.ID, From: from, To: f.self})
		default:
			ans.Status[c.ID] = statusKept
		}
	}
	f.notify(moved...)
	return ans
}

// serveMoved re-homes this node's replicas of clients that moved. A move
// from is the owner of is its word: taken once this node knows the new
// owner as a member. Until then the replica is held (naming's HoldForMove):
// the owner no longer lists the client in its verifications, which would
// otherwise drop it while this node's view of the membership lags the
// sender's (each member reads it on its own). It is not re-homed to a node
// this one does not know: this node's sweep would take it for a gone
// owner's, and adopt it. A move to from (it adopted the client of a node
// DOWN or gone) is taken once this node too sees from responsible. A move
// this node cannot take yet waits, for twice Grace.
func (f *Forwarder) serveMoved(from string, moved []move) {
	until := f.cfg.Now().Add(2 * f.cfg.Grace)
	for _, m := range moved {
		if !naming.IsHTTPClientID(m.ID) || m.From == m.To || !memberAddress(m.To) {
			continue
		}
		pm := pendingMove{from: m.From, to: m.To, until: until, ownersWord: m.From == from}
		if !pm.ownersWord && m.To != from {
			continue // a third node's word about others' clients
		}
		if owner, held := f.reg.ClientOwner(m.ID); !held || owner != m.From {
			continue
		}
		if !f.applyMove(m.ID, pm) {
			if pm.ownersWord {
				f.reg.HoldForMove(m.ID, m.From)
			}
			f.mu.Lock()
			if len(f.pendingMoves) < maxPendingMoves {
				f.pendingMoves[m.ID] = pm
			}
			f.mu.Unlock()
		}
	}
}

// memberAddress reports whether a is an address a member could have: a
// host of one line of text and a port whose cluster port exists.
func memberAddress(a string) bool {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || len(host) > 253 || naming.TextProblem(host) != "" {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p > 0 && p+cluster.PortOffset <= 65535
}

// maxPendingMoves bounds the moves waiting for this node's view to agree.
const maxPendingMoves = 100_000

// pendingMove is a move of a replica from one owner to another.
type pendingMove struct {
	from, to   string
	until      time.Time
	ownersWord bool // sent by from, its owner
}

// applyMove re-homes the replica id as m says, if this node's view agrees:
// it knows m.to as a member (the owner's word), or sees it responsible (the
// adopter's). It reports whether the move is settled.
func (f *Forwarder) applyMove(id string, m pendingMove) bool {
	if m.ownersWord {
		if _, member := f.state(m.to); !member {
			return false
		}
	} else if f.cfg.Members.Owner(id) != m.to {
		return false
	}
	if f.reg.MoveReplica(id, m.from, m.to) {
		f.metrics.handoffs.WithLabelValues("rehomed").Inc()
	}
	return true
}

// applyPendingMoves takes the waiting moves this node's view now agrees
// with, and forgets the ones that expired or that something else settled.
func (f *Forwarder) applyPendingMoves(now time.Time) {
	f.mu.Lock()
	pending := maps.Clone(f.pendingMoves)
	f.mu.Unlock()
	var done []string
	for id, m := range pending {
		owner, held := f.reg.ClientOwner(id)
		if !held || owner != m.from || now.After(m.until) || f.applyMove(id, m) {
			done = append(done, id)
		}
	}
	f.mu.Lock()
	for _, id := range done {
		if f.pendingMoves[id] == pending[id] {
			delete(f.pendingMoves, id)
		}
	}
	f.mu.Unlock()
}

// notify queues moves for the other members (sendNotices); when the queue
// is full they are dropped: Distro's verification repairs the replicas
// then, only later.
func (f *Forwarder) notify(moves ...move) {
	for _, m := range moves {
		select {
		case f.notices <- m:
		default:
			f.metrics.handoffs.WithLabelValues("notice_dropped").Inc()
		}
	}
}

// sendNotices sends the queued moves to the other members, in batches,
// until ctx ends.
func (f *Forwarder) sendNotices(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-f.notices:
			f.sendMoves(ctx, append([]move{m}, f.queuedMoves()...))
		}
	}
}

// queuedMoves takes what is queued, up to a batch.
func (f *Forwarder) queuedMoves() []move {
	var batch []move
	for len(batch) < maxBatch-1 {
		select {
		case m := <-f.notices:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// sendMoves tells every other member not DOWN of moves.
func (f *Forwarder) sendMoves(ctx context.Context, moves []move) {
	if len(moves) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, m := range f.cfg.Members.Members() {
		if m.Self || m.State == cluster.Down {
			continue
		}
		wg.Go(func() {
			var ans answer
			if err := f.call(ctx, m.Address, message{Op: opMoved, Moved: moves}, f.cfg.CallTimeout, &ans); err != nil {
				f.log.Debug("telling a member of adopted clients", "member", m.Address, "error", err)
			}
		})
	}
	wg.Wait()
}

// Sweep runs one round of handoffs (Start runs it every Interval): it hands
// over the clients this node has not been responsible for during Grace, and
// adopts the replicas it is responsible for whose owner is DOWN or no longer
// a member.
func (f *Forwarder) Sweep(ctx context.Context) {
	members := f.cfg.Members.Members()
	var up []string
	for _, m := range members {
		if m.Self || m.State == cluster.Up {
			up = append(up, m.Address)
		}
	}
	now := f.cfg.Now()
	set := strings.Join(up, ",")
	f.mu.Lock()
	if set != f.upSet {
		f.upSet, f.changedAt = set, now
	}
	f.mu.Unlock()
	f.applyPendingMoves(now)
	f.handOverAll(ctx, now)
	f.adoptOrphans(ctx, members)
}

// handOverAll hands over, to the node now responsible for each, the
// clients of this node it has not been responsible for during Grace.
func (f *Forwarder) handOverAll(ctx context.Context, now time.Time) {
	notMine := map[string]string{} // client id → the node responsible for it
	responsible := 0
	for _, id := range f.reg.HTTPPublishers() {
		if to := f.cfg.Members.Owner(id); to != f.self {
			notMine[id] = to
		} else {
			responsible++
		}
	}
	f.metrics.clients.WithLabelValues("responsible").Set(float64(responsible))
	f.metrics.clients.WithLabelValues("not_responsible").Set(float64(len(notMine)))
	due := map[string][]string{}
	f.mu.Lock()
	maps.DeleteFunc(f.notMine, func(id string, _ time.Time) bool { _, still := notMine[id]; return !still })
	for id, to := range notMine {
		since, ok := f.notMine[id]
		switch {
		case !ok:
			f.notMine[id] = now
		case now.Sub(since) >= f.cfg.Grace:
			due[to] = append(due[to], id)
		}
	}
	f.mu.Unlock()
	for _, to := range slices.Sorted(maps.Keys(due)) {
		ids := due[to]
		slices.Sort(ids)
		for len(ids) > 0 && ctx.Err() == nil {
			n := min(len(ids), maxBatch)
			f.handOver(ctx, to, ids[:n])
			ids = ids[n:]
		}
	}
}

// handOver releases ids to to, and sends them there; what to does not take
// is taken back.
func (f *Forwarder) handOver(ctx context.Context, to string, ids []string) {
	var clients []wireClient
	released := map[string]naming.HTTPHandoff{}
	for _, id := range ids {
		unlock, ok := f.locks.tryLock(id)
		if !ok {
			continue // a write of it is being applied: next round
		}
		h, ok := f.reg.ReleaseHTTP(id, to)
		unlock()
		if ok {
			released[id] = h
			clients = append(clients, handoffToWire(id, h))
		}
	}
	if len(clients) == 0 {
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, f.cfg.CallTimeout)
	defer cancel()
	var ans answer
	err := f.call(callCtx, to, message{Op: opAdopt, Clients: clients}, f.cfg.CallTimeout, &ans)
	if err != nil && callCtx.Err() != nil {
		// The answer was lost: to may have taken them or not. They stay
		// replicas of to's here; a client to did not take is registered
		// again by its next beat (its body), on to.
		f.metrics.handoffs.WithLabelValues("uncertain").Add(float64(len(clients)))
		f.log.Warn("handing HTTP clients over: no answer; the node may or may not have them", "to", to, "clients", len(clients), "error", err)
		return
	}
	if err != nil {
		ans = answer{} // not taken: every one comes back
		f.log.Warn("handing HTTP clients over failed; kept them", "to", to, "clients", len(clients), "error", err)
	}
	handed := 0
	var moved []move
	for id, h := range released {
		switch ans.Status[id] {
		case statusAdopted:
			handed++
			moved = append(moved, move{ID: id, From: f.self, To: to})
		case statusKept:
			// to already held it as its own: the two copies end here.
			moved = append(moved, move{ID: id, From: f.self, To: to})
		default:
			if _, err := f.reg.AdoptHTTP(ctx, id, &h); err != nil {
				f.log.Warn("taking back an HTTP client a member did not take", "client", id, "error", err)
			}
			f.metrics.handoffs.WithLabelValues("returned").Inc()
		}
	}
	f.notify(moved...)
	f.metrics.handoffs.WithLabelValues("handed_over").Add(float64(handed))
	if handed > 0 {
		f.log.Info("handed HTTP clients over to the node now responsible for them", "to", to, "clients", handed)
	}
}

// adoptOrphans adopts the replicas this node is responsible for whose owner
// is DOWN or no longer a member.
func (f *Forwarder) adoptOrphans(ctx context.Context, members []cluster.Member) {
	alive := map[string]bool{}
	for _, m := range members {
		if !m.Self && m.State != cluster.Down {
			alive[m.Address] = true
		}
	}
	orphans := f.reg.HTTPReplicas(func(owner string) bool { return owner != f.self && !alive[owner] })
	adopted := 0
	for _, id := range slices.Sorted(maps.Keys(orphans)) {
		if ctx.Err() != nil {
			return
		}
		if f.cfg.Members.Owner(id) != f.self {
			continue
		}
		unlock, ok := f.locks.tryLock(id)
		if !ok {
			continue
		}
		ok, err := f.adoptReplica(ctx, id, orphans[id])
		unlock()
		if err != nil {
			f.log.Warn("adopting an HTTP client of a node that is DOWN or gone", "client", id, "error", err)
		} else if ok {
			adopted++
		}
	}
	if adopted > 0 {
		f.log.Info("adopted the HTTP clients of nodes DOWN or gone that this node is now responsible for", "clients", adopted)
	}
}
