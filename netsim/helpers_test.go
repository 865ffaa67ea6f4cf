package netsim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	ap   = netip.MustParseAddrPort
	addr = netip.MustParseAddr
)

// bubble runs f in a synctest bubble with a fresh Internet that is closed
// at the end.
func bubble(t *testing.T, f func(t *testing.T, in *Internet), opts ...Option) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		in := New(opts...)
		defer in.Close()
		f(t, in)
	})
}

// must returns v, panicking on a topology error (test set-up only).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// echoServer accepts connections on h:port and echoes them until the
// listener closes.
func echoServer(t *testing.T, h *Host, port uint16) net.Listener {
	t.Helper()
	ln, err := h.ListenTCP(context.Background(), netip.AddrPortFrom(netip.IPv4Unspecified(), port))
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln
}

// observer is a public server that tells each TCP client the endpoint it
// sees it from, and echoes UDP datagrams' source endpoints.
func observer(t *testing.T, h *Host, port uint16) func() {
	t.Helper()
	ctx := context.Background()
	ln, err := h.ListenTCP(ctx, netip.AddrPortFrom(h.Addr(), port))
	require.NoError(t, err)
	pc, err := h.ListenUDP(ctx, netip.AddrPortFrom(h.Addr(), port))
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(c.RemoteAddr().String() + "\n"))
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_ = n
			pc.WriteTo([]byte(from.String()), from)
		}
	}()
	return func() { ln.Close(); pc.Close() }
}

// observeTCP dials the observer from laddr and returns the endpoint it saw.
func observeTCP(t *testing.T, h *Host, laddr, obs netip.AddrPort) netip.AddrPort {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.DialTCP(ctx, laddr, obs)
	require.NoError(t, err)
	defer c.Close()
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	return ap(string(b[:len(b)-1]))
}

// observeUDP sends a datagram from pc to the observer and returns the
// endpoint it saw.
func observeUDP(t *testing.T, pc net.PacketConn, obs netip.AddrPort) netip.AddrPort {
	t.Helper()
	_, err := pc.WriteTo([]byte("?"), net.UDPAddrFromAddrPort(obs))
	require.NoError(t, err)
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 64)
	n, _, err := pc.ReadFrom(buf)
	require.NoError(t, err)
	return ap(string(buf[:n]))
}

var errConnRefused = syscall.ECONNREFUSED

var (
	errConnReset = syscall.ECONNRESET
	errTimedOut  = syscall.ETIMEDOUT
	errDeadline  = os.ErrDeadlineExceeded
)

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func asNetError(err error, ne *net.Error) bool { return errors.As(err, ne) }
