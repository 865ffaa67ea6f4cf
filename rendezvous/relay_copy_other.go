//go:build !linux

package rendezvous

import (
	"net"
	"sync/atomic"
)

// relayCopy moves bytes from src to dst until src reaches EOF (nil) or
// either side fails, adding every byte written to counter. Go's io.Copy
// uses the platform's in-kernel path where it has one. pipeSize is Linux's
// (relay_splice_linux.go).
func relayCopy(dst, src net.Conn, counter *atomic.Int64, pipeSize int) error {
	return copyCounting(dst, src, counter)
}
