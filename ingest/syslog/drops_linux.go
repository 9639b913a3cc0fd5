package syslog

import (
	"encoding/binary"
	"net"
	"syscall"
)

// countDrops asks the kernel to attach to each datagram read from conn how
// many datagrams it has dropped on the socket so far, because its receive
// buffer was full (SO_RXQ_OVFL). It reports whether the socket took it.
func countDrops(conn *net.UDPConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// dropCount reads the socket's drop count from the control messages of a
// datagram: ok is false if they do not carry one (none dropped yet).
func dropCount(oob []byte) (n uint32, ok bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SO_RXQ_OVFL && len(m.Data) >= 4 {
			return binary.NativeEndian.Uint32(m.Data), true
		}
	}
	return 0, false
}
