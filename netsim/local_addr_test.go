package netsim

import (
	"context"
	"net/netip"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIPv6LocalAddressRefused: netsim emulates IPv4 only, so a host has no
// IPv6 address, loopback included: listening or dialing from [::1] fails
// with EADDRNOTAVAIL, as any other address the host does not have, and
// says why. (It used to pass as the host's loopback: a listener nobody could
// reach, and packets with an IPv6 source sent to IPv4 sockets.) "::" still
// means any address, and an IPv4-mapped address is its IPv4 address.
func TestIPv6LocalAddressRefused(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		h := must(in.AddHost(addr("198.51.100.1")))
		srv := must(in.AddHost(addr("198.51.100.2")))
		echoServer(t, srv, 80)
		echoServer(t, h, 80)
		for _, local := range []string{"::1", "2001:db8::1", "fe80::1"} {
			ln, err := h.ListenTCP(ctx, netip.AddrPortFrom(addr(local), 81))
			if err == nil {
				ln.Close()
			}
			require.ErrorIs(t, err, syscall.EADDRNOTAVAIL, "listen on %s", local)
			assert.ErrorContains(t, err, "only IPv4 is emulated", "listen on %s", local)
			for _, remote := range []string{"198.51.100.2:80", "127.0.0.1:80"} {
				c, err := h.DialTCP(ctx, netip.AddrPortFrom(addr(local), 0), ap(remote))
				if err == nil {
					c.Close()
				}
				require.ErrorIs(t, err, syscall.EADDRNOTAVAIL, "dial %s from %s", remote, local)
				assert.ErrorContains(t, err, "only IPv4 is emulated", "dial %s from %s", remote, local)
			}
			u, err := h.ListenUDP(ctx, netip.AddrPortFrom(addr(local), 53))
			if err == nil {
				u.Close()
			}
			require.ErrorIs(t, err, syscall.EADDRNOTAVAIL, "UDP on %s", local)
		}
		for _, local := range []string{"::", "::ffff:127.0.0.1", "::ffff:198.51.100.1"} {
			c, err := h.DialTCP(ctx, netip.AddrPortFrom(addr(local), 0), ap("127.0.0.1:80"))
			require.NoError(t, err, "dial from %s", local)
			assert.True(t, c.(*TCPConn).LocalAddrPort().Addr().Is4(), "dial from %s: local %v", local, c.LocalAddr())
			c.Close()
		}
	})
}
