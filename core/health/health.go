// Package health is the beat checker: it expires what the HTTP API's clients
// stop renewing. An instance registered over HTTP lives by its beats: it is
// marked unhealthy once it has not beaten for its heartbeat timeout
// (preserved.heart.beat.timeout, 15 s) and removed after its delete timeout
// (preserved.ip.delete.timeout, 30 s); a UDP subscriber's subscription lapses
// the registry's UDP subscriber TTL (push.udp.expiry) after its last poll. Each change goes through the
// registry, which pushes it to the subscribers of both protocols.
package health

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/naming"
)

// Defaults for what a Config leaves zero.
const (
	DefaultInterval         = time.Second
	DefaultMaxChecksPerTick = 10000
)

// Config configures a Checker.
type Config struct {
	Registry *naming.Registry
	// Interval is how often the checker runs.
	Interval time.Duration
	// MaxChecksPerTick bounds the clients one run checks; the others wait
	// for the next runs, which go on where this one stopped.
	MaxChecksPerTick int
	// Owns reports whether this node is responsible for a client's beats
	// (in a cluster, forward.Forwarder.Responsible: the node rendezvous
	// hashing picks for the client); nil means every HTTP client of this
	// node. A client of this node it does not own is not beat-checked here:
	// it is being handed over to its owner, which checks it once it has it.
	// A UDP subscription lapses on the node it was polled on, owned or not.
	Owns func(clientID string) bool
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// Ticks, when set, replaces the ticker of Interval (for tests): each
	// value received runs one check.
	Ticks   <-chan time.Time
	Logger  hclog.Logger
	Metrics prometheus.Registerer // none when nil
}

// Checker runs the checks on a ticker, from Start to Stop.
type Checker struct {
	cfg Config

	// queue holds the clients of the current round still to check; a round
	// is one snapshot of the registry's HTTP clients.
	queue []string

	unhealthy, expired, lapsed prometheus.Counter

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex // guards queue between Check calls
}

// New returns a checker that is not running yet.
func New(cfg Config) (*Checker, error) {
	if cfg.Registry == nil {
		return nil, errors.New("health: no registry")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxChecksPerTick <= 0 {
		cfg.MaxChecksPerTick = DefaultMaxChecksPerTick
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c := &Checker{
		cfg: cfg,
		unhealthy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_health_instances_unhealthy_total",
			Help: "HTTP clients' instances marked unhealthy for want of beats.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_health_instances_expired_total",
			Help: "HTTP clients' instances removed for want of beats.",
		}),
		lapsed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_health_subscriptions_expired_total",
			Help: "UDP subscriptions of the HTTP API removed for want of polls.",
		}),
	}
	if cfg.Metrics != nil {
		for _, m := range []prometheus.Collector{c.unhealthy, c.expired, c.lapsed} {
			if err := cfg.Metrics.Register(m); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Start runs the checks until Stop.
func (c *Checker) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.done = make(chan struct{})
	ticks := c.cfg.Ticks
	var ticker *time.Ticker
	if ticks == nil {
		ticker = time.NewTicker(c.cfg.Interval)
		ticks = ticker.C
	}
	go func() {
		defer close(c.done)
		if ticker != nil {
			defer ticker.Stop()
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticks:
				c.Check(ctx)
			}
		}
	}()
	return nil
}

// Stop ends the checks and waits for a run in progress, until ctx is done.
func (c *Checker) Stop(ctx context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Check runs one tick's work: it checks up to MaxChecksPerTick clients, going
// on with the current round, and starting a new one (at most once per call)
// when that is done.
func (c *Checker) Check(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	refilled := false
	for budget := c.cfg.MaxChecksPerTick; budget > 0 && ctx.Err() == nil; budget-- {
		if len(c.queue) == 0 {
			if refilled {
				return
			}
			c.queue, refilled = c.cfg.Registry.HTTPClients(), true
			if len(c.queue) == 0 {
				c.queue = nil
				return
			}
		}
		id := c.queue[len(c.queue)-1]
		c.queue = c.queue[:len(c.queue)-1]
		c.checkClient(ctx, id, now, c.cfg.Owns == nil || c.cfg.Owns(id))
	}
}

// checkClient applies the beat rules to one client, as Nacos's
// UnhealthyInstanceChecker and ExpiredInstanceChecker do: past its delete
// timeout an instance goes; past its heartbeat timeout a healthy one is
// marked unhealthy. Each action applies only if no beat came meanwhile.
// The beats are checked only when this node owns the client (Config.Owns).
func (c *Checker) checkClient(ctx context.Context, id string, now time.Time, owns bool) {
	state, ok := c.cfg.Registry.HTTPClient(id)
	if !ok {
		return
	}
	if !owns {
		state.Beats = nil
	}
	for _, b := range state.Beats {
		_, timeout, deleteTimeout := b.Instance.Heartbeat()
		silent := now.Sub(b.Last)
		switch {
		case silent > deleteTimeout:
			gone, err := c.cfg.Registry.ExpireInstance(ctx, id, b.Service, b.Last)
			if err != nil {
				c.cfg.Logger.Warn("removing an instance without beats", "client", id, "service", b.Service.String(), "error", err)
			} else if gone {
				c.expired.Inc()
				c.cfg.Logger.Info("removed an instance without beats", "client", id, "service", b.Service.String(),
					"silent", silent.Round(time.Millisecond))
			}
		case silent > timeout && b.Instance.Healthy:
			changed, err := c.cfg.Registry.SetHealthy(ctx, id, b.Service, false, b.Last)
			if err != nil {
				c.cfg.Logger.Warn("marking an instance unhealthy", "client", id, "service", b.Service.String(), "error", err)
			} else if changed {
				c.unhealthy.Inc()
				c.cfg.Logger.Info("instance unhealthy: no beats", "client", id, "service", b.Service.String(),
					"silent", silent.Round(time.Millisecond))
			}
		}
	}
	for _, l := range state.Leases {
		if !now.After(l.Expires) {
			continue
		}
		gone, err := c.cfg.Registry.ExpireSubscription(ctx, id, l.Service, l.Expires)
		if err != nil {
			c.cfg.Logger.Warn("removing a lapsed UDP subscription", "client", id, "service", l.Service.String(), "error", err)
		} else if gone {
			c.lapsed.Inc()
		}
	}
}
