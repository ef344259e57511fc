package pushudp

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/sextantd/sextant/sdk/push"
)

// What arrives on the socket: acks of pushes, and dump requests.

// inbound is a datagram received: the fields the executor reads.
type inbound struct {
	Type string `json:"type"`
	// LastRefTime is a number, or a number in a string: the Go SDK v1 and
	// the Java client send acks with it as a string.
	LastRefTime json.RawMessage `json:"lastRefTime"`
}

// readBatch is the most datagrams one recvmmsg(2) reads.
const readBatch = 64

// ackOf is an ack received: from an address, for a lastRefTime.
type ackOf struct {
	from netip.AddrPort
	ref  int64
}

// read receives datagrams until the socket closes, many a system call where
// it can; the acks of each read are settled under one lock.
func (e *Executor) read() {
	defer close(e.readDone)
	n := 1
	if e.batch != nil {
		n = readBatch
	}
	const size = MaxInbound + 1 // one more: a datagram that fills it is too large
	space := make([]byte, n*size)
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{space[i*size : (i+1)*size : (i+1)*size]}
	}
	froms := make([]netip.AddrPort, n)
	var acks []ackOf
	for {
		got, err := e.receive(ms, froms)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.counters.readErrors.Add(1)
			select { // not a busy loop should the error persist
			case <-e.closed:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		for i, m := range ms[:got] {
			from := netip.AddrPortFrom(froms[i].Addr().Unmap(), froms[i].Port())
			if m.N > MaxInbound {
				e.counters.oversized.Add(1)
				e.ignore("a datagram over the size of an ack", from)
				continue
			}
			acks = e.handle(m.Buffers[0][:m.N], from, acks)
		}
		e.ack(acks)
		acks = acks[:0]
	}
}

// receive reads datagrams into ms, and their senders into froms; it
// returns how many.
func (e *Executor) receive(ms []ipv4.Message, froms []netip.AddrPort) (int, error) {
	if e.batch == nil {
		n, from, err := e.conn.ReadFromUDPAddrPort(ms[0].Buffers[0])
		if err != nil {
			return 0, err
		}
		ms[0].N, froms[0] = n, from
		return 1, nil
	}
	n, err := e.batch.ReadBatch(ms, 0)
	if err != nil {
		return 0, err
	}
	for i := range ms[:n] {
		froms[i] = netip.AddrPort{} // matches no push
		if ua, ok := ms[i].Addr.(*net.UDPAddr); ok {
			froms[i] = ua.AddrPort()
		}
	}
	return n, nil
}

// handle acts on one datagram; the acks it holds are added to acks, to be
// settled together.
func (e *Executor) handle(data []byte, from netip.AddrPort, acks []ackOf) []ackOf {
	msg, ok := parsePlain(data) // msg.LastRefTime points into data
	if !ok && json.Unmarshal(data, &msg) != nil {
		e.counters.malformed.Add(1)
		e.ignore("a datagram that is not JSON", from)
		return acks
	}
	switch msg.Type {
	case "push-ack":
		ref, ok := parseRef(msg.LastRefTime)
		if !ok {
			e.counters.malformed.Add(1)
			e.ignore("an ack without a lastRefTime", from)
			return acks
		}
		return append(acks, ackOf{from, ref})
	case "dump":
		e.ack(acks) // what came before is settled before the answer leaves
		e.dump(from, msg.LastRefTime)
		return acks[:0]
	default:
		e.counters.unknownType.Add(1)
		e.ignore("a datagram of an unknown type", from)
	}
	return acks
}

// parsePlain reads the datagrams acks are — a flat object of the keys
// type, lastRefTime and data, with plain values — without encoding/json,
// whose reflection costs as much as reading the datagram. It returns false
// for anything else (other keys, escapes, non-ASCII, floats, nesting, bad
// JSON), which encoding/json then reads; where it returns true, encoding/json
// would have read the same.
func parsePlain(data []byte) (msg inbound, ok bool) {
	i := 0
	ws := func() {
		for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			i++
		}
	}
	// token returns the value at i, a string with its quotes or an
	// integer, or nil.
	token := func() []byte {
		start := i
		switch {
		case i < len(data) && data[i] == '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if c := data[i]; c < 0x20 || c > 0x7e || c == '\\' {
					return nil
				}
			}
			if i == len(data) {
				return nil
			}
			i++
		default:
			if i < len(data) && data[i] == '-' {
				i++
			}
			switch {
			case i < len(data) && data[i] == '0':
				i++
			case i < len(data) && data[i] >= '1' && data[i] <= '9':
				for i < len(data) && data[i] >= '0' && data[i] <= '9' {
					i++
				}
			default:
				return nil
			}
			if i < len(data) && (data[i] == '.' || data[i] == 'e' || data[i] == 'E' || data[i] >= '0' && data[i] <= '9') {
				return nil
			}
		}
		return data[start:i]
	}
	ws()
	if i == len(data) || data[i] != '{' {
		return inbound{}, false
	}
	i++
	var seen [3]bool
	for first := true; ; first = false {
		ws()
		if i < len(data) && data[i] == '}' && first {
			break
		}
		key := token()
		ws()
		if len(key) < 2 || key[0] != '"' || i == len(data) || data[i] != ':' {
			return inbound{}, false
		}
		i++
		ws()
		val := token()
		if val == nil {
			return inbound{}, false
		}
		k := -1
		switch string(key[1 : len(key)-1]) {
		case "type":
			if val[0] != '"' {
				return inbound{}, false
			}
			k, msg.Type = 0, string(val[1:len(val)-1])
		case "lastRefTime":
			k, msg.LastRefTime = 1, val
		case "data":
			k = 2
		}
		if k < 0 || seen[k] {
			return inbound{}, false
		}
		seen[k] = true
		ws()
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		if i < len(data) && data[i] == '}' {
			break
		}
		return inbound{}, false
	}
	i++
	ws()
	return msg, i == len(data)
}

// parseRef reads a lastRefTime: an integer, or one in a string.
func parseRef(raw json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 0 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
	}
	ref, err := strconv.ParseInt(s, 10, 64)
	return ref, err == nil
}

// ack settles the pushes acks acknowledge, those awaited.
func (e *Executor) ack(acks []ackOf) {
	if len(acks) == 0 {
		return
	}
	stale, foreign := 0, []netip.AddrPort(nil)
	e.mu.Lock()
	for _, a := range acks {
		f := e.flights[a.ref]
		if f == nil { // late (the push gave up), or made up
			stale++
			continue
		}
		g, ok := f.index[a.from]
		switch {
		case !ok || f.state[g] == unsent:
			foreign = append(foreign, a.from)
		case !e.settleLocked(f, g): // a resend's after the first's
			stale++
		}
	}
	e.mu.Unlock()
	e.counters.staleAcks.Add(int64(stale))
	e.counters.foreignAcks.Add(int64(len(foreign)))
	for _, from := range foreign {
		e.ignore("an ack from an address the push was not sent to", from)
	}
}

// remember keeps b's ServiceInfo as its service's last push, for dumps.
func (e *Executor) remember(b push.Batch) {
	key := serviceKey(b)
	info := bytes.Clone(b.ServiceInfo)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	if _, ok := e.dumped[key]; !ok && len(e.dumped) >= MaxDumpServices {
		oldest, first := "", true
		for k, d := range e.dumped {
			if first || d.seq < e.dumped[oldest].seq {
				oldest, first = k, false
			}
		}
		delete(e.dumped, oldest)
		e.counters.dumpForgotten.Add(1)
	}
	e.dumped[key] = dumped{info: info, seq: e.seq}
}

// dump answers a dump request with the last ServiceInfo pushed for each
// service, the latest first, as many as fit one datagram.
func (e *Executor) dump(from netip.AddrPort, ref json.RawMessage) {
	ref = bytes.TrimSpace(ref)
	switch {
	case len(ref) == 0:
		ref = json.RawMessage("0")
	case ref[0] != '"' && ref[0] != '-' && (ref[0] < '0' || ref[0] > '9'):
		e.counters.malformed.Add(1)
		e.ignore("a dump request whose lastRefTime is neither a number nor a string", from)
		return
	}
	now := time.Now().UnixNano()
	last := e.lastDump.Load()
	if now-last < int64(e.dumpEvery) || !e.lastDump.CompareAndSwap(last, now) {
		e.counters.dumpsLimited.Add(1)
		e.ignore("a dump request within 100ms of the last one answered", from)
		return
	}
	type entry struct {
		key  string
		info []byte
		seq  uint64
	}
	e.mu.Lock()
	entries := make([]entry, 0, len(e.dumped))
	for k, d := range e.dumped {
		entries = append(entries, entry{k, d.info, d.seq})
	}
	e.mu.Unlock()
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(b.seq, a.seq) }) // the latest first

	// The answer without data, and the services that fit beside it.
	type answer struct {
		Type        string          `json:"type"`
		LastRefTime json.RawMessage `json:"lastRefTime"`
		Data        string          `json:"data"`
	}
	head, err := json.Marshal(answer{"dump-ack", ref, ""})
	if err != nil { // a lastRefTime that is not JSON after all
		e.counters.malformed.Add(1)
		e.ignore("a dump request whose lastRefTime is not JSON", from)
		return
	}
	size := len(head) + len("{}") // the data's braces, inside its quotes
	var obj bytes.Buffer
	obj.WriteByte('{')
	kept := 0
	for _, en := range entries {
		var one bytes.Buffer
		if kept > 0 {
			one.WriteByte(',')
		}
		k, _ := json.Marshal(en.key)
		one.Write(k)
		one.WriteByte(':')
		if json.Compact(&one, en.info) != nil {
			continue // not JSON: nothing to show
		}
		// Quoting the whole quotes each part alike: they meet at ASCII.
		quoted, _ := json.Marshal(one.String())
		if size+len(quoted)-2 > MaxDatagram {
			break
		}
		size += len(quoted) - 2
		obj.Write(one.Bytes())
		kept++
	}
	obj.WriteByte('}')
	e.counters.dumpTrimmed.Add(int64(len(entries) - kept))
	out, _ := json.Marshal(answer{"dump-ack", ref, obj.String()})
	// Counted before it leaves: the asker may look at once.
	e.counters.datagrams.Add(1)
	e.counters.dumps.Add(1)
	if _, err := e.conn.WriteToUDPAddrPort(out, from); err != nil {
		e.counters.datagrams.Add(-1)
		e.counters.dumps.Add(-1)
		e.counters.sendErrors.Add(1)
	}
}

// ignore counts an ignored datagram toward a log line, one every
// ignoredLogInterval at most.
func (e *Executor) ignore(why string, from netip.AddrPort) {
	now := time.Now().UnixNano()
	last := e.lastIgnored.Load()
	if now-last >= int64(ignoredLogInterval) && e.lastIgnored.CompareAndSwap(last, now) {
		e.logger.Warn("ignored a datagram on the UDP push socket", "from", from.String(), "reason", why,
			"ignored_since_last_line", e.ignored.Swap(0)+1)
		return
	}
	e.ignored.Add(1)
}
