//go:build linux

package rendezvous

import (
	"fmt"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The relay's sockets keep the kernel's buffer autotuning. Buffers sized to
// a path's bandwidth-delay product looked better under BBR, but with the
// links on CUBIC they held a loopback relay to 3.4-3.6 GB/s where
// autotuning reached 4.0-4.5 GB/s (BenchmarkLinkThroughput, interleaved).

// relayCopy moves bytes from src to dst until src reaches EOF (nil) or
// either side fails, adding every byte written to dst to counter as it goes.
// Between two TCP sockets the bytes never enter user space: they are
// spliced (splice(2)) from src into a private pipe and from the pipe into
// dst, each step waiting in Go's netpoller, so deadlines and Close end the
// copy as they end a Read or Write. The pipe holds pipeSize bytes (0: the
// kernel's default; see relayPipeSize). Other connections are copied
// through a buffer.
func relayCopy(dst, src net.Conn, counter *atomic.Int64, pipeSize int) error {
	s, ok1 := src.(*net.TCPConn)
	d, ok2 := dst.(*net.TCPConn)
	if !ok1 || !ok2 {
		return copyCounting(dst, src, counter)
	}
	sr, err := s.SyscallConn()
	if err != nil {
		return copyCounting(dst, src, counter)
	}
	dr, err := d.SyscallConn()
	if err != nil {
		return copyCounting(dst, src, counter)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		// Nothing was read yet: the plain copy loses no byte.
		return copyCounting(dst, src, counter)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	// Best effort: a smaller pipe (the default, or pipe-max-size, or what
	// the user's pipe budget leaves) only means more calls.
	if pipeSize > 0 {
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeSize)
	}

	for {
		// The pipe is empty here, so EAGAIN means src has nothing to read.
		n, err := spliceWaiting(sr.Read, func(fd int) (int64, error) {
			// At most what the pipe has room for moves.
			n, err := unix.Splice(fd, nil, p[1], nil, relayChunk, unix.SPLICE_F_NONBLOCK)
			return int64(n), err // int on 32-bit platforms
		})
		if err != nil {
			return fmt.Errorf("relay: splice from %v: %w", src.RemoteAddr(), err)
		}
		if n == 0 {
			return nil // EOF: the sender half-closed
		}
		// Drain the pipe into dst; EAGAIN means dst's send buffer is full.
		for n > 0 {
			m, err := spliceWaiting(dr.Write, func(fd int) (int64, error) {
				m, err := unix.Splice(p[0], nil, fd, nil, int(n), unix.SPLICE_F_NONBLOCK)
				return int64(m), err
			})
			if err != nil {
				return fmt.Errorf("relay: splice to %v: %w", dst.RemoteAddr(), err)
			}
			n -= m
			counter.Add(m)
		}
	}
}

// spliceWaiting runs one non-blocking splice(2) on a socket's descriptor
// through wait (its RawConn's Read or Write), which parks the goroutine in
// Go's netpoller while the call would block, so that deadlines and Close
// end the wait.
func spliceWaiting(wait func(func(fd uintptr) bool) error, splice func(fd int) (int64, error)) (int64, error) {
	var (
		n    int64
		serr error
	)
	err := wait(func(fd uintptr) bool {
		for {
			n, serr = splice(int(fd))
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = serr
	}
	return n, err
}
