package punch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// OS returns the operating system's network with reusable sockets: every
// socket it opens has SO_REUSEADDR and SO_REUSEPORT set before bind, so one
// local port can at once accept, hold the connection to the rendezvous server
// and dial many peers. A bind that cannot reuse the port (another program
// holds it without SO_REUSEPORT, or another user does) fails; the network
// never falls back to another port, and it checks that the port bound is the
// one asked for. On Linux, listening on a port where a listener already
// covers the address fails too (EADDRINUSE), even one of the same user with
// SO_REUSEPORT: the kernel would spread the port's inbound connections over
// both listeners.
//
// TCP connections are *net.TCPConn with the Go defaults: TCP_NODELAY set and
// keep-alives every 15 s (which also keep NAT mappings alive).
func OS() Network { return osNetwork{} }

// osNetwork is the OS's network. A Port sets congestion (see
// WithCongestionControl) on the copy it uses, so that its sockets have the
// algorithm before they connect: an algorithm chosen after the handshake
// inherits the first one's pacing (Linux keeps a socket paced once BBR has
// run on it).
type osNetwork struct {
	congestion string
}

// withCongestion returns nw set to give its TCP sockets the congestion
// control name before they connect, if nw is the OS's network; any other
// network is returned as it is.
func withCongestion(nw Network, name string) Network {
	if on, ok := nw.(osNetwork); ok {
		on.congestion = name
		return on
	}
	return nw
}

// control prepares a TCP socket before bind: reusable, and with the
// network's congestion control where one is set and the system allows it
// (if not, the socket keeps the system's and the link's tuning says why).
func (on osNetwork) control(network, address string, rc syscall.RawConn) error {
	if err := reuseControl(network, address, rc); err != nil {
		return err
	}
	if on.congestion != "" {
		_ = congestionControl(rc, on.congestion)
	}
	return nil
}

// sockAddr renders an endpoint for the net package: the zero AddrPort is
// any address and any port; an address of the zero AddrPort's kind with a
// port is any address on that port.
func sockAddr(proto string, a netip.AddrPort) (network, address string) {
	addr := a.Addr().Unmap()
	switch {
	case !addr.IsValid():
		return proto, net.JoinHostPort("", strconv.Itoa(int(a.Port())))
	case addr.Is4():
		return proto + "4", netip.AddrPortFrom(addr, a.Port()).String()
	default:
		return proto + "6", netip.AddrPortFrom(addr, a.Port()).String()
	}
}

// listenAddr renders a local endpoint to listen on as sockAddr does, except
// that the IPv6 unspecified address "::" is, like the zero AddrPort, any
// address of both families: a dual-stack socket, as net.Listen("tcp",
// "[::]:P") gives. A "tcp6" socket on "::" would be IPv6-only: it would
// refuse IPv4 peers on the port and fail to send to IPv4 STUN servers, and a
// Port opened on any address reports its Addr as "[::]:P", which callers
// pass back (DiscoverUDP). 0.0.0.0 stays any IPv4 address.
func listenAddr(proto string, a netip.AddrPort) (network, address string) {
	if a.Addr() == netip.IPv6Unspecified() {
		a = netip.AddrPortFrom(netip.Addr{}, a.Port())
	}
	return sockAddr(proto, a)
}

func (on osNetwork) ListenTCP(ctx context.Context, laddr netip.AddrPort) (net.Listener, error) {
	if err := checkNoListener(laddr); err != nil {
		return nil, fmt.Errorf("listen on reusable port %v: %w", laddr, err)
	}
	network, address := listenAddr("tcp", laddr)
	lc := net.ListenConfig{Control: on.control}
	ln, err := lc.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("listen on reusable port %v: %w", laddr, err)
	}
	if err := samePort(laddr, ln.Addr()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on reusable port %v: %w", laddr, err)
	}
	return ln, nil
}

func (on osNetwork) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error) {
	if !raddr.IsValid() || raddr.Port() == 0 {
		return nil, fmt.Errorf("dial %v from %v: invalid remote endpoint", raddr, laddr)
	}
	network, address := sockAddr("tcp", raddr)
	d := net.Dialer{Control: on.control}
	if laddr.IsValid() || laddr.Port() != 0 {
		// An unspecified local address (a port listening on any address,
		// "[::]:P") binds the wildcard of the remote's family: a tcp4
		// socket cannot bind "::".
		d.LocalAddr = localTCPAddr(laddr)
	}
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err // *net.OpError names both ends already
	}
	if err := samePort(laddr, c.LocalAddr()); err != nil {
		abort(c)
		return nil, fmt.Errorf("dial %v from %v: %w", raddr, laddr, err)
	}
	return c, nil
}

func (osNetwork) ListenUDP(ctx context.Context, laddr netip.AddrPort) (net.PacketConn, error) {
	network, address := listenAddr("udp", laddr)
	lc := net.ListenConfig{Control: reuseControl}
	pc, err := lc.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("listen on reusable UDP port %v: %w", laddr, err)
	}
	if err := samePort(laddr, pc.LocalAddr()); err != nil {
		pc.Close()
		return nil, fmt.Errorf("listen on reusable UDP port %v: %w", laddr, err)
	}
	return pc, nil
}

// localTCPAddr renders a local endpoint to bind a dialing socket to: no IP
// (the wildcard of whatever family the socket has) for no address or an
// unspecified one. The zone is kept: a link-local address binds only with
// it (EINVAL without).
func localTCPAddr(laddr netip.AddrPort) *net.TCPAddr {
	a := laddr.Addr()
	if !a.IsValid() || a.IsUnspecified() {
		return &net.TCPAddr{Port: int(laddr.Port())}
	}
	return &net.TCPAddr{IP: a.Unmap().AsSlice(), Port: int(laddr.Port()), Zone: a.Zone()}
}

// samePort checks that a socket asked to bind laddr's port did: the network
// must never silently move a punch to another port.
func samePort(laddr netip.AddrPort, got net.Addr) error {
	if laddr.Port() == 0 {
		return nil
	}
	ap, err := addrPort(got)
	if err != nil {
		return err
	}
	if ap.Port() != laddr.Port() {
		return fmt.Errorf("bound port %d, not the port %d asked for", ap.Port(), laddr.Port())
	}
	return nil
}

// addrPort converts a socket address of the net package (or any net.Addr
// whose String is ip:port) to a netip.AddrPort with any IPv4-mapped IPv6
// address unmapped.
func addrPort(a net.Addr) (netip.AddrPort, error) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	case nil:
		return ap, fmt.Errorf("no address")
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return ap, fmt.Errorf("address %v: %w", a, err)
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
