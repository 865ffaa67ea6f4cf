package netsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// udpSocket is what both *UDPConn and *net.UDPConn offer.
type udpSocket interface {
	net.PacketConn
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// udpErrorCases are calls on a UDP socket and what they return, in the order
// Go and Linux check things: the socket's state (closed, deadline) before
// sendto's checks, and sendto's own order (over 64 KiB, port 0, then the
// 65507-byte limit). TestUDPErrorsLinux checks them on loopback.
var udpErrorCases = []struct {
	name string
	call func(u udpSocket, to netip.AddrPort) error
	want string
}{
	{"largest datagram", func(u udpSocket, to netip.AddrPort) error {
		_, err := u.WriteToUDPAddrPort(make([]byte, maxDatagram), to)
		return err
	}, "ok"},
	{"one byte too many", func(u udpSocket, to netip.AddrPort) error {
		_, err := u.WriteToUDPAddrPort(make([]byte, maxDatagram+1), to)
		return err
	}, "EMSGSIZE"},
	{"port 0", func(u udpSocket, to netip.AddrPort) error {
		_, err := u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(to.Addr(), 0))
		return err
	}, "EINVAL"},
	{"port 0, one byte too many", func(u udpSocket, to netip.AddrPort) error {
		_, err := u.WriteToUDPAddrPort(make([]byte, maxDatagram+1), netip.AddrPortFrom(to.Addr(), 0))
		return err
	}, "EINVAL"},
	{"port 0, over 64 KiB", func(u udpSocket, to netip.AddrPort) error {
		_, err := u.WriteToUDPAddrPort(make([]byte, 70000), netip.AddrPortFrom(to.Addr(), 0))
		return err
	}, "EMSGSIZE"},
	{"deadline passed, too large", func(u udpSocket, to netip.AddrPort) error {
		if err := u.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
			return err
		}
		_, err := u.WriteToUDPAddrPort(make([]byte, 70000), to)
		return err
	}, "deadline"},
	{"closed, too large", func(u udpSocket, to netip.AddrPort) error {
		if err := u.Close(); err != nil {
			return err
		}
		_, err := u.WriteToUDPAddrPort(make([]byte, 70000), netip.AddrPortFrom(to.Addr(), 0))
		return err
	}, "closed"},
	{"closed, set read deadline", func(u udpSocket, to netip.AddrPort) error {
		if err := u.Close(); err != nil {
			return err
		}
		return u.SetReadDeadline(time.Now())
	}, "closed"},
	{"closed, set write deadline", func(u udpSocket, to netip.AddrPort) error {
		if err := u.Close(); err != nil {
			return err
		}
		return u.SetDeadline(time.Time{})
	}, "closed"},
}

func udpErrClass(err error) string {
	var oe *net.OpError
	switch {
	case err == nil:
		return "ok"
	case !errors.As(err, &oe):
		return fmt.Sprintf("not a *net.OpError: %v", err)
	case errors.Is(err, syscall.EMSGSIZE):
		return "EMSGSIZE"
	case errors.Is(err, syscall.EINVAL):
		return "EINVAL"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "deadline"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return err.Error()
}

func TestUDPErrors(t *testing.T) {
	for _, tc := range udpErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				c, _, to := udpPair(t, in, Link{})
				assert.Equal(t, tc.want, udpErrClass(tc.call(c, to)))
			})
		})
	}
}

func TestUDPErrorsLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("measured on Linux")
	}
	for _, tc := range udpErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer r.Close()
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer c.Close()
			assert.Equal(t, tc.want, udpErrClass(tc.call(c, r.LocalAddr().(*net.UDPAddr).AddrPort())))
		})
	}
}

// TestLoopbackSourceStaysLocal: a socket bound to 127.0.0.1 cannot send
// off the host: Linux refuses the route (EINVAL from sendto and connect;
// __mkroute_output rejects a loopback source on a non-loopback device).
// netsim sent such packets with their 127.0.0.1 source, and the remote
// host's answer, addressed to 127.0.0.1, went to a socket of its own.
func TestLoopbackSourceStaysLocal(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := t.Context()
		srv := must(in.AddHost(addr("203.0.113.10")))
		cli := must(in.AddHost(addr("203.0.113.20")))
		s := must(srv.listenUDP(ctx, ap("0.0.0.0:9000")))
		c := must(cli.listenUDP(ctx, ap("127.0.0.1:5000")))
		_, err := c.WriteToUDPAddrPort([]byte("x"), ap("203.0.113.10:9000"))
		assert.ErrorIs(t, err, syscall.EINVAL)
		require.NoError(t, s.SetReadDeadline(time.Now().Add(time.Second)))
		_, _, err = s.ReadFrom(make([]byte, 8))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "nothing was sent")

		_, err = cli.DialTCP(ctx, ap("127.0.0.1:0"), ap("203.0.113.10:9000"))
		assert.ErrorIs(t, err, syscall.EINVAL)

		// Loopback and the host's own address still work.
		local := must(cli.listenUDP(ctx, ap("0.0.0.0:6000")))
		for _, to := range []netip.AddrPort{ap("127.0.0.1:6000"), ap("203.0.113.20:6000")} {
			_, err = c.WriteToUDPAddrPort([]byte("y"), to)
			require.NoError(t, err, to)
			require.NoError(t, local.SetReadDeadline(time.Now().Add(time.Second)))
			_, from, err := local.ReadFromUDPAddrPort(make([]byte, 8))
			require.NoError(t, err, to)
			assert.Equal(t, ap("127.0.0.1:5000"), from)
		}
	})
}
