package netsim

import (
	"net"
	"net/netip"
	"os"
	"time"
)

// backlog is the accept queue length (Linux somaxconn).
const backlog = 4096

// TCPListener is an emulated TCP listener; it implements net.Listener.
type TCPListener struct {
	h        *Host
	addr     netip.AddrPort
	queue    chan *TCPConn
	pending  int // connections in SYN-RECEIVED, under in.mu
	closed   chan struct{}
	isClosed bool
	dl       deadline
}

var _ net.Listener = (*TCPListener)(nil)

func newListener(h *Host, addr netip.AddrPort) *TCPListener {
	return &TCPListener{h: h, addr: addr, queue: make(chan *TCPConn, backlog),
		closed: make(chan struct{}), dl: newDeadline()}
}

// Accept waits for and returns the next connection.
func (l *TCPListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP is Accept returning the concrete type.
func (l *TCPListener) AcceptTCP() (*TCPConn, error) {
	if l == nil || l.h == nil {
		return nil, errInvalid
	}
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.closed:
		return nil, opError("accept", "tcp", netip.AddrPort{}, l.addr, net.ErrClosed)
	case <-l.dl.wait():
		return nil, opError("accept", "tcp", netip.AddrPort{}, l.addr, os.ErrDeadlineExceeded)
	}
}

// Close stops listening; connections not yet accepted are reset.
func (l *TCPListener) Close() error {
	if l == nil || l.h == nil {
		return errInvalid
	}
	l.h.in.mu.Lock()
	defer l.h.in.mu.Unlock()
	if l.isClosed {
		return opError("close", "tcp", netip.AddrPort{}, l.addr, net.ErrClosed)
	}
	l.close()
	return nil
}

func (l *TCPListener) close() {
	if l.isClosed {
		return
	}
	l.isClosed = true
	close(l.closed)
	l.h.removeListener(l)
	for {
		select {
		case c := <-l.queue:
			if c.state == stateEstablished {
				c.abort("listener closed")
			}
		default:
			return
		}
	}
}

// Addr returns the listening address, a *net.TCPAddr (nil for a nil
// listener).
func (l *TCPListener) Addr() net.Addr {
	if l == nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(l.addr)
}

// AddrPort returns the listening address as a netip value.
func (l *TCPListener) AddrPort() netip.AddrPort {
	if l == nil {
		return netip.AddrPort{}
	}
	return l.addr
}

// SetDeadline sets a deadline for Accept. On a closed listener it fails
// with net.ErrClosed, unwrapped, as the net package's does.
func (l *TCPListener) SetDeadline(t time.Time) error {
	if l == nil || l.h == nil {
		return errInvalid
	}
	if isClosed(l.closed) {
		return net.ErrClosed
	}
	l.dl.set(t)
	return nil
}
