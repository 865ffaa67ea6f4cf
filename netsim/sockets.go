package netsim

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// The socket API of a Host (the punch.Network methods) and the demultiplexing
// of arriving segments and datagrams to sockets.

// ListenTCP listens for TCP connections on laddr (SO_REUSEADDR and
// SO_REUSEPORT semantics). An unspecified address listens on all of the
// host's addresses; port 0 picks a free ephemeral port. As punch's OS
// network does, it refuses (EADDRINUSE) a port that already has a listener
// on an overlapping address (the same one, or either of the two
// unspecified): Linux would take the second and spread the port's inbound
// connections over both, so that a second punch Port on a port got a share
// of the first one's peers. The port's connections and TIME_WAIT entries,
// and listeners on other addresses, do not stop it.
func (h *Host) ListenTCP(ctx context.Context, laddr netip.AddrPort) (net.Listener, error) {
	if h == nil || h.in == nil {
		return nil, errInvalid
	}
	if ctx == nil {
		return nil, opError("listen", "tcp", netip.AddrPort{}, laddr, errNilContext)
	}
	if err := ctx.Err(); err != nil {
		return nil, opError("listen", "tcp", netip.AddrPort{}, laddr, ctxError(ctx))
	}
	in := h.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := h.usable(); err != nil {
		return nil, opError("listen", "tcp", netip.AddrPort{}, laddr, err)
	}
	a, err := h.bindAddr(laddr.Addr())
	if err != nil {
		return nil, opError("listen", "tcp", netip.AddrPort{}, laddr, err)
	}
	port := laddr.Port()
	if port == 0 {
		if port, err = h.ephemeral(func(p uint16) bool { return h.tcpPorts[p] > 0 }); err != nil {
			return nil, opError("listen", "tcp", netip.AddrPort{}, laddr, err)
		}
	}
	for _, l := range h.listeners[port] {
		if la := l.addr.Addr(); la == a || la.IsUnspecified() || a.IsUnspecified() {
			return nil, opError("listen", "tcp", netip.AddrPort{}, laddr,
				fmt.Errorf("another socket of this user holds port %d with SO_REUSEPORT "+
					"(a listener there would share the port's inbound connections): %w", port, errno("bind", syscall.EADDRINUSE)))
		}
	}
	l := newListener(h, netip.AddrPortFrom(a, port))
	h.listeners[port] = append(h.listeners[port], l)
	h.tcpPorts[port]++
	return l, nil
}

// listenerFor picks the listener that gets a SYN for local: the one bound
// to that exact address before one bound to all addresses. ListenTCP lets
// no two listeners overlap, so there is at most one of each.
func (h *Host) listenerFor(local netip.AddrPort) *TCPListener {
	var wild *TCPListener
	for _, l := range h.listeners[local.Port()] {
		switch {
		case l.addr.Addr() == local.Addr():
			return l
		case l.addr.Addr().IsUnspecified():
			wild = l
		}
	}
	return wild
}

func (h *Host) removeListener(l *TCPListener) {
	lns := h.listeners[l.addr.Port()]
	for i, x := range lns {
		if x == l {
			lns = append(lns[:i:i], lns[i+1:]...)
			h.tcpPorts[l.addr.Port()]--
			break
		}
	}
	if len(lns) == 0 {
		delete(h.listeners, l.addr.Port())
	} else {
		h.listeners[l.addr.Port()] = lns
	}
	if h.tcpPorts[l.addr.Port()] <= 0 {
		delete(h.tcpPorts, l.addr.Port())
	}
}

func (h *Host) addConn(c *TCPConn) {
	h.conns[tuple{c.local, c.remote}] = c
	h.tcpPorts[c.local.Port()]++
	c.inTable = true
}

func (h *Host) removeConn(c *TCPConn) {
	if !c.inTable {
		return
	}
	c.inTable = false
	t := tuple{c.local, c.remote}
	if h.conns[t] == c {
		delete(h.conns, t)
	}
	if h.tcpPorts[c.local.Port()]--; h.tcpPorts[c.local.Port()] <= 0 {
		delete(h.tcpPorts, c.local.Port())
	}
}

// DialTCP connects to raddr from laddr. The handshake is emulated segment
// by segment: the SYN is retransmitted after 1, 3, 7, 15, 31 and 63 s, and
// the dial gives up with ETIMEDOUT after 127 s, as Linux does, unless ctx
// ends first (then the error matches context.DeadlineExceeded or
// context.Canceled and is a net.Error with Timeout() for a deadline). A RST
// or ICMP port unreachable fails it with ECONNREFUSED, an address nobody has
// with EHOSTUNREACH. If the remote endpoint is dialing back at the same
// moment, the two SYNs cross and both dials return the same connection
// (TCP simultaneous open). Dialing a 4-tuple that is in use, TIME_WAIT
// included, fails with EADDRNOTAVAIL. Errors are *net.OpError values whose
// Source is laddr as given (none if it is the zero AddrPort), as net.Dialer's
// are: the port picked for the attempt is not named.
func (h *Host) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error) {
	if h == nil || h.in == nil {
		return nil, errInvalid
	}
	c, err := h.dial(ctx, laddr, raddr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialContext connects to address ("host:port" with an IPv4 address) on
// network "tcp" or "tcp4" from an ephemeral port, like net.Dialer's
// DialContext, for code (HTTP clients, for instance) that dials by string.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if h == nil || h.in == nil {
		return nil, errInvalid
	}
	if network != "tcp" && network != "tcp4" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	return h.DialTCP(ctx, netip.AddrPort{}, ap)
}

func (h *Host) dial(ctx context.Context, laddr, raddr netip.AddrPort) (*TCPConn, error) {
	raddr, err := checkRemote(raddr)
	if err != nil {
		return nil, opError("dial", "tcp", laddr, raddr, err)
	}
	if ctx == nil {
		return nil, opError("dial", "tcp", laddr, raddr, errNilContext)
	}
	if ctx.Err() != nil {
		return nil, opError("dial", "tcp", laddr, raddr, ctxError(ctx))
	}
	in := h.in
	in.mu.Lock()
	if err := h.usable(); err != nil {
		in.mu.Unlock()
		return nil, opError("dial", "tcp", laddr, raddr, err)
	}
	a, err := h.bindAddr(laddr.Addr())
	if err != nil {
		in.mu.Unlock()
		return nil, opError("dial", "tcp", laddr, raddr, err)
	}
	local := netip.AddrPortFrom(h.sourceFor(a, raddr.Addr()), laddr.Port())
	if local.Addr().IsLoopback() && !h.isLocal(raddr.Addr()) {
		// Linux routes no packet with a loopback source off the host.
		in.mu.Unlock()
		return nil, opError("dial", "tcp", laddr, raddr, errno("connect", syscall.EINVAL))
	}
	if local.Port() == 0 {
		port, err := h.ephemeral(func(p uint16) bool { return h.tcpPorts[p] > 0 })
		if err != nil {
			in.mu.Unlock()
			return nil, opError("dial", "tcp", laddr, raddr, err)
		}
		local = netip.AddrPortFrom(local.Addr(), port)
	}
	if old := h.conns[tuple{local, raddr}]; old != nil {
		state := old.state // read under in.mu
		in.mu.Unlock()
		return nil, opError("dial", "tcp", laddr, raddr,
			fmt.Errorf("4-tuple %v->%v in use (%s): %w", local, raddr, state, errno("connect", syscall.EADDRNOTAVAIL)))
	}
	c := h.newConn(local, raddr, false)
	c.connect()
	in.mu.Unlock()

	select {
	case <-c.done:
	case <-ctx.Done():
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if !isClosed(c.done) { // still connecting: ctx ended
		c.abandon()
		return nil, opError("dial", "tcp", laddr, raddr, ctxError(ctx))
	}
	if c.err != nil {
		return nil, opError("dial", "tcp", laddr, raddr, c.err)
	}
	// Established (and possibly reset since: the caller's first read
	// reports it, as with a real socket).
	return c, nil
}

// ListenUDP opens a UDP socket on laddr (SO_REUSEADDR and SO_REUSEPORT
// semantics: several sockets may share a port; each datagram goes to one
// of them). An unspecified address receives on all of the host's addresses;
// port 0 picks a free ephemeral port.
func (h *Host) ListenUDP(ctx context.Context, laddr netip.AddrPort) (net.PacketConn, error) {
	if h == nil || h.in == nil {
		return nil, errInvalid
	}
	return h.listenUDP(ctx, laddr)
}

func (h *Host) listenUDP(ctx context.Context, laddr netip.AddrPort) (*UDPConn, error) {
	if ctx == nil {
		return nil, opError("listen", "udp", netip.AddrPort{}, laddr, errNilContext)
	}
	if err := ctx.Err(); err != nil {
		return nil, opError("listen", "udp", netip.AddrPort{}, laddr, ctxError(ctx))
	}
	in := h.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := h.usable(); err != nil {
		return nil, opError("listen", "udp", netip.AddrPort{}, laddr, err)
	}
	a, err := h.bindAddr(laddr.Addr())
	if err != nil {
		return nil, opError("listen", "udp", netip.AddrPort{}, laddr, err)
	}
	port := laddr.Port()
	if port == 0 {
		if port, err = h.ephemeral(func(p uint16) bool { return len(h.udps[p]) > 0 }); err != nil {
			return nil, opError("listen", "udp", netip.AddrPort{}, laddr, err)
		}
	}
	u := newUDPConn(h, netip.AddrPortFrom(a, port))
	h.udps[port] = append(h.udps[port], u)
	return u, nil
}

func (h *Host) removeUDP(u *UDPConn) {
	us := h.udps[u.local.Port()]
	for i, x := range us {
		if x == u {
			us = append(us[:i:i], us[i+1:]...)
			break
		}
	}
	if len(us) == 0 {
		delete(h.udps, u.local.Port())
	} else {
		h.udps[u.local.Port()] = us
	}
}

// udpInput delivers a datagram to a socket bound to its port.
func (h *Host) udpInput(p *packet) {
	var exact, any []*UDPConn
	for _, u := range h.udps[p.dst.Port()] {
		switch {
		case u.local.Addr() == p.dst.Addr():
			exact = append(exact, u)
		case u.local.Addr().IsUnspecified():
			any = append(any, u)
		}
	}
	c := exact
	if len(c) == 0 {
		c = any
	}
	if len(c) == 0 {
		h.in.trace(EventDrop, h.name, p, "no socket on port (ICMP port unreachable not modeled for UDP)")
		return
	}
	u := c[hashAddrPort(p.src)%uint32(len(c))]
	if !u.enqueue(p.src, p.payload) {
		h.in.trace(EventDrop, h.name, p, "socket receive buffer full")
	}
}

// icmpInput fails a connect that an ICMP error is about.
func (h *Host) icmpInput(p *packet) {
	o := p.orig
	if o == nil || o.proto != protoTCP {
		return
	}
	c := h.conns[tuple{o.src, o.dst}]
	if c == nil || c.state != stateSynSent || o.from != c {
		return
	}
	n := syscall.EHOSTUNREACH
	if p.icmp == icmpPortUnreachable {
		n = syscall.ECONNREFUSED
	}
	c.handshakeFail(errno("connect", n))
}
