package punch

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// congestionOf reads the congestion control of a connection's socket.
func congestionOf(t *testing.T, c net.Conn) string {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var name string
	var gerr error
	require.NoError(t, raw.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}))
	require.NoError(t, gerr)
	return strings.TrimRight(name, "\x00")
}

func systemCongestion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// Links a Port punches or dials carry the congestion control it was given
// (both ends: the dialed and the accepted socket), the system's with "",
// and the system's, without failing the link, when the kernel refuses it.
func TestCongestionControlOfLinks(t *testing.T) {
	sys := systemCongestion(t)
	for _, tc := range []struct {
		name, option, want string
	}{
		{"reno", "reno", "reno"},
		{"cubic", "cubic", "cubic"},
		{"system default", "", sys},
		{"unknown algorithm", "no-such-algorithm", sys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := listenOS(t, 0, WithCongestionControl(tc.option))
			b := listenOS(t, 1, WithCongestionControl(tc.option))
			ca, cb := mustPunch(t, a, b)
			require.Equal(t, tc.want, congestionOf(t, ca), "rank 0's link")
			require.Equal(t, tc.want, congestionOf(t, cb), "rank 1's link")
			requireSameLink(t, ca, cb)

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			d, err := a.Dial(testCtx(t, 10*time.Second), netip.MustParseAddrPort(ln.Addr().String()))
			require.NoError(t, err)
			defer d.Close()
			require.Equal(t, tc.want, congestionOf(t, d), "a connection from Port.Dial")
		})
	}
}

// The default is CUBIC: BBR paces a collective's bursts (see
// WithCongestionControl).
func TestDefaultCongestionControl(t *testing.T) {
	avail, err := os.ReadFile("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
	require.NoError(t, err)
	if !strings.Contains(string(avail), "cubic") && os.Geteuid() != 0 {
		t.Skip("cubic is not in net.ipv4.tcp_allowed_congestion_control and the test is not root: the default cannot be set here")
	}
	a, b := listenOS(t, 0), listenOS(t, 1)
	ca, cb := mustPunch(t, a, b)
	require.Equal(t, DefaultCongestionControl, congestionOf(t, ca))
	require.Equal(t, DefaultCongestionControl, congestionOf(t, cb))
}

// A nil connection is an error, not a panic; with no algorithm asked for
// there is nothing to set.
func TestSetCongestionControlNil(t *testing.T) {
	var err error
	require.NotPanics(t, func() { err = SetCongestionControl(nil, "reno") })
	require.ErrorContains(t, err, "nil connection")
	require.NoError(t, SetCongestionControl(nil, ""))
}
