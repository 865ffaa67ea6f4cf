package netsim

import (
	"context"
	"net/netip"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/punch"
)

// TestListenerAlreadyOnPort: as punch's OS network refuses (see
// punch.TestOSListenerAlreadyOnPort), a port that has a listener cannot get
// a second one on an overlapping address: Linux would spread the port's
// inbound connections over both, so that a second punch Port on the port
// took a share of the first one's peers. The error matches
// syscall.EADDRINUSE and says so. Listeners on other addresses of the port,
// the port's own connections and its TIME_WAIT entries do not stop a new
// listener, nor does a closed one.
func TestListenerAlreadyOnPort(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		h := must(in.AddHost(addr("198.51.100.1")))
		srv := must(in.AddHost(addr("198.51.100.2")))
		echoServer(t, srv, 80)
		const port = 4000
		on := func(a string) netip.AddrPort { return netip.AddrPortFrom(addr(a), port) }

		for _, first := range []netip.AddrPort{on("198.51.100.1"), on("0.0.0.0")} {
			ln, err := h.ListenTCP(ctx, first)
			require.NoError(t, err)
			for _, tt := range []struct {
				name  string
				laddr netip.AddrPort
			}{
				{"same address", first},
				{"host address", on("198.51.100.1")},
				{"v4-mapped address", on("::ffff:198.51.100.1")},
				{"0.0.0.0", on("0.0.0.0")},
				{"any address", netip.AddrPortFrom(netip.Addr{}, port)},
				{"::", on("::")},
			} {
				name := "after " + first.String() + ": " + tt.name
				second, err := h.ListenTCP(ctx, tt.laddr)
				if err == nil {
					second.Close()
				}
				require.ErrorIs(t, err, syscall.EADDRINUSE, name)
				require.ErrorContains(t, err, "another socket of this user holds port "+strconv.Itoa(port)+" with SO_REUSEPORT", name)
				p, err := punch.Listen(ctx, h, tt.laddr, punch.Identity{Secret: []byte("a secret of 32 bytes for netsim!"), Job: "j", Rank: 1})
				if err == nil {
					p.Close()
				}
				require.ErrorIs(t, err, syscall.EADDRINUSE, "%s: a second punch Port on the port", name)
			}
			require.NoError(t, ln.Close())
		}

		{ // another address of the port
			a, err := h.ListenTCP(ctx, on("198.51.100.1"))
			require.NoError(t, err)
			b, err := h.ListenTCP(ctx, on("127.0.0.1"))
			require.NoError(t, err, "loopback and the host's address do not overlap")
			b.Close()
			a.Close()
		}

		{ // the port's own connections and TIME_WAIT
			ln, err := h.ListenTCP(ctx, on("0.0.0.0"))
			require.NoError(t, err)
			kept, err := h.DialTCP(ctx, on("0.0.0.0"), ap("198.51.100.2:80"))
			require.NoError(t, err)
			defer kept.Close()
			srv2 := must(in.AddHost(addr("198.51.100.3")))
			echoServer(t, srv2, 80)
			finned, err := h.DialTCP(ctx, on("0.0.0.0"), ap("198.51.100.3:80"))
			require.NoError(t, err)
			require.NoError(t, finned.Close()) // we close first: TIME_WAIT on our side
			require.NoError(t, ln.Close())
			again, err := h.ListenTCP(ctx, on("0.0.0.0"))
			require.NoError(t, err, "a listener reopens on its port while a connection from it stays open")
			assert.NoError(t, again.Close())
		}
	})
}
