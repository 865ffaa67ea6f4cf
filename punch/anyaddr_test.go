package punch

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// listenAny opens a Port on the zero AddrPort: any address, an ephemeral
// port.
func listenAny(t *testing.T, rank int) *Port {
	t.Helper()
	p, err := Listen(context.Background(), OS(), netip.AddrPort{}, ident(rank))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	require.True(t, p.Addr().Addr().IsUnspecified(), "port on %v", p.Addr())
	require.NotZero(t, p.Addr().Port())
	return p
}

// A Port listening on any address ("[::]:P") dials IPv4 (and IPv6) peers
// from its own port: punching, Dial and DiscoverTCP all work, where the
// dialing socket used to bind "::" for a tcp4 connect and fail.
func TestPortOnAnyAddressDials(t *testing.T) {
	loop4 := func(p *Port) netip.AddrPort { return netip.AddrPortFrom(loopback, p.Addr().Port()) }
	t.Run("punch to and from 127.0.0.1", func(t *testing.T) {
		a, b := listenAny(t, 0), listenOS(t, 1)
		ctx := testCtx(t, 10*time.Second)
		ca, cb, ea, eb := punchPair(ctx, a, b, []netip.AddrPort{loop4(a)}, []netip.AddrPort{b.Addr()})
		require.NoError(t, ea)
		require.NoError(t, eb)
		defer ca.Close()
		defer cb.Close()
		requireSameLink(t, ca, cb)
		require.Equal(t, a.Addr().Port(), ca.LocalAddr().(*net.TCPAddr).AddrPort().Port(),
			"the link leaves from the port")
	})
	t.Run("one-sided punch from the any-address port", func(t *testing.T) {
		a, b := listenAny(t, 0), listenOS(t, 1)
		ctx := testCtx(t, 10*time.Second)
		// b waits passively: only a's dial to b can make the link.
		ca, cb, ea, eb := punchPair(ctx, a, b, nil, []netip.AddrPort{b.Addr()})
		require.NoError(t, ea)
		require.NoError(t, eb)
		defer ca.Close()
		defer cb.Close()
		requireSameLink(t, ca, cb)
	})
	t.Run("Dial", func(t *testing.T) {
		a := listenAny(t, 0)
		c, err := a.Dial(testCtx(t, 5*time.Second), plainServer(t))
		require.NoError(t, err)
		defer c.Close()
		echo(t, c, "from any address")
		require.Equal(t, loop4(a), c.LocalAddr().(*net.TCPAddr).AddrPort())
	})
	t.Run("DiscoverTCP", func(t *testing.T) {
		a := listenAny(t, 0)
		got, err := DiscoverTCP(testCtx(t, 5*time.Second), a, stunTCPServer(t))
		require.NoError(t, err)
		require.Equal(t, loop4(a), got)
	})
	t.Run("Dial IPv6", func(t *testing.T) {
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		a := listenAny(t, 0)
		c, err := a.Dial(testCtx(t, 5*time.Second), ln.Addr().(*net.TCPAddr).AddrPort())
		require.NoError(t, err)
		defer c.Close()
		require.Equal(t, a.Addr().Port(), c.LocalAddr().(*net.TCPAddr).AddrPort().Port())
	})
}

// A Port on the IPv6 unspecified address "::" is dual-stack like one on the
// zero AddrPort: IPv4 peers reach the port and STUN over UDP from its Addr
// ("[::]:P") reaches an IPv4 server. It was an IPv6-only socket ("tcp6"):
// IPv4 connects to the port were refused and DiscoverUDP failed with
// "network is unreachable".
func TestPortOnIPv6AnyIsDualStack(t *testing.T) {
	for _, laddr := range []netip.AddrPort{{}, netip.MustParseAddrPort("[::]:0")} {
		t.Run(laddr.String(), func(t *testing.T) {
			p, err := Listen(context.Background(), OS(), laddr, ident(0))
			if err != nil && laddr.IsValid() {
				t.Skipf("no IPv6: %v", err)
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, p.Close()) }()
			require.Equal(t, netip.IPv6Unspecified(), p.Addr().Addr())

			c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(loopback, p.Addr().Port()).String(), 5*time.Second)
			require.NoError(t, err, "an IPv4 peer reaches the port")
			c.Close()

			srv, _ := stunUDPServer(t, 0)
			got, err := DiscoverUDP(testCtx(t, 5*time.Second), OS(), p.Addr(), srv)
			require.NoError(t, err)
			require.Equal(t, netip.AddrPortFrom(loopback, p.Addr().Port()), got)
		})
	}
}
