//go:build linux

package rendezvous

import (
	"fmt"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// relayPipeSize is the capacity of the pipe one relay direction splices
// through, and so the most one splice(2) call moves: 1 MiB, the largest an
// unprivileged process may ask for (fs.pipe-max-size by default). On a
// 2-core Zen 5 VM, over six interleaved rounds of BenchmarkLinkThroughput,
// it moved 3-12% more than 256 KiB (87-94% of the direct link against
// 81-86%); 64 KiB (the default) costs more system calls per byte and
// reached 3.1-4.8 GB/s, and 2 MiB fell to 4.4-5.2 GB/s (more bytes in
// flight than the caches hold).
const relayPipeSize = 1 << 20

// The relay's sockets keep the kernel's buffer autotuning. Buffers sized to
// a path's bandwidth-delay product looked better under BBR, but with the
// links on CUBIC they held a loopback relay to 3.4-3.6 GB/s where
// autotuning reached 4.0-4.5 GB/s (BenchmarkLinkThroughput, interleaved).

// relayCopy moves bytes from src to dst until src reaches EOF (nil) or
// either side fails, adding every byte written to dst to counter as it goes.
// Between two TCP sockets the bytes never enter user space: they are
// spliced (splice(2)) from src into a private pipe and from the pipe into
// dst, each step waiting in Go's netpoller, so deadlines and Close end the
// copy as they end a Read or Write. Other connections are copied through a
// buffer.
func relayCopy(dst, src net.Conn, counter *atomic.Int64) error {
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
	// Best effort: a smaller pipe (the default, or pipe-max-size) only
	// means more calls.
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, relayPipeSize)

	for {
		// The pipe is empty here, so EAGAIN means src has nothing to read.
		n, err := spliceWaiting(sr.Read, func(fd int) (int64, error) {
			n, err := unix.Splice(fd, nil, p[1], nil, relayPipeSize, unix.SPLICE_F_NONBLOCK)
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
