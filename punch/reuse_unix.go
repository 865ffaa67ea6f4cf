//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package punch

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseControl marks a socket's local address reusable before it is bound:
// SO_REUSEADDR lets it bind next to connections of the same port (and over
// TIME_WAIT), SO_REUSEPORT lets listeners and dialers share the port. Both
// are required; a socket that cannot get them fails.
func reuseControl(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			serr = fmt.Errorf("setsockopt SO_REUSEADDR: %w", serr)
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
			serr = fmt.Errorf("setsockopt SO_REUSEPORT: %w", serr)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
