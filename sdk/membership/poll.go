package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Poller is a Provider that reads a member list in the cluster.conf format
// (ParseClusterConf) from a source — a file, an address server — every
// Interval. The built-in file and address-server providers are Pollers; a
// provider of another source can be one too.
//
// It keeps the contract of Watch the way Nacos's member lookups do:
//   - the first list comes after the first read; until a read succeeds,
//     the list is the node alone;
//   - a read that fails, or whose list is empty (an empty file or answer,
//     only comments, only malformed entries), keeps the last good list: the
//     failure is logged once (and its recovery), never fatal;
//   - a malformed entry is logged with its line and skipped, once for each
//     new content of the source;
//   - a bare ip means the port of the node's own address (self);
//   - the node itself is always in the list, added with a warning when the
//     source leaves it out;
//   - update is called only when the list changes.
//
// Watch may be called again, or concurrently: each call polls on its own.
type Poller struct {
	// Read returns the source's current content. Its context ends when
	// Watch's does; Read bounds its own time otherwise.
	Read func(ctx context.Context) ([]byte, error)
	// Interval is the time between reads.
	Interval time.Duration
	// Source names the source in log lines (a path, a URL).
	Source string
	// Logger receives the problems; nil discards them.
	Logger hclog.Logger
}

// Watch implements Provider.
func (p *Poller) Watch(ctx context.Context, self string, update func(members []string)) error {
	me, err := ParseAddress(self, DefaultPort)
	if err != nil {
		return fmt.Errorf("this node's address: %w", err)
	}
	if p.Read == nil {
		return errors.New("the poller has nothing to read (Poller.Read is nil)")
	}
	if p.Interval <= 0 {
		return fmt.Errorf("the poller's interval %v is not positive", p.Interval)
	}
	w := &pollWatch{Poller: p, me: me, logger: p.Logger, good: []string{me}}
	if w.logger == nil {
		w.logger = hclog.NewNullLogger()
	}
	w.logger = w.logger.With("source", p.Source)
	w.refresh(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	reported := w.good
	update(reported)
	ticker := time.NewTicker(p.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		w.refresh(ctx)
		if ctx.Err() == nil && !slices.Equal(w.good, reported) {
			reported = w.good
			update(reported)
		}
	}
}

// pollWatch is the state of one Watch of a Poller.
type pollWatch struct {
	*Poller
	me     string // the node's own canonical address
	logger hclog.Logger

	good    []string // the last good list, self included
	text    []byte   // the last content read...
	read    bool     // ...if any
	failing string   // the error of the last read, if it failed
}

// refresh reads the source and updates the last good list from it.
func (w *pollWatch) refresh(ctx context.Context) {
	text, err := w.Read(ctx)
	if ctx.Err() != nil {
		return // Watch is ending: whatever happened is no news
	}
	if err != nil {
		if msg := err.Error(); msg != w.failing {
			w.failing = msg
			w.logger.Warn("cannot read the member list; keeping the last good one", "error", err, "members", w.good)
		} else {
			w.logger.Debug("still cannot read the member list", "error", err)
		}
		return
	}
	if w.failing != "" {
		w.failing = ""
		w.logger.Info("the member list can be read again")
	}
	if w.read && bytes.Equal(text, w.text) {
		return
	}
	w.text, w.read = bytes.Clone(text), true
	members, malformed := ParseClusterConf(text, portOf(w.me))
	for _, err := range malformed {
		w.logger.Warn("skipping a malformed entry of the member list", "error", err)
	}
	if len(members) == 0 {
		w.logger.Warn("the member list is empty; keeping the last good one", "members", w.good)
		return
	}
	list, added := WithSelf(members, w.me)
	if added {
		w.logger.Warn("this node is not in the member list; counting it in, as Nacos does", "self", w.me, "members", list)
	}
	w.good = list
}
