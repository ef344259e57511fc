package scenario

import (
	"encoding/binary"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// stampOOB is the room a datagram's receive timestamp takes.
var stampOOB = syscall.CmsgSpace(int(unsafe.Sizeof(syscall.Timespec{})))

// stampArrivals has the kernel stamp each datagram conn receives with the
// time it arrived (SO_TIMESTAMPNS), so that a subscriber's latency does not
// include the time the generator took to get to it.
func stampArrivals(conn *net.UDPConn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// arrival returns the receive timestamp in a datagram's control messages,
// or the zero time.
func arrival(oob []byte) time.Time {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(syscall.Timespec{})) {
			var sec, nsec int64
			if unsafe.Sizeof(syscall.Timespec{}) == 16 {
				sec, nsec = int64(binary.NativeEndian.Uint64(m.Data[0:])), int64(binary.NativeEndian.Uint64(m.Data[8:]))
			} else { // 32-bit: two int32s
				sec, nsec = int64(int32(binary.NativeEndian.Uint32(m.Data[0:]))), int64(int32(binary.NativeEndian.Uint32(m.Data[4:])))
			}
			return time.Unix(sec, nsec)
		}
	}
	return time.Time{}
}
