package dns

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a small authoritative DNS server for the tests, on UDP and
// TCP at the same 127.0.0.1 port: it answers A, AAAA and SRV questions from
// its zone, which the test changes as it goes.
type dnsServer struct {
	addr string // ip:port, for the resolver key
	udp  net.PacketConn
	tcp  net.Listener
	wg   sync.WaitGroup

	mu      sync.Mutex
	zone    map[string]*rrset // by lower-case name with the final dot
	rcode   dnsmessage.RCode  // answered to every question when not success
	silent  bool              // no answer at all
	queries int
	conns   map[net.Conn]bool
	closed  bool
}

// rrset is what the server holds for one name.
type rrset struct {
	ips  []netip.Addr
	srvs []dnsmessage.SRVResource
}

// testNet holds the addresses the tests give other members (TEST-NET-2,
// RFC 5737), which must not be this machine's.
var testNet = netip.MustParsePrefix("198.51.100.0/24")

// maxUDPAnswer is the largest answer sent over UDP: the size Go's resolver
// announces with EDNS(0). A larger one is sent truncated, which makes the
// resolver ask again over TCP.
const maxUDPAnswer = 1232

func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	for ip := range localIPs() {
		if testNet.Contains(ip) {
			t.Fatalf("this machine has the address %v: the tests take %v for other machines' addresses", ip, testNet)
		}
	}
	s := &dnsServer{zone: map[string]*rrset{}, conns: map[net.Conn]bool{}}
	var err error
	for range 20 { // a free UDP port that is free over TCP too
		if s.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if s.tcp, err = net.Listen("tcp", s.udp.LocalAddr().String()); err == nil {
			break
		}
		s.udp.Close()
	}
	if err != nil {
		t.Fatalf("no port free over both UDP and TCP: %v", err)
	}
	s.addr = s.udp.LocalAddr().String()
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	t.Cleanup(s.close)
	return s
}

func (s *dnsServer) close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

// set makes name (lower case, final dot) resolve to ips; none removes it.
func (s *dnsServer) set(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ips) == 0 {
		delete(s.zone, name)
		return
	}
	set := &rrset{}
	for _, ip := range ips {
		set.ips = append(set.ips, netip.MustParseAddr(ip))
	}
	s.zone[name] = set
}

// setSRV makes name's SRV records targets, each "host.:port".
func (s *dnsServer) setSRV(name string, targets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := &rrset{}
	for _, target := range targets {
		host, port, _ := net.SplitHostPort(target)
		n, _ := strconv.ParseUint(port, 10, 16)
		set.srvs = append(set.srvs, dnsmessage.SRVResource{Priority: 10, Weight: 10, Port: uint16(n),
			Target: dnsmessage.MustNewName(host)})
	}
	s.zone[name] = set
}

// fail makes the server answer every question with rcode (success: as the
// zone says).
func (s *dnsServer) fail(rcode dnsmessage.RCode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcode = rcode
}

// mute makes the server ignore every question, or answer again.
func (s *dnsServer) mute(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = silent
}

// count returns how many questions the server got.
func (s *dnsServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func (s *dnsServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if answer := s.answer(buf[:n], true); answer != nil {
			_, _ = s.udp.WriteTo(answer, from)
		}
	}
}

func (s *dnsServer) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			for {
				var size [2]byte
				if _, err := io.ReadFull(c, size[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(size[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				answer := s.answer(msg, false)
				if answer == nil {
					continue
				}
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(answer))), answer...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer returns the packed answer to the query msg, or nil for none.
func (s *dnsServer) answer(msg []byte, udp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	s.mu.Lock()
	s.queries++
	silent, rcode, set := s.silent, s.rcode, s.zone[strings.ToLower(q.Name.String())]
	s.mu.Unlock()
	if silent {
		return nil
	}
	reply := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: rcode},
		Questions: []dnsmessage.Question{q},
	}
	switch {
	case rcode != dnsmessage.RCodeSuccess:
	case set == nil:
		reply.Header.RCode = dnsmessage.RCodeNameError
	default:
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
		for _, ip := range set.ips {
			switch {
			case q.Type == dnsmessage.TypeA && ip.Is4():
				reply.Answers = append(reply.Answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AResource{A: ip.As4()}})
			case q.Type == dnsmessage.TypeAAAA && ip.Is6():
				reply.Answers = append(reply.Answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AAAAResource{AAAA: ip.As16()}})
			}
		}
		if q.Type == dnsmessage.TypeSRV {
			for _, srv := range set.srvs {
				reply.Answers = append(reply.Answers, dnsmessage.Resource{Header: hdr, Body: &srv})
			}
		}
	}
	packed, err := reply.Pack()
	if err == nil && udp && len(packed) > maxUDPAnswer {
		reply.Header.Truncated, reply.Answers = true, nil
		packed, err = reply.Pack()
	}
	if err != nil {
		return nil // never with the answers above; the resolver times out
	}
	return packed
}
