package server

import (
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/sextantd/sextant/core/cluster"
)

// listeningIPs returns what lists the addresses this node's HTTP port
// listens on, those by which the members may know it: bind, or, when it
// listens on every interface (bind "" or an unspecified address), this
// machine's addresses.
func listeningIPs(bind string) func() []string {
	if ip, err := netip.ParseAddr(bind); err == nil && !ip.IsUnspecified() {
		return func() []string { return []string{ip.String()} }
	}
	return cluster.LocalIPs
}

// detectSelf finds this node's HTTP address as the other members know it:
// the member with this node's port on one of the addresses it listens on
// (own), else the one address it is bound to, else this machine's first
// non-loopback IPv4 address, else loopback.
func detectSelf(members []string, port int, own []string) string {
	for _, m := range members {
		host, p, err := net.SplitHostPort(m)
		if err != nil {
			host, p = m, strconv.Itoa(port) // a bare IP means this node's port, as in Nacos
		}
		if p == strconv.Itoa(port) && slices.Contains(own, host) {
			return net.JoinHostPort(host, p)
		}
	}
	if len(own) == 1 {
		return net.JoinHostPort(own[0], strconv.Itoa(port))
	}
	for _, a := range own {
		if ip := net.ParseIP(a); ip != nil && ip.To4() != nil && !ip.IsLoopback() {
			return net.JoinHostPort(a, strconv.Itoa(port))
		}
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
