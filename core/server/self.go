package server

import (
	"net"
	"slices"
	"strconv"

	"github.com/sextantd/sextant/core/cluster"
)

// detectSelf finds this node's HTTP address as the other members know it:
// the member with this node's port on one of this machine's addresses, else
// this machine's first non-loopback IPv4 address, else loopback.
func detectSelf(members []string, port int) string {
	own := cluster.LocalIPs()
	for _, m := range members {
		host, p, err := net.SplitHostPort(m)
		if err != nil {
			host, p = m, strconv.Itoa(port) // a bare IP means this node's port, as in Nacos
		}
		if p == strconv.Itoa(port) && slices.Contains(own, host) {
			return net.JoinHostPort(host, p)
		}
	}
	for _, a := range own {
		if ip := net.ParseIP(a); ip != nil && ip.To4() != nil && !ip.IsLoopback() {
			return net.JoinHostPort(a, strconv.Itoa(port))
		}
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
