package punch

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// plainServer is a loopback listener without SO_REUSEPORT that accepts and
// echoes.
func plainServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	// The cleanup closes every connection and waits for its goroutine, so
	// that the next test's count of open sockets (openFDs) does not see
	// them close under it.
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			if closed {
				c.Close()
			}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, msg, string(buf))
}

// One local port listens, holds two outbound connections to different
// servers, and still accepts: the reuse the whole package rests on.
func TestOSPortReuse(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	nw := OS()
	ln, err := nw.ListenTCP(ctx, anyLoop)
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).AddrPort()
	require.NotZero(t, port.Port())

	s1, s2 := plainServer(t), plainServer(t)
	c1, err := nw.DialTCP(ctx, port, s1)
	require.NoError(t, err)
	defer c1.Close()
	c2, err := nw.DialTCP(ctx, port, s2)
	require.NoError(t, err)
	defer c2.Close()
	for _, c := range []net.Conn{c1, c2} {
		require.Equal(t, port.String(), c.LocalAddr().String(), "dial must leave from the listening port")
	}
	echo(t, c1, "one")
	echo(t, c2, "two")

	// A second dial to the same server from the same port would reuse the
	// 4-tuple: the kernel refuses it with an error, not another port.
	_, err = nw.DialTCP(ctx, port, s1)
	require.Error(t, err)

	// The listener still accepts while the dials are open.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	in, err := net.Dial("tcp", port.String())
	require.NoError(t, err)
	defer in.Close()
	c3, ok := <-accepted
	require.True(t, ok)
	defer c3.Close()
	require.Equal(t, in.LocalAddr().String(), c3.RemoteAddr().String())

	// The conns are TCP-like as the Network contract says.
	for _, c := range []net.Conn{c1, c3} {
		_, ok := c.(interface{ SetLinger(int) error })
		require.True(t, ok)
		_, ok = c.(interface{ CloseWrite() error })
		require.True(t, ok)
		_, ok = c.(interface{ SetNoDelay(bool) error })
		require.True(t, ok)
	}

	// UDP on the same port number, also reusable: two sockets at once.
	u1, err := nw.ListenUDP(ctx, port)
	require.NoError(t, err)
	defer u1.Close()
	u2, err := nw.ListenUDP(ctx, port)
	require.NoError(t, err)
	defer u2.Close()
	require.Equal(t, port.String(), u1.LocalAddr().String())
	_, ok = u1.LocalAddr().(*net.UDPAddr)
	require.True(t, ok)
}

// A port held by a socket without SO_REUSEPORT cannot be shared: every
// call fails loudly rather than move to another port.
func TestOSReuseFailureIsAnError(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	nw := OS()
	plainTCP, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer plainTCP.Close()
	taken := plainTCP.Addr().(*net.TCPAddr).AddrPort()
	plainUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer plainUDP.Close()
	takenUDP := plainUDP.LocalAddr().(*net.UDPAddr).AddrPort()
	server := plainServer(t)

	tests := []struct {
		name string
		call func() (io.Closer, error)
	}{
		{"listen tcp", func() (io.Closer, error) { return nw.ListenTCP(ctx, taken) }},
		{"dial tcp", func() (io.Closer, error) { return nw.DialTCP(ctx, taken, server) }},
		{"listen udp", func() (io.Closer, error) { return nw.ListenUDP(ctx, takenUDP) }},
		{"punch port", func() (io.Closer, error) { return Listen(ctx, nw, taken, ident(0)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.call()
			if err == nil {
				c.Close()
			}
			require.Error(t, err)
			require.ErrorContains(t, err, "address already in use")
		})
	}
}

func TestOSDialHonoursContext(t *testing.T) {
	// A dial to a loopback port that never answers cannot be made portably;
	// an already-cancelled context must fail at once instead.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := OS().DialTCP(ctx, anyLoop, plainServer(t))
	require.ErrorIs(t, err, context.Canceled)
	_, err = OS().DialTCP(context.Background(), anyLoop, netip.AddrPort{})
	require.ErrorContains(t, err, "invalid remote endpoint")
}

func TestSamePort(t *testing.T) {
	want := netip.MustParseAddrPort("127.0.0.1:4000")
	require.NoError(t, samePort(want, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}))
	require.ErrorContains(t, samePort(want, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4001}), "not the port 4000")
	require.NoError(t, samePort(anyLoop, &net.TCPAddr{Port: 5}))
	require.NoError(t, samePort(want, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}))
}

// A dialing socket is bound to the port's endpoint, zone included: binding
// a link-local address without its zone fails with EINVAL, so a Port opened
// on a zoned link-local address could listen but never dial.
func TestLocalTCPAddr(t *testing.T) {
	tests := []struct {
		name  string
		laddr netip.AddrPort
		want  *net.TCPAddr
	}{
		{"zero", netip.AddrPort{}, &net.TCPAddr{}},
		{"any IPv6", netip.MustParseAddrPort("[::]:7000"), &net.TCPAddr{Port: 7000}},
		{"any IPv4", netip.MustParseAddrPort("0.0.0.0:7000"), &net.TCPAddr{Port: 7000}},
		{"IPv4", netip.MustParseAddrPort("127.0.0.1:7000"), &net.TCPAddr{IP: net.IP{127, 0, 0, 1}, Port: 7000}},
		{"v4-mapped", netip.MustParseAddrPort("[::ffff:127.0.0.1]:7000"), &net.TCPAddr{IP: net.IP{127, 0, 0, 1}, Port: 7000}},
		{"IPv6", netip.MustParseAddrPort("[::1]:7000"), &net.TCPAddr{IP: net.ParseIP("::1"), Port: 7000}},
		{"zoned link-local", netip.MustParseAddrPort("[fe80::1%eth0]:7000"), &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 7000, Zone: "eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := localTCPAddr(tt.laddr)
			require.True(t, tt.want.IP.Equal(got.IP), "IP %v, want %v", got.IP, tt.want.IP)
			require.Equal(t, tt.want.Port, got.Port)
			require.Equal(t, tt.want.Zone, got.Zone)
		})
	}
}
