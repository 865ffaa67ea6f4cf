//go:build linux

package collective

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// sockIO (Linux) does a TCP link's reads and writes with non-blocking system calls
// made by the calling goroutine, and polls the socket for a short while
// (spin) when it has nothing to read or no room to write before sleeping in
// Go's network poller. On a machine where a wake-up costs tens of
// microseconds (virtual machines especially), sleeping on every gap of a
// stream or between a ping and its pong is what separates a Go transport
// from MPI's busy-polling one; a bounded poll gets most of the difference
// for little CPU. It also lets a large write go out in as few system calls
// as the socket allows while its checksum is computed a chunk ahead (see
// link.writeStreamed).
//
// Only *net.TCPConn links get one: a conn type that wraps a socket may add
// its own framing, and its Read and Write must be used. Only Linux has it
// (sockio_other.go): elsewhere every link uses its conn's Read and Write.
type sockIO struct {
	rc   syscall.RawConn
	spin time.Duration

	// Read side (under the link's read token): the call's arguments and
	// results, so that the function given to rc.Read is made once and a
	// read allocates nothing.
	rp     []byte
	rn     uintptr
	rerrno syscall.Errno
	rpark  bool
	readFn func(fd uintptr) bool

	// Write side, under the link's write token, likewise.
	iov     []syscall.Iovec
	wn      uintptr
	werrno  syscall.Errno
	wpark   bool
	writeFn func(fd uintptr) bool
}

func newSockIO(c net.Conn, spin time.Duration) *sockIO {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &sockIO{rc: rc, spin: spin}
	s.readFn = s.doRead
	s.writeFn = s.doWrite
	return s
}

// The calls are non-blocking: they never wait, so they are made as raw
// system calls, without telling the scheduler. (Told, it hands the thread's
// P to another thread during a large copy, which costs a thread wake-up per
// write and per read of a large message.)

func (s *sockIO) doRead(fd uintptr) bool {
	s.rn, _, s.rerrno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rp[0])), uintptr(len(s.rp)))
	return s.rerrno != syscall.EAGAIN || !s.rpark
}

func (s *sockIO) doWrite(fd uintptr) bool {
	s.wn, _, s.werrno = syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(len(s.iov)))
	return s.werrno != syscall.EAGAIN || !s.wpark
}

// read reads into p (len(p) > 0) what the socket has, waiting for at least
// one byte unless nb is set (errWouldBlock then).
func (s *sockIO) read(p []byte, nb bool) (int, error) {
	pl := poller{spin: s.spin}
	s.rp = p
	defer func() {
		s.rp = nil
		pl.stop()
	}()
	for {
		s.rpark = pl.park
		err := s.rc.Read(s.readFn)
		n, errno := s.rn, s.rerrno
		switch {
		case err != nil:
			return 0, err // deadline, closed
		case errno == syscall.EAGAIN:
			if nb {
				return 0, errWouldBlock
			}
			pl.idle()
		case errno == syscall.EINTR:
		case errno != 0:
			return 0, os.NewSyscallError("read", errno)
		case n == 0:
			return 0, io.EOF
		default:
			return int(n), nil
		}
	}
}

// tryWrite writes up to limit bytes from c with one writev. Unless park is
// set it does not wait: full reports that the socket took nothing.
func (s *sockIO) tryWrite(c *wcursor, limit int, park bool) (n int, full bool, err error) {
	iov := s.iov[:0]
	for i, off := c.i, c.off; i < len(c.segs) && limit > 0 && len(iov) < 1024; i, off = i+1, 0 {
		b := c.segs[i][off:]
		if len(b) == 0 {
			continue
		}
		b = b[:min(len(b), limit)]
		limit -= len(b)
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	s.iov = iov
	defer clear(s.iov) // drop the references to the caller's buffers
	if len(iov) == 0 {
		return 0, false, nil
	}
	s.wpark = park
	err = s.rc.Write(s.writeFn)
	r, errno := s.wn, s.werrno
	switch {
	case err != nil:
		return 0, false, err
	case errno == syscall.EAGAIN:
		return 0, true, nil
	case errno == syscall.EINTR:
		return 0, false, nil
	case errno != 0:
		return 0, false, os.NewSyscallError("writev", errno)
	}
	c.advance(int(r))
	return int(r), false, nil
}

// writeAll writes every byte of segs. While the socket is full it calls
// pump, which reports whether it did something useful meanwhile.
func (s *sockIO) writeAll(segs [][]byte, pump func() bool) (int64, error) {
	c := wcursor{segs: segs}
	c.advance(0)
	total := 0
	for _, b := range segs {
		total += len(b)
	}
	var (
		written int
		pl      = poller{spin: s.spin}
	)
	defer pl.stop()
	for written < total {
		n, full, err := s.tryWrite(&c, total-written, pl.park)
		written += n
		if err != nil {
			return int64(written), err
		}
		switch {
		case !full:
			pl.reset()
		case pump():
		default:
			pl.idle()
		}
	}
	return int64(written), nil
}
