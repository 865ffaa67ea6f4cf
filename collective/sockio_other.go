//go:build !linux

package collective

import (
	"net"
	"time"
)

// sockIO is Linux only (sockio_linux.go): elsewhere newSockIO returns nil
// and every link reads and writes through its conn's Read and Write. The
// methods exist for the compiler; they are never called on a nil sockIO.
type sockIO struct {
	spin time.Duration
}

func newSockIO(net.Conn, time.Duration) *sockIO { return nil }

func (s *sockIO) read([]byte, bool) (int, error) { return 0, errNoSockIO }

func (s *sockIO) tryWrite(*wcursor, int, bool) (int, bool, error) { return 0, false, errNoSockIO }

func (s *sockIO) writeAll([][]byte, func() bool) (int64, error) { return 0, errNoSockIO }
