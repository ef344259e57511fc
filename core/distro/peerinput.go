package distro

import (
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/core/naming"
)

// Peer input is input. The router hears members alone; the registry applies
// what they send under the rules client input is held to, and lets a member
// change only its own replicas (naming.ApplyReplicas, Verify and
// RemoveReplica). What it drops or refuses is counted here, and logged: a
// line a kind at most every peerLogInterval, with the count since the last
// one, so a member sending garbage cannot flood the log.

// peerLogInterval spaces the log lines about what members sent that was
// dropped or refused.
const peerLogInterval = 10 * time.Second

// limitedLog allows a line at most every peerLogInterval.
type limitedLog struct {
	last  atomic.Int64 // unix nanoseconds of the last line
	since atomic.Int64 // events not logged since
}

// allow reports whether a line may be written now, and how many events it
// stands for (n, and those not logged since the last).
func (l *limitedLog) allow(n int) (bool, int64) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last >= int64(peerLogInterval) && l.last.CompareAndSwap(last, now) {
		return true, l.since.Swap(0) + int64(n)
	}
	l.since.Add(int64(n))
	return false, 0
}

// noteApplied counts and logs what an apply of what member sent in a
// message of kind (a sync, or a chunk of the snapshot this node loads from
// it) dropped or refused.
func (d *Distro) noteApplied(member, kind string, res naming.ApplyResult) {
	d.noteRefused(member, kind, res.Refused)
	if len(res.Invalid) == 0 {
		return
	}
	for _, x := range res.Invalid {
		d.metrics.invalid.WithLabelValues(x.Reason()).Inc()
	}
	if ok, n := d.invalidLog.allow(len(res.Invalid)); ok {
		x := res.Invalid[0]
		d.log.Warn("dropped what a member sent that client input could not hold; applied the rest", "member", member, "kind", kind,
			"client", x.ClientID, "service", x.Service.String(), "part", x.Part, "error", x.Err,
			"in_message", len(res.Invalid), "dropped_since_last_line", n)
	}
}

// noteRefused counts and logs the clients a member's message of kind named
// that it may not change.
func (d *Distro) noteRefused(member, kind string, refused []naming.RefusedClient) {
	if len(refused) == 0 {
		return
	}
	for _, r := range refused {
		d.metrics.refused.WithLabelValues(string(r.Reason)).Inc()
	}
	if ok, n := d.refusedLog.allow(len(refused)); ok {
		r := refused[0]
		d.log.Warn("refused clients a member may not change", "member", member, "kind", kind,
			"client", r.ID, "reason", string(r.Reason), "owner", r.Owner,
			"in_message", len(refused), "refused_since_last_line", n)
	}
}
