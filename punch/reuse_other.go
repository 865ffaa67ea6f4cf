//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package punch

import (
	"fmt"
	"runtime"
	"syscall"
)

// reuseControl fails: this system has no SO_REUSEPORT, and punching from a
// port that cannot be shared is pointless.
func reuseControl(network, address string, rc syscall.RawConn) error {
	return fmt.Errorf("reusable ports (SO_REUSEPORT) are not supported on %s", runtime.GOOS)
}
