package pushtest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// udpMode is how the kit's UDP receivers answer the pushes they get.
type udpMode int

const (
	ackAll    udpMode = iota // acknowledge every push
	ackNone                  // acknowledge none: deliveries fail
	hangAll                  // acknowledge none, and say a delivery hangs
	dropFirst                // lose each push's first datagram, acknowledge the next
	wrongRef                 // acknowledge with another lastRefTime
	impostor                 // acknowledge from another address than the one pushed
)

// receivers are the subscribers of a udp plugin: one UDP socket on
// 127.0.0.1 per target, each reading pushes as a Nacos 1.x client does and
// acknowledging them, or not, as the checks need. Unless the plugin's author
// steers deliveries elsewhere, they are the kit's Deliveries.
type receivers struct {
	socks  []*net.UDPConn // receiver i is target i's
	addrs  []string
	other  *net.UDPConn       // where impostors' acks come from
	want   map[string]bool    // the data a push may carry: the batches' ServiceInfo
	silent bool               // Options.Deliveries steers: only listen
	wg     sync.WaitGroup     // the receiving goroutines
	logMu  sync.Mutex         // problems
	first  []string           // the first problems since the last report...
	more   int                // ...and how many others
	mu     sync.Mutex         // the fields below
	mode   udpMode            // how they answer...
	only   func(i int) bool   // ...those it is true for (nil: all); the others acknowledge
	hang   func()             // in hangAll: called as a push arrives
	lost   map[[2]int64]bool  // in dropFirst: the (receiver, lastRefTime) lost once
	read   map[string]readout // datagrams read lately: a plugin may send many alike
	acks   int                // acks sent
}

// newReceivers starts n receivers that accept pushes of the given data;
// silent ones only listen.
func newReceivers(n int, silent bool, want ...string) (*receivers, error) {
	r := &receivers{want: map[string]bool{}, lost: map[[2]int64]bool{}, read: map[string]readout{}, silent: silent}
	for _, w := range want {
		r.want[w] = true
	}
	listen := func() (*net.UDPConn, error) {
		return net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)))
	}
	var err error
	if r.other, err = listen(); err != nil {
		return nil, fmt.Errorf("listening for UDP pushes: %w", err)
	}
	for i := range n {
		sock, err := listen()
		if err != nil {
			r.close()
			return nil, fmt.Errorf("listening for UDP pushes (receiver %d of %d): %w", i, n, err)
		}
		r.socks = append(r.socks, sock)
		r.addrs = append(r.addrs, sock.LocalAddr().String())
	}
	for i, sock := range r.socks {
		r.wg.Add(1)
		go r.receive(i, sock)
	}
	return r, nil
}

// close stops every receiver.
func (r *receivers) close() {
	for _, s := range r.socks {
		_ = s.Close()
	}
	if r.other != nil {
		_ = r.other.Close()
	}
	r.wg.Wait()
}

// Succeed makes the receivers acknowledge every push.
func (r *receivers) Succeed() { r.steer(ackAll, nil) }

// Fail makes the receivers acknowledge no push.
func (r *receivers) Fail() { r.steer(ackNone, nil) }

// Hang makes the receivers acknowledge no push; the channel is closed once
// one has come.
func (r *receivers) Hang() <-chan struct{} {
	hung := make(chan struct{})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode, r.only, r.hang = hangAll, nil, sync.OnceFunc(func() { close(hung) })
	return hung
}

// steer sets how the receivers that only is true for answer (only nil: all
// of them); the others acknowledge every push.
func (r *receivers) steer(m udpMode, only func(int) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode, r.only, r.hang = m, only, nil
	clear(r.lost)
}

// acked returns how many acks the receivers sent so far.
func (r *receivers) acked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks
}

// problems returns how many pushes the receivers could not read since the
// last call, and what was wrong with the first few.
func (r *receivers) problems() (int, []string) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	first, n := r.first, len(r.first)+r.more
	r.first, r.more = nil, 0
	return n, first
}

func (r *receivers) problem(i int, from netip.AddrPort, what string) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if len(r.first) < 3 {
		r.first = append(r.first, fmt.Sprintf("receiver %d got from %s %s", i, from, what))
		return
	}
	r.more++
}

func (r *receivers) receive(i int, sock *net.UDPConn) {
	defer r.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := sock.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		r.answer(i, sock, buf[:n], from)
	}
}

// answer reads the datagram receiver i got and acknowledges it or not.
func (r *receivers) answer(i int, sock *net.UDPConn, datagram []byte, from netip.AddrPort) {
	if r.silent {
		return
	}
	ref, err := r.readPush(datagram)
	if err != nil {
		r.problem(i, from, err.Error())
		return
	}
	r.mu.Lock()
	mode, hang := r.mode, r.hang
	if r.only != nil && !r.only(i) {
		mode = ackAll
	}
	if mode == dropFirst && !r.lost[[2]int64{int64(i), ref}] {
		r.lost[[2]int64{int64(i), ref}] = true
		mode = ackNone
	}
	if mode != ackNone && mode != hangAll {
		r.acks++ // before the ack leaves: the plugin may report on it at once
	}
	r.mu.Unlock()
	var sent error
	switch mode {
	case ackAll, dropFirst:
		_, sent = sock.WriteToUDPAddrPort(ackOf(i, ref), from)
	case wrongRef:
		_, sent = sock.WriteToUDPAddrPort(ackOf(i, ref+1), from)
	case impostor:
		_, sent = r.other.WriteToUDPAddrPort(ackOf(i, ref), from)
	case hangAll:
		hang()
	}
	if sent != nil {
		r.mu.Lock()
		r.acks--
		r.mu.Unlock()
	}
}

// ackOf is receiver i's ack of the push ref: as the Nacos Go SDK v1 writes
// it (lastRefTime a string) for even receivers, with lastRefTime a number for
// odd ones.
func ackOf(i int, ref int64) []byte {
	if i%2 == 0 {
		return []byte(`{"data":"","lastRefTime":"` + strconv.FormatInt(ref, 10) + `","type":"push-ack"}`)
	}
	return []byte(`{"type": "push-ack", "lastRefTime": ` + strconv.FormatInt(ref, 10) + `, "data": ""}`)
}

// readout is what readPush made of a datagram.
type readout struct {
	ref int64
	err error
}

// maxRead bounds the datagrams whose readouts the receivers keep.
const maxRead = 256

// readPush is readPush of the receivers' data, remembering the datagrams it
// read lately: a plugin sends the same datagram to many targets, and again
// when unacknowledged, and gunzipping each anew (under the race detector)
// would slow the receivers' acks more than a plugin waits for them.
func (r *receivers) readPush(datagram []byte) (int64, error) {
	r.mu.Lock()
	out, ok := r.read[string(datagram)]
	r.mu.Unlock()
	if ok {
		return out.ref, out.err
	}
	out.ref, out.err = readPush(datagram, r.want)
	r.mu.Lock()
	if len(r.read) >= maxRead {
		clear(r.read)
	}
	r.read[string(datagram)] = out
	r.mu.Unlock()
	return out.ref, out.err
}

// readPush reads a push as Nacos 1.x clients do — JSON, gzipped or not, of
// type dom, its data a ServiceInfo of want, its lastRefTime an integer —
// and returns its lastRefTime, or what is wrong with it.
func readPush(datagram []byte, want map[string]bool) (int64, error) {
	text := datagram
	if bytes.HasPrefix(datagram, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(datagram))
		if err == nil {
			text, err = io.ReadAll(io.LimitReader(zr, 16<<20))
		}
		if err != nil {
			return 0, fmt.Errorf("a datagram of %d bytes that starts as gzip does but does not gunzip: %v", len(datagram), err)
		}
	}
	var p struct {
		Type        string          `json:"type"`
		Data        *string         `json:"data"`
		LastRefTime json.RawMessage `json:"lastRefTime"`
	}
	if err := json.Unmarshal(text, &p); err != nil {
		return 0, fmt.Errorf("a datagram that is not JSON (nor gzipped JSON): %v: %.200q", err, text)
	}
	ref, err := strconv.ParseInt(string(p.LastRefTime), 10, 64)
	switch {
	case p.Type != "dom":
		return 0, fmt.Errorf(`a push whose type is %q, want "dom": %.200s`, p.Type, text)
	case p.Data == nil:
		return 0, fmt.Errorf("a push without data: %.200s", text)
	case !want[*p.Data]:
		return 0, fmt.Errorf("a push whose data is not the batch's ServiceInfo, unchanged, as a JSON string: %.300q", *p.Data)
	case err != nil:
		return 0, fmt.Errorf("a push whose lastRefTime is not an integer (Nacos clients read an int64 and echo it in their ack): %.200s", text)
	}
	return ref, nil
}
