// Command faulty is a cluster transport plugin for the fault suite: the
// built-in grpctransport, wrapped so that a control file can break, black-hole
// or slow down the links to chosen peers, in either direction, while the
// cluster runs.
//
// Faults are injected here, at the transport plugin, rather than with a TCP
// proxy: members address each other by HTTP address and dial HTTP port +
// 1001, so a proxy cannot sit on one link without renumbering the node. The
// plugin sees who each message is for (a call's target) and whom it is from
// (the from of what the host's Inbound is handed), so one link, one
// direction, can fail alone.
//
// Its configuration:
//
//	plugins {
//	  faulty {
//	    path   = "/path/to/faulty"
//	    config { control = "/path/to/control" }   # dial_timeout and max_message_size go to grpctransport
//	  }
//	}
//
// The control file is read again whenever its modification time or size
// changes (a stat per message); a missing or empty file means no faults. One
// rule a line, # starts a comment:
//
//	PEER DIRECTION FAULT [DURATION]
//
// PEER is a member's HTTP address host:port, as the member list names it (its
// cluster address, port + 1001, matches too), or * for every peer. DIRECTION
// is out (calls this node makes to the peer, snapshots it loads from the
// peer), in (calls the peer makes to this node, snapshots the peer loads from
// it) or both. FAULT is one of
//
//	drop            the message fails at once with an error wrapping
//	                transport.ErrUnreachable, as a refused connection does
//	blackhole       the message is held until its context ends (the
//	                caller's deadline), then fails with the context's error
//	delay DURATION  the message waits DURATION (bounded by its context), then
//	                goes through
//
// The first rule that matches a message's peer and direction applies. A file
// that does not parse is reported in the log and leaves the rules as they
// were.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/plugins/grpctransport"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/transport"
)

// clusterPortOffset is how far a member's cluster port is from its HTTP port.
const clusterPortOffset = 1001

func main() {
	transport.Serve(transport.Plugin{
		Info: sdk.Info{Name: "faulty", Version: "1.0.0", Config: append(sdk.Schema{
			{Key: "control", Type: sdk.String, Required: true, Description: "the control file listing link faults"},
		}, grpctransport.Plugin.Config...)},
		New: newTransport,
	})
}

func newTransport(config []byte, host transport.Host) (transport.Transport, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(config, &all); err != nil {
		return nil, fmt.Errorf("faulty configuration: %w", err)
	}
	var control string
	if err := json.Unmarshal(all["control"], &control); err != nil || control == "" {
		return nil, fmt.Errorf("faulty configuration: control must name a file (%v)", err)
	}
	delete(all, "control")
	rest, err := json.Marshal(all)
	if err != nil {
		return nil, err
	}
	logger := host.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	f := &faults{path: control, log: logger}
	host.Inbound = &inbound{inner: host.Inbound, faults: f}
	inner, err := grpctransport.Plugin.New(rest, host)
	if err != nil {
		return nil, err
	}
	return &faultyTransport{inner: inner, faults: f}, nil
}

// faultyTransport is grpctransport with the faults applied to what it sends.
type faultyTransport struct {
	inner  transport.Transport
	faults *faults
}

func (t *faultyTransport) Listen(ctx context.Context, address, self string) error {
	return t.inner.Listen(ctx, address, self)
}

func (t *faultyTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	if err := t.faults.apply(ctx, dirOut, target); err != nil {
		return nil, err
	}
	return t.inner.Call(ctx, target, kind, payload)
}

func (t *faultyTransport) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	if err := t.faults.apply(ctx, dirOut, target); err != nil {
		return err
	}
	return t.inner.Snapshot(ctx, target, fn)
}

func (t *faultyTransport) Close() error { return t.inner.Close() }

// inbound is the host's Inbound with the faults applied to what peers send.
type inbound struct {
	inner  transport.Inbound
	faults *faults
}

func (in *inbound) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	if err := in.faults.apply(ctx, dirIn, from); err != nil {
		return nil, err
	}
	return in.inner.Handle(ctx, from, kind, payload)
}

func (in *inbound) Snapshot(ctx context.Context, from string, fn func([]byte) error) error {
	if err := in.faults.apply(ctx, dirIn, from); err != nil {
		return err
	}
	return in.inner.Snapshot(ctx, from, fn)
}

// direction is which way a message goes, seen from this node.
type direction int

const (
	dirOut direction = 1 << iota
	dirIn
	dirBoth = dirOut | dirIn
)

// kind is what a rule does to a message.
type kind int

const (
	drop kind = iota
	blackhole
	delay
)

type rule struct {
	peer  string // an HTTP address, or *
	dir   direction
	fault kind
	delay time.Duration
}

// matches reports whether the rule applies to a message going dir to or from
// peer (a cluster address for dirOut, an HTTP address for dirIn).
func (r rule) matches(dir direction, peer string) bool {
	if r.dir&dir == 0 {
		return false
	}
	if r.peer == "*" || r.peer == peer {
		return true
	}
	// The other form of the peer's address.
	host, port, err := net.SplitHostPort(peer)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	if dir == dirOut {
		p -= clusterPortOffset
	} else {
		p += clusterPortOffset
	}
	return r.peer == net.JoinHostPort(host, strconv.Itoa(p))
}

// faults is the control file's rules, read again when the file changes.
type faults struct {
	path string
	log  hclog.Logger

	mu      sync.Mutex
	modTime time.Time
	size    int64
	exists  bool
	rules   []rule
}

// current returns the rules in force.
func (f *faults) current() []rule {
	st, err := os.Stat(f.path)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err != nil && errors.Is(err, os.ErrNotExist):
		if f.exists {
			f.exists, f.rules = false, nil
			f.log.Info("control file gone: no faults")
		}
		return nil
	case err != nil:
		f.log.Warn("reading the control file", "error", err)
		return f.rules
	case f.exists && st.ModTime().Equal(f.modTime) && st.Size() == f.size:
		return f.rules
	}
	body, err := os.ReadFile(f.path)
	if err != nil {
		f.log.Warn("reading the control file", "error", err)
		return f.rules
	}
	rules, err := parse(body)
	if err != nil {
		f.log.Error("the control file does not parse; the rules stay as they were", "error", err)
	} else {
		f.rules = rules
		f.log.Info("faults now in force", "rules", len(rules), "file", strings.TrimSpace(string(body)))
	}
	f.exists, f.modTime, f.size = true, st.ModTime(), st.Size()
	return f.rules
}

// apply does to a message going dir to or from peer what the first matching
// rule says; a nil error lets the message through.
func (f *faults) apply(ctx context.Context, dir direction, peer string) error {
	for _, r := range f.current() {
		if !r.matches(dir, peer) {
			continue
		}
		switch r.fault {
		case drop:
			return fmt.Errorf("%w: %s: dropped by the fault plan", transport.ErrUnreachable, peer)
		case blackhole:
			<-ctx.Done()
			return ctx.Err()
		case delay:
			timer := time.NewTimer(r.delay)
			defer timer.Stop()
			select {
			case <-timer.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func parse(body []byte) ([]rule, error) {
	var rules []rule
	sc := bufio.NewScanner(bytes.NewReader(body))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		r, err := parseRule(fields)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

func parseRule(fields []string) (rule, error) {
	if len(fields) < 3 {
		return rule{}, errors.New("want PEER DIRECTION FAULT [DURATION]")
	}
	r := rule{peer: fields[0]}
	if r.peer != "*" {
		if _, _, err := net.SplitHostPort(r.peer); err != nil {
			return rule{}, fmt.Errorf("peer %q: %w", r.peer, err)
		}
	}
	switch fields[1] {
	case "out":
		r.dir = dirOut
	case "in":
		r.dir = dirIn
	case "both":
		r.dir = dirBoth
	default:
		return rule{}, fmt.Errorf("direction %q: want out, in or both", fields[1])
	}
	args := 3
	switch fields[2] {
	case "drop":
		r.fault = drop
	case "blackhole":
		r.fault = blackhole
	case "delay":
		if len(fields) < 4 {
			return rule{}, errors.New("delay needs a duration")
		}
		d, err := time.ParseDuration(fields[3])
		if err != nil || d < 0 {
			return rule{}, fmt.Errorf("delay %q: want a duration such as 200ms", fields[3])
		}
		r.fault, r.delay, args = delay, d, 4
	default:
		return rule{}, fmt.Errorf("fault %q: want drop, blackhole or delay", fields[2])
	}
	if len(fields) > args {
		return rule{}, fmt.Errorf("unexpected %q", strings.Join(fields[args:], " "))
	}
	return r, nil
}
