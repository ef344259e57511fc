package pushudp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ackers are n subscribers on 127.0.0.1 that acknowledge every push at
// once, as the Go SDK v1 does, without decoding more than lastRefTime.
// The latest arrival of a push at an acker, in unix nanoseconds.
var lastArrival atomic.Int64

func ackers(b *testing.B, n int) []string {
	b.Helper()
	addrs := make([]string, n)
	var wg sync.WaitGroup
	conns := make([]*net.UDPConn, n)
	for i := range n {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		conns[i], addrs[i] = conn, conn.LocalAddr().String()
		wg.Go(func() {
			buf := make([]byte, 1<<16)
			for {
				m, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				for now := time.Now().UnixNano(); ; {
					if last := lastArrival.Load(); last >= now || lastArrival.CompareAndSwap(last, now) {
						break
					}
				}
				// info(1) is not gzipped: lastRefTime ends the push.
				i := bytes.LastIndex(buf[:m], []byte(`"lastRefTime":`))
				ref := buf[i+len(`"lastRefTime":`) : m-1]
				_, _ = conn.WriteToUDPAddrPort([]byte(`{"type":"push-ack","lastRefTime":"`+string(ref)+`","data":""}`), from)
			}
		})
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	return addrs
}

// BenchmarkPush1000 is a batch of 1,000 subscribers that acknowledge at
// once: the time for Push to return, all acknowledged.
func BenchmarkPush1000(b *testing.B) {
	e := newExecutorB(b)
	bt := batch(info(1), ackers(b, 1000)...)
	b.ReportAllocs()
	var spread time.Duration
	for b.Loop() {
		start := time.Now()
		errs := e.Push(context.Background(), bt)
		spread += time.Unix(0, lastArrival.Load()).Sub(start)
		for i, err := range errs {
			if err != nil {
				b.Fatalf("target %d: %v", i, err)
			}
		}
	}
	b.ReportMetric(float64(spread.Microseconds())/float64(b.N)/1000, "ms-last-read/op")
	if c := e.Counters(); c.Resends > 0 {
		b.ReportMetric(float64(c.Resends)/float64(b.N), "resends/op")
	}
}

func newExecutorB(b *testing.B) *Executor {
	e, err := open(Config{Bind: "127.0.0.1:0", RetryDelays: DefaultRetryDelays(), MaxPending: DefaultMaxPending}, nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}

// BenchmarkSend1000 is the first send of a batch of 1,000 subscribers
// alone: the datagrams leave, none is acknowledged. "each" sends a
// datagram a system call, "batched" as many as sendmmsg takes.
func BenchmarkSend1000(b *testing.B) {
	for _, mode := range []string{"each", "batched"} {
		b.Run(mode, func(b *testing.B) {
			e, err := openBatching(Config{Bind: "127.0.0.1:0", RetryDelays: DefaultRetryDelays(), MaxPending: DefaultMaxPending}, nil, 0, mode == "batched")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = e.Close() })
			var addrs []netip.AddrPort
			for range 1000 {
				conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				_ = conn.SetReadBuffer(1 << 20)
				b.Cleanup(func() { conn.Close() })
				addrs = append(addrs, conn.LocalAddr().(*net.UDPAddr).AddrPort())
			}
			payload := encode(info(1), 1)
			to := udpAddrs(addrs)
			all := make([]int32, len(to))
			for i := range all {
				all[i] = int32(i)
			}
			b.ReportAllocs()
			for b.Loop() {
				if n := e.sendTo(payload, to, all, nil); n != len(to) {
					b.Fatalf("sent %d", n)
				}
			}
		})
	}
}
