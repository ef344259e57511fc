//go:build !linux

package scenario

import (
	"net"
	"time"
)

// stampOOB is the room a datagram's receive timestamp takes: none here.
const stampOOB = 0

// stampArrivals reports that the kernel does not stamp arrivals here: a
// datagram's arrival is when the generator reads it.
func stampArrivals(*net.UDPConn) bool { return false }

// arrival returns the zero time: there are no receive timestamps.
func arrival([]byte) time.Time { return time.Time{} }
