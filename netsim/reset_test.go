package netsim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpSocket is what both *TCPConn and *net.TCPConn offer.
type tcpSocket interface {
	net.Conn
	SetLinger(sec int) error
	CloseRead() error
	CloseWrite() error
}

// resetCase is a way to reset a connection and the results of a sequence of
// calls on the reset side: R reads 16 bytes, W writes one, r reads into an
// empty buffer, w writes nothing.
type resetCase struct {
	name  string
	setup func(t *testing.T, c, peer tcpSocket, settle func())
	ops   string
	want  []string
}

func abortPeer(t *testing.T, peer tcpSocket) {
	t.Helper()
	require.NoError(t, peer.SetLinger(0))
	require.NoError(t, peer.Close())
}

// resetCases were measured on Linux 6.18 over loopback, and
// TestResetErrorsLinux checks them there again: a RST sets the socket's
// pending error (sk_err), which the first Read or Write reports and clears;
// then reads return EOF and writes EPIPE. Data that arrived before the RST
// is read first. In CLOSE-WAIT the pending error is EPIPE and reads, which
// had the FIN, return EOF.
var resetCases = []resetCase{
	{"abort, reads first", func(t *testing.T, c, p tcpSocket, settle func()) { abortPeer(t, p) },
		"RRWW", []string{"ECONNRESET", "EOF", "EPIPE", "EPIPE"}},
	{"abort, writes first", func(t *testing.T, c, p tcpSocket, settle func()) { abortPeer(t, p) },
		"WWRR", []string{"ECONNRESET", "EPIPE", "EOF", "EOF"}},
	{"abort, read then write", func(t *testing.T, c, p tcpSocket, settle func()) { abortPeer(t, p) },
		"RWRW", []string{"ECONNRESET", "EPIPE", "EOF", "EPIPE"}},
	{"abort, write then read", func(t *testing.T, c, p tcpSocket, settle func()) { abortPeer(t, p) },
		"WRWR", []string{"ECONNRESET", "EOF", "EPIPE", "EOF"}},
	{"abort, empty write first", func(t *testing.T, c, p tcpSocket, settle func()) { abortPeer(t, p) },
		"wRW", []string{"ECONNRESET", "EOF", "EPIPE"}},
	{"abort, empty read first", func(t *testing.T, c, p tcpSocket, settle func()) { abortPeer(t, p) },
		"rRW", []string{"ok(0)", "ECONNRESET", "EPIPE"}},
	{"data then abort, reads first", func(t *testing.T, c, p tcpSocket, settle func()) {
		_, err := p.Write([]byte("data"))
		require.NoError(t, err)
		settle()
		abortPeer(t, p)
	}, "RRRW", []string{"ok(4)", "ECONNRESET", "EOF", "EPIPE"}},
	{"data then abort, write first", func(t *testing.T, c, p tcpSocket, settle func()) {
		_, err := p.Write([]byte("data"))
		require.NoError(t, err)
		settle()
		abortPeer(t, p)
	}, "WRRW", []string{"ECONNRESET", "ok(4)", "EOF", "EPIPE"}},
	{"CloseRead, then abort", func(t *testing.T, c, p tcpSocket, settle func()) {
		require.NoError(t, c.CloseRead())
		abortPeer(t, p)
	}, "RRW", []string{"ECONNRESET", "EOF", "EPIPE"}},
	{"CloseWrite, then abort", func(t *testing.T, c, p tcpSocket, settle func()) {
		require.NoError(t, c.CloseWrite())
		settle()
		abortPeer(t, p)
	}, "WWR", []string{"ECONNRESET", "EPIPE", "EOF"}},
	{"peer closed, then got data (CLOSE-WAIT)", func(t *testing.T, c, p tcpSocket, settle func()) {
		require.NoError(t, p.Close())
	}, "WWRW", []string{"ok(1)", "EPIPE", "EOF", "EPIPE"}},
	{"peer closed, then got data, then read (CLOSE-WAIT)", func(t *testing.T, c, p tcpSocket, settle func()) {
		require.NoError(t, p.Close())
	}, "WRWR", []string{"ok(1)", "EOF", "EPIPE", "EOF"}},
}

// errClass names an outcome as resetCases spell it.
func errClass(n int, err error) string {
	switch {
	case err == nil:
		return fmt.Sprintf("ok(%d)", n)
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET"
	case errors.Is(err, syscall.EPIPE):
		return "EPIPE"
	}
	return err.Error()
}

// runResetCase runs tc on c (peer is the other end), settling after the
// setup and after each call so that segments in flight arrive.
func runResetCase(t *testing.T, tc resetCase, c, peer tcpSocket, settle func()) []string {
	t.Helper()
	tc.setup(t, c, peer, settle)
	settle()
	var got []string
	for _, op := range tc.ops {
		var n int
		var err error
		switch op {
		case 'R':
			n, err = c.Read(make([]byte, 16))
		case 'r':
			n, err = c.Read(nil)
		case 'W':
			n, err = c.Write([]byte("x"))
		case 'w':
			n, err = c.Write(nil)
		}
		got = append(got, errClass(n, err))
		settle()
	}
	return got
}

// TestResetErrors: after a RST, netsim reports ECONNRESET once, like Linux.
func TestResetErrors(t *testing.T) {
	for _, tc := range resetCases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				_, ln, p, c := fixedPair(t, in)
				defer ln.Close()
				defer c.Close()
				defer p.Close()
				got := runResetCase(t, tc, c.(*TCPConn), p.(*TCPConn), func() { time.Sleep(100 * time.Millisecond) })
				assert.Equal(t, tc.want, got)
			})
		})
	}
}

// TestResetErrorsLinux checks resetCases, netsim's oracle, on real sockets
// over loopback.
func TestResetErrorsLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the cases were measured on Linux")
	}
	for _, tc := range resetCases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer ln.Close()
			c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
			require.NoError(t, err)
			defer c.Close()
			p, err := ln.AcceptTCP()
			require.NoError(t, err)
			defer p.Close()
			got := runResetCase(t, tc, c, p, func() { time.Sleep(10 * time.Millisecond) })
			assert.Equal(t, tc.want, got)
		})
	}
}
