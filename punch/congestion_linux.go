package punch

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetCongestionControl sets the TCP congestion-control algorithm of an OS
// socket, a *net.TCPConn or *net.TCPListener (TCP_CONGESTION, e.g. "cubic",
// "reno", "bbr"). An empty name leaves it as it is.
// The kernel refuses algorithms it does not have and, for unprivileged
// processes, those missing from net.ipv4.tcp_allowed_congestion_control.
// Set on a connected socket, the algorithm takes over from the one the
// handshake ran with, but a socket BBR ran on stays paced; a listener's
// algorithm is inherited by the connections it accepts (set it before they
// arrive), and the Port's network gives its sockets theirs before they
// connect.
func SetCongestionControl(c syscall.Conn, name string) error {
	if name == "" {
		return nil
	}
	if c == nil {
		return fmt.Errorf("punch: congestion control %q: nil connection", name)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("punch: congestion control %q: %w", name, err)
	}
	return congestionControl(raw, name)
}

// congestionControl sets TCP_CONGESTION on a raw socket.
func congestionControl(rc syscall.RawConn, name string) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	}); err != nil {
		return fmt.Errorf("punch: congestion control %q: %w", name, err)
	}
	if serr != nil {
		return fmt.Errorf("punch: congestion control %q: setsockopt TCP_CONGESTION: %w", name, serr)
	}
	return nil
}
