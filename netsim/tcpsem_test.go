package netsim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpEnv is a place to run a semCase: netsim in a bubble, or real sockets
// over loopback.
type tcpEnv struct {
	listen func(t *testing.T) net.Listener
	dial   func(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error)
	host   netip.Addr     // the address sockets bind to and dial
	closed netip.AddrPort // an endpoint nobody listens on
	settle func()
}

// pair connects a client to a fresh listener and returns both ends.
func (e tcpEnv) pair(t *testing.T) (ln net.Listener, c, p tcpSocket) {
	t.Helper()
	ln = e.listen(t)
	cc, err := e.dial(context.Background(), netip.AddrPort{}, addrPort(ln.Addr()))
	require.NoError(t, err)
	pc, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close(); pc.Close(); ln.Close() })
	return ln, cc.(tcpSocket), pc.(tcpSocket)
}

func addrPort(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }

var endpointRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// outcome names the result of a call: ok(n), EOF, an errno name, ErrClosed,
// timeout; with the error's text, endpoints replaced by A, after a colon.
func outcome(n int, err error) string {
	if err == nil {
		return "ok(" + itoa(n) + ")"
	}
	if err == io.EOF {
		return "EOF"
	}
	name := "?"
	var en syscall.Errno
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		name = "timeout"
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			name = "timeout-without-Timeout()"
		}
	case errors.Is(err, net.ErrClosed):
		name = "ErrClosed"
	case errors.As(err, &en):
		name = errnoName[en]
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		name += "(not an OpError)"
	}
	return name + ": " + endpointRE.ReplaceAllString(err.Error(), "A")
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

var errnoName = map[syscall.Errno]string{
	syscall.ECONNRESET: "ECONNRESET", syscall.EPIPE: "EPIPE", syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ENOTCONN: "ENOTCONN", syscall.EINVAL: "EINVAL", syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
	syscall.ETIMEDOUT: "ETIMEDOUT",
}

type semCase struct {
	name string
	run  func(t *testing.T, e tcpEnv) []string
	want []string
}

func netsimEnv(t *testing.T, in *Internet) tcpEnv {
	l := WithLink(Link{Latency: 5 * time.Millisecond})
	srv := must(in.AddHost(addr("203.0.113.10"), l))
	return tcpEnv{
		listen: func(t *testing.T) net.Listener {
			return must(srv.ListenTCP(context.Background(), ap("203.0.113.10:0")))
		},
		dial: func(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error) {
			return srv.DialTCP(ctx, laddr, raddr)
		},
		host:   srv.Addr(),
		closed: ap("203.0.113.10:1"),
		settle: func() { time.Sleep(100 * time.Millisecond) },
	}
}

func linuxEnv(t *testing.T) tcpEnv {
	return tcpEnv{
		listen: func(t *testing.T) net.Listener {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			return ln
		},
		dial: func(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error) {
			d := net.Dialer{}
			if laddr.IsValid() {
				d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
			}
			return d.DialContext(ctx, "tcp", raddr.String())
		},
		host:   netip.MustParseAddr("127.0.0.1"),
		closed: ap("127.0.0.1:1"),
		settle: func() { time.Sleep(20 * time.Millisecond) },
	}
}

func TestTCPSemantics(t *testing.T) {
	for _, tc := range semCases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				assert.Equal(t, tc.want, tc.run(t, netsimEnv(t, in)))
			})
		})
	}
}

func TestTCPSemanticsLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the cases were measured on Linux")
	}
	for _, tc := range semCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.run(t, linuxEnv(t)))
		})
	}
}

func rd(c net.Conn) string           { n, err := c.Read(make([]byte, 64)); return outcome(n, err) }
func wr(c net.Conn, s string) string { n, err := c.Write([]byte(s)); return outcome(n, err) }

var semCases = []semCase{
	{"close with unread data resets the peer", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		wr(p, "unread")
		e.settle()
		require.NoError(t, c.Close())
		e.settle()
		return []string{rd(p), rd(p), wr(p, "x")}
	}, []string{
		"ECONNRESET: read tcp A->A: read: connection reset by peer",
		"EOF",
		"EPIPE: write tcp A->A: write: broken pipe"}},
	{"close with unread data after the peer's FIN resets it", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		wr(p, "unread")
		require.NoError(t, p.CloseWrite())
		e.settle()
		require.NoError(t, c.Close())
		e.settle()
		return []string{rd(p), wr(p, "x"), rd(p)}
	}, []string{
		"ECONNRESET: read tcp A->A: read: connection reset by peer",
		"EPIPE: write tcp A->A: write: broken pipe",
		"EOF"}},
	{"close with unsent data delivers it, then FIN", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		big := make([]byte, 64<<10)
		n, err := c.Write(big)
		w := outcome(n, err)
		require.NoError(t, c.Close())
		b, err := io.ReadAll(p)
		return []string{w, outcome(len(b), err), rd(p)}
	}, []string{
		"ok(65536)",
		"ok(65536)",
		"EOF"}},
	{"close with a write blocked", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		done := make(chan string)
		var total int
		go func() {
			buf := make([]byte, 1<<20)
			for i := 0; i < 256; i++ {
				n, err := c.Write(buf)
				total += n
				if err != nil {
					done <- outcome(0, err)
					return
				}
			}
			done <- "never blocked"
		}()
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, c.Close())
		w := <-done
		b, err := io.ReadAll(p)
		return []string{w, outcome(0, err), boolStr(len(b) == total, "peer reads all written", "peer reads "+itoa(len(b))+" of "+itoa(total))}
	}, []string{
		"ErrClosed: write tcp A->A: use of closed network connection",
		"ok(0)",
		"peer reads all written"}},
	{"half close: CloseWrite, then both sides", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		var got []string
		got = append(got, wr(c, "req"))
		require.NoError(t, c.CloseWrite())
		e.settle()
		got = append(got, rd(p), rd(p), rd(p), wr(c, "more"), outcome(0, c.CloseWrite()))
		got = append(got, wr(p, "resp"))
		e.settle()
		got = append(got, rd(c))
		require.NoError(t, p.CloseWrite())
		e.settle()
		got = append(got, rd(c), rd(c), wr(p, "x"), wr(c, "x"))
		return got
	}, []string{
		"ok(3)",
		"ok(3)",
		"EOF",
		"EOF",
		"EPIPE: write tcp A->A: write: broken pipe",
		"ok(0)",
		"ok(4)",
		"ok(4)",
		"EOF",
		"EOF",
		"EPIPE: write tcp A->A: write: broken pipe",
		"EPIPE: write tcp A->A: write: broken pipe"}},
	{"CloseRead, then the peer writes", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		require.NoError(t, c.CloseRead())
		got := []string{rd(c), wr(p, "late")}
		e.settle()
		got = append(got, rd(c), wr(c, "x"))
		require.NoError(t, c.Close())
		e.settle()
		got = append(got, rd(p), rd(p))
		return got
	}, []string{
		"EOF",
		"ok(4)",
		"ok(4)",
		"ok(1)",
		"ok(1)",
		"EOF"}},
	{"operations after Close", func(t *testing.T, e tcpEnv) []string {
		_, c, _ := e.pair(t)
		require.NoError(t, c.Close())
		return []string{rd(c), wr(c, "x"), outcome(0, c.Close()), outcome(0, c.SetDeadline(time.Now())),
			outcome(0, c.CloseWrite()), outcome(0, c.CloseRead()), outcome(0, c.SetLinger(0))}
	}, []string{
		"ErrClosed: read tcp A->A: use of closed network connection",
		"ErrClosed: write tcp A->A: use of closed network connection",
		"ErrClosed: close tcp A->A: use of closed network connection",
		"ErrClosed: set tcp A: use of closed network connection",
		"ErrClosed: close tcp A->A: use of closed network connection",
		"ErrClosed: close tcp A->A: use of closed network connection",
		"ErrClosed: set tcp A->A: use of closed network connection"}},
	{"deadline in the past", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		wr(p, "data")
		e.settle()
		require.NoError(t, c.SetDeadline(time.Now().Add(-time.Second)))
		got := []string{rd(c), wr(c, "x"), wr(c, "")}
		require.NoError(t, c.SetDeadline(time.Time{}))
		got = append(got, rd(c), wr(c, "x"))
		return got
	}, []string{
		"timeout: read tcp A->A: i/o timeout",
		"timeout: write tcp A->A: i/o timeout",
		"timeout: write tcp A->A: i/o timeout",
		"ok(4)",
		"ok(1)"}},
	{"deadline extended while a Read is blocked", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		go func() {
			time.Sleep(50 * time.Millisecond)
			c.SetReadDeadline(time.Now().Add(time.Hour))
			time.Sleep(200 * time.Millisecond)
			p.Write([]byte("late"))
		}()
		got := []string{rd(c)}
		go func() {
			time.Sleep(50 * time.Millisecond)
			c.SetReadDeadline(time.Now())
		}()
		return append(got, rd(c))
	}, []string{
		"ok(4)",
		"timeout: read tcp A->A: i/o timeout"}},
	{"a writer blocks when the peer does not read", func(t *testing.T, e tcpEnv) []string {
		_, c, _ := e.pair(t)
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(time.Second)))
		buf := make([]byte, 64<<10)
		total := 0
		var err error
		for i := 0; i < 1024 && err == nil; i++ {
			var n int
			n, err = c.Write(buf)
			total += n
		}
		return []string{outcome(0, err), boolStr(total > 1<<20 && total < 32<<20, "1-32 MiB buffered", "buffered "+itoa(total))}
	}, []string{
		"timeout: write tcp A->A: i/o timeout",
		"1-32 MiB buffered"}},
	{"listener Close resets connections not accepted", func(t *testing.T, e tcpEnv) []string {
		ln := e.listen(t)
		c, err := e.dial(context.Background(), netip.AddrPort{}, addrPort(ln.Addr()))
		require.NoError(t, err)
		defer c.Close()
		got := []string{wr(c, "hello")}
		e.settle()
		require.NoError(t, ln.Close())
		e.settle()
		_, err = ln.Accept()
		got = append(got, rd(c), rd(c), wr(c, "x"), outcome(0, err), outcome(0, ln.Close()))
		_, err = e.dial(context.Background(), netip.AddrPort{}, addrPort(ln.Addr()))
		return append(got, outcome(0, err))
	}, []string{
		"ok(5)",
		"ECONNRESET: read tcp A->A: read: connection reset by peer",
		"EOF",
		"EPIPE: write tcp A->A: write: broken pipe",
		"ErrClosed: accept tcp A: use of closed network connection",
		"ErrClosed: close tcp A: use of closed network connection",
		"ECONNREFUSED: dial tcp A: connect: connection refused"}},
	{"dial with no listener", func(t *testing.T, e tcpEnv) []string {
		_, err := e.dial(context.Background(), netip.AddrPort{}, e.closed)
		_, err2 := e.dial(context.Background(), netip.AddrPortFrom(e.host, 0), e.closed)
		return []string{outcome(0, err), outcome(0, err2)}
	}, []string{
		"ECONNREFUSED: dial tcp A: connect: connection refused",
		"ECONNREFUSED: dial tcp A->A: connect: connection refused"}},
	{"CloseRead keeps queued data, and Close with it unread resets", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		wr(p, "early")
		e.settle()
		require.NoError(t, c.CloseRead())
		got := []string{rd(c), rd(c), wr(p, "late")}
		e.settle()
		require.NoError(t, c.Close())
		e.settle()
		return append(got, rd(p), wr(p, "x"))
	}, []string{
		"ok(5)",
		"EOF",
		"ok(4)",
		"ECONNRESET: read tcp A->A: read: connection reset by peer",
		"EPIPE: write tcp A->A: write: broken pipe"}},
	{"listener deadlines", func(t *testing.T, e tcpEnv) []string {
		ln := e.listen(t).(interface {
			net.Listener
			SetDeadline(time.Time) error
		})
		require.NoError(t, ln.SetDeadline(time.Now().Add(-time.Second)))
		_, err := ln.Accept()
		got := []string{outcome(0, err)}
		require.NoError(t, ln.SetDeadline(time.Now().Add(50*time.Millisecond)))
		_, err = ln.Accept()
		got = append(got, outcome(0, err))
		require.NoError(t, ln.Close())
		return append(got, outcome(0, ln.SetDeadline(time.Time{})))
	}, []string{
		"timeout: accept tcp A: i/o timeout",
		"timeout: accept tcp A: i/o timeout",
		"ErrClosed(not an OpError): use of closed network connection"}},
	{"Close and FIN unblock a Read", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		go func() { time.Sleep(50 * time.Millisecond); c.CloseWrite() }()
		got := []string{rd(p)}
		go func() { time.Sleep(50 * time.Millisecond); c.Close() }()
		return append(got, rd(c))
	}, []string{
		"EOF",
		"ErrClosed: read tcp A->A: use of closed network connection"}},
	{"shutdown after a reset", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		abortPeer(t, p)
		e.settle()
		return []string{outcome(0, c.CloseWrite()), outcome(0, c.CloseRead()), rd(c), wr(c, "x"),
			outcome(0, c.SetLinger(0)), outcome(0, c.SetDeadline(time.Time{})), outcome(0, c.Close())}
	}, []string{
		"ENOTCONN: close tcp A->A: shutdown: transport endpoint is not connected",
		"ENOTCONN: close tcp A->A: shutdown: transport endpoint is not connected",
		"ECONNRESET: read tcp A->A: read: connection reset by peer",
		"EPIPE: write tcp A->A: write: broken pipe",
		"ok(0)",
		"ok(0)",
		"ok(0)"}},
	{"shutdown after both FINs", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		require.NoError(t, c.CloseWrite())
		e.settle()
		require.NoError(t, p.CloseWrite())
		e.settle()
		got := []string{outcome(0, c.CloseWrite()), outcome(0, c.CloseRead()), rd(c), wr(c, "x"),
			outcome(0, p.CloseWrite()), outcome(0, p.CloseRead()), rd(p), wr(p, "x")}
		return append(got, outcome(0, c.Close()), outcome(0, p.Close()))
	}, []string{
		"ENOTCONN: close tcp A->A: shutdown: transport endpoint is not connected",
		"ENOTCONN: close tcp A->A: shutdown: transport endpoint is not connected",
		"EOF",
		"EPIPE: write tcp A->A: write: broken pipe",
		"ENOTCONN: close tcp A->A: shutdown: transport endpoint is not connected",
		"ENOTCONN: close tcp A->A: shutdown: transport endpoint is not connected",
		"EOF",
		"EPIPE: write tcp A->A: write: broken pipe",
		"ok(0)",
		"ok(0)"}},
	{"shutdown in CLOSE-WAIT", func(t *testing.T, e tcpEnv) []string {
		_, c, p := e.pair(t)
		require.NoError(t, p.Close())
		e.settle()
		got := []string{outcome(0, c.CloseRead()), rd(c), outcome(0, c.CloseWrite())}
		e.settle()
		return append(got, rd(c), wr(c, "x"), outcome(0, c.Close()))
	}, []string{
		"ok(0)",
		"EOF",
		"ok(0)",
		"EOF",
		"EPIPE: write tcp A->A: write: broken pipe",
		"ok(0)"}},
	{"connection to self", func(t *testing.T, e tcpEnv) []string {
		ln := e.listen(t)
		self := addrPort(ln.Addr())
		require.NoError(t, ln.Close())
		c, err := e.dial(context.Background(), self, self)
		if err != nil {
			return []string{outcome(0, err)}
		}
		defer c.Close()
		got := []string{boolStr(c.LocalAddr().String() == c.RemoteAddr().String(), "local = remote", c.LocalAddr().String())}
		got = append(got, wr(c, "echo"), rd(c))
		require.NoError(t, c.(tcpSocket).CloseWrite())
		e.settle()
		return append(got, rd(c))
	}, []string{
		"local = remote",
		"ok(4)",
		"ok(4)",
		"EOF"}},
}

func boolStr(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// TestNATSessionAfterClose: a connection's NAT session after its FINs or
// RST, as Linux conntrack keeps it (nf_conntrack_tcp_timeout_*: established
// 5 days, fin_wait and time_wait 2 min from the FIN that passes, whatever
// the idle time before it). A RST removes the session at once (conntrack
// keeps it 10 s in CLOSE, a deliberate simplification: see docs/netsim.md).
func TestNATSessionAfterClose(t *testing.T) {
	tests := []struct {
		name  string
		idle  time.Duration
		close func(t *testing.T, c, s tcpSocket)
		left  time.Duration // lifetime left a second after the close; 0: gone
	}{
		{"graceful close", 0, closeBoth, 2*time.Minute - time.Second},
		{"graceful close after an hour idle", time.Hour, closeBoth, 2*time.Minute - time.Second},
		{"half close after an hour idle, then the answer", time.Hour, func(t *testing.T, c, s tcpSocket) {
			require.NoError(t, c.CloseWrite())
			_, err := io.ReadAll(s)
			require.NoError(t, err)
			_, err = s.Write([]byte("answer"))
			require.NoError(t, err)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
			b := make([]byte, 16)
			n, err := c.Read(b)
			require.NoError(t, err, "the NAT let the answer through")
			assert.Equal(t, "answer", string(b[:n]))
		}, 2*time.Minute - time.Second},
		{"abort from behind the NAT", time.Hour, func(t *testing.T, c, s tcpSocket) { abortPeer(t, c) }, 0},
		{"abort from outside", 0, func(t *testing.T, c, s tcpSocket) { abortPeer(t, s) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				ctx := context.Background()
				srv := must(in.AddHost(addr("203.0.113.10")))
				nat := must(in.AddNAT(addr("198.51.100.1"), LinuxMasquerade))
				a := must(nat.AddHost(addr("198.18.0.2")))
				ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
				defer ln.Close()
				c := must(a.DialTCP(ctx, netip.AddrPort{}, ap("203.0.113.10:80")))
				defer c.Close()
				s := must(ln.Accept())
				defer s.Close()
				start := time.Now()
				ms := nat.Mappings()
				require.Len(t, ms, 1)
				assert.Equal(t, 5*24*time.Hour, ms[0].Expires.Sub(start), "established")
				time.Sleep(tt.idle)
				tt.close(t, c.(tcpSocket), s.(tcpSocket))
				time.Sleep(time.Second)
				ms = nat.Mappings()
				if tt.left == 0 {
					assert.Empty(t, ms)
					return
				}
				require.Len(t, ms, 1)
				assert.InDelta(t, tt.left, time.Until(ms[0].Expires), float64(time.Second))
				time.Sleep(tt.left + time.Second)
				assert.Empty(t, nat.Mappings())
			})
		})
	}
}

func closeBoth(t *testing.T, c, s tcpSocket) {
	require.NoError(t, c.Close())
	_, err := io.ReadAll(s)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// TestAddrsAfterNAT: each end sees its own socket's address and the peer
// as its packets arrive, translated: behind a NAT the private endpoint
// locally and the NAT's public endpoint remotely, also through a hairpin.
func TestAddrsAfterNAT(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		srv := must(in.AddHost(addr("203.0.113.10")))
		cfg := FullCone
		cfg.Hairpinning = true
		nat := must(in.AddNAT(addr("198.51.100.1"), cfg))
		a := must(nat.AddHost(addr("198.18.0.2")))
		b := must(nat.AddHost(addr("198.18.0.3")))
		ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
		defer ln.Close()
		lb := must(b.ListenTCP(ctx, ap("0.0.0.0:7000")))
		defer lb.Close()
		c := must(a.DialTCP(ctx, ap("0.0.0.0:5000"), ap("203.0.113.10:80")))
		defer c.Close()
		s := must(ln.Accept())
		defer s.Close()
		x := must(b.DialTCP(ctx, ap("0.0.0.0:7000"), ap("203.0.113.10:80"))) // opens b's mapping
		defer x.Close()
		xs := must(ln.Accept())
		defer xs.Close()
		h := must(a.DialTCP(ctx, ap("0.0.0.0:6000"), ap("198.51.100.1:7000"))) // b's port, preserved
		defer h.Close()
		hs := must(lb.Accept())
		defer hs.Close()
		for _, tt := range []struct {
			name          string
			c             net.Conn
			local, remote string
		}{
			{"dialer behind the NAT", c, "198.18.0.2:5000", "203.0.113.10:80"},
			{"public server (listening on 0.0.0.0)", s, "203.0.113.10:80", "198.51.100.1:5000"},
			{"hairpin dialer", h, "198.18.0.2:6000", "198.51.100.1:7000"},
			{"hairpin listener", hs, "198.18.0.3:7000", "198.51.100.1:6000"},
		} {
			assert.Equal(t, tt.local, tt.c.LocalAddr().String(), tt.name)
			assert.Equal(t, tt.remote, tt.c.RemoteAddr().String(), tt.name)
			assert.IsType(t, &net.TCPAddr{}, tt.c.LocalAddr(), tt.name)
		}
	})
}
