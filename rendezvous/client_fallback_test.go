package rendezvous

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/punch"
)

// resolveTo makes every server name resolve to addrs until the test ends.
func resolveTo(t *testing.T, addrs ...string) {
	old := lookupNetIP
	t.Cleanup(func() { lookupNetIP = old })
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
}

// scriptedDials is the OS network, except that a dial to an address in
// blackhole hangs until its context ends, and one to an address in
// unreachable fails at once with EHOSTUNREACH. It counts the dials to each
// remote address and keeps the deadline of each dial's context.
type scriptedDials struct {
	punch.Network
	blackhole, unreachable []netip.Addr
	mu                     sync.Mutex
	dials                  map[netip.Addr]int
	deadlines              map[netip.Addr][]time.Time
}

func newScriptedDials() *scriptedDials {
	return &scriptedDials{Network: punch.OS(), dials: map[netip.Addr]int{}, deadlines: map[netip.Addr][]time.Time{}}
}

func (n *scriptedDials) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error) {
	n.mu.Lock()
	n.dials[raddr.Addr()]++
	d, _ := ctx.Deadline()
	n.deadlines[raddr.Addr()] = append(n.deadlines[raddr.Addr()], d)
	n.mu.Unlock()
	for _, a := range n.blackhole {
		if a == raddr.Addr() {
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
		}
	}
	for _, a := range n.unreachable {
		if a == raddr.Addr() {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EHOSTUNREACH}
		}
	}
	return n.Network.DialTCP(ctx, laddr, raddr)
}

func (n *scriptedDials) count(a string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials[netip.MustParseAddr(a)]
}

// TestClientServerFallbackRefused: of a name's addresses, one that refuses
// (nothing listens on 127.0.0.2) does not end Join: the next one, where the
// server is, is dialed, even with WithConnectRetry(0). The IPv6 address the
// name lists first is skipped (the punch port is IPv4), bound or not.
func TestClientServerFallbackRefused(t *testing.T) {
	srv := startLoopServer(t)
	port := srv.ap.Port()
	resolveTo(t, "::1", "127.0.0.2", "127.0.0.1")
	name := fmt.Sprintf("rv.example:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, laddr := range []netip.AddrPort{{}, netip.MustParseAddrPort("127.0.0.1:0")} {
		nw := newScriptedDials()
		// A job of its own per round: the server forgets a finished job
		// only once it has seen its member leave, which a loaded machine
		// may not have done before the next round joins.
		job := fmt.Sprintf("fallback-%d", i)
		m, err := Join(ctx, name, job, 1, testSecret, WithConnectRetry(0), WithNetwork(nw), WithLocalAddr(laddr))
		require.NoError(t, err, "punch port %v", laddr)
		m.Close()
		assert.Equal(t, 1, nw.count("127.0.0.2"))
		assert.Equal(t, 1, nw.count("127.0.0.1"))
		assert.Zero(t, nw.count("::1"))
	}
}

// TestClientServerFallbackTimeout: an address that does not answer gets a
// share of the time Join's context leaves (at least 2 s, as net.Dialer
// gives), then the next address is dialed.
func TestClientServerFallbackTimeout(t *testing.T) {
	srv := startLoopServer(t)
	resolveTo(t, "127.0.0.2", "127.0.0.1")
	nw := newScriptedDials()
	nw.blackhole = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	began := time.Now()
	m, err := Join(ctx, fmt.Sprintf("rv.example:%d", srv.ap.Port()), "fallback", 1, testSecret, WithNetwork(nw))
	require.NoError(t, err)
	m.Close()
	took := time.Since(began)
	assert.GreaterOrEqual(t, took, 2900*time.Millisecond, "half of the 6 s")
	assert.Less(t, took, 5*time.Second)
	assert.Equal(t, 1, nw.count("127.0.0.1"))
}

// TestClientServerFallbackAllFail: when no address connects, the error says
// what each did (refused, how often; unreachable; not dialed, and why),
// errors.Is finds each failure, refusals are retried for WithConnectRetry
// and other failures are not.
func TestClientServerFallbackAllFail(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := addrPortOf(ln.Addr()).Port()
	ln.Close() // refused from now on
	resolveTo(t, "::1", "127.0.0.9", "127.0.0.2", "127.0.0.3")
	name := fmt.Sprintf("rv.example:%d", port)
	ep := func(a string) string { return fmt.Sprintf("%s:%d", a, port) }

	t.Run("retry runs out", func(t *testing.T) {
		nw := newScriptedDials()
		nw.unreachable = []netip.Addr{netip.MustParseAddr("127.0.0.9")}
		began := time.Now()
		_, err := Join(context.Background(), name, "fallback", 2, testSecret, WithNetwork(nw), WithConnectRetry(300*time.Millisecond))
		require.Error(t, err)
		t.Log(err)
		assert.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.ErrorIs(t, err, syscall.EHOSTUNREACH)
		assert.ErrorContains(t, err, "is the server up")
		assert.ErrorContains(t, err, ep("127.0.0.9")+": dial tcp: "+syscall.EHOSTUNREACH.Error())
		assert.Regexp(t, ep("127.0.0.2")+" refused [0-9]+ times; "+ep("127.0.0.3")+" refused [0-9]+ times", err.Error())
		assert.ErrorContains(t, err, fmt.Sprintf("not dialed, of the other family than the punch port's: [[::1]:%d]", port))
		assert.Equal(t, 1, nw.count("127.0.0.9"), "an unreachable address is not dialed again")
		assert.Greater(t, nw.count("127.0.0.2"), 1)
		assert.Zero(t, nw.count("::1"))
	})
	t.Run("retry off", func(t *testing.T) {
		nw := newScriptedDials()
		_, err := Join(context.Background(), name, "fallback", 2, testSecret, WithNetwork(nw), WithConnectRetry(0))
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.ErrorContains(t, err, ep("127.0.0.2")+" refused; "+ep("127.0.0.3")+" refused")
		assert.Equal(t, 1, nw.count("127.0.0.3"))
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := Join(ctx, name, "fallback", 2, testSecret)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		t.Log(err)
		assert.Regexp(t, "context deadline exceeded after [0-9.]+m?s; "+ep("127.0.0.9")+" refused", err.Error())
	})
	t.Run("context ends while one hangs", func(t *testing.T) {
		nw := newScriptedDials()
		nw.blackhole = []netip.Addr{netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("127.0.0.2")}
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := Join(ctx, name, "fallback", 2, testSecret, WithNetwork(nw))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		t.Log(err)
		assert.Less(t, time.Since(began), 4*time.Second)
		// 127.0.0.9 had 2 s of the 2.5; 127.0.0.2 the rest, cut short by
		// Join's end; 127.0.0.3 was never dialed.
		assert.ErrorContains(t, err, ep("127.0.0.9")+" did not answer in 2")
		assert.ErrorContains(t, err, ep("127.0.0.2")+" still dialing; not dialed: ["+ep("127.0.0.3")+"]")
		assert.Zero(t, nw.count("127.0.0.3"))
	})
}
