package remote

import (
	"container/list"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// clientErrorInterval is how often the same error of the same client is
// logged at most: its first occurrence at once, then one line an interval
// saying how many were left out meanwhile.
const clientErrorInterval = time.Minute

// maxClientErrors bounds the (client, error) pairs remembered. Clients
// choose both, so the oldest pair is forgotten to make room for a new one
// (and logged afresh if it comes back).
const maxClientErrors = 1024

// clientErrors logs, at warn, the errors clients cause — a request refused
// or failed, a connection setup refused, a connection closed for a limit —
// without letting one client that repeats its mistake flood the log.
type clientErrors struct {
	log      hclog.Logger
	interval time.Duration
	max      int
	now      func() time.Time
	// suppressed counts the lines left out; evicted the pairs forgotten
	// for room.
	suppressed, evicted prometheus.Counter

	mu    sync.Mutex
	pairs map[string]*list.Element // of *clientError, by key
	order *list.List               // most recently logged or seen first
}

// clientError is one client's one error: when it was last logged, and how
// often it came since.
type clientError struct {
	key        string
	lastLogged time.Time
	suppressed int
}

func newClientErrors(log hclog.Logger, suppressed, evicted prometheus.Counter) *clientErrors {
	return &clientErrors{log: log, interval: clientErrorInterval, max: maxClientErrors, now: time.Now,
		suppressed: suppressed, evicted: evicted, pairs: make(map[string]*list.Element), order: list.New()}
}

// report logs msg with args at warn for client (its IP address) and the
// error what (such as "InstanceRequest 400"), unless that pair was logged
// less than an interval ago; a line that follows left-out ones says how
// many ("suppressed").
func (e *clientErrors) report(client, what, msg string, args ...any) {
	key := client + "\x00" + what
	now := e.now()
	e.mu.Lock()
	el, seen := e.pairs[key]
	var left int
	switch {
	case !seen:
		if e.order.Len() >= e.max {
			oldest := e.order.Back()
			delete(e.pairs, e.order.Remove(oldest).(*clientError).key)
			e.evicted.Inc()
		}
		e.pairs[key] = e.order.PushFront(&clientError{key: key, lastLogged: now})
	case now.Sub(el.Value.(*clientError).lastLogged) < e.interval:
		el.Value.(*clientError).suppressed++
		e.order.MoveToFront(el)
		e.mu.Unlock()
		e.suppressed.Inc()
		return
	default:
		ce := el.Value.(*clientError)
		left, ce.suppressed, ce.lastLogged = ce.suppressed, 0, now
		e.order.MoveToFront(el)
	}
	e.mu.Unlock()
	args = append([]any{"client", client}, args...)
	if left > 0 {
		args = append(args, "suppressed", left, "suppressed_over", e.interval)
	}
	e.log.Warn(msg, args...)
}

// clientIP returns the IP address of a client: the host of addr (its
// ip:port), or, without one, the IP address in a Nacos connection id
// (<unixMillis>_<ip>_<port>), or else the id itself.
func clientIP(addr, connectionID string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	if _, rest, ok := strings.Cut(connectionID, "_"); ok {
		if i := strings.LastIndexByte(rest, '_'); i > 0 {
			return rest[:i]
		}
	}
	return connectionID
}
