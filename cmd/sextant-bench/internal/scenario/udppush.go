package scenario

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/httpwire"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// UDPPushOptions shape the udp-push scenario.
type UDPPushOptions struct {
	Subscribers int // UDP subscribers, each a socket of its own
	// MergeWindow is the server's push delay as configured there; the tool
	// cannot know it. It is reported, latencies are also given beyond it,
	// and a round waits MergeWindow + Timeout for its pushes.
	MergeWindow time.Duration
	// Interval is the pause between rounds.
	Interval time.Duration
	// Repoll is how often each subscriber polls instance/list again, as a
	// 1.x client does, to stay subscribed: below the server's
	// push.udp.expiry (Nacos and Sextant: 10 s).
	Repoll time.Duration
	// Writer is how the changes are made: "grpc" (a connection moves its
	// instance to a new port, as the push scenario does) or "http" (the v1
	// API re-registers an instance with a new weight).
	Writer string
	// ClientIP is the address the subscribers listen on and give the server
	// as clientIP; "" is the address this host reaches the first target
	// from (127.0.0.1 for a local one).
	ClientIP string
}

// The writers of the udp-push scenario.
const (
	WriterGRPC = "grpc"
	WriterHTTP = "http"
)

// Validate checks the options.
func (o UDPPushOptions) Validate() error {
	switch {
	case o.Subscribers < 1:
		return fmt.Errorf("--subscribers must be at least 1, got %d", o.Subscribers)
	case o.Subscribers > maxUDPSubscribers:
		return fmt.Errorf("--subscribers %d is more UDP sockets than one address has ports (at most %d)", o.Subscribers, maxUDPSubscribers)
	case o.MergeWindow < 0:
		return fmt.Errorf("--merge-window must not be negative, got %s", o.MergeWindow)
	case o.Interval < 0:
		return fmt.Errorf("--interval must not be negative, got %s", o.Interval)
	case o.Repoll <= 0:
		return fmt.Errorf("--repoll must be positive (and below the server's push.udp.expiry), got %s", o.Repoll)
	case o.Writer != WriterGRPC && o.Writer != WriterHTTP:
		return fmt.Errorf("--writer must be %s or %s, got %q", WriterGRPC, WriterHTTP, o.Writer)
	}
	if o.ClientIP != "" {
		ip, err := netip.ParseAddr(o.ClientIP)
		if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() {
			return fmt.Errorf("--client-ip %q is not a unicast IPv4 address of this host", o.ClientIP)
		}
	}
	return nil
}

// maxUDPSubscribers bounds the subscribers: each needs a port.
const maxUDPSubscribers = 60000

// udpReadSize is what a subscriber reads of a datagram: the run's pushes,
// of one instance, take under 1 KiB. One that fills it counts as too large
// to read (the Go SDK v1 reads 4,024 bytes, the Java client 64 KiB). Small,
// as 10,000 subscribers each hold one.
const udpReadSize = 8192

// ackFormat is a 1.x client's answer to a push (the Go SDK v1 and the Java
// client send lastRefTime as a string).
const ackFormat = `{"type":"push-ack","lastRefTime":"%d","data":""}`

// UDPPush measures pushes to the subscribers of the HTTP API (Nacos 1.x
// clients), which the server pushes over UDP: Subscribers sockets on
// ClientIP each poll instance/list of one service once with their udpPort
// and clientIP — which makes them UDP subscribers — and again every Repoll
// while the run lasts. Each datagram, {"type":"dom","data":"<ServiceInfo>",
// "lastRefTime":N} (gzipped when it starts with 1F 8B), is answered with a
// push-ack to its sender, as the clients do. The writer makes round 0 (set-
// up: every subscriber must be pushed it) and then, round after round, a
// change; a subscriber's latency is the time from the change's answer to
// the arrival of the first datagram that carries it. A round ends when every
// subscriber has it (or after MergeWindow + Timeout, when the missing ones
// count as lost); its slowest latency is the last subscriber's. An
// operation is a round (default 10).
func UDPPush(c *Common, o UDPPushOptions, tool string) *report.Result {
	r := newRun(c, "udp-push", tool)
	clientIP := o.ClientIP
	if clientIP == "" {
		clientIP = target.LocalIP(c.Targets[0].HTTP)
	}
	r.param("subscribers", o.Subscribers)
	r.param("merge_window", o.MergeWindow)
	r.param("interval", o.Interval)
	r.param("repoll", o.Repoll)
	r.param("writer", o.Writer)
	r.param("client_ip", clientIP)
	r.versions(context.Background())
	if c.Rate > 0 {
		r.note("--rate does not apply to udp-push: rounds follow each other, --interval apart")
	}
	setupEnd := time.Now().Add(c.SetupTimeout)

	connect := r.newSeries("connect")
	listen := r.newSeries("listen")
	poll := r.newSeries("poll")
	first := r.newSeries("first push")
	change := r.newSeries("change")
	push := r.newSeries("push")
	last := r.newSeries("last subscriber")
	handled := r.newSeries("push read")
	repoll := r.newSeries("repoll")

	u := &udpRig{r: r, svc: c.service(0), window: o.MergeWindow, ack: true, beyond: stats.NewSeries("beyond")}
	clients := r.dialHTTP(setupEnd, connect)
	defer closeHTTP(clients)
	u.subs = r.listenUDP(setupEnd, clientIP, o.Subscribers, u, listen)
	defer u.close()

	// The writer: a gRPC connection, or a keep-alive connection of its own
	// to the HTTP API, so that no poll delays a change.
	var writer *wire.Conn
	var writerHTTP *httpwire.Client
	if o.Writer == WriterGRPC {
		writer = r.connect(setupEnd, 1, connect, nil)[0]
	} else {
		writerHTTP = httpwire.New(c.Targets[0].HTTP, 1, c.ClientVersion)
		defer writerHTTP.Close()
	}
	u.change = func(ctx context.Context, n int64) error {
		if o.Writer == WriterHTTP {
			return registerHTTP(ctx, writerHTTP, u.svc, instanceIP(0), portBase, roundWeight(n))
		}
		if writer == nil {
			return errNotConnected
		}
		return writer.Call(ctx, wire.Register(u.svc, wire.NewInstance(instanceIP(0), instancePort(n))), &wire.Response{})
	}
	u.host = func(n int64) (string, int, float64) {
		if o.Writer == WriterHTTP {
			return instanceIP(0), portBase, roundWeight(n)
		}
		return instanceIP(0), instancePort(n), 1
	}

	r.pollAll(setupEnd, clients, u, poll)
	stopRepoll := r.repollAll(clients, u, o.Repoll, repoll)
	subscribed := u.subscribed()
	r.figure("subscribers polled", float64(subscribed), "subscribers")

	// Round 0, the set-up: every subscriber is pushed the writer's first
	// state.
	r.Monitor.set("first push", first)
	if subscribed > 0 {
		u.round(0, min(time.Until(setupEnd), u.window+r.Timeout), change, first, nil, nil, true)
	}

	count := c.Count
	if count == 0 {
		count = defaultRounds
	}
	if subscribed > 0 && (writer != nil || o.Writer == WriterHTTP) {
		u.rounds(count, o.Interval, change, push, last, handled)
	} else {
		r.note("no writer or no subscriber could be set up; nothing was measured")
	}
	stopRepoll()
	r.sampleAfter()

	r.figure("merge window (as configured on the server)", msOf(o.MergeWindow), "ms")
	// Beyond the window from each latency less the window, not from the
	// latencies' quantiles less it: those are within 0.8 % of the whole
	// (4 ms at 500 ms), too coarse for what is beyond.
	if l := u.beyond.Latency().Summary(); l.Count > 0 {
		r.figure("push p50 beyond merge window", msOf(l.P50), "ms")
		r.figure("push p99 beyond merge window", msOf(l.P99), "ms")
		r.figure("push max beyond merge window", msOf(l.Max), "ms")
	}
	if l := last.Latency().Summary(); l.Count > 0 {
		r.figure("last subscriber p50 beyond merge window", msOf(l.P50-o.MergeWindow), "ms")
		r.figure("last subscriber max beyond merge window", msOf(l.Max-o.MergeWindow), "ms")
	}
	if l := handled.Latency().Summary(); l.Count > 0 && !u.unstamped {
		// When the generator got to each datagram: the push scenario's
		// measure (it reads a push when its connection's goroutine does).
		beyond := l.Shift(o.MergeWindow)
		r.figure("push read by the subscriber p50 beyond merge window", msOf(beyond.P50), "ms")
		r.figure("push read by the subscriber p99 beyond merge window", msOf(beyond.P99), "ms")
	}
	if cpu, ok := r.res.Process.MeasuredCPU(); ok {
		if n, _ := push.Counts(); n > 0 {
			r.figure("server CPU per push (per subscriber pushed)", cpu/float64(n)*1e6, "µs")
		}
	}
	u.report(r.measured, push)

	if o.Writer == WriterHTTP {
		// The HTTP API's instance has no connection whose end removes it.
		r.deregisterAll([]*httpwire.Client{writerHTTP}, r.newSeries("deregister"), 1, func(int) (wire.Service, string, bool) {
			return u.svc, instanceIP(0), true
		}, func(int) int { return 0 })
	}
	if writer != nil {
		r.closeAll(connect, []*wire.Conn{writer})
	}
	r.note("the subscribers' subscriptions lapse on the server by themselves, push.udp.expiry after their last poll")
	return r.finish("push", false)
}

// udpRig is the state of a udp-push run.
type udpRig struct {
	r      *run
	svc    wire.Service
	window time.Duration
	ack    bool // answer pushes with push-acks
	// unstamped is set when arrivals cannot be stamped by the kernel.
	unstamped bool
	// beyond gets each measured latency less the window (at least 0).
	beyond *stats.Series
	subs   []*udpSubscriber
	// change makes round n's change; host says what a push of round n lists.
	change func(ctx context.Context, n int64) error
	host   func(n int64) (ip string, port int, weight float64)

	cur atomic.Pointer[udpRound]
	// What the subscribers received, in all and in the measured phase.
	datagrams, acks, gzipped, duplicates, stale, undecodable, foreign, truncated, ackErrors atomic.Int64
	measureFrom                                                                             counts
}

// counts are the rig's counters at a moment.
type counts struct{ datagrams, acks int64 }

// udpRound is one change: a subscriber has seen it once a push lists ip:port
// with weight.
type udpRound struct {
	n         int64
	ip        string
	port      int
	weight    float64
	remaining atomic.Int64
	done      chan struct{}
	closeOnce sync.Once
}

func (rd *udpRound) discount(n int64) {
	if rd.remaining.Add(-n) <= 0 {
		rd.closeOnce.Do(func() { close(rd.done) })
	}
}

// udpSubscriber is one subscriber's socket and what it saw.
type udpSubscriber struct {
	conn       *net.UDPConn
	port       int
	subscribed atomic.Bool
	// seen is the last round it saw; arrived is when its push arrived (the
	// kernel's receive timestamp where there is one), handled when the
	// subscriber read it (unix nanoseconds).
	seen, arrived, handled atomic.Int64
	done                   chan struct{}

	// The reader's own: the last pushes' lastRefTimes, for duplicates, and
	// the newest view's lastRefTime, for stale pushes.
	refs   [8]int64
	stored int // of refs
	newest int64
}

// listenUDP opens n sockets on ip and starts their readers; a socket that
// cannot be opened is nil (counted in series).
func (r *run) listenUDP(deadline time.Time, ip string, n int, u *udpRig, series *stats.Series) []*udpSubscriber {
	r.Monitor.set("listen", series)
	subs := make([]*udpSubscriber, n)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		series.FailN("no client IP", int64(n))
		r.note("cannot tell the address to listen on (%q): give --client-ip", ip)
		return subs
	}
	for i := range subs {
		if time.Now().After(deadline) {
			series.FailN("set-up timed out", int64(n-i))
			break
		}
		start := time.Now()
		conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			series.Fail(errnoKind(err))
			continue
		}
		if !stampArrivals(conn) && !u.unstamped {
			u.unstamped = true
			r.note("the kernel does not stamp datagrams' arrival here: a push's arrival is when the generator reads it")
		}
		series.OK(time.Since(start))
		s := &udpSubscriber{conn: conn, port: conn.LocalAddr().(*net.UDPAddr).Port, done: make(chan struct{})}
		s.seen.Store(-1)
		subs[i] = s
		go u.read(s)
	}
	return subs
}

// errnoKind names a socket error for counting.
func errnoKind(err error) string {
	var se *net.OpError
	if errors.As(err, &se) && se.Err != nil {
		return se.Err.Error()
	}
	return err.Error()
}

// close closes the sockets and waits for their readers.
func (u *udpRig) close() {
	for _, s := range u.subs {
		if s != nil {
			s.conn.Close()
			<-s.done
		}
	}
}

// subscribed counts the subscribers whose poll was answered.
func (u *udpRig) subscribed() int64 {
	var n int64
	for _, s := range u.subs {
		if s != nil && s.subscribed.Load() {
			n++
		}
	}
	return n
}

// read receives a subscriber's datagrams until its socket closes.
func (u *udpRig) read(s *udpSubscriber) {
	defer close(s.done)
	buf := make([]byte, udpReadSize)
	oob := make([]byte, stampOOB)
	ack := make([]byte, 0, 80)
	want := groupedName(u.svc)
	for {
		n, oobn, _, from, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		handled := time.Now()
		at := arrival(oob[:oobn])
		if at.IsZero() {
			at = handled
		}
		u.datagrams.Add(1)
		if n == len(buf) {
			u.truncated.Add(1)
			continue
		}
		p, err := decodeUDPPush(buf[:n])
		if err != nil {
			u.undecodable.Add(1)
			continue
		}
		if p.gzipped {
			u.gzipped.Add(1)
		}
		if u.ack {
			ack = fmt.Appendf(ack[:0], ackFormat, p.ref)
			if _, err := s.conn.WriteToUDPAddrPort(ack, from); err != nil {
				u.ackErrors.Add(1)
			} else {
				u.acks.Add(1)
			}
		}
		if p.info.Name != want {
			u.foreign.Add(1)
			continue
		}
		if slices.Contains(s.refs[:min(s.stored, len(s.refs))], p.ref) {
			u.duplicates.Add(1)
			continue
		}
		s.refs[s.stored%len(s.refs)] = p.ref
		s.stored++
		if p.info.LastRefTime < s.newest {
			u.stale.Add(1)
			continue
		}
		s.newest = p.info.LastRefTime
		rd := u.cur.Load()
		if rd == nil || s.seen.Load() >= rd.n || !hasWeightedHost(p.info.Hosts, rd.ip, rd.port, rd.weight) {
			continue
		}
		s.arrived.Store(at.UnixNano())
		s.handled.Store(handled.UnixNano())
		s.seen.Store(rd.n)
		rd.discount(1)
	}
}

// udpPushData is what the scenario reads of a push.
type udpPushData struct {
	ref     int64
	gzipped bool
	info    wire.ServiceInfo
}

// decodeUDPPush reads a push as a 1.x client does.
func decodeUDPPush(b []byte) (udpPushData, error) {
	var p udpPushData
	if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		p.gzipped = true
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return p, err
		}
		if b, err = io.ReadAll(io.LimitReader(zr, 16<<20)); err != nil {
			return p, err
		}
	}
	var msg struct {
		Type        string          `json:"type"`
		Data        string          `json:"data"`
		LastRefTime json.RawMessage `json:"lastRefTime"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		return p, err
	}
	if msg.Type != "dom" && msg.Type != "service" {
		return p, fmt.Errorf("a datagram of type %q", msg.Type)
	}
	ref, err := strconv.ParseInt(string(msg.LastRefTime), 10, 64)
	if err != nil {
		return p, fmt.Errorf("lastRefTime %s: %w", msg.LastRefTime, err)
	}
	p.ref = ref
	return p, json.Unmarshal([]byte(msg.Data), &p.info)
}

// hasWeightedHost reports whether hosts hold ip:port with weight.
func hasWeightedHost(hosts []wire.Instance, ip string, port int, weight float64) bool {
	for _, h := range hosts {
		if h.Port == port && h.IP == ip && h.Weight == weight {
			return true
		}
	}
	return false
}

// listQuery is a subscriber's poll: instance/list with its udpPort and
// clientIP, as the 1.x SDKs send it.
func (u *udpRig) listQuery(s *udpSubscriber, clientIP string) string {
	q := serviceParams(make([]byte, 0, 192), u.svc)
	q = httpwire.AppendParam(q, "clusters", "")
	q = httpwire.AppendParam(q, "udpPort", strconv.Itoa(s.port))
	q = httpwire.AppendParam(q, "clientIP", clientIP)
	q = httpwire.AppendParam(q, "healthyOnly", "false")
	return instanceListPath + "?" + string(q)
}

// pollAll polls once for every subscriber, within deadline, Concurrency at a
// time; subscriber i polls target i mod T.
func (r *run) pollAll(deadline time.Time, clients []*httpwire.Client, u *udpRig, series *stats.Series) {
	r.Monitor.set("poll", series)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	parallel(ctx, len(u.subs), r.Concurrency, func(ctx context.Context, i int) {
		s := u.subs[i]
		if s == nil {
			return
		}
		start := time.Now()
		if err := u.poll(ctx, clients[i%len(clients)], s, r.Timeout); err != nil {
			series.Fail(kind(err))
			return
		}
		series.OK(time.Since(start))
		s.subscribed.Store(true)
	}, func(skipped int) { series.FailN("set-up timed out", int64(skipped)) })
}

// poll polls instance/list for s.
func (u *udpRig) poll(ctx context.Context, c *httpwire.Client, s *udpSubscriber, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ip := s.conn.LocalAddr().(*net.UDPAddr).IP.String()
	_, err := c.Do(ctx, httpwire.Request{Method: "GET", Path: u.listQuery(s, ip)})
	return err
}

// repollAll polls again for every subscribed subscriber every interval,
// spread evenly over it, until the returned function is called.
func (r *run) repollAll(clients []*httpwire.Client, u *udpRig, interval time.Duration, series *stats.Series) (stop func()) {
	var subs []int
	for i, s := range u.subs {
		if s != nil && s.subscribed.Load() {
			subs = append(subs, i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	if len(subs) == 0 {
		return cancel
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(r.Concurrency, len(subs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				start := time.Now()
				if err := u.poll(ctx, clients[i%len(clients)], u.subs[i], r.Timeout); err != nil {
					if ctx.Err() == nil {
						series.Fail(kind(err))
					}
					continue
				}
				series.OK(time.Since(start))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		step := interval / time.Duration(len(subs))
		start := time.Now()
		for k := 1; ; k++ {
			t := time.NewTimer(time.Until(start.Add(time.Duration(k) * step)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case jobs <- subs[k%len(subs)]:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// round makes round n's change and waits up to wait for every subscribed
// subscriber to be pushed it; each one's latency (from the change's answer)
// goes to series, the round's slowest to slowest (if set). With setup set,
// the change's failure is a note rather than a measurement.
func (u *udpRig) round(n int64, wait time.Duration, change, series, slowest, handled *stats.Series, setup bool) bool {
	r := u.r
	ip, port, weight := u.host(n)
	rd := &udpRound{n: n, ip: ip, port: port, weight: weight, done: make(chan struct{})}
	expect := make([]bool, len(u.subs))
	var expected int64
	for i, s := range u.subs {
		if s != nil && s.subscribed.Load() {
			expect[i] = true
			expected++
		}
	}
	rd.remaining.Store(expected)
	u.cur.Store(rd)
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	start := time.Now()
	err := u.change(ctx, n)
	answered := time.Now()
	cancel()
	if err != nil {
		if setup {
			r.note("the writer's first change failed: %v", err)
		} else {
			change.Fail(kind(err))
		}
		return false
	}
	if !setup {
		change.OK(answered.Sub(start))
	}
	t := time.NewTimer(wait)
	select {
	case <-rd.done:
	case <-t.C:
	}
	t.Stop()
	var worst time.Duration
	complete := true
	for i, s := range u.subs {
		if !expect[i] {
			continue
		}
		if s.seen.Load() < n {
			series.Fail("lost")
			complete = false
			continue
		}
		d := max(time.Unix(0, s.arrived.Load()).Sub(answered), 0)
		worst = max(worst, d)
		series.OK(d)
		if handled != nil { // a measured round
			handled.OK(max(time.Unix(0, s.handled.Load()).Sub(answered), 0))
			u.beyond.OK(max(d-u.window, 0))
		}
	}
	if slowest != nil {
		if complete {
			slowest.OK(worst)
		} else {
			slowest.Fail("incomplete round")
		}
	}
	return complete
}

// rounds runs unrecorded rounds for Warmup, then measured ones until count
// were measured or Duration has passed.
func (u *udpRig) rounds(count int64, interval time.Duration, change, series, slowest, handled *stats.Series) {
	r := u.r
	start := time.Now()
	warmEnd := start.Add(r.Warmup)
	end := warmEnd.Add(r.Duration)
	hard := end.Add(r.Grace)
	r.Monitor.set("warm-up", nil)
	unrecorded := stats.NewSeries("warm-up")
	var measured int64
	var first, last time.Time
	for n := int64(1); measured < count && time.Now().Before(end); n++ {
		wait := min(u.window+r.Timeout, max(time.Until(hard), 0))
		if time.Now().Before(warmEnd) {
			u.round(n, wait, unrecorded, unrecorded, nil, nil, false)
			continue
		}
		if measured == 0 {
			first = time.Now()
			u.measureFrom = counts{u.datagrams.Load(), u.acks.Load()}
			r.sampleMeasure()
			r.Monitor.set("measure", series)
		}
		u.round(n, wait, change, series, slowest, handled, false)
		measured++
		last = time.Now()
		if interval > 0 {
			sleepUntil(time.Now().Add(interval), end)
		}
	}
	if measured > 0 {
		r.measured = last.Sub(first)
	}
}

// report adds what the subscribers received to the result.
func (u *udpRig) report(measured time.Duration, push *stats.Series) {
	r := u.r
	_, lost := push.Counts()
	r.figure("lost (a subscriber not pushed a round within merge window + timeout)", float64(lost), "pushes")
	r.figure("datagrams received", float64(u.datagrams.Load()), "datagrams")
	r.figure("acks sent", float64(u.acks.Load()), "acks")
	if s := measured.Seconds(); s > 0 {
		r.figure("datagrams/s in the measured phase", float64(u.datagrams.Load()-u.measureFrom.datagrams)/s, "/s")
		r.figure("acks/s in the measured phase", float64(u.acks.Load()-u.measureFrom.acks)/s, "/s")
	}
	r.figure("gzipped datagrams", float64(u.gzipped.Load()), "datagrams")
	r.figure("duplicate datagrams (a push received again: resent before its ack arrived)", float64(u.duplicates.Load()), "datagrams")
	r.figure("stale pushes (older than a view already received)", float64(u.stale.Load()), "datagrams")
	if n := u.ackErrors.Load(); n > 0 {
		r.figure("acks that could not be sent", float64(n), "acks")
	}
	if n := u.truncated.Load(); n > 0 {
		r.figure("datagrams too large to read", float64(n), "datagrams")
	}
	bad := u.undecodable.Load()
	r.check("every datagram is a push a 1.x client reads", bad == 0, "%d of %d datagrams could not be read as {\"type\":\"dom\",\"data\":ServiceInfo,\"lastRefTime\":N}", bad, u.datagrams.Load())
	foreign := u.foreign.Load()
	r.check("every push names the service as 1.x clients do", foreign == 0, "%d pushes did not name %s", foreign, groupedName(u.svc))
}
