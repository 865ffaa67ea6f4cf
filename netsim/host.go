package netsim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"syscall"
)

// Host is a machine with one IPv4 address, on the internet or behind a NAT.
// It implements the network interface the punch layer consumes (ListenTCP,
// DialTCP, ListenUDP with explicit, reusable local addresses), so code
// written against real sockets runs on it unchanged.
//
// Every socket is reusable, as with SO_REUSEADDR and SO_REUSEPORT on
// Linux: a port may at once have a listener, several UDP sockets, and
// connections dialed from it, as long as no two connections share a
// 4-tuple. A second listener on the port is refused unless its address and
// the first's are different specific addresses, as punch's OS network
// refuses it (see ListenTCP).
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

// Addr returns the host's address (its LAN address when behind a NAT); the
// zero Addr for a nil Host.
func (h *Host) Addr() netip.Addr {
	if h == nil {
		return netip.Addr{}
	}
	return h.addr
}

// Name returns the host's name in traces.
func (h *Host) Name() string {
	if h == nil {
		return ""
	}
	return h.name
}

// NAT returns the router the host sits behind, or nil for a public host.
func (h *Host) NAT() *NAT {
	if h == nil {
		return nil
	}
	return h.parent
}

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
// host's address or an IPv4 loopback address. A host has no IPv6 address,
// not even ::1 (netsim emulates IPv4 only).
func (h *Host) bindAddr(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() || a.Unmap().IsUnspecified() {
		return netip.IPv4Unspecified(), nil
	}
	a = a.Unmap()
	if !a.Is4() {
		return a, fmt.Errorf("netsim: local address %v: only IPv4 is emulated: %w", a, errno("bind", syscall.EADDRNOTAVAIL))
	}
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
