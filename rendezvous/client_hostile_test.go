package rendezvous

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/punch"
)

// cancelOnDial is a network whose dial to the server ends Join's context
// just as the connection is made, and whose connections take a while to set
// a deadline in the future (as a busy scheduler may).
type cancelOnDial struct {
	punch.Network
	server netip.AddrPort
	cancel context.CancelFunc
}

func (n cancelOnDial) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error) {
	c, err := n.Network.DialTCP(ctx, laddr, raddr)
	if err != nil {
		return nil, err
	}
	if raddr == n.server {
		n.cancel()
	}
	return slowDeadlines{c}, nil
}

type slowDeadlines struct{ net.Conn }

func (c slowDeadlines) SetDeadline(t time.Time) error {
	if t.After(time.Now()) {
		time.Sleep(50 * time.Millisecond)
	}
	return c.Conn.SetDeadline(t)
}

// TestJoinContextEndsAsConnected: a context that ends just as the control
// connection is made ends Join at once; the handshake's own 30 s limit does
// not replace the past deadline the context's end set.
func TestJoinContextEndsAsConnected(t *testing.T) {
	srv := startFakeServer(t, time.Second, nil, nil) // accepts and says nothing
	server := netip.MustParseAddrPort(srv.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := Join(ctx, srv.addr, "j", 2, testSecret, WithNetwork(cancelOnDial{punch.OS(), server, cancel}))
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		// Where it stopped depends on when the context's end reached the
		// connection: before the hello went out or while the challenge was
		// awaited. Either way the error says so.
		assert.Regexp(t, "sending hello|no challenge", err.Error())
		assert.Less(t, time.Since(began), 2*time.Second)
	case <-time.After(3 * time.Second):
		t.Fatal("Join still waits for the challenge 3 s after its context ended")
	}
}

// TestJoinRelayNeverReady: a relay that never says relay-ready fails Join
// with an error that says so, after the relay timeout (plus a handshake
// timeout), not with a "context deadline exceeded" that makes it look as if
// the caller's context had ended.
func TestJoinRelayNeverReady(t *testing.T) {
	t.Parallel()
	const relayTimeout = 100 * time.Millisecond
	srv := startFakeServer(t, time.Second, func(m *fakeMember) {
		m.send(m.table(2, 0))
		m.send(start{Rank: 0, PunchTimeout: 10 * time.Second, RelayTimeout: relayTimeout})
		m.send(verdict{Peer: 1, Tier: TierRelay, Nonce: newNonce()})
		m.drain()
	}, func(c net.Conn, _ relayHello) { c.Read(make([]byte, 1)) }) // silent
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	_, err := Join(ctx, srv.addr, "j", 2, testSecret, WithRank(0))
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "Join's context did not end: %v", err)
	assert.ErrorContains(t, err, "rank 0: relay to rank 1: waiting for rank 1 at the relay: no relayed link within 5.1s")
	assert.Less(t, time.Since(began), relayTimeout+punch.DefaultHandshakeTimeout+2*time.Second)
}

// TestJoinRelayedBeforeStart: a pair the server relays before this member's
// punch round begins gets a link whose setup time is 0, not negative.
func TestJoinRelayedBeforeStart(t *testing.T) {
	srv := startFakeServer(t, time.Second, func(m *fakeMember) {
		m.send(m.table(2, 0))
		m.send(start{Rank: 0, Delay: 2 * time.Second, PunchTimeout: time.Second, RelayTimeout: time.Second})
		m.send(verdict{Peer: 1, Tier: TierRelay, Nonce: newNonce()})
		m.drain()
	}, relayAsPeer)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Join(ctx, srv.addr, "j", 2, testSecret)
	require.NoError(t, err)
	defer m.Close()
	l := m.Links[1]
	require.NotNil(t, l)
	assert.Equal(t, TierRelay, l.Tier)
	assert.GreaterOrEqual(t, l.Setup, time.Duration(0))
	assert.LessOrEqual(t, l.Setup, m.Setup)
}

// TestJoinContextEndsDuringSTUN: a context that ends while the STUN server
// has not answered ends Join with the context's error, and says it was
// asking the STUN server (not connecting to the rendezvous server).
func TestJoinContextEndsDuringSTUN(t *testing.T) {
	stun, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer stun.Close()
	go func() {
		for {
			c, err := stun.Accept()
			if err != nil {
				return
			}
			go func() { c.Read(make([]byte, 1<<10)); c.Read(make([]byte, 1)); c.Close() }() // reads, never answers
		}
	}()
	srv := startFakeServer(t, time.Second, func(m *fakeMember) { m.drain() }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = Join(ctx, srv.addr, "j", 2, testSecret, WithSTUNServer(addrPortOf(stun.Addr())))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "asking the STUN server "+stun.Addr().String())
	assert.NotContains(t, err.Error(), "connecting to the server")
	assert.Less(t, time.Since(began), 2*time.Second)
}

// TestJoinServerLostSaysPhase: a server that closes the control connection
// fails Join with an error that says what Join was waiting for.
func TestJoinServerLostSaysPhase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(*fakeMember)
		want   string // a regular expression
	}{
		{"while waiting", func(*fakeMember) {},
			// The fake server's joined frame counts 1 member.
			`waiting for the other members of the job \(1 of 2 joined when last heard from the server, \d+\.\d s ago\): lost the rendezvous server: EOF`},
		{"while punching", func(m *fakeMember) {
			m.send(m.table(2, 0))
			m.send(start{Rank: 0, PunchTimeout: 10 * time.Second, RelayTimeout: time.Second})
		}, `rank 0: making links: 0 of 1 peers linked, none yet with ranks \[1\]: lost the rendezvous server: EOF`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, time.Second, tc.script, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Join(ctx, srv.addr, "j", 2, testSecret)
			require.Error(t, err)
			assert.Regexp(t, tc.want, err.Error())
		})
	}
}
