package rendezvous

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientSTUNOptionChecked: a STUN endpoint Join cannot use fails Join
// before it dials, saying which option is wrong, instead of a warning in a
// log nobody reads and a join without it.
func TestClientSTUNOptionChecked(t *testing.T) {
	srv := startLoopServer(t)
	for _, tc := range []struct{ stun, want string }{
		{"127.0.0.1:0", "port 0"},
		{"0.0.0.0:3478", "no address"},
		{":3478", "no address"},
		{"224.0.0.1:3478", "multicast"},
		{"[::1]:3478", "STUN server [::1]:3478 is not of the family of the rendezvous server's address 127.0.0.1"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ap := netip.AddrPortFrom(netip.Addr{}, 3478) // a port without an address
		if tc.stun != ":3478" {
			ap = netip.MustParseAddrPort(tc.stun)
		}
		m, err := Join(ctx, srv.addr, "stun", 1, testSecret, WithSTUNServer(ap))
		cancel()
		m.Close()
		require.Error(t, err, tc.stun)
		assert.ErrorContains(t, err, "WithSTUNServer: ")
		assert.ErrorContains(t, err, tc.want)
	}
	assert.Zero(t, srv.Metrics().Jobs, "nothing joined")
}

// closeFails is a connection whose Close fails.
type closeFails struct{ net.Conn }

func (closeFails) Close() error { return errors.New("close failed") }

// TestClientMeshCloseSaysWhich: a link that fails to close is named (rank,
// peer, tier) in Mesh.Close's error; the other links still close.
func TestClientMeshCloseSaysWhich(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c, d := net.Pipe()
	defer d.Close()
	m := &Mesh{Rank: 1, World: 3, Links: []*Link{
		{Conn: closeFails{a}, Peer: 0, Tier: TierRelay}, nil, {Conn: c, Peer: 2, Tier: TierDirect}}}
	err := m.Close()
	require.EqualError(t, err, "rendezvous: rank 1: closing the relay link to rank 0: close failed")
	_, err = c.Write([]byte{1})
	assert.ErrorIs(t, err, io.ErrClosedPipe, "the other link closed")
	a.Close()
}

// TestClientRelayBadFrames: a relay that answers relay-hello with a frame
// that does not decode, or refuses it, fails Join with an error that says
// which, for which peer, and leaves nothing behind.
func TestClientRelayBadFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		relay func(net.Conn, relayHello)
		want  string
		code  Code
	}{
		{"malformed", func(c net.Conn, _ relayHello) {
			c.Write(rawFrameHeader(ProtoVersion, 0x77, 0))
			c.Read(make([]byte, 1))
		},
			"rank 0: relay to rank 1: waiting for rank 1 at the relay: rendezvous server sent a malformed frame: malformed: unknown message type 0x77",
			CodeMalformed},
		{"refused", func(c net.Conn, _ relayHello) {
			writeMessage(c, errorMsg{Code: CodeRelay, Rank: 1, Msg: "partner gave up"})
		}, "rank 0: relay to rank 1: the server refused the relay: relay: partner gave up", CodeRelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, time.Second, func(m *fakeMember) {
				m.send(m.table(2, 0))
				m.send(start{Rank: 0, PunchTimeout: 10 * time.Second, RelayTimeout: time.Second})
				m.send(verdict{Peer: 1, Tier: TierRelay, Nonce: newNonce()})
				m.drain()
			}, tc.relay)
			g, fds := runtime.NumGoroutine(), openFDs(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Join(ctx, srv.addr, "j", 2, testSecret)
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorIs(t, err, &Error{Code: tc.code})
			settle(t, g, fds)
		})
	}
}
