package pushudp

import (
	"net"
	"runtime"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchConn is the socket as golang.org/x/net sees it: many datagrams a
// system call, sendmmsg(2) and recvmmsg(2). A batch's datagrams, one per
// address, leave in a few calls rather than one each, and a burst of acks is
// read likewise.
type batchConn interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchConn returns conn as a batchConn, or nil where the system has no
// sendmmsg (or if not batching): then the executor sends and reads a
// datagram at a time.
//
// Linux only, also because of the dual-stack socket (bind ":0", an AF_INET6
// socket taking IPv4 too): x/net writes an IPv4 target's address as a
// sockaddr_in, which Linux sends from an AF_INET6 socket that is not
// IPV6_V6ONLY (as Go's dual-stack sockets are not), and other systems refuse.
// An IPv6 target of an AF_INET socket is refused by the system, as it is by
// WriteTo: that datagram alone fails.
func newBatchConn(conn *net.UDPConn, batching bool) batchConn {
	if runtime.GOOS != "linux" || !batching {
		return nil
	}
	if conn.LocalAddr().(*net.UDPAddr).IP.To4() != nil { // AF_INET: Go binds an IPv4 address so, and a wildcard dual-stack
		return ipv4.NewPacketConn(conn)
	}
	return ipv6.NewPacketConn(conn) // the Messages are the same type
}
