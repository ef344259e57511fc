package forward

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sextantd/sextant/core/naming"
)

// Op is what a write does.
type Op string

// The writes of an HTTP client.
const (
	Register   Op = "register"
	Deregister Op = "deregister"
	Update     Op = "update"
	Beat       Op = "beat"
)

// Write is one write of an HTTP client, as the HTTP API parsed it: what is
// forwarded, and applied on the responsible node.
type Write struct {
	Op      Op
	Service naming.Service
	// Instance is the instance registered (Register); for the others it
	// names one by IP and Port (and, for Update, Cluster).
	Instance naming.Instance
	// Update is what an Update changes.
	Update naming.InstanceUpdate
	// Body is the instance a beat's body describes, registered again when
	// the beat finds none; nil for a light beat.
	Body *naming.Instance
}

// ClientID is the id of the HTTP client the write is of.
func (w Write) ClientID() string { return naming.HTTPClientID(w.Instance.IP, w.Instance.Port) }

// Result is what a write did.
type Result struct {
	// Instance is, for a Beat, the instance beaten (or registered again
	// from the body).
	Instance naming.Instance
	// Found is, for a Beat, false when there was no instance and no body to
	// register it again with (Nacos answers code 20404; the client
	// registers again).
	Found bool
}

// Apply applies w on the node responsible for its client: here, or
// forwarded there. The error is the responsible node's (a
// *naming.InvalidError, naming.ErrInstanceNotFound...), or an
// *UnavailableError when it cannot be reached or is not responsible yet.
func (f *Forwarder) Apply(ctx context.Context, w Write) (Result, error) {
	switch w.Op {
	case Register, Deregister, Update, Beat:
	default:
		return Result{}, fmt.Errorf("%w %q", ErrUnknownOp, w.Op)
	}
	if !f.clustered() {
		return f.applyLocal(ctx, w)
	}
	id := w.ClientID()
	owner := f.cfg.Members.Owner(id)
	if w.Op == Update && owner != f.self {
		// An update also reaches the instances of this node's connections
		// (as it always did), unless an HTTP client holds the address.
		if _, held := f.reg.ClientOwner(id); !held {
			res, err := f.applyLocal(ctx, w)
			if !errors.Is(err, naming.ErrInstanceNotFound) {
				f.metrics.writes.WithLabelValues(string(w.Op), "local").Inc()
				return res, err
			}
		}
	}
	if owner == f.self {
		f.metrics.writes.WithLabelValues(string(w.Op), "local").Inc()
		return f.applyResponsible(ctx, w)
	}
	res, err := f.forwardSettled(ctx, owner, w)
	var unavailable *UnavailableError
	if errors.As(err, &unavailable) {
		f.metrics.writes.WithLabelValues(string(w.Op), "unavailable").Inc()
	} else {
		f.metrics.writes.WithLabelValues(string(w.Op), "forwarded").Inc()
	}
	return res, err
}

// Waits between sends of a write whose responsible node, as this node sees
// it, saw another responsible: doubled from the first up to the last.
const (
	firstResettle = 50 * time.Millisecond
	lastResettle  = 400 * time.Millisecond
)

// forwardSettled forwards w to owner and, while the node it reaches sees
// another node responsible (views of the membership converge within a
// health report interval) or it cannot be reached (a node restarting, or
// dying: it is DOWN within a few reports, and another responsible), asks
// again whichever node this node then sees responsible, for up to
// CallTimeout: so that a client is not refused for a moment's change. It
// applies w here if this node becomes responsible meanwhile.
func (f *Forwarder) forwardSettled(ctx context.Context, owner string, w Write) (Result, error) {
	deadline := time.Now().Add(f.cfg.CallTimeout)
	wait := firstResettle
	for {
		res, err := f.forward(ctx, owner, w)
		var unavailable *UnavailableError
		if !errors.As(err, &unavailable) || !unavailable.resend || time.Now().Add(wait).After(deadline) {
			return res, err
		}
		f.metrics.resent.Inc()
		select {
		case <-ctx.Done():
			return res, err
		case <-time.After(wait):
		}
		wait = min(2*wait, lastResettle)
		if owner = f.cfg.Members.Owner(w.ClientID()); owner == f.self {
			return f.applyResponsible(ctx, w)
		}
	}
}

// applyResponsible applies w on this node, responsible for its client: the
// client is taken over first if another node holds it.
func (f *Forwarder) applyResponsible(ctx context.Context, w Write) (Result, error) {
	id := w.ClientID()
	unlock, err := f.locks.lock(ctx, id)
	if err != nil {
		return Result{}, &UnavailableError{ClientID: id, Node: f.self, Reason: "is busy with it"}
	}
	defer unlock()
	if err := f.takeOver(ctx, id); err != nil {
		return Result{}, err
	}
	res, err := f.applyLocal(ctx, w)
	var owned *naming.OwnedElsewhereError
	if errors.As(err, &owned) { // held elsewhere again meanwhile
		return res, &UnavailableError{ClientID: id, Node: f.self, Reason: "is taking it over from node " + owned.Owner}
	}
	return res, err
}

// applyLocal applies w to this node's registry.
func (f *Forwarder) applyLocal(ctx context.Context, w Write) (Result, error) {
	ip, port := w.Instance.IP, w.Instance.Port
	switch w.Op {
	case Register:
		return Result{}, f.reg.RegisterHTTP(ctx, "", w.Service, w.Instance)
	case Deregister:
		return Result{}, f.reg.DeregisterHTTP(ctx, w.Service, ip, port)
	case Update:
		return Result{}, f.reg.UpdateInstance(ctx, w.Service, ip, port, w.Instance.Cluster, w.Update)
	case Beat:
		in, found, err := f.reg.BeatHTTP(ctx, w.Service, ip, port)
		if err != nil || found {
			return Result{Instance: in, Found: found}, err
		}
		if w.Body == nil {
			return Result{}, nil
		}
		if err := f.reg.RegisterHTTP(ctx, "beat", w.Service, *w.Body); err != nil {
			return Result{}, err
		}
		return Result{Instance: *w.Body, Found: true}, nil
	}
	return Result{}, fmt.Errorf("%w %q", ErrUnknownOp, w.Op)
}

// forward sends w to owner and returns its answer.
func (f *Forwarder) forward(ctx context.Context, owner string, w Write) (Result, error) {
	id := w.ClientID()
	start := time.Now()
	var ans answer
	err := f.call(ctx, owner, message{Op: opWrite, Write: writeToWire(w)}, f.cfg.CallTimeout, &ans)
	f.metrics.forwardSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return Result{}, &UnavailableError{ClientID: id, Node: owner, Reason: "cannot be reached: " + err.Error(), resend: true}
	}
	if ans.Error != nil {
		return Result{}, ans.Error.err(id, owner)
	}
	if ans.Result == nil {
		return Result{}, &UnavailableError{ClientID: id, Node: owner, Reason: "answered nothing"}
	}
	return Result{Instance: ans.Result.Instance.instance(), Found: ans.Result.Found}, nil
}

// serveWrite applies a write a member forwarded.
func (f *Forwarder) serveWrite(ctx context.Context, from string, ww *wireWrite) answer {
	w, err := ww.write()
	if err != nil {
		f.metrics.received.WithLabelValues("invalid", "refused").Inc()
		return answer{Error: errorToWire(err)}
	}
	op := string(w.Op)
	id := w.ClientID()
	if owner := f.cfg.Members.Owner(id); owner != f.self {
		f.metrics.received.WithLabelValues(op, "not_responsible").Inc()
		return answer{Error: &wireError{Kind: errNotResponsible, Owner: owner}}
	}
	res, err := f.applyResponsible(ctx, w)
	if err != nil {
		var unavailable *UnavailableError
		if errors.As(err, &unavailable) {
			f.metrics.received.WithLabelValues(op, "unavailable").Inc()
			f.log.Debug("a forwarded write cannot be applied now", "from", from, "client", id, "error", err)
		} else {
			f.metrics.received.WithLabelValues(op, "refused").Inc()
		}
		return answer{Error: errorToWire(err)}
	}
	f.metrics.received.WithLabelValues(op, "ok").Inc()
	return answer{Result: &wireResult{Instance: instanceToWire(res.Instance), Found: res.Found}}
}
