package netsim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name     string
		to       string
		ctx      time.Duration // 0: no deadline
		want     error
		timeout  bool
		duration time.Duration
	}{
		{"closed port: RST", "203.0.113.10:81", 0, syscall.ECONNREFUSED, false, 40 * time.Millisecond},
		{"no such address: ICMP host unreachable", "203.0.113.99:80", 0, syscall.EHOSTUNREACH, false, 20 * time.Millisecond},
		{"SYNs dropped, ctx deadline", "198.51.100.1:80", 10 * time.Second, context.DeadlineExceeded, true, 10 * time.Second},
		{"SYNs dropped, no deadline: Linux gives up after 127 s", "198.51.100.1:80", 0, syscall.ETIMEDOUT, true, 127 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				link := WithLink(Link{Latency: 10 * time.Millisecond})
				srv := must(in.AddHost(addr("203.0.113.10"), link))
				cli := must(in.AddHost(addr("203.0.113.20"), link))
				must(in.AddNAT(addr("198.51.100.1"), HomeRouter, link))
				ln := echoServer(t, srv, 80)
				defer ln.Close()
				ctx := context.Background()
				if tt.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.ctx)
					defer cancel()
				}
				start := time.Now()
				c, err := cli.DialTCP(ctx, ap("0.0.0.0:0"), ap(tt.to))
				assert.Nil(t, c)
				assert.ErrorIs(t, err, tt.want)
				var op *net.OpError
				require.True(t, errors.As(err, &op), "%T", err)
				assert.Equal(t, "dial", op.Op)
				assert.Equal(t, tt.to, op.Addr.String())
				assert.Equal(t, tt.timeout, op.Timeout())
				if tt.duration%time.Second == 0 {
					assert.Equal(t, tt.duration, time.Since(start))
				} else {
					assert.InDelta(t, tt.duration, time.Since(start), float64(time.Millisecond))
				}
			})
		})
	}
}

func TestSYNBackoff(t *testing.T) {
	var mu sync.Mutex
	var sent []time.Duration
	bubble(t, func(t *testing.T, in *Internet) {
		must(in.AddNAT(addr("198.51.100.1"), HomeRouter))
		cli := must(in.AddHost(addr("203.0.113.20")))
		_, err := cli.DialTCP(context.Background(), ap("0.0.0.0:0"), ap("198.51.100.1:80"))
		assert.ErrorIs(t, err, syscall.ETIMEDOUT)
	}, WithTrace(func(e Event) {
		if e.Kind == EventSend && e.Flags == "SYN" {
			mu.Lock()
			sent = append(sent, e.Elapsed)
			mu.Unlock()
		}
	}))
	s := time.Second
	assert.Equal(t, []time.Duration{0, 1 * s, 3 * s, 7 * s, 15 * s, 31 * s, 63 * s}, sent)
}

func TestSYNLossCostsRetransmission(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		srv := must(in.AddHost(addr("203.0.113.10"), WithLink(Link{Latency: 5 * time.Millisecond, Loss: 0.4})))
		cli := must(in.AddHost(addr("203.0.113.20"), WithLink(Link{Latency: 5 * time.Millisecond})))
		ln := echoServer(t, srv, 80)
		defer ln.Close()
		// A dial takes a round trip plus whole seconds of backoff for every
		// lost SYN or SYN-ACK (each side retransmits on its own timer,
		// after 1, 3, 7... s).
		retried := 0
		for i := 0; i < 100; i++ {
			start := time.Now()
			c, err := cli.DialTCP(context.Background(), ap("0.0.0.0:0"), ap("203.0.113.10:80"))
			require.NoError(t, err)
			d := time.Since(start)
			assert.Zero(t, (d-20*time.Millisecond)%time.Second, "dial took %v", d)
			if d > time.Second {
				retried++
			}
			c.Close()
		}
		// P(no retransmission) = 0.6 * 0.6 = 0.36 for SYN and SYN-ACK.
		assert.InDelta(t, 64, retried, 15)
		assert.NotZero(t, in.Stats().Lost)
	})
}

func TestCloseSemantics(t *testing.T) {
	ctx := context.Background()
	pair := func(t *testing.T, in *Internet) (net.Conn, net.Conn) {
		srv := must(in.AddHost(addr("203.0.113.10"), WithLink(Link{Latency: 5 * time.Millisecond})))
		cli := must(in.AddHost(addr("203.0.113.20"), WithLink(Link{Latency: 5 * time.Millisecond})))
		ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
		t.Cleanup(func() { ln.Close() })
		c := must(redial(cli))
		s := must(ln.Accept())
		return c, s
	}
	t.Run("FIN after data gives EOF", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			c, s := pair(t, in)
			_, err := c.Write([]byte("last words"))
			require.NoError(t, err)
			require.NoError(t, c.Close())
			b, err := io.ReadAll(s)
			require.NoError(t, err)
			assert.Equal(t, "last words", string(b))
			require.NoError(t, s.Close())
			_, err = c.Read(make([]byte, 1))
			assert.ErrorIs(t, err, net.ErrClosed)
			assert.ErrorIs(t, c.Close(), net.ErrClosed)
		})
	})
	t.Run("half close", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			c, s := pair(t, in)
			_, err := c.Write([]byte("request"))
			require.NoError(t, err)
			require.NoError(t, c.(*TCPConn).CloseWrite())
			_, err = c.Write([]byte("more"))
			assert.ErrorIs(t, err, syscall.EPIPE)
			req, err := io.ReadAll(s)
			require.NoError(t, err)
			assert.Equal(t, "request", string(req))
			_, err = s.Write([]byte("response"))
			require.NoError(t, err)
			require.NoError(t, s.Close())
			resp, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, "response", string(resp))
			require.NoError(t, c.Close())
		})
	})
	t.Run("close with unread data resets the peer", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			c, s := pair(t, in)
			_, err := c.Write([]byte("unread"))
			require.NoError(t, err)
			_, err = s.Write([]byte("reply"))
			require.NoError(t, err)
			time.Sleep(10 * time.Millisecond)
			require.NoError(t, s.Close()) // "unread" is still queued: RST
			// Data that had arrived is still readable, then the reset.
			buf := make([]byte, 16)
			n, err := c.Read(buf)
			require.NoError(t, err)
			assert.Equal(t, "reply", string(buf[:n]))
			_, err = c.Read(buf)
			assert.ErrorIs(t, err, syscall.ECONNRESET)
			_, err = c.Write([]byte("x"))
			assert.ErrorIs(t, err, syscall.EPIPE, "the reset is reported once (TestResetErrors)")
		})
	})
	t.Run("linger 0 aborts and skips TIME_WAIT", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			c, s := pair(t, in)
			require.NoError(t, c.(*TCPConn).SetLinger(0))
			require.NoError(t, c.Close())
			_, err := s.Read(make([]byte, 1))
			assert.ErrorIs(t, err, syscall.ECONNRESET)
			// The same 4-tuple can be dialed again at once.
			cli := c.(*TCPConn).h
			c2, err := redial(cli)
			require.NoError(t, err)
			c2.Close()
		})
	})
	t.Run("TIME_WAIT blocks the 4-tuple for 60 s", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			c, s := pair(t, in)
			require.NoError(t, c.Close()) // the client closes first
			_, err := s.Read(make([]byte, 1))
			require.Equal(t, io.EOF, err)
			require.NoError(t, s.Close())
			cli := c.(*TCPConn).h
			_, err = redial(cli)
			assert.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
			time.Sleep(11*time.Millisecond + 60*time.Second) // 60 s from the arrival of the server's FIN
			c2, err := redial(cli)
			require.NoError(t, err)
			c2.Close()
		})
	})
	t.Run("writing to a closed peer", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			c, s := pair(t, in)
			require.NoError(t, s.Close())
			time.Sleep(20 * time.Millisecond)
			_, err := c.Write([]byte("into the void"))
			require.NoError(t, err, "the first write is accepted, as on Linux")
			time.Sleep(30 * time.Millisecond) // the peer's RST comes back after a round trip
			_, err = c.Write([]byte("again"))
			assert.ErrorIs(t, err, syscall.EPIPE, "the RST reached a socket that had the FIN (CLOSE-WAIT)")
		})
	})
	t.Run("operations after Close", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			c, s := pair(t, in)
			defer s.Close()
			require.NoError(t, c.Close())
			for name, err := range map[string]error{
				"read":     func() error { _, err := c.Read(make([]byte, 1)); return err }(),
				"write":    func() error { _, err := c.Write([]byte("x")); return err }(),
				"deadline": c.SetDeadline(time.Now()),
				"linger":   c.(*TCPConn).SetLinger(0),
				"close":    c.Close(),
			} {
				assert.ErrorIs(t, err, net.ErrClosed, name)
			}
		})
	})
}

func TestDeadlines(t *testing.T) {
	ctx := context.Background()
	bubble(t, func(t *testing.T, in *Internet) {
		srv := must(in.AddHost(addr("203.0.113.10")))
		cli := must(in.AddHost(addr("203.0.113.20")))
		ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
		defer ln.Close()
		c := must(cli.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80")))
		defer c.Close()
		s := must(ln.Accept())
		defer s.Close()

		// Read deadline.
		start := time.Now()
		require.NoError(t, c.SetReadDeadline(start.Add(30*time.Second)))
		_, err := c.Read(make([]byte, 1))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		var ne net.Error
		require.True(t, errors.As(err, &ne))
		assert.True(t, ne.Timeout())
		assert.Equal(t, 30*time.Second, time.Since(start))

		// A deadline in the past fails at once; clearing it lets data through.
		_, err = c.Read(make([]byte, 1))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NoError(t, c.SetReadDeadline(time.Time{}))
		go s.Write([]byte("x"))
		_, err = c.Read(make([]byte, 1))
		assert.NoError(t, err)

		// Extending a deadline while a read is blocked.
		require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
		go func() {
			time.Sleep(500 * time.Millisecond)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
		}()
		start = time.Now()
		_, err = c.Read(make([]byte, 1))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.Equal(t, 5500*time.Millisecond, time.Since(start))

		// Write deadline: the window fills (the peer does not read).
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(time.Second)))
		n, err := c.Write(make([]byte, 8<<20))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.Equal(t, 4<<20, n, "the window is 4 MiB")

		// Accept deadline.
		require.NoError(t, ln.(*TCPListener).SetDeadline(time.Now().Add(time.Second)))
		_, err = ln.Accept()
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})
}

func TestReusablePorts(t *testing.T) {
	ctx := context.Background()
	bubble(t, func(t *testing.T, in *Internet) {
		srv := must(in.AddHost(addr("203.0.113.10")))
		h := must(in.AddHost(addr("203.0.113.20")))
		ln1 := echoServer(t, srv, 80)
		defer ln1.Close()
		ln2 := echoServer(t, srv, 81)
		defer ln2.Close()
		// One port listens and dials two servers. A second listener on an
		// overlapping address is refused, as punch's OS network refuses
		// it (TestListenerAlreadyOnPort).
		l2 := must(h.ListenTCP(ctx, ap("203.0.113.20:5000")))
		defer l2.Close()
		_, err := h.ListenTCP(ctx, ap("0.0.0.0:5000"))
		assert.ErrorIs(t, err, syscall.EADDRINUSE)
		c1 := must(h.DialTCP(ctx, ap("0.0.0.0:5000"), ap("203.0.113.10:80")))
		defer c1.Close()
		c2 := must(h.DialTCP(ctx, ap("0.0.0.0:5000"), ap("203.0.113.10:81")))
		defer c2.Close()
		assert.Equal(t, "203.0.113.20:5000", c1.LocalAddr().String())
		// The same 4-tuple twice is refused.
		_, err = h.DialTCP(ctx, ap("0.0.0.0:5000"), ap("203.0.113.10:80"))
		assert.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
		// The listener gets inbound connections.
		in1 := must(srv.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.20:5000")))
		defer in1.Close()
		a, err := l2.Accept()
		require.NoError(t, err)
		a.Close()
		// UDP: two sockets on one port.
		u1 := must(h.ListenUDP(ctx, ap("0.0.0.0:5000")))
		defer u1.Close()
		u2 := must(h.ListenUDP(ctx, ap("0.0.0.0:5000")))
		defer u2.Close()
		assert.Equal(t, "0.0.0.0:5000", u2.LocalAddr().String())
		assert.IsType(t, &net.UDPAddr{}, u2.LocalAddr())
		assert.IsType(t, &net.TCPAddr{}, c1.RemoteAddr())
	})
}

func TestBadUse(t *testing.T) {
	ctx := context.Background()
	in := New()
	h := must(in.AddHost(addr("203.0.113.10")))
	nat := must(in.AddNAT(addr("198.51.100.1"), HomeRouter))

	_, err := in.AddHost(addr("203.0.113.10"))
	assert.ErrorContains(t, err, "duplicate address")
	_, err = in.AddHost(addr("198.51.100.1"))
	assert.ErrorContains(t, err, "duplicate address")
	_, err = in.AddHost(netip.Addr{})
	assert.Error(t, err)
	_, err = in.AddHost(addr("2001:db8::1"))
	assert.ErrorContains(t, err, "IPv4")
	_, err = in.AddHost(addr("0.0.0.0"))
	assert.Error(t, err)
	_, err = nat.AddHost(addr("198.18.0.2"), WithLink(Link{Loss: 2}))
	assert.ErrorContains(t, err, "loss")
	bad := HomeRouter
	bad.Filtering = NoTranslation
	_, err = in.AddNAT(addr("198.51.100.2"), bad)
	assert.ErrorContains(t, err, "filtering")
	bad = HomeRouter
	bad.PortMin, bad.PortMax = 2000, 1000
	_, err = in.AddNAT(addr("198.51.100.2"), bad)
	assert.ErrorContains(t, err, "port range")

	_, err = h.ListenTCP(ctx, ap("203.0.113.99:80"))
	assert.ErrorIs(t, err, syscall.EADDRNOTAVAIL, "not the host's address")
	_, err = h.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.99:0"))
	assert.ErrorIs(t, err, syscall.EADDRNOTAVAIL, "port 0")
	_, err = h.DialTCP(ctx, ap("0.0.0.0:0"), netip.AddrPortFrom(addr("2001:db8::1"), 80))
	assert.Error(t, err)
	pc := must(h.ListenUDP(ctx, ap("0.0.0.0:0")))
	_, err = pc.WriteTo(make([]byte, 70000), net.UDPAddrFromAddrPort(ap("203.0.113.11:1")))
	assert.ErrorIs(t, err, syscall.EMSGSIZE)
	_, err = pc.WriteTo([]byte("x"), &net.TCPAddr{})
	assert.ErrorIs(t, err, syscall.EINVAL)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = h.DialTCP(cctx, ap("0.0.0.0:0"), ap("203.0.113.11:80"))
	assert.ErrorIs(t, err, context.Canceled)

	require.NoError(t, in.Close())
	require.NoError(t, in.Close())
	_, err = in.AddHost(addr("203.0.113.11"))
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = h.ListenTCP(ctx, ap("0.0.0.0:80"))
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = h.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.11:80"))
	assert.ErrorIs(t, err, ErrNetworkClosed)
	_, err = pc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(ap("203.0.113.11:1")))
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestCloseUnblocksEverything(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		srv := must(in.AddHost(addr("203.0.113.10")))
		cli := must(in.AddHost(addr("203.0.113.20")))
		must(in.AddNAT(addr("198.51.100.1"), HomeRouter))
		ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
		c := must(cli.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80")))
		pc := must(cli.ListenUDP(ctx, ap("0.0.0.0:0")))
		errs := make(chan error, 4)
		go func() { _, err := ln.Accept(); _, err = ln.Accept(); errs <- err }()
		go func() { _, err := c.Read(make([]byte, 1)); errs <- err }()
		go func() { _, _, err := pc.ReadFrom(make([]byte, 1)); errs <- err }()
		go func() { _, err := cli.DialTCP(ctx, ap("0.0.0.0:0"), ap("198.51.100.1:80")); errs <- err }()
		time.Sleep(time.Second)
		require.NoError(t, in.Close())
		for i := 0; i < 4; i++ {
			assert.ErrorIs(t, <-errs, net.ErrClosed)
		}
	})
}

func TestHostDown(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		srv := must(in.AddHost(addr("203.0.113.10")))
		cli := must(in.AddHost(addr("203.0.113.20")))
		ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
		c := must(cli.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80")))
		s := must(ln.Accept())
		require.NoError(t, srv.Close())
		_, err := s.Read(make([]byte, 1))
		assert.ErrorIs(t, err, net.ErrClosed, "sockets on the dead host fail locally")
		// The peer hears nothing: its write is accepted and, after TCP's
		// retransmissions give up, the connection times out.
		start := time.Now()
		_, err = c.Write([]byte("anyone?"))
		require.NoError(t, err)
		_, err = c.Read(make([]byte, 1))
		assert.ErrorIs(t, err, syscall.ETIMEDOUT)
		assert.Equal(t, retransmitGiveUp, time.Since(start))
		// New connections to it time out too.
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = cli.DialTCP(dctx, ap("0.0.0.0:0"), ap("203.0.113.10:80"))
		assert.Equal(t, "timeout", dialOutcome(err))
		_, err = srv.ListenTCP(ctx, ap("0.0.0.0:81"))
		assert.ErrorIs(t, err, net.ErrClosed)
	})
}

func TestTraceExplainsFailure(t *testing.T) {
	var b strings.Builder
	bubble(t, func(t *testing.T, in *Internet) {
		nat := must(in.AddNAT(addr("198.51.100.1"), LinuxMasquerade))
		cli := must(in.AddHost(addr("203.0.113.20")))
		must(nat.AddHost(addr("198.18.0.2")))
		_, err := cli.DialTCP(context.Background(), ap("0.0.0.0:0"), ap("198.51.100.1:5000"))
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	}, WithTraceWriter(&b))
	out := b.String()
	assert.Contains(t, out, "drop      tcp SYN 203.0.113.20:")
	assert.Contains(t, out, "(no mapping)")
	assert.Contains(t, out, "reply     tcp RST+ACK 198.51.100.1:5000 > 203.0.113.20:")
	assert.Contains(t, out, "(unsolicited SYN: no mapping)")
}

func TestZeroValuesGiveErrors(t *testing.T) {
	ctx := context.Background()
	var in Internet
	_, err := in.AddHost(addr("203.0.113.1"))
	assert.ErrorIs(t, err, syscall.EINVAL)
	var nilNet *Internet
	assert.ErrorIs(t, nilNet.Close(), syscall.EINVAL)
	var h *Host
	_, err = h.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.1:1"))
	assert.ErrorIs(t, err, syscall.EINVAL)
	_, err = (&Host{}).ListenTCP(ctx, ap("0.0.0.0:0"))
	assert.ErrorIs(t, err, syscall.EINVAL)
	_, err = (*NAT)(nil).AddHost(addr("198.18.0.1"))
	assert.ErrorIs(t, err, syscall.EINVAL)
	var c TCPConn
	_, err = c.Read(nil)
	assert.ErrorIs(t, err, syscall.EINVAL)
	assert.ErrorIs(t, c.Close(), syscall.EINVAL)
	var u UDPConn
	_, err = u.WriteTo([]byte("x"), &net.UDPAddr{})
	assert.ErrorIs(t, err, syscall.EINVAL)
	var l TCPListener
	_, err = l.Accept()
	assert.ErrorIs(t, err, syscall.EINVAL)
}

// A nil context is bad input: the socket calls report it, naming the
// call, rather than panic.
func TestNilContextIsAnError(t *testing.T) {
	in := New()
	defer in.Close()
	h := must(in.AddHost(addr("203.0.113.10")))
	var nilCtx context.Context
	tests := []struct {
		name string
		call func() error
		op   string
	}{
		{"DialTCP", func() error { _, err := h.DialTCP(nilCtx, netip.AddrPort{}, ap("203.0.113.11:80")); return err }, "dial"},
		{"DialContext", func() error { _, err := h.DialContext(nilCtx, "tcp", "203.0.113.11:80"); return err }, "dial"},
		{"ListenTCP", func() error { _, err := h.ListenTCP(nilCtx, netip.AddrPort{}); return err }, "listen"},
		{"ListenUDP", func() error { _, err := h.ListenUDP(nilCtx, netip.AddrPort{}); return err }, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call() })
			require.ErrorIs(t, err, syscall.EINVAL)
			assert.ErrorContains(t, err, "nil context")
			var op *net.OpError
			require.ErrorAs(t, err, &op)
			assert.Equal(t, tt.op, op.Op)
		})
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Option{WithTCPBuffer(0), WithTimeWait(-time.Second), WithDefaultLink(Link{Latency: -1})} {
		in := New(o)
		_, err := in.AddHost(addr("203.0.113.1"))
		assert.Error(t, err)
		_, err = in.AddNAT(addr("198.51.100.1"), HomeRouter)
		assert.Error(t, err)
		in.Close()
	}
}

func TestCloseWithDataInFlight(t *testing.T) {
	// The server closes while the client's request is still on the wire:
	// it sends a FIN (nothing unread yet); the request then arrives at a
	// closed socket and is answered with RST.
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		srv := must(in.AddHost(addr("203.0.113.10"), WithLink(Link{Latency: 10 * time.Millisecond})))
		cli := must(in.AddHost(addr("203.0.113.20"), WithLink(Link{Latency: 10 * time.Millisecond})))
		ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
		defer ln.Close()
		c := must(cli.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80")))
		s := must(ln.Accept())
		start := time.Now()
		_, err := c.Write([]byte("request"))
		require.NoError(t, err)
		require.NoError(t, s.Close())
		_, err = c.Read(make([]byte, 1))
		assert.Equal(t, io.EOF, err, "the FIN comes first")
		assert.Equal(t, 20*time.Millisecond, time.Since(start))
		time.Sleep(25 * time.Millisecond) // the request arrived at 20 ms; its RST is back at 40 ms
		_, err = c.Write([]byte("more"))
		assert.ErrorIs(t, err, syscall.EPIPE, "then the RST for the request, in CLOSE-WAIT")
	})
}

// fixedPair connects 203.0.113.20:4000 to 203.0.113.10:80 (links of 5 ms
// each) and returns the client's host, to dial the same 4-tuple again
// (redial), and the listener, which the caller closes.
func fixedPair(t *testing.T, in *Internet) (cli *Host, ln net.Listener, c, s net.Conn) {
	l := WithLink(Link{Latency: 5 * time.Millisecond})
	srv := must(in.AddHost(addr("203.0.113.10"), l))
	cli = must(in.AddHost(addr("203.0.113.20"), l))
	ln = must(srv.ListenTCP(context.Background(), ap("0.0.0.0:80")))
	c = must(redial(cli))
	return cli, ln, c, must(ln.Accept())
}

// redial dials fixedPair's 4-tuple from cli.
func redial(cli *Host) (net.Conn, error) {
	return cli.DialTCP(context.Background(), ap("0.0.0.0:4000"), ap("203.0.113.10:80"))
}

// TestRSTEndsTimeWait: the side that closed first keeps its 4-tuple after
// a graceful close, but a RST ends that socket at once, as on Linux (checked
// on loopback: a redial of the same 4-tuple then succeeds): the peer aborts
// (SO_LINGER 0 after reading EOF), or the peer writes to it after the
// close and the closed socket answers with a RST.
func TestRSTEndsTimeWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer func(t *testing.T, s net.Conn)
		free bool // the 4-tuple can be dialed again at once
	}{
		{"peer closes gracefully", func(t *testing.T, s net.Conn) {
			require.NoError(t, s.Close())
		}, false},
		{"peer aborts", func(t *testing.T, s net.Conn) {
			require.NoError(t, s.(*TCPConn).SetLinger(0))
			require.NoError(t, s.Close())
		}, true},
		{"peer writes after the close", func(t *testing.T, s net.Conn) {
			_, err := s.Write([]byte("late"))
			require.NoError(t, err)
			time.Sleep(30 * time.Millisecond)
			_, err = s.Write([]byte("again"))
			require.ErrorIs(t, err, syscall.EPIPE)
			require.NoError(t, s.Close())
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				cli, ln, c, s := fixedPair(t, in)
				defer ln.Close()
				require.NoError(t, c.Close()) // the client closes first
				_, err := s.Read(make([]byte, 1))
				require.Equal(t, io.EOF, err)
				tc.peer(t, s)
				time.Sleep(50 * time.Millisecond)
				c2, err := redial(cli)
				if !tc.free {
					require.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
					return
				}
				require.NoError(t, err)
				require.NoError(t, c2.(*TCPConn).SetLinger(0))
				require.NoError(t, c2.Close())
			})
		})
	}
}

// TestTimeWaitSide: the side whose FIN left first holds TIME-WAIT, for 60 s
// from the arrival of the peer's FIN, as on Linux (checked with ss on
// loopback: a socket closed 30 s before its peer was still in TIME-WAIT
// 65 s after its close; a socket that half-closed first and closed last
// was the one in TIME-WAIT). The side whose FIN came second is gone after a
// round trip (LAST-ACK).
func TestTimeWaitSide(t *testing.T) {
	for _, tc := range []struct {
		name    string
		close   func(t *testing.T, c, s net.Conn)
		blocked time.Duration // how long from the end of close the client's redial is refused
	}{
		{"client closes, server 30 s later", func(t *testing.T, c, s net.Conn) {
			require.NoError(t, c.Close())
			time.Sleep(30 * time.Second)
			require.NoError(t, s.Close())
		}, 60*time.Second + 10*time.Millisecond},
		{"client half-closes first, closes last", func(t *testing.T, c, s net.Conn) {
			require.NoError(t, c.(*TCPConn).CloseWrite())
			_, err := io.ReadAll(s)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			_, err = io.ReadAll(c)
			require.NoError(t, err)
			require.NoError(t, c.Close())
		}, 60 * time.Second},
		{"server closes first", func(t *testing.T, c, s net.Conn) {
			require.NoError(t, s.Close())
			_, err := io.ReadAll(c)
			require.NoError(t, err)
			require.NoError(t, c.Close())
		}, 20 * time.Millisecond}, // LAST-ACK: a round trip
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				cli, ln, c, s := fixedPair(t, in)
				defer ln.Close()
				tc.close(t, c, s)
				time.Sleep(tc.blocked - time.Millisecond)
				_, err := redial(cli)
				require.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
				time.Sleep(2 * time.Millisecond)
				c2, err := redial(cli)
				require.NoError(t, err)
				require.NoError(t, c2.(*TCPConn).SetLinger(0))
				require.NoError(t, c2.Close())
			})
		})
	}
}

// TestResetInCloseWait: a RST that reaches a socket which had the peer's
// FIN (CLOSE-WAIT) makes writes fail with EPIPE and leaves reads at EOF, as
// on Linux (checked on loopback: write, write = "broken pipe", read = EOF);
// a RST on an open connection is ECONNRESET for the first call, then EOF
// for reads (TestResetErrors).
func TestResetInCloseWait(t *testing.T) {
	for _, tc := range []struct {
		name        string
		peer        func(t *testing.T, c net.Conn)
		write, read error
	}{
		{"peer closed, then got data", func(t *testing.T, c net.Conn) {
			require.NoError(t, c.Close())
		}, syscall.EPIPE, io.EOF},
		{"peer aborted", func(t *testing.T, c net.Conn) {
			require.NoError(t, c.(*TCPConn).SetLinger(0))
			require.NoError(t, c.Close())
		}, syscall.ECONNRESET, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				_, ln, c, s := fixedPair(t, in)
				defer ln.Close()
				defer s.Close()
				tc.peer(t, c)
				time.Sleep(20 * time.Millisecond)
				_, err := s.Write([]byte("x")) // accepted, answered by a RST if not reset yet
				if err == nil {
					time.Sleep(30 * time.Millisecond)
					_, err = s.Write([]byte("x"))
				}
				require.ErrorIs(t, err, tc.write)
				_, err = s.Read(make([]byte, 1))
				require.ErrorIs(t, err, tc.read)
			})
		})
	}
}
