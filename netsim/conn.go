package netsim

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

var errPipe = errno("write", syscall.EPIPE)

// errReset is what a stream returns once its connection is reset: the
// connection reports its pending error (TCPConn.soErr) in its place.
var errReset = errors.New("netsim: connection reset")

// TCPConn is an emulated TCP connection. It implements net.Conn and, like
// *net.TCPConn, CloseWrite, CloseRead, SetLinger and SetNoDelay. Errors are
// *net.OpError values wrapping what the OS would report (ECONNRESET, EPIPE,
// os.ErrDeadlineExceeded, net.ErrClosed), so errors.Is checks written for
// real sockets hold.
//
// Close sends a FIN after the data written, unless data sent by the peer is
// left unread or SetLinger(0) was called: then, as on Linux, it aborts with
// a RST: the peer's next Read or Write fails with ECONNRESET, and later
// reads return io.EOF and writes EPIPE. The side whose FIN leaves first
// keeps the 4-tuple in TIME_WAIT (see WithTimeWait).
type TCPConn struct {
	h             *Host
	in            *Internet
	local, remote netip.AddrPort
	passive       bool
	ln            *TCPListener // until accepted (passive)

	// Handshake and control state, under in.mu.
	state      tcpState
	peer       *TCPConn
	done       chan struct{} // closed when an active open ends
	err        error
	rto        time.Duration
	retries    int
	rtxGen     uint64
	inTable    bool
	finSent    bool
	finRcvd    bool
	finFirst   bool   // our FIN left before the peer's arrived: we end in TIME-WAIT
	twGen      uint64 // invalidates a pending end of FIN-WAIT-2 or TIME-WAIT
	userClosed bool
	linger     int
	path       *connPath

	// ackOwed: c completed its handshake on a SYN-ACK and answered with an
	// ACK that may be lost, leaving the peer in SYN-RECEIVED; the first
	// data or FIN c sends carries that ACK again (ackPeer).
	ackOwed atomic.Bool

	// soErr is the pending socket error (Linux sk_err) a reset leaves:
	// the next Read or Write reports it and clears it; after that reads
	// return io.EOF and writes EPIPE, as on Linux.
	soErr atomic.Uint32

	// Data path.
	rx, tx     *stream
	rdl, wdl   deadline
	closed     chan struct{}
	rsem, wsem chan struct{}
}

var _ net.Conn = (*TCPConn)(nil)

// LocalAddr returns the local endpoint, a *net.TCPAddr (nil for a nil
// connection, as the net package's).
func (c *TCPConn) LocalAddr() net.Addr {
	if c == nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(c.local)
}

// RemoteAddr returns the remote endpoint, a *net.TCPAddr: for a peer behind
// a NAT, its public endpoint as this side sees it.
func (c *TCPConn) RemoteAddr() net.Addr {
	if c == nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(c.remote)
}

// LocalAddrPort and RemoteAddrPort return the endpoints as netip values
// (the zero AddrPort for a nil connection).
func (c *TCPConn) LocalAddrPort() netip.AddrPort {
	if c == nil {
		return netip.AddrPort{}
	}
	return c.local
}

func (c *TCPConn) RemoteAddrPort() netip.AddrPort {
	if c == nil {
		return netip.AddrPort{}
	}
	return c.remote
}

func (c *TCPConn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return opError(op, "tcp", c.local, c.remote, err)
}

// acquire takes a one-slot semaphore (reads and writes are each serialized,
// as the net package does), failing on close or deadline.
func (c *TCPConn) acquire(sem chan struct{}, dl *deadline) error {
	if isClosed(c.closed) {
		return net.ErrClosed
	}
	if isClosed(dl.wait()) {
		return os.ErrDeadlineExceeded
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-c.closed:
		return net.ErrClosed
	case <-dl.wait():
		return os.ErrDeadlineExceeded
	}
}

// Read reads data the peer sent. It returns io.EOF after the peer's FIN.
func (c *TCPConn) Read(b []byte) (int, error) {
	if c == nil || c.h == nil {
		return 0, errInvalid
	}
	if err := c.acquire(c.rsem, &c.rdl); err != nil {
		return 0, c.opErr("read", err)
	}
	defer func() { <-c.rsem }()
	n, err := c.rx.read(b, func(wake chan struct{}, tc <-chan time.Time) error {
		select {
		case <-wake:
			return nil
		case <-tc:
			return nil
		case <-c.rdl.wait():
			return os.ErrDeadlineExceeded
		case <-c.closed:
			return net.ErrClosed
		}
	})
	if err == errReset {
		err = io.EOF
		if e := c.takeErr("read"); e != nil {
			err = e
		}
	}
	return n, c.opErr("read", err)
}

// takeErr returns the pending socket error (as syscall name would report
// it) and clears it, or nil if there is none.
func (c *TCPConn) takeErr(syscallName string) error {
	if n := c.soErr.Swap(0); n != 0 {
		return errno(syscallName, syscall.Errno(n))
	}
	return nil
}

// Write writes data to the peer. It blocks while the peer has a full
// window (WithTCPBuffer) of data in flight and unread.
func (c *TCPConn) Write(b []byte) (int, error) {
	if c == nil || c.h == nil {
		return 0, errInvalid
	}
	if err := c.acquire(c.wsem, &c.wdl); err != nil {
		return 0, c.opErr("write", err)
	}
	defer func() { <-c.wsem }()
	if c.ackOwed.Load() {
		c.in.mu.Lock()
		c.ackPeer()
		c.in.mu.Unlock()
	}
	if cp := c.path; cp != nil && len(cp.sessions) > 0 {
		if s := cp.touch(time.Now().UnixNano()); s != nil {
			c.pathDead(s)
		}
	}
	n, err := c.tx.write(b, func(wake chan struct{}, tc <-chan time.Time) error {
		select {
		case <-wake:
			return nil
		case <-tc:
			return nil
		case <-c.wdl.wait():
			return os.ErrDeadlineExceeded
		case <-c.closed:
			return net.ErrClosed
		}
	}, c.peerGone)
	if err == errReset {
		err = errPipe
		if e := c.takeErr("write"); e != nil {
			err = e
		}
	}
	return n, c.opErr("write", err)
}

// Close closes the connection (see TCPConn for FIN versus RST).
func (c *TCPConn) Close() error {
	if c == nil || c.h == nil {
		return errInvalid
	}
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if c.userClosed {
		return c.opErr("close", net.ErrClosed)
	}
	c.userClosed = true
	close(c.closed)
	if c.state != stateEstablished {
		return nil
	}
	if c.linger == 0 {
		c.abort("closed with SO_LINGER 0")
		return nil
	}
	unread, inflight := c.rx.pending(in.now())
	if unread > 0 {
		c.abort("closed with unread data")
		return nil
	}
	c.sendFIN()
	c.rx.setSink(sinkReset)
	if !inflight.IsZero() {
		// Data still on its way arrives at a closed socket: the host
		// answers RST, which reaches the peer a path latency later.
		peer := c.peer
		in.at(inflight, func() { c.release("data arrived after close: answered RST") })
		in.at(inflight.Add(c.tx.latency), func() { peer.reset(syscall.ECONNRESET, "data arrived at a closed socket") })
	}
	c.state = stateTimeWait
	if !c.finFirst {
		// The peer's FIN came first: LAST-ACK, then gone after a round trip.
		in.after(2*c.tx.latency, func() { c.h.removeConn(c) })
		return nil
	}
	// FIN-WAIT-2 until the peer's FIN, then TIME-WAIT for timeWait from
	// its arrival (sendFIN); a peer that never sends it leaves the orphan
	// for timeWait (Linux tcp_fin_timeout, 60 s).
	c.armTimeWait()
	return nil
}

// CloseWrite shuts down the sending side: the peer reads io.EOF after the
// data already written; this side can still read.
func (c *TCPConn) CloseWrite() error {
	if c == nil || c.h == nil {
		return errInvalid
	}
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if c.userClosed {
		return c.opErr("close", net.ErrClosed)
	}
	if c.shutDown() {
		return c.opErr("close", errno("shutdown", syscall.ENOTCONN))
	}
	c.sendFIN()
	return nil
}

// shutDown reports whether c is in Linux's CLOSE state, where shutdown
// fails with ENOTCONN: reset, or both FINs exchanged (TIME-WAIT on the side
// that sent the first, the peer's ACK of its FIN on the other), under in.mu.
func (c *TCPConn) shutDown() bool {
	if c.state != stateEstablished {
		return true
	}
	return c.finSent && c.finRcvd && c.peer != nil && c.peer.finRcvd
}

// CloseRead shuts down the receiving side, as shutdown(SHUT_RD) does on
// Linux: a Read that would block returns io.EOF instead. Data from the peer
// is still accepted and queued, and reads return it first; a Close that
// leaves it unread sends a RST.
func (c *TCPConn) CloseRead() error {
	if c == nil || c.h == nil {
		return errInvalid
	}
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if c.userClosed {
		return c.opErr("close", net.ErrClosed)
	}
	if c.shutDown() {
		return c.opErr("close", errno("shutdown", syscall.ENOTCONN))
	}
	c.rx.shutRead()
	return nil
}

// SetLinger sets SO_LINGER: 0 makes Close abort with a RST (no
// TIME_WAIT); other values behave as the default (a graceful close).
func (c *TCPConn) SetLinger(sec int) error {
	if c == nil || c.h == nil {
		return errInvalid
	}
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if c.userClosed {
		return c.opErr("set", net.ErrClosed)
	}
	c.linger = sec
	return nil
}

// SetNoDelay is accepted for compatibility: netsim sends every write at
// once, as with TCP_NODELAY.
func (c *TCPConn) SetNoDelay(noDelay bool) error {
	if c == nil || c.h == nil {
		return errInvalid
	}
	select {
	case <-c.closed:
		return c.opErr("set", net.ErrClosed)
	default:
		return nil
	}
}

// SetDeadline sets the read and write deadlines.
func (c *TCPConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for Read; an expired deadline makes
// Read fail with an error that wraps os.ErrDeadlineExceeded.
func (c *TCPConn) SetReadDeadline(t time.Time) error {
	if c == nil || c.h == nil {
		return errInvalid
	}
	if isClosed(c.closed) {
		return c.deadlineErr()
	}
	c.rdl.set(t)
	return nil
}

// SetWriteDeadline sets the deadline for Write.
func (c *TCPConn) SetWriteDeadline(t time.Time) error {
	if c == nil || c.h == nil {
		return errInvalid
	}
	if isClosed(c.closed) {
		return c.deadlineErr()
	}
	c.wdl.set(t)
	return nil
}

// deadlineErr is the error of setting a deadline on a closed connection:
// like the net package's, it names only the local address.
func (c *TCPConn) deadlineErr() error {
	return opError("set", "tcp", netip.AddrPort{}, c.local, net.ErrClosed)
}
