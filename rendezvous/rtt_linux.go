package rendezvous

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// kernelRTT is the smallest round trip the kernel has measured on c, an OS
// TCP socket (tcpi_min_rtt: the SYN-ACK's answer and every ACK since, which
// a retransmission or a slow reader does not inflate), or 0 when c is not
// one or the kernel has no sample.
func kernelRTT(c net.Conn) time.Duration {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var info *unix.TCPInfo
	if raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}) != nil || err != nil {
		return 0
	}
	if info.Min_rtt == 0 || info.Min_rtt == ^uint32(0) {
		return 0 // no sample (the kernel's "unset" is all ones)
	}
	return time.Duration(info.Min_rtt) * time.Microsecond
}
