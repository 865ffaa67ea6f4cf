package punch

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// listenAs listens on an ephemeral port of 127.0.0.1 with SO_REUSEADDR
// and SO_REUSEPORT from a socket owned by user uid, until the test ends.
// Linux takes a socket's owner from the file-system user ID of the thread
// that creates it, so the test sets that of its own locked thread for the
// socket call alone. It skips the test when not run as root.
func listenAs(t *testing.T, uid int) netip.AddrPort {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a socket of another user")
	}
	runtime.LockOSThread()
	_, _, _ = unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	_, _, _ = unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
	runtime.UnlockOSThread()
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
	require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1))
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback.As4()}))
	require.NoError(t, unix.Listen(fd, 8))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(fd, &st))
	require.EqualValues(t, uid, st.Uid, "the socket belongs to user %d", uid)
	return netip.AddrPortFrom(loopback, uint16(sa.(*unix.SockaddrInet4).Port))
}

// A port that already has a listener cannot be opened again, even by a
// socket that is as reusable as it (same user, SO_REUSEPORT): Linux would
// accept the second listener and spread the port's inbound connections over
// both, so that each Port saw only part of its peers. A listener of another
// user fails too. Listeners on other addresses of the port, the port's own
// connections and its TIME_WAIT entries do not stop a new listener.
func TestOSListenerAlreadyOnPort(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	nw := OS()
	first, err := nw.ListenTCP(ctx, anyLoop)
	require.NoError(t, err)
	defer first.Close()
	port := first.Addr().(*net.TCPAddr).AddrPort()
	on := func(a string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), port.Port()) }

	refused := []struct {
		name  string
		laddr netip.AddrPort
	}{
		{"same address", port},
		{"v4-mapped address", on("::ffff:127.0.0.1")},
		{"0.0.0.0", on("0.0.0.0")},
		{"any address", netip.AddrPortFrom(netip.Addr{}, port.Port())},
		{"::", on("::")},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			ln, err := nw.ListenTCP(ctx, tt.laddr)
			if err == nil {
				ln.Close()
			}
			require.ErrorIs(t, err, syscall.EADDRINUSE)
			require.ErrorContains(t, err, "another socket of this user holds port "+strconv.Itoa(int(port.Port()))+" with SO_REUSEPORT")
			p, err := Listen(ctx, nw, tt.laddr, ident(1))
			if err == nil {
				p.Close()
			}
			require.ErrorIs(t, err, syscall.EADDRINUSE)
		})
	}

	t.Run("another user", func(t *testing.T) {
		theirs := listenAs(t, 65534)
		ln, err := nw.ListenTCP(ctx, theirs)
		if err == nil {
			ln.Close()
		}
		require.ErrorIs(t, err, syscall.EADDRINUSE)
		require.ErrorContains(t, err, "without sharing it (no SO_REUSEPORT, or another user's)")
		_, err = nw.DialTCP(ctx, theirs, plainServer(t))
		require.ErrorIs(t, err, syscall.EADDRINUSE, "nor can a connection leave from it")
	})

	// A socket without SO_REUSEPORT on the port (a plain listener, or one
	// bound without listening) fails the check as the listen itself would,
	// and the error does not say it listens or would share the port: it
	// said "another socket listens" for both.
	t.Run("held without SO_REUSEPORT", func(t *testing.T) {
		plainListener := func(t *testing.T) netip.AddrPort {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })
			return ln.Addr().(*net.TCPAddr).AddrPort()
		}
		boundOnly := func(t *testing.T) netip.AddrPort {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			t.Cleanup(func() { unix.Close(fd) })
			require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback.As4()}))
			sa, err := unix.Getsockname(fd)
			require.NoError(t, err)
			return netip.AddrPortFrom(loopback, uint16(sa.(*unix.SockaddrInet4).Port))
		}
		tests := []struct {
			name string
			hold func(t *testing.T) netip.AddrPort
		}{
			{"plain listener", plainListener},
			{"bound, not listening", boundOnly},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				held := tt.hold(t)
				ln, err := nw.ListenTCP(ctx, held)
				if err == nil {
					ln.Close()
				}
				require.ErrorIs(t, err, syscall.EADDRINUSE)
				require.ErrorContains(t, err, "another socket holds port "+strconv.Itoa(int(held.Port()))+
					" without sharing it (no SO_REUSEPORT, or another user's)")
				require.NotContains(t, err.Error(), "listens")
			})
		}
	})

	t.Run("another address of the port", func(t *testing.T) {
		ln, err := nw.ListenTCP(ctx, on("127.0.0.2"))
		require.NoError(t, err)
		ln.Close()
	})

	t.Run("the port's own connections and TIME_WAIT", func(t *testing.T) {
		p := listenOS(t, 0)
		srv := plainServer(t)
		kept, err := p.Dial(ctx, srv)
		require.NoError(t, err)
		defer kept.Close()
		finned, err := p.Dial(ctx, plainServer(t))
		require.NoError(t, err)
		require.NoError(t, finned.Close()) // we close first: TIME_WAIT on our side
		addr := p.Addr()
		require.NoError(t, p.Close())
		again, err := Listen(ctx, nw, addr, ident(0))
		require.NoError(t, err, "a Port reopens on its port while a connection from it stays open")
		require.NoError(t, again.Close())
	})
}
