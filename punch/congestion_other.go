//go:build !linux

package punch

import "syscall"

// SetCongestionControl does nothing where the system has no per-socket
// choice of TCP congestion control (TCP_CONGESTION is Linux's and
// FreeBSD's); links keep the system's algorithm.
func SetCongestionControl(c syscall.Conn, name string) error { return nil }

func congestionControl(rc syscall.RawConn, name string) error { return nil }
