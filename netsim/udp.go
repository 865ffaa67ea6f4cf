package netsim

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// udpRecvBuffer is a UDP socket's receive buffer, Linux's default
// (net.core.rmem_default, which Go leaves in place): datagrams that do not
// fit are dropped. Each queued datagram is charged about what Linux charges
// (the skb's truesize, see udpCost): measured on loopback, a socket nobody
// reads keeps 256 datagrams of up to 256 bytes (empty ones included), or 3
// of 60000 bytes.
const udpRecvBuffer = 212992

// udpCost is what a datagram of n bytes takes of the receive buffer: its
// data buffer (at least 256 bytes) and 576 bytes of kernel bookkeeping.
func udpCost(n int) int { return max(n, 256) + 576 }

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// UDPConn is an emulated UDP socket; it implements net.PacketConn.
type UDPConn struct {
	h     *Host
	local netip.AddrPort

	mu      sync.Mutex
	q       []datagram
	qhead   int
	qbytes  int
	waiting bool
	wake    chan struct{}

	closed   chan struct{}
	isClosed bool // under in.mu
	rdl, wdl deadline
	rsem     chan struct{}
}

type datagram struct {
	from netip.AddrPort
	data []byte
}

var _ net.PacketConn = (*UDPConn)(nil)

func newUDPConn(h *Host, local netip.AddrPort) *UDPConn {
	return &UDPConn{h: h, local: local, wake: make(chan struct{}, 1), closed: make(chan struct{}),
		rdl: newDeadline(), wdl: newDeadline(), rsem: make(chan struct{}, 1)}
}

func (u *UDPConn) opErr(op string, remote netip.AddrPort, err error) error {
	return opError(op, "udp", u.local, remote, err)
}

// enqueue queues a datagram for reading; it reports false if the receive
// buffer is full.
func (u *UDPConn) enqueue(from netip.AddrPort, data []byte) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	cost := udpCost(len(data))
	if u.qbytes+cost > udpRecvBuffer {
		return false
	}
	u.q = append(u.q, datagram{from, data})
	u.qbytes += cost
	if u.waiting {
		u.waiting = false
		poke(u.wake)
	}
	return true
}

// ReadFromUDPAddrPort reads one datagram into b (truncating it if b is too
// small, as the OS does) and returns its sender.
func (u *UDPConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	if u == nil || u.h == nil {
		return 0, netip.AddrPort{}, errInvalid
	}
	if isClosed(u.closed) {
		return 0, netip.AddrPort{}, u.opErr("read", netip.AddrPort{}, net.ErrClosed)
	}
	select {
	case u.rsem <- struct{}{}:
	case <-u.closed:
		return 0, netip.AddrPort{}, u.opErr("read", netip.AddrPort{}, net.ErrClosed)
	case <-u.rdl.wait():
		return 0, netip.AddrPort{}, u.opErr("read", netip.AddrPort{}, os.ErrDeadlineExceeded)
	}
	defer func() { <-u.rsem }()
	for {
		if isClosed(u.closed) {
			return 0, netip.AddrPort{}, u.opErr("read", netip.AddrPort{}, net.ErrClosed)
		}
		if isClosed(u.rdl.wait()) {
			return 0, netip.AddrPort{}, u.opErr("read", netip.AddrPort{}, os.ErrDeadlineExceeded)
		}
		u.mu.Lock()
		if u.qhead < len(u.q) {
			d := u.q[u.qhead]
			u.q[u.qhead] = datagram{}
			u.qhead++
			if u.qhead == len(u.q) {
				u.q, u.qhead = u.q[:0], 0
			} else if u.qhead >= 64 && u.qhead*2 >= len(u.q) {
				// A queue that never empties would otherwise grow its
				// array forever: move what is left to the front.
				k := copy(u.q, u.q[u.qhead:])
				clear(u.q[k:])
				u.q, u.qhead = u.q[:k], 0
			}
			u.qbytes -= udpCost(len(d.data))
			u.mu.Unlock()
			return copy(b, d.data), d.from, nil
		}
		u.waiting = true
		u.mu.Unlock()
		select {
		case <-u.wake:
		case <-u.closed:
		case <-u.rdl.wait():
		}
	}
}

// ReadFrom reads one datagram; the address is a *net.UDPAddr.
func (u *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := u.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteTo sends b as one datagram to addr, which must be a *net.UDPAddr.
func (u *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if u == nil || u.h == nil {
		return 0, errInvalid
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: u.LocalAddr(), Addr: addr,
			Err: errno("sendto", syscall.EINVAL)}
	}
	return u.WriteToUDPAddrPort(b, ua.AddrPort())
}

// WriteToUDPAddrPort sends b as one datagram to addr. Sending never blocks;
// a datagram that finds a full queue or a lossy link is lost on the way.
func (u *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if u == nil || u.h == nil {
		return 0, errInvalid
	}
	// The checks come in the order Go and Linux make them: the address,
	// then the socket's state, then sendto's own checks.
	a := addr.Addr().Unmap()
	if !a.IsValid() || !a.Is4() {
		return 0, u.opErr("write", addr, fmt.Errorf("netsim: remote address %v: not an IPv4 address", addr))
	}
	dst := netip.AddrPortFrom(a, addr.Port())
	if isClosed(u.closed) {
		return 0, u.opErr("write", dst, net.ErrClosed)
	}
	if isClosed(u.wdl.wait()) {
		return 0, u.opErr("write", dst, os.ErrDeadlineExceeded)
	}
	if len(b) > 0xFFFF {
		return 0, u.opErr("write", dst, errno("sendto", syscall.EMSGSIZE))
	}
	if dst.Port() == 0 {
		return 0, u.opErr("write", dst, errno("sendto", syscall.EINVAL))
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return 0, u.opErr("write", dst, fmt.Errorf("netsim: remote address %v: %w", dst,
			errno("sendto", syscall.EADDRNOTAVAIL)))
	}
	h := u.h
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	if u.isClosed {
		return 0, u.opErr("write", dst, net.ErrClosed)
	}
	src := netip.AddrPortFrom(h.sourceFor(u.local.Addr(), dst.Addr()), u.local.Port())
	if src.Addr().IsLoopback() && !h.isLocal(dst.Addr()) {
		// Linux routes no packet with a loopback source off the host.
		return 0, u.opErr("write", dst, errno("sendto", syscall.EINVAL))
	}
	if len(b) > maxDatagram {
		return 0, u.opErr("write", dst, errno("sendto", syscall.EMSGSIZE))
	}
	h.send(&packet{proto: protoUDP, src: src, dst: dst, payload: append([]byte(nil), b...)})
	return len(b), nil
}

// Close closes the socket.
func (u *UDPConn) Close() error {
	if u == nil || u.h == nil {
		return errInvalid
	}
	u.h.in.mu.Lock()
	defer u.h.in.mu.Unlock()
	if u.isClosed {
		return u.opErr("close", netip.AddrPort{}, net.ErrClosed)
	}
	u.close()
	return nil
}

func (u *UDPConn) close() {
	if u.isClosed {
		return
	}
	u.isClosed = true
	close(u.closed)
	u.h.removeUDP(u)
}

// LocalAddr returns the bound address, a *net.UDPAddr (nil for a nil
// socket, as the net package's).
func (u *UDPConn) LocalAddr() net.Addr {
	if u == nil {
		return nil
	}
	return net.UDPAddrFromAddrPort(u.local)
}

// LocalAddrPort returns the bound address as a netip value.
func (u *UDPConn) LocalAddrPort() netip.AddrPort {
	if u == nil {
		return netip.AddrPort{}
	}
	return u.local
}

// SetDeadline sets the read and write deadlines.
func (u *UDPConn) SetDeadline(t time.Time) error {
	if err := u.SetReadDeadline(t); err != nil {
		return err
	}
	return u.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for reads.
func (u *UDPConn) SetReadDeadline(t time.Time) error {
	if u == nil || u.h == nil {
		return errInvalid
	}
	if isClosed(u.closed) {
		return opError("set", "udp", netip.AddrPort{}, u.local, net.ErrClosed)
	}
	u.rdl.set(t)
	return nil
}

// SetWriteDeadline sets the deadline for writes.
func (u *UDPConn) SetWriteDeadline(t time.Time) error {
	if u == nil || u.h == nil {
		return errInvalid
	}
	if isClosed(u.closed) {
		return opError("set", "udp", netip.AddrPort{}, u.local, net.ErrClosed)
	}
	u.wdl.set(t)
	return nil
}
