package netsim

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
)

// Host is a machine with one IPv4 address, on the internet or behind a NAT.
// It implements the network interface the punch layer consumes (ListenTCP,
// DialTCP, ListenUDP with explicit, reusable local addresses), so code
// written against real sockets runs on it unchanged.
//
// Every socket is reusable, as with SO_REUSEADDR and SO_REUSEPORT on
// Linux: a port may at once have several listeners (connections are spread
// over them), several UDP sockets, and connections dialed from it, as long
// as no two connections share a 4-tuple.
type Host struct {
	attach
	rng  *rand.Rand
	down bool

	listeners map[uint16][]*TCPListener
	conns     map[tuple]*TCPConn
	tcpPorts  map[uint16]int // TCP sockets (listeners and connections) per local port
	udps      map[uint16][]*UDPConn
}

type tuple struct{ local, remote netip.AddrPort }

const (
	ephemeralLow  = 32768 // Linux ip_local_port_range
	ephemeralHigh = 60999
)

func (h *Host) init(a attach, rng *rand.Rand) {
	h.attach = a
	h.rng = rng
	h.listeners = map[uint16][]*TCPListener{}
	h.conns = map[tuple]*TCPConn{}
	h.tcpPorts = map[uint16]int{}
	h.udps = map[uint16][]*UDPConn{}
}

// Addr returns the host's address (its LAN address when behind a NAT).
func (h *Host) Addr() netip.Addr { return h.addr }

// Name returns the host's name in traces.
func (h *Host) Name() string { return h.name }

// NAT returns the router the host sits behind, or nil for a public host.
func (h *Host) NAT() *NAT { return h.parent }

// Close takes the host off the network as if it lost power (or its
// serverless function was frozen): every socket on it fails locally with
// net.ErrClosed, and peers are told nothing: no FIN, no RST. A peer writing
// to it times out after TCP's retransmissions; one reading from it waits.
func (h *Host) Close() error {
	if h == nil || h.in == nil {
		return errInvalid
	}
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	h.shutdown()
	return nil
}

// shutdown closes every socket silently. Caller holds in.mu.
func (h *Host) shutdown() {
	if h.down {
		return
	}
	h.down = true
	for _, c := range h.conns {
		c.hostDown()
	}
	for _, lns := range h.listeners {
		for _, l := range lns {
			l.close()
		}
	}
	for _, us := range h.udps {
		for _, u := range us {
			u.close()
		}
	}
}

// usable reports why the host cannot open sockets, if it cannot.
func (h *Host) usable() error {
	switch {
	case h.in.closed:
		return closedError{"netsim internet"}
	case h.down:
		return closedError{"netsim host " + h.addr.String() + " is down"}
	}
	return nil
}

// isLocal reports whether a is one of the host's own addresses.
func (h *Host) isLocal(a netip.Addr) bool { return a == h.addr || a.IsLoopback() }

// bindAddr checks a local address given to listen or dial: unspecified, the
// host's address or a loopback address.
func (h *Host) bindAddr(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() || a.Unmap().IsUnspecified() {
		return netip.IPv4Unspecified(), nil
	}
	a = a.Unmap()
	if !h.isLocal(a) {
		return a, errno("bind", syscall.EADDRNOTAVAIL)
	}
	return a, nil
}

// sourceFor picks the source address for a packet to dst from a socket
// bound to a.
func (h *Host) sourceFor(a, dst netip.Addr) netip.Addr {
	if !a.IsUnspecified() {
		return a
	}
	if dst.IsLoopback() {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return h.addr
}

func checkRemote(ap netip.AddrPort) (netip.AddrPort, error) {
	a := ap.Addr().Unmap()
	switch {
	case !a.IsValid() || !a.Is4():
		return ap, fmt.Errorf("netsim: remote address %v: not an IPv4 address", ap)
	case a.IsUnspecified() || a.IsMulticast() || ap.Port() == 0:
		return ap, fmt.Errorf("netsim: remote address %v: %w", ap, errno("connect", syscall.EADDRNOTAVAIL))
	}
	return netip.AddrPortFrom(a, ap.Port()), nil
}

// ephemeral picks a free port for a socket bound to port 0.
func (h *Host) ephemeral(used func(uint16) bool) (uint16, error) {
	size := ephemeralHigh - ephemeralLow + 1
	start := h.rng.IntN(size)
	for i := 0; i < size; i++ {
		p := uint16(ephemeralLow + (start+i)%size)
		if !used(p) {
			return p, nil
		}
	}
	return 0, errno("bind", syscall.EADDRINUSE)
}

// send emits a packet from the host. Delivery always starts from the
// scheduler, never inline, so no handler is re-entered. Caller holds in.mu.
func (h *Host) send(p *packet) {
	in := h.in
	in.stats.Packets++
	in.trace(EventSend, h.name, p, "")
	if h.isLocal(p.dst.Addr()) {
		in.after(0, func() { h.receive(p) })
		return
	}
	in.after(0, func() {
		in.cross(p, &h.attach, up, func() { in.inRealm(p, h.realm()) })
	})
}

// receive handles a packet arriving at the host.
func (h *Host) receive(p *packet) {
	in := h.in
	if h.down {
		in.trace(EventDrop, h.name, p, "host is down")
		return
	}
	if !h.isLocal(p.dst.Addr()) {
		in.trace(EventDrop, h.name, p, "not addressed to this host")
		return
	}
	in.stats.Delivered++
	in.trace(EventDeliver, h.name, p, "")
	switch p.proto {
	case protoTCP:
		h.tcpInput(p)
	case protoUDP:
		h.udpInput(p)
	case protoICMP:
		h.icmpInput(p)
	}
}

func hashAddrPort(ap netip.AddrPort) uint32 {
	f := fnv.New32a()
	b := ap.Addr().As4()
	f.Write(b[:])
	f.Write([]byte{byte(ap.Port() >> 8), byte(ap.Port())})
	return f.Sum32()
}

// ListenTCP listens for TCP connections on laddr (SO_REUSEADDR and
// SO_REUSEPORT semantics). An unspecified address listens on all of the
// host's addresses; port 0 picks a free ephemeral port.
func (h *Host) ListenTCP(ctx context.Context, laddr netip.AddrPort) (net.Listener, error) {
	if h == nil || h.in == nil {
		return nil, errInvalid
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
	l := newListener(h, netip.AddrPortFrom(a, port))
	h.listeners[port] = append(h.listeners[port], l)
	h.tcpPorts[port]++
	return l, nil
}

// listenerFor picks the listener that gets a SYN for local from remote: one
// bound to the exact address before one bound to all addresses, and among
// several (SO_REUSEPORT) one by a hash of the remote endpoint.
func (h *Host) listenerFor(local, remote netip.AddrPort) *TCPListener {
	var exact, any []*TCPListener
	for _, l := range h.listeners[local.Port()] {
		switch {
		case l.addr.Addr() == local.Addr():
			exact = append(exact, l)
		case l.addr.Addr().IsUnspecified():
			any = append(any, l)
		}
	}
	c := exact
	if len(c) == 0 {
		c = any
	}
	if len(c) == 0 {
		return nil
	}
	return c[hashAddrPort(remote)%uint32(len(c))]
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
// included, fails with EADDRNOTAVAIL.
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
		return nil, opError("dial", "tcp", local, raddr,
			fmt.Errorf("4-tuple in use (%s): %w", state, errno("connect", syscall.EADDRNOTAVAIL)))
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
	if c.state == stateEstablished {
		return c, nil
	}
	if c.err == nil { // still connecting: ctx ended
		c.abandon()
		return nil, opError("dial", "tcp", local, raddr, ctxError(ctx))
	}
	return nil, opError("dial", "tcp", local, raddr, c.err)
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
