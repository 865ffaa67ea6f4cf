package punch

import (
	"context"
	"net"
	"net/netip"
)

// Network is the network that punch dials, listens and sends datagrams
// through. The operating system implements it (OS), and so does every
// netsim host, so the same NAT-traversal code runs on real sockets and on the
// emulated internet.
//
// Every socket a Network opens has its local address marked reusable
// (SO_REUSEADDR and SO_REUSEPORT on Linux): one local port may at once accept
// connections, hold a connection to the rendezvous server and dial many
// peers. A Network must never silently bind a different port than the one
// asked for; if the port cannot be reused, the call fails.
//
// An unspecified address in laddr means any local address: the zero
// netip.AddrPort or "::" any address of both families (dual-stack where the
// system allows it), 0.0.0.0 any IPv4 address; port 0 means an ephemeral
// port chosen by the network.
// Connections returned are TCP-like: they also implement CloseWrite (half
// close), SetLinger (SetLinger(0) aborts with RST) and SetNoDelay, as
// *net.TCPConn does.
type Network interface {
	// ListenTCP listens for TCP connections on laddr.
	ListenTCP(ctx context.Context, laddr netip.AddrPort) (net.Listener, error)
	// DialTCP connects to raddr from laddr. A dial to an endpoint that is
	// dialing back at the same moment completes as a TCP simultaneous open.
	DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error)
	// ListenUDP opens a UDP socket on laddr.
	ListenUDP(ctx context.Context, laddr netip.AddrPort) (net.PacketConn, error)
}
