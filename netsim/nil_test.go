package netsim

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNilValuesDoNotPanic: a nil option is skipped, as rendezvous.NewServer
// skips one, and the accessors of a nil Host, NAT, TCPConn, TCPListener or
// UDPConn return zero values (a nil net.Addr, as the net package's
// connections do) instead of panicking: library code does not panic on its
// input, and the socket methods of these values already return EINVAL.
func TestNilValuesDoNotPanic(t *testing.T) {
	var (
		h *Host
		n *NAT
		c *TCPConn
		l *TCPListener
		u *UDPConn
	)
	tests := []struct {
		name string
		call func() any
		want any
	}{
		{"Host.Addr", func() any { return h.Addr() }, netip.Addr{}},
		{"Host.Name", func() any { return h.Name() }, ""},
		{"Host.NAT", func() any { return h.NAT() }, (*NAT)(nil)},
		{"NAT.Addr", func() any { return n.Addr() }, netip.Addr{}},
		{"NAT.Name", func() any { return n.Name() }, ""},
		{"NAT.Config", func() any { return n.Config() }, NATConfig{}},
		{"TCPConn.LocalAddr", func() any { return c.LocalAddr() == nil }, true},
		{"TCPConn.RemoteAddr", func() any { return c.RemoteAddr() == nil }, true},
		{"TCPConn.LocalAddrPort", func() any { return c.LocalAddrPort() }, netip.AddrPort{}},
		{"TCPConn.RemoteAddrPort", func() any { return c.RemoteAddrPort() }, netip.AddrPort{}},
		{"TCPListener.Addr", func() any { return l.Addr() == nil }, true},
		{"TCPListener.AddrPort", func() any { return l.AddrPort() }, netip.AddrPort{}},
		{"UDPConn.LocalAddr", func() any { return u.LocalAddr() == nil }, true},
		{"UDPConn.LocalAddrPort", func() any { return u.LocalAddrPort() }, netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got any
			require.NotPanics(t, func() { got = tt.call() })
			assert.Equal(t, tt.want, got)
		})
	}
	t.Run("nil options", func(t *testing.T) {
		var in *Internet
		require.NotPanics(t, func() { in = New(nil, WithSeed(3), nil) })
		defer in.Close()
		var h *Host
		require.NotPanics(t, func() {
			var err error
			h, err = in.AddHost(addr("203.0.113.1"), nil, WithName("a"), nil)
			require.NoError(t, err)
		})
		assert.Equal(t, "a", h.Name())
		require.NotPanics(t, func() {
			nat, err := in.AddNAT(addr("198.51.100.1"), HomeRouter, nil)
			require.NoError(t, err)
			_, err = nat.AddHost(addr("198.18.0.2"), nil)
			require.NoError(t, err)
		})
	})
}
