package netsim

import (
	"context"
	"net"
	"net/netip"
)

// network is punch.Network, restated: netsim imports nothing of ours, but
// *Host must satisfy it structurally.
type network interface {
	ListenTCP(ctx context.Context, laddr netip.AddrPort) (net.Listener, error)
	DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error)
	ListenUDP(ctx context.Context, laddr netip.AddrPort) (net.PacketConn, error)
}

var _ network = (*Host)(nil)

// tcpConn is the part of *net.TCPConn that punch relies on.
type tcpConn interface {
	net.Conn
	CloseWrite() error
	SetLinger(sec int) error
	SetNoDelay(noDelay bool) error
}

var _ tcpConn = (*TCPConn)(nil)
