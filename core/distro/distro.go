// Package distro replicates the clients of this node to the other members
// of the cluster, and applies theirs, as Nacos's Distro protocol does, with
// the weaknesses its users meet fixed:
//
//   - Sync: a change of a client of this node becomes a delayed task per
//     target member; the changes to all clients inside the merge window go
//     to that member as one batch, with each client's data read when sent,
//     in calls of a few thousand instances. One sync per member is in
//     flight at a time: batches due meanwhile merge and follow it, rather
//     than queueing up copies of the same clients (a bulk registration of
//     large clients would otherwise resend the registry over and over). The
//     unsent part of a failed batch is retried; members not UP are skipped
//     (verification repairs them when they are back).
//   - Verify: every verify interval this node sends each member the revision
//     of each of its clients; the member asks for those it holds at another
//     revision or not at all, and drops the ones no longer listed.
//   - Expiry: a replicated client whose owner has not vouched for it within
//     the client expiry is removed, so a dead node's instances leave the
//     survivors in seconds rather than Nacos's three minutes. A node never
//     expires replicas for a silence of its own making: after it was paused
//     or starved, or while its transport restarted (it heard nobody), every
//     replica gets the expiry afresh from its resumption,
//     and an owner that is UP gets the time to verify this node before its
//     replicas can go (see expire).
//   - Start-up: a node loads a snapshot of the registry from a member before
//     it reports ready; snapshots stream in chunks (no message-size
//     ceiling), and clients registered on this node meanwhile are never
//     overwritten.
//
// Everything applied goes through the registry, whose events make each node
// push to its own subscribers.
//
// What members send is input, held to the rules client input is: the router
// takes messages from the members of the table alone (cluster.Router), and
// the registry validates every replicated client against the naming limits
// and lets a member change only the replicas it owns (naming.ApplyReplicas):
// what breaks a rule is dropped or refused, counted and logged (see
// peerinput.go), and the rest applied.
package distro

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/engine"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
)

// Transport kinds of Distro's calls.
const (
	SyncKind   = "sync"
	VerifyKind = "verify"
)

// SnapshotKind names the snapshot among what members send, in logs.
const SnapshotKind = cluster.SnapshotKind

// chunkInstances is about how many instances go in one snapshot chunk or
// sync call (about a MiB).
const chunkInstances = 4000

// Transport is what Distro needs of the transport plugin.
type Transport interface {
	cluster.Caller
	Snapshot(ctx context.Context, target string, fn func(chunk []byte) error) error
}

// Config configures Distro.
type Config struct {
	Registry  *naming.Registry
	Cluster   *cluster.Cluster
	Transport Transport
	// TransportSince, if set, returns when this node's transport began
	// serving (now while it restarts): the node hears no owner while it is
	// down, so every replica gets the expiry afresh from its return, as
	// after a stall.
	TransportSince func() time.Time
	// Router takes what members send; New registers SyncKind, VerifyKind
	// and the snapshot source.
	Router *cluster.Router
	Bus    *notify.Bus
	// SyncDelay merges the changes to a member's batch; RetryDelay waits
	// before a failed batch is sent again; CallTimeout bounds one call.
	SyncDelay, RetryDelay, CallTimeout time.Duration
	VerifyInterval                     time.Duration
	// ClientExpiry removes a replicated client whose owner has not verified
	// it for this long.
	ClientExpiry time.Duration
	// ReportInterval is the members' health report interval: how long a
	// member may take to see this node UP, and verify it again.
	ReportInterval  time.Duration
	SnapshotTimeout time.Duration
	// Now and NewTicker are the clock and ticker of the expiry: time.Now and
	// a time.Ticker when nil. Tests bring their own to simulate a stall.
	Now       func() time.Time
	NewTicker func(d time.Duration) (ticks <-chan time.Time, stop func())
	Logger    hclog.Logger
	Metrics   prometheus.Registerer
}

// Distro replicates clients between members.
type Distro struct {
	cfg     Config
	log     hclog.Logger
	self    string
	delay   *engine.DelayEngine[string, batch]
	metrics *metrics
	ready   atomic.Bool

	invalidLog, refusedLog limitedLog // peerinput.go

	mu    sync.Mutex
	peers map[string]*peerWork
	// The members' lanes (see lanes.go): laneCtx is their tasks' context,
	// lanes counts the running ones, queued their waiting tasks.
	laneCtx     context.Context
	cancelLanes context.CancelFunc
	lanesClosed bool
	lanes       sync.WaitGroup
	queued      atomic.Int64

	// The expiry's state, which its loop alone touches.
	lastExpiry time.Time            // when its last run ended
	resumed    time.Time            // when this node last resumed after a stall
	upSince    map[string]time.Time // the members UP when it last ran, since when

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// peerWork is what runs for one member: at most one sync and one
// verification at a time, and the batch parked behind the sync; and its
// lane.
type peerWork struct {
	syncing, verifying bool
	parked             batch
	failing            bool // the last sync to the member failed
	lane               []func(context.Context)
	running            bool // a goroutine runs the lane
}

// batch is the clients to send one member. Each is sent as the registry
// holds it when sent: its data if it is a client of this node, else its
// removal.
type batch map[string]struct{}

// mergeBatches adds newer's clients to older.
func mergeBatches(older, newer batch) batch {
	maps.Copy(older, newer)
	return older
}

// New returns Distro subscribed to the registry's client events and
// registered on the router for syncs, verifications and snapshots; call it
// before the bus starts.
func New(cfg Config) (*Distro, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewTicker == nil {
		cfg.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	d := &Distro{cfg: cfg, log: cfg.Logger, self: cfg.Cluster.Self(), peers: make(map[string]*peerWork),
		upSince: make(map[string]time.Time)}
	d.delay = engine.NewDelayEngine(engine.DelayConfig[string, batch]{
		Name:       "distro",
		Merge:      mergeBatches,
		Process:    d.dispatch,
		RetryDelay: cfg.RetryDelay,
		Logger:     cfg.Logger.Named("delay"),
	})
	d.metrics = newMetrics(cfg.Metrics, d.delay.Len, func() int { return int(d.queued.Load()) })
	// The router's refusals of strangers: members talk only where Distro runs.
	cfg.Metrics.MustRegister(cfg.Router.Metrics())
	err := errors.Join(
		notify.Subscribe(cfg.Bus, "distro", func(e naming.ClientChanged) { d.schedule(e.ClientID) }),
		notify.Subscribe(cfg.Bus, "distro", func(e naming.ClientRemoved) { d.schedule(e.ClientID) }),
		cfg.Router.Register(SyncKind, d.handleSync),
		cfg.Router.Register(VerifyKind, d.handleVerify),
		cfg.Router.RegisterSnapshot(d.snapshot),
	)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// schedule queues a client's change for every UP member.
func (d *Distro) schedule(clientID string) {
	for _, peer := range d.cfg.Cluster.Peers(true) {
		d.delay.Add(peer, batch{clientID: {}}, d.cfg.SyncDelay)
	}
}

// Ready reports whether the start-up snapshot is loaded (or there was none
// to load).
func (d *Distro) Ready() bool { return d.ready.Load() }

// Start starts syncing, verifying and expiring, and loads the start-up
// snapshot in the background.
func (d *Distro) Start(ctx context.Context) error {
	d.mu.Lock()
	d.laneCtx, d.cancelLanes = context.WithCancel(context.WithoutCancel(ctx))
	d.mu.Unlock()
	if err := d.delay.Start(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.every(runCtx, d.cfg.VerifyInterval, d.verifyAll)
	ticks, stop := d.cfg.NewTicker(expireInterval)
	d.wg.Go(func() {
		defer stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-ticks:
				d.expire(runCtx)
			}
		}
	})
	d.wg.Go(func() { d.load(runCtx) })
	return nil
}

// Stop stops everything Start started: the members' queued work runs until
// ctx is done.
func (d *Distro) Stop(ctx context.Context) error {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	err := d.delay.Stop(ctx)
	return errors.Join(err, d.closeLanes(ctx))
}

func (d *Distro) every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	d.wg.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				fn(ctx)
			}
		}
	})
}

// dispatch hands a due batch to the member's lane; while a sync to the
// member is in flight it parks the batch instead.
func (d *Distro) dispatch(ctx context.Context, peer string, b batch) error {
	if !d.claimSync(peer, b) {
		return nil
	}
	err := d.submit(ctx, peer, func(ctx context.Context) {
		if !d.cfg.Cluster.IsUp(peer) {
			d.syncDone(peer, nil) // verification repairs it once it is back
			return
		}
		unsent, err := b, errors.New("the sync panicked") // should it
		defer func() {
			d.noteSyncResult(peer, len(unsent), err)
			d.syncDone(peer, unsent)
		}()
		unsent, err = d.sync(ctx, peer, b)
		d.metrics.syncs.WithLabelValues(result(err)).Inc()
	})
	if err != nil {
		d.syncDone(peer, nil) // the delay engine retries b
	}
	return err
}

// work returns peer's work; d.mu is held.
func (d *Distro) work(peer string) *peerWork {
	w := d.peers[peer]
	if w == nil {
		w = &peerWork{}
		d.peers[peer] = w
	}
	return w
}

// claimSync reports whether b may be sent to peer now; if a sync to peer is
// in flight, it parks b behind it instead.
func (d *Distro) claimSync(peer string, b batch) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.work(peer)
	if !w.syncing {
		w.syncing = true
		return true
	}
	if w.parked == nil {
		w.parked = b
	} else {
		mergeBatches(w.parked, b)
	}
	return false
}

// noteSyncResult logs how a sync to peer went: the first failure after a
// success is a warning, and the first success after it a note; the failures
// between are debug lines.
func (d *Distro) noteSyncResult(peer string, unsent int, err error) {
	d.mu.Lock()
	w := d.work(peer)
	wasFailing := w.failing
	w.failing = err != nil
	d.mu.Unlock()
	switch {
	case err != nil && !wasFailing:
		d.log.Warn("cannot sync clients to a member; retrying", "member", peer, "clients", unsent, "error", err)
	case err != nil:
		d.log.Debug("sync failed again; retrying", "member", peer, "clients", unsent, "error", err)
	case wasFailing:
		d.log.Info("syncs to the member work again", "member", peer)
	}
}

// syncDone ends the sync in flight to peer: what it could not send is
// retried after the retry delay, with the parked batch; the parked batch
// alone is due at once.
func (d *Distro) syncDone(peer string, unsent batch) {
	d.mu.Lock()
	w := d.work(peer)
	parked := w.parked
	w.syncing, w.parked = false, nil
	d.mu.Unlock()
	switch {
	case len(unsent) > 0:
		d.delay.Add(peer, mergeBatches(unsent, parked), d.cfg.RetryDelay)
	case parked != nil:
		d.delay.Add(peer, parked, 0)
	}
}

// sync sends a member the current data of the batch's clients, in calls of
// about chunkInstances instances. It returns the part of b not sent.
func (d *Distro) sync(ctx context.Context, peer string, b batch) (unsent batch, err error) {
	ids := slices.Collect(maps.Keys(b))
	msg, instances, from := &clusterv1.Sync{}, 0, 0
	for i, id := range ids {
		data, ok := d.cfg.Registry.Client(id)
		if ok && data.Owner == "" {
			msg.Changed = append(msg.Changed, clientToProto(data, d.self))
			instances += data.InstanceCount()
		} else {
			msg.Removed = append(msg.Removed, id)
		}
		instances++ // an empty or removed client weighs something too
		if instances < chunkInstances && i < len(ids)-1 {
			continue
		}
		if _, err := d.call(ctx, peer, SyncKind, msg); err != nil {
			unsent = batch{}
			for _, id := range ids[from:] {
				unsent[id] = struct{}{}
			}
			return unsent, err
		}
		msg, instances, from = &clusterv1.Sync{}, 0, i+1
	}
	return nil, nil
}

func (d *Distro) call(ctx context.Context, peer, kind string, msg proto.Message) ([]byte, error) {
	target, err := cluster.Address(peer)
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	return d.cfg.Transport.Call(ctx, target, kind, payload)
}

// verifyAll sends every UP member the revisions of this node's clients, in
// order with the syncs to it, and syncs what it asks for. A member whose
// last verification is still queued or running is passed over.
func (d *Distro) verifyAll(ctx context.Context) {
	versions := d.cfg.Registry.LocalVersions()
	msg := &clusterv1.Verify{Entries: make([]*clusterv1.Verify_Entry, len(versions))}
	for i, v := range versions {
		msg.Entries[i] = &clusterv1.Verify_Entry{Id: v.ID, Revision: v.Revision}
	}
	d.forgetFormerMembers()
	for _, peer := range d.cfg.Cluster.Peers(true) {
		if !d.claimVerify(peer) {
			continue
		}
		err := d.submit(ctx, peer, func(ctx context.Context) {
			defer d.verifyDone(peer)
			if !d.cfg.Cluster.IsUp(peer) {
				return // no longer UP since: its next verification after it is back
			}
			err := d.verify(ctx, peer, msg)
			d.metrics.verifications.WithLabelValues(result(err)).Inc()
			if err != nil {
				d.log.Debug("verify failed", "member", peer, "error", err)
			}
		})
		if err != nil {
			d.verifyDone(peer)
			return
		}
	}
}

// forgetFormerMembers drops the idle work entries of addresses no longer
// members, which would otherwise pile up as members come and go.
func (d *Distro) forgetFormerMembers() {
	members := d.cfg.Cluster.Peers(false)
	d.mu.Lock()
	defer d.mu.Unlock()
	for peer, w := range d.peers {
		if !w.syncing && !w.verifying && !w.running && !slices.Contains(members, peer) {
			delete(d.peers, peer)
		}
	}
}

// claimVerify reports whether peer may be verified now.
func (d *Distro) claimVerify(peer string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.work(peer)
	if w.verifying {
		return false
	}
	w.verifying = true
	return true
}

// verifyDone ends the verification of peer.
func (d *Distro) verifyDone(peer string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.work(peer).verifying = false
}

// verify sends peer the revisions; the clients it asks for are synced at
// once, merged with any batch pending for it.
func (d *Distro) verify(ctx context.Context, peer string, msg *clusterv1.Verify) error {
	raw, err := d.call(ctx, peer, VerifyKind, msg)
	if err != nil {
		return err
	}
	var answer clusterv1.VerifyAnswer
	if err := proto.Unmarshal(raw, &answer); err != nil {
		return err
	}
	if len(answer.Need) == 0 {
		return nil
	}
	b := batch{}
	for _, id := range answer.Need {
		b[id] = struct{}{}
	}
	d.delay.Add(peer, b, 0)
	return nil
}

// expireInterval is how often the expiry runs.
const expireInterval = time.Second

// stallAfter is the gap between two runs of the expiry (from the end of one
// to the start of the next) that means this node was not running (stopped,
// or starved of CPU) rather than late: a whole run missed.
const stallAfter = 2 * expireInterval

// Mass expiry: an expiry that removes at least massExpiryShare of a
// service's instances, and at least massExpiryInstances, is warned about.
const (
	massExpiryShare     = 0.5
	massExpiryInstances = 5
	// massExpiryWarnings bounds the services warned about by name per run.
	massExpiryWarnings = 10
)

// expire removes the replicas whose owners have stopped vouching for them
// (every expireInterval):
//
//   - a replica not verified within the client expiry goes, as its owner is
//     gone or cut off;
//   - unless this node itself was not running: a gap of stallAfter or more
//     since the last run ended, on the monotonic clock, means this node was
//     stopped or starved, and heard nobody meanwhile. Every replica then
//     counts as verified at the resumption (the stall is warned about once);
//   - and an owner UP in the member table keeps its replicas until it has
//     had the time to verify this node since it was last seen UP again (or
//     since this node resumed): a report interval for it to see this node
//     UP, a verify interval for its next verification, and a call timeout
//     for that to arrive. An owner that is not UP (a stopped owner's reports
//     time out: SUSPICIOUS, then DOWN) is expired as above, so a dead
//     node's clients leave within the client expiry and a run.
func (d *Distro) expire(ctx context.Context) {
	now := d.cfg.Now()
	if !d.lastExpiry.IsZero() {
		if gap := now.Sub(d.lastExpiry); gap >= stallAfter {
			d.resumed = now
			d.metrics.stalls.Inc()
			d.log.Warn("this node did not run for a while (stopped or starved) and heard nobody meanwhile; "+
				"every replica gets the client expiry afresh", "stalled", gap.Round(time.Millisecond), "expiry", d.cfg.ClientExpiry)
		}
	}
	defer func() { d.lastExpiry = d.cfg.Now() }()
	if d.cfg.TransportSince != nil {
		if since := d.cfg.TransportSince(); since.After(d.resumed) {
			d.resumed = since // deaf until then, not abandoned by the owners
		}
	}

	up := map[string]bool{}
	for _, m := range d.cfg.Cluster.Members() {
		if m.Self || m.State != cluster.Up {
			continue
		}
		up[m.Address] = true
		if _, ok := d.upSince[m.Address]; !ok {
			d.upSince[m.Address] = now
		}
	}
	for a := range d.upSince {
		if !up[a] {
			delete(d.upSince, a)
		}
	}
	before := now.Add(-d.cfg.ClientExpiry)
	chance := d.cfg.ReportInterval + d.cfg.VerifyInterval + d.cfg.CallTimeout
	cutoffs := map[string]time.Time{}
	cutoff := func(owner string) time.Time {
		if c, ok := cutoffs[owner]; ok {
			return c
		}
		c := before
		if !d.resumed.Before(before) {
			c = time.Time{} // within the grace since this node resumed
		} else if since, ok := d.upSince[owner]; ok && now.Sub(later(since, d.resumed)) < chance {
			c = time.Time{} // UP, and not yet had the time to verify this node
		}
		cutoffs[owner] = c
		return c
	}

	exp, err := d.cfg.Registry.Expire(ctx, cutoff)
	d.metrics.expired.Add(float64(len(exp.Clients)))
	if len(exp.Clients) > 0 {
		d.log.Info("expired clients whose owners stopped verifying them", "clients", len(exp.Clients), "by_owner", exp.Owners)
	}
	d.noteMassExpiries(exp.Losses)
	if err != nil && ctx.Err() == nil {
		d.log.Warn("expiring clients", "error", err)
	}
}

// noteMassExpiries warns about, and counts, the services an expiry took most
// of the instances of.
func (d *Distro) noteMassExpiries(losses []naming.ServiceLoss) {
	slices.SortFunc(losses, func(a, b naming.ServiceLoss) int { return b.Lost - a.Lost })
	warned := 0
	for _, l := range losses {
		if l.Lost < massExpiryInstances || float64(l.Lost) < massExpiryShare*float64(l.Had) {
			continue
		}
		d.metrics.massExpiries.Inc()
		if warned++; warned <= massExpiryWarnings {
			d.log.Warn("an expiry removed most of a service's instances: their owner stopped verifying them",
				"service", l.Service.String(), "removed", l.Lost, "of", l.Had)
		}
	}
	if warned > massExpiryWarnings {
		d.log.Warn("an expiry removed most of the instances of more services", "services", warned-massExpiryWarnings)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// handleSync applies a member's sync.
func (d *Distro) handleSync(ctx context.Context, from string, payload []byte) ([]byte, error) {
	var msg clusterv1.Sync
	if err := proto.Unmarshal(payload, &msg); err != nil {
		return nil, fmt.Errorf("sync from %s: %w", from, err)
	}
	return nil, d.applySync(ctx, from, &msg)
}

// handleVerify answers a member's verification with the clients this node
// needs from it.
func (d *Distro) handleVerify(ctx context.Context, from string, payload []byte) ([]byte, error) {
	var msg clusterv1.Verify
	if err := proto.Unmarshal(payload, &msg); err != nil {
		return nil, fmt.Errorf("verify from %s: %w", from, err)
	}
	if !d.Ready() {
		// The snapshot being loaded brings the member's clients; asking
		// for them too would have them sent and applied twice. The first
		// verification once ready repairs whatever the snapshot missed.
		return proto.Marshal(&clusterv1.VerifyAnswer{})
	}
	versions := make([]naming.ClientVersion, len(msg.Entries))
	for i, e := range msg.Entries {
		versions[i] = naming.ClientVersion{ID: e.Id, Revision: e.Revision}
	}
	res, err := d.cfg.Registry.Verify(ctx, from, versions, d.replicaOptions())
	d.noteRefused(from, VerifyKind, res.Refused)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&clusterv1.VerifyAnswer{Need: res.Need})
}

// replicaOptions are what the registry needs of the member table to judge
// what members send.
func (d *Distro) replicaOptions() naming.ReplicaOptions {
	return naming.ReplicaOptions{IsMember: d.cfg.Cluster.IsMember}
}

func (d *Distro) applySync(ctx context.Context, from string, msg *clusterv1.Sync) error {
	clients := make([]naming.ClientData, 0, len(msg.Changed))
	var dec decoder
	for _, c := range msg.Changed {
		data, err := dec.client(c)
		if err != nil {
			return err
		}
		data.Owner = from // a member speaks for its own clients
		clients = append(clients, data)
	}
	res, err := d.cfg.Registry.ApplyReplicas(ctx, clients, d.replicaOptions())
	d.noteApplied(from, SyncKind, res)
	if err != nil {
		return err
	}
	var refused []naming.RefusedClient
	for _, id := range msg.Removed {
		why, err := d.cfg.Registry.RemoveReplica(ctx, id, from)
		if err != nil {
			return err
		}
		if why != "" {
			refused = append(refused, naming.RefusedClient{ID: id, Reason: why})
		}
	}
	d.noteRefused(from, "removal", refused)
	return nil
}

// snapshot writes every client this node holds, its own and replicated
// ones, to fn in chunks of about a MiB.
func (d *Distro) snapshot(ctx context.Context, _ string, fn func([]byte) error) error {
	chunk := &clusterv1.SnapshotChunk{}
	instances := 0
	flush := func() error {
		if len(chunk.Clients) == 0 {
			return nil
		}
		b, err := proto.Marshal(chunk)
		if err != nil {
			return err
		}
		chunk, instances = &clusterv1.SnapshotChunk{}, 0
		return fn(b)
	}
	var err error
	d.cfg.Registry.EachClient(func(data naming.ClientData) bool {
		chunk.Clients = append(chunk.Clients, clientToProto(data, d.self))
		instances += data.InstanceCount()
		if instances >= chunkInstances {
			err = flush()
		}
		return err == nil && ctx.Err() == nil
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return flush()
}

// load fetches the start-up snapshot from one member, trying each in turn,
// then reports ready. With nobody to load from (this node alone, or every
// member starting too) it is ready at once: the members' verifications
// bring their clients anyway.
func (d *Distro) load(ctx context.Context) {
	defer d.ready.Store(true)
	if err := d.cfg.Cluster.AwaitMembers(ctx); err != nil {
		return
	}
	peers := d.cfg.Cluster.Peers(false)
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, peer := range peers {
		start := time.Now()
		n, err := d.loadFrom(ctx, peer)
		if err == nil {
			took := time.Since(start)
			d.metrics.loadSeconds.Set(took.Seconds())
			d.log.Info("loaded the start-up snapshot", "member", peer, "clients", n, "took", took.Round(time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			return
		}
		d.log.Info("could not load a snapshot; trying the next member", "member", peer, "error", err)
	}
	if len(peers) > 0 {
		d.log.Info("no member gave a snapshot; their verifications will bring their clients")
	}
}

func (d *Distro) loadFrom(ctx context.Context, peer string) (int, error) {
	target, err := cluster.Address(peer)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.SnapshotTimeout)
	defer cancel()
	// Decoding dominates a load, and chunks hold distinct clients: workers
	// decode and apply them in parallel while the next ones arrive.
	g, gctx := errgroup.WithContext(ctx)
	chunks := make(chan []byte, loadWorkers)
	var n atomic.Int64
	for range loadWorkers {
		g.Go(func() error {
			for raw := range chunks {
				if err := d.applyChunk(gctx, peer, raw, &n); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = d.cfg.Transport.Snapshot(gctx, target, func(raw []byte) error {
		select {
		case chunks <- bytes.Clone(raw): // the transport may reuse raw
			return nil
		case <-gctx.Done():
			return context.Cause(gctx)
		}
	})
	close(chunks)
	if werr := g.Wait(); werr != nil {
		err = werr
	}
	return int(n.Load()), err
}

// loadWorkers is how many snapshot chunks are decoded and applied at once.
var loadWorkers = max(2, runtime.GOMAXPROCS(0))

// applyChunk applies one snapshot chunk of peer's and adds the clients it
// took to n.
func (d *Distro) applyChunk(ctx context.Context, peer string, raw []byte, n *atomic.Int64) error {
	var chunk clusterv1.SnapshotChunk
	if err := proto.Unmarshal(raw, &chunk); err != nil {
		return err
	}
	clients := make([]naming.ClientData, 0, len(chunk.Clients))
	var dec decoder
	for _, c := range chunk.Clients {
		if c.Owner == d.self { // this node's clients of a former life are gone
			continue
		}
		data, err := dec.client(c)
		if err != nil {
			return err
		}
		clients = append(clients, data)
	}
	res, err := d.cfg.Registry.ApplyReplicas(ctx, clients, d.replicaOptions())
	d.noteApplied(peer, SnapshotKind, res)
	n.Add(int64(res.Applied))
	return err
}
