// Package pushudp is the built-in executor for the subscribers of the HTTP
// API: Nacos 1.x clients that poll instance/list with a udpPort and listen
// there for pushes. It sends each target one UDP datagram as those clients
// read it — {"type":"dom","data":"<ServiceInfo>","lastRefTime":N}, gzipped
// when over 1 KiB — and waits for the client's push-ack, resending an
// unacknowledged datagram on a short schedule. It is written against sdk
// alone, like any third party's plugin.
//
// The executor owns one UDP socket, on which it sends and receives the acks;
// Close releases it.
package pushudp

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/ipv4"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

// The defaults of the configuration.
const (
	// DefaultBind is where the socket listens: any address, any port.
	DefaultBind = ":0"
	// DefaultMaxPending bounds the acks awaited at once.
	DefaultMaxPending = 65536
)

// DefaultRetryDelays returns the default of retry_delays: the times after a
// push's first send at which an unacknowledged datagram is sent again.
func DefaultRetryDelays() []string { return []string{"100ms", "500ms", "2s"} }

// The wire's sizes.
const (
	// GzipOver is the size of a push's JSON over which it is gzipped, as the
	// Nacos server does; clients recognise gzip by its magic bytes 1F 8B.
	GzipOver = 1024
	// MaxDatagram is the most a UDP datagram over IPv4 can carry. A push
	// larger than that, gzipped, cannot be sent: its targets fail.
	MaxDatagram = 65507
	// GoV1ReadSize is what the Nacos Go SDK v1 reads of a datagram: a larger
	// push reaches it truncated, and it neither applies nor acknowledges it.
	// (The Java client reads 64 KiB.) Such pushes are counted in OverGoV1.
	GoV1ReadSize = 4024
	// MaxInbound bounds a datagram the socket accepts (an ack, a dump
	// request); a larger one is dropped and counted in Oversized.
	MaxInbound = 4096
	// MaxDumpServices bounds the services whose last push a dump reports;
	// beyond it, the one pushed longest ago is forgotten.
	MaxDumpServices = 1024
)

// ReadBuffer is the receive buffer the socket asks the system for, so that a
// burst of acks (one per target of a large batch) is not dropped.
const ReadBuffer = 4 << 20

// dumpInterval spaces the answers to dump requests, which are far larger
// than the requests: the socket must not be a reflector.
const dumpInterval = 100 * time.Millisecond

// ignoredLogInterval spaces the log lines about ignored datagrams.
const ignoredLogInterval = 10 * time.Second

// Plugin is the executor as a push plugin serving the udp role.
var Plugin = push.Plugin{
	Info: sdk.Info{
		Name:    "pushudp",
		Version: "1.0.0",
		Config: sdk.Schema{
			{Key: "bind", Type: sdk.String, Description: "the UDP address the plugin sends pushes from and receives " +
				"acks on, host:port (default \":0\": every address, a port the system picks)"},
			{Key: "retry_delays", Type: sdk.StringList, Description: "when an unacknowledged push is sent again, as " +
				"increasing durations after its first send; the last one waits as long again as the step before it, " +
				"then the target fails (default [\"100ms\", \"500ms\", \"2s\"])"},
			{Key: "max_pending", Type: sdk.Int, Description: "the most acks awaited at once; a target over it fails " +
				"at once (default 65536)"},
		},
	},
	Role: push.RoleUDP,
	New: func(raw []byte, host push.Host) (push.Executor, error) {
		cfg := Config{Bind: DefaultBind, MaxPending: DefaultMaxPending}
		if len(bytes.TrimSpace(raw)) == 0 {
			raw = []byte("{}")
		}
		if err := sdk.DecodeConfig(raw, &cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if cfg.RetryDelays == nil { // not given (decoding into the defaults would overwrite them)
			cfg.RetryDelays = DefaultRetryDelays()
		}
		return New(cfg, host.Logger)
	},
}

// Config is the plugin's configuration block.
type Config struct {
	// Bind is the address the socket listens on.
	Bind string `json:"bind"`
	// RetryDelays are the times after a push's first send at which it is
	// sent again if unacknowledged, as durations ("100ms"), increasing. The
	// target fails once the last one is past by as long again as the step
	// before it.
	RetryDelays []string `json:"retry_delays"`
	// MaxPending bounds the acks awaited at once.
	MaxPending int `json:"max_pending"`
}

// Executor pushes to UDP subscribers from one socket.
type Executor struct {
	conn       *net.UDPConn
	batch      batchConn // conn, sending and reading many datagrams a system call; nil if unsupported
	logger     hclog.Logger
	resends    []time.Duration // after the first send, increasing
	giveUp     time.Duration   // after the first send
	maxPending int

	lastRef  atomic.Int64
	counters counters

	mu      sync.Mutex
	pending int               // the acks awaited, over all flights
	flights map[int64]*flight // the batches awaiting acks, by lastRefTime
	dumped  map[string]dumped // the last ServiceInfo pushed, by service key
	seq     uint64            // of the last entry of dumped

	dumpEvery   time.Duration // the least time between two dump answers
	lastDump    atomic.Int64  // unix nanoseconds of the last dump answered
	lastIgnored atomic.Int64  // unix nanoseconds of the last log line about ignored datagrams
	ignored     atomic.Int64  // ignored datagrams since that line

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
	readDone  chan struct{}
}

// flight is one batch awaiting acks.
type flight struct {
	ref     int64
	addrs   []netip.AddrPort         // the targets' addresses, each once; read-only once registered
	index   map[netip.AddrPort]int32 // the place of each in addrs; read-only once registered
	targets []int32                  // how many targets each address stands for
	state   []uint8                  // of each address, guarded by Executor.mu
	left    int                      // acks awaited, guarded by Executor.mu
	done    chan struct{}            // closed when left reaches 0
}

// The states of a flight's address.
const (
	unsent  uint8 = iota // not sent (over max_pending): an ack from it is foreign
	awaited              // sent, its ack awaited
	settled              // acknowledged, or given up
)

// dumped is a service's last push, for dump requests.
type dumped struct {
	info []byte
	seq  uint64
}

// New returns an executor listening on cfg.Bind; it logs the address it
// bound. Close it to release the socket.
func New(cfg Config, logger hclog.Logger) (*Executor, error) {
	return open(cfg, logger, dumpInterval)
}

// open is New, answering dump requests dumpEvery apart at the least.
func open(cfg Config, logger hclog.Logger, dumpEvery time.Duration) (*Executor, error) {
	return openBatching(cfg, logger, dumpEvery, true)
}

// openBatching is open, sending and reading a datagram a system call if
// not batching (as where the system has no sendmmsg).
func openBatching(cfg Config, logger hclog.Logger, dumpEvery time.Duration, batching bool) (*Executor, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	resends, giveUp, err := schedule(cfg.RetryDelays)
	if err != nil {
		return nil, fmt.Errorf("config.retry_delays: %w", err)
	}
	if cfg.MaxPending < 1 {
		return nil, fmt.Errorf("config.max_pending: %d is not positive", cfg.MaxPending)
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("config.bind: %w", err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("config.bind: %w", err)
	}
	// A batch's acks come back in a burst; the system caps the buffer at
	// its own maximum (net.core.rmem_max on Linux).
	_ = conn.SetReadBuffer(ReadBuffer)
	e := &Executor{
		conn:       conn,
		batch:      newBatchConn(conn, batching),
		logger:     logger,
		resends:    resends,
		giveUp:     giveUp,
		maxPending: cfg.MaxPending,
		dumpEvery:  dumpEvery,
		flights:    make(map[int64]*flight),
		dumped:     make(map[string]dumped),
		closed:     make(chan struct{}),
		readDone:   make(chan struct{}),
	}
	go e.read()
	logger.Info("pushing to UDP subscribers", "address", conn.LocalAddr().String(), "retry_delays", fmt.Sprint(resends),
		"give_up_after", giveUp.String(), "max_pending", cfg.MaxPending)
	return e, nil
}

// schedule parses retry_delays: the resends' times after the first send, and
// when the target fails — after the last resend, as long again as the step
// before it (with ["10s"], Nacos's schedule: resend at 10s, fail at 20s).
func schedule(delays []string) ([]time.Duration, time.Duration, error) {
	if len(delays) == 0 {
		return nil, 0, errors.New("give at least one delay")
	}
	resends := make([]time.Duration, len(delays))
	var prev time.Duration
	for i, s := range delays {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			return nil, 0, fmt.Errorf("item %d: %q is not a duration", i, s)
		case d <= 0:
			return nil, 0, fmt.Errorf("item %d: %v is not positive", i, d)
		case d <= prev:
			return nil, 0, fmt.Errorf("item %d: %v is not after %v; give increasing times after the first send", i, d, prev)
		}
		resends[i], prev = d, d
	}
	last := resends[len(resends)-1]
	step := last
	if len(resends) > 1 {
		step = last - resends[len(resends)-2]
	}
	return resends, last + step, nil
}

// Addr returns the address of the executor's socket.
func (e *Executor) Addr() netip.AddrPort {
	return e.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close releases the socket; pushes in flight fail. It logs the counters.
func (e *Executor) Close() error {
	e.closeOnce.Do(func() {
		close(e.closed)
		e.closeErr = e.conn.Close()
		<-e.readDone
		e.logger.Info("stopped pushing to UDP subscribers", e.Counters().keyValues()...)
	})
	return e.closeErr
}

// errClosed fails the targets of a push while or after the executor closes.
var errClosed = errors.New("pushudp: the executor is closed")

// Push sends b's data to every target's address, and returns once each has
// acknowledged or failed; one error per target.
func (e *Executor) Push(ctx context.Context, b push.Batch) []error {
	errs := make([]error, len(b.Targets))
	if len(b.Targets) == 0 {
		return errs
	}
	fail := func(err error, c *atomic.Int64) []error {
		for i := range errs {
			errs[i] = err
		}
		c.Add(int64(len(errs)))
		e.counters.failed.Add(int64(len(errs)))
		return errs
	}
	select {
	case <-e.closed:
		return fail(errClosed, &e.counters.cancelled)
	default:
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("pushudp: not sent: %w", err), &e.counters.cancelled)
	}
	ref := e.nextRef()
	payload := encode(b.ServiceInfo, ref) // once for the batch: every target gets the same datagram
	if len(payload) > MaxDatagram {
		return fail(fmt.Errorf("pushudp: the push of %s is %d bytes gzipped, over the %d bytes a UDP datagram carries",
			serviceKey(b), len(payload), MaxDatagram), &e.counters.tooLarge)
	}

	// The targets by address: one datagram, and one ack, per address.
	f := &flight{ref: ref, index: make(map[netip.AddrPort]int32, len(b.Targets)), done: make(chan struct{})}
	group := make([]int32, len(b.Targets)) // each target's address in f.addrs, or -1
	for i, t := range b.Targets {
		ap, err := parseAddress(t.Address)
		if err != nil {
			errs[i], group[i] = err, -1
			e.counters.badAddress.Add(1)
			e.counters.failed.Add(1)
			continue
		}
		g, ok := f.index[ap]
		if !ok {
			g = int32(len(f.addrs))
			f.index[ap] = g
			f.addrs = append(f.addrs, ap)
			f.targets = append(f.targets, 0)
		}
		f.targets[g]++
		group[i] = g
	}
	if len(f.addrs) == 0 {
		return errs
	}
	f.state = make([]uint8, len(f.addrs))
	addrErrs := make([]error, len(f.addrs)) // why each address failed; nil if acknowledged
	// failAt fails the targets at address g, counting them in c (if not
	// nil) and in failed.
	failAt := func(g int32, err error, c *atomic.Int64) {
		addrErrs[g] = err
		if c != nil {
			c.Add(int64(f.targets[g]))
		}
		e.counters.failed.Add(int64(f.targets[g]))
	}
	defer func() { // every target gets its address's outcome
		for i, g := range group {
			if g >= 0 {
				errs[i] = addrErrs[g]
			}
		}
	}()

	// Await their acks before sending: an ack may come back at once.
	e.mu.Lock()
	live := min(len(f.addrs), max(e.maxPending-e.pending, 0)) // the first live addresses are pushed
	for g := range live {
		f.state[g] = awaited
	}
	f.left = live
	e.pending += live
	if f.left > 0 {
		e.flights[ref] = f
	}
	e.mu.Unlock()
	for g := live; g < len(f.addrs); g++ { // never sent; an ack from one is foreign
		failAt(int32(g), fmt.Errorf("pushudp: not sent to %s: %d acks are awaited already, the most max_pending allows",
			f.addrs[g], e.maxPending), &e.counters.pendingFull)
	}
	if live == 0 {
		return errs
	}
	e.remember(b)
	if len(payload) > GoV1ReadSize {
		e.counters.overGoV1.Add(1)
	}

	// The first send, to every live address at once.
	to := udpAddrs(f.addrs[:live])
	all := make([]int32, live)
	for g := range all {
		all[g] = int32(g)
	}
	sends := 1
	var sendFailed []int32
	e.sendTo(payload, to, all, func(g int32, err error) {
		sendFailed = append(sendFailed, g)
		addrErrs[g] = fmt.Errorf("pushudp: sending to %s: %w", f.addrs[g], err)
	})
	if len(sendFailed) > 0 {
		e.mu.Lock()
		for _, g := range sendFailed {
			e.settleLocked(f, g)
		}
		e.mu.Unlock()
	}

	start := time.Now()
	timer := time.NewTimer(e.resends[0])
	defer timer.Stop()
	var why func(netip.AddrPort) error
	var whyCounter *atomic.Int64
wait:
	for {
		select {
		case <-f.done:
			break wait
		case <-ctx.Done():
			why = func(ap netip.AddrPort) error {
				return fmt.Errorf("pushudp: no ack from %s before the push was withdrawn (%s sent): %w", ap, plural(sends, "datagram"), ctx.Err())
			}
			whyCounter = &e.counters.cancelled
			break wait
		case <-e.closed:
			why = func(netip.AddrPort) error { return errClosed }
			whyCounter = &e.counters.cancelled
			break wait
		case <-timer.C:
			if sends > len(e.resends) {
				elapsed := time.Since(start).Round(time.Millisecond)
				why = func(ap netip.AddrPort) error {
					return fmt.Errorf("pushudp: no ack from %s in %v (%s sent)", ap, elapsed, plural(sends, "datagram"))
				}
				whyCounter = &e.counters.timedOut
				break wait
			}
			e.counters.resends.Add(int64(e.sendTo(payload, to, e.unacked(f), nil)))
			next := e.giveUp
			if sends++; sends <= len(e.resends) {
				next = e.resends[sends-1]
			}
			timer.Reset(time.Until(start.Add(next)))
		}
	}

	// Every address still awaited fails.
	e.mu.Lock()
	var unacked []int32
	for g := range int32(live) {
		if f.state[g] == awaited {
			e.settleLocked(f, g)
			unacked = append(unacked, g)
		}
	}
	delete(e.flights, ref)
	e.mu.Unlock()
	for _, g := range unacked {
		failAt(g, why(f.addrs[g]), whyCounter)
	}
	for _, g := range sendFailed {
		failAt(g, addrErrs[g], nil) // counted in sendErrors by sendTo
	}
	for g := range live {
		if addrErrs[g] == nil {
			e.counters.acked.Add(int64(f.targets[g]))
		}
	}
	return errs
}

// udpAddrs returns addrs as the socket's writes take them, their IPs in
// one allocation.
func udpAddrs(addrs []netip.AddrPort) []*net.UDPAddr {
	ips := make([]byte, 0, net.IPv6len*len(addrs))
	uas := make([]net.UDPAddr, len(addrs))
	out := make([]*net.UDPAddr, len(addrs))
	for i, ap := range addrs {
		at := len(ips)
		if a := ap.Addr(); a.Is4() {
			ip := a.As4()
			ips = append(ips, ip[:]...)
		} else {
			ip := a.As16()
			ips = append(ips, ip[:]...)
		}
		uas[i] = net.UDPAddr{IP: net.IP(ips[at:len(ips):len(ips)]), Port: int(ap.Port()), Zone: ap.Addr().Zone()}
		out[i] = &uas[i]
	}
	return out
}

// sendBatch is the most datagrams one sendmmsg(2) carries.
const sendBatch = 128

// sendTo sends payload to the addresses to[g] for each g of which, in as few
// system calls as it can (sendmmsg on Linux); it returns how many were sent.
// A datagram the socket refuses is counted in sendErrors and reported to
// failed, if not nil.
func (e *Executor) sendTo(payload []byte, to []*net.UDPAddr, which []int32, failed func(g int32, err error)) int {
	refused := func(g int32, err error) {
		e.counters.sendErrors.Add(1)
		if failed != nil {
			failed(g, err)
		}
	}
	if e.batch == nil {
		sent := 0
		for _, g := range which {
			if _, err := e.conn.WriteToUDP(payload, to[g]); err != nil {
				refused(g, err)
				continue
			}
			sent++
			e.counters.datagrams.Add(1)
		}
		return sent
	}
	bufs := [][]byte{payload} // the same datagram for all: read-only to the system
	ms := make([]ipv4.Message, min(len(which), sendBatch))
	sent := 0
	for len(which) > 0 {
		chunk := which[:min(len(which), len(ms))]
		for i, g := range chunk {
			ms[i] = ipv4.Message{Buffers: bufs, Addr: to[g]}
		}
		n, err := e.batch.WriteBatch(ms[:len(chunk)], 0)
		n = max(n, 0) // -1 with an error
		sent += n
		e.counters.datagrams.Add(int64(n))
		which = which[n:]
		if err != nil || n == 0 { // the first datagram not sent was refused
			if err == nil {
				err = errors.New("the socket sent none of the datagrams")
			}
			refused(which[0], err)
			which = which[1:]
		}
	}
	return sent
}

// unacked returns the addresses of f whose acks have not come yet.
func (e *Executor) unacked(f *flight) []int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int32
	for g, st := range f.state {
		if st == awaited {
			out = append(out, int32(g))
		}
	}
	return out
}

// settleLocked stops awaiting the ack of f's address g, as if it had come;
// false if it was not awaited. e.mu is held.
func (e *Executor) settleLocked(f *flight, g int32) bool {
	if f.state[g] != awaited {
		return false
	}
	f.state[g] = settled
	e.pending--
	if f.left--; f.left == 0 {
		close(f.done)
	}
	return true
}

// nextRef returns a lastRefTime for a push: the time in nanoseconds, made
// strictly greater than the last one.
func (e *Executor) nextRef() int64 {
	for {
		last := e.lastRef.Load()
		next := max(time.Now().UnixNano(), last+1)
		if e.lastRef.CompareAndSwap(last, next) {
			return next
		}
	}
}

// encode returns the datagram of a push: the JSON Nacos 1.x clients read,
// gzipped when over GzipOver bytes.
func encode(info []byte, ref int64) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"type":"dom","data":`)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(info)) // a string always encodes; into a Buffer, always writes
	buf.Truncate(buf.Len() - 1)  // Encode's newline
	buf.WriteString(`,"lastRefTime":`)
	buf.WriteString(strconv.FormatInt(ref, 10))
	buf.WriteByte('}')
	if buf.Len() <= GzipOver {
		return buf.Bytes()
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write(buf.Bytes()) // into a Buffer, always succeeds
	_ = w.Close()
	return gz.Bytes()
}

// parseAddress returns a target's address, ip:port with a literal IP that
// can be sent to.
func parseAddress(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, errors.New("pushudp: the target has no UDP address (Target.Address); is it a gRPC subscriber?")
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("pushudp: the target's address %q is not ip:port with a literal unicast IP and a port", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// serviceKey names a batch's service in dumps and messages:
// namespace##group@@name, and @@clusters when the batch is for some.
func serviceKey(b push.Batch) string {
	k := b.Service.Namespace + "##" + b.Service.Group + "@@" + b.Service.Name
	if b.Clusters != "" {
		k += "@@" + b.Clusters
	}
	return k
}

func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}
