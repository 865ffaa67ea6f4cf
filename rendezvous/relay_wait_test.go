package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// relaySideWaiting reports whether the relay connection of side (0: the
// lower rank) of job's pair lo-hi is waiting in its slot.
func relaySideWaiting(srv *loopServer, job string, lo, hi, side int) bool {
	srv.mu.Lock()
	j := srv.jobs[job]
	srv.mu.Unlock()
	if j == nil {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	sl := j.relays[[2]int{lo, hi}]
	return sl != nil && sl.conns[side] != nil
}

// signedRelayHello is a relay-hello of job from rank to peer with ticket.
func signedRelayHello(t testing.TB, job string, rank, peer int, ticket [nonceSize]byte) relayHello {
	t.Helper()
	key, err := jobKey(testSecret, job)
	require.NoError(t, err)
	rh := relayHello{Job: job, Rank: rank, Peer: peer, Nonce: ticket}
	signRelay(key, &rh)
	return rh
}

// TestRelayWaitingSideDisconnects: a relay side that hangs up while it waits
// for its partner frees its slot at once and counts as a failed relay; the
// partner arriving afterwards is told that rank, not spliced to a dead
// socket.
func TestRelayWaitingSideDisconnects(t *testing.T) {
	srv := startLoopServer(t)
	const job = "waiter-leaves"
	_, _, va, vb := relayedPair(t, srv.addr, job)
	ra := dialRaw(t, srv.addr)
	ra.send(signedRelayHello(t, job, 0, 1, va.Nonce))
	require.Eventually(t, func() bool { return relaySideWaiting(srv, job, 0, 1, 0) }, 5*time.Second, 5*time.Millisecond)
	conns := srv.Metrics().Connections
	ra.c.Close()
	require.Eventually(t, func() bool { return srv.Metrics().RelayFailures == 1 }, 5*time.Second, 5*time.Millisecond,
		"the server did not notice the waiting side hang up")
	require.Eventually(t, func() bool { return srv.Metrics().Connections == conns-1 }, 5*time.Second, 5*time.Millisecond)

	rb := dialRaw(t, srv.addr)
	rb.send(signedRelayHello(t, job, 1, 0, vb.Nonce))
	e := rb.expectError(CodeRelay)
	assert.Equal(t, 0, e.Rank)
	assert.Contains(t, e.Msg, "rank 0 disconnected")
	m := srv.Metrics()
	assert.Equal(t, int64(0), m.RelaysTotal)
	assert.Equal(t, int64(1), m.RelayFailures)
}

// TestRelayWaitingSideSendsEarly: a waiting relay side that sends bytes
// before relay-ready breaks the protocol: it gets bad-request, and its
// partner is told that rank failed.
func TestRelayWaitingSideSendsEarly(t *testing.T) {
	srv := startLoopServer(t)
	const job = "waiter-talks"
	_, _, va, vb := relayedPair(t, srv.addr, job)
	rb := dialRaw(t, srv.addr)
	rb.send(signedRelayHello(t, job, 1, 0, vb.Nonce))
	require.Eventually(t, func() bool { return relaySideWaiting(srv, job, 0, 1, 1) }, 5*time.Second, 5*time.Millisecond)
	rb.sendBytes([]byte("too soon"))
	e := rb.expectError(CodeBadRequest)
	assert.Contains(t, e.Msg, "before relay-ready")
	assert.Equal(t, int64(1), srv.Metrics().RelayFailures)

	ra := dialRaw(t, srv.addr)
	ra.send(signedRelayHello(t, job, 0, 1, va.Nonce))
	e = ra.expectError(CodeRelay)
	assert.Equal(t, 1, e.Rank)
	assert.Contains(t, e.Msg, "rank 1")
	assert.Equal(t, int64(0), srv.Metrics().RelaysTotal)
}

// TestRelayWaitsThenSplices: the watch on a waiting side does not eat its
// partner's arrival: many pairs in a row splice and carry bytes both ways.
func TestRelayWaitsThenSplices(t *testing.T) {
	srv := startLoopServer(t)
	for i := range 5 {
		job := "pair-" + string(rune('a'+i))
		_, _, va, vb := relayedPair(t, srv.addr, job)
		ra, rb := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
		ra.send(signedRelayHello(t, job, 0, 1, va.Nonce))
		if i%2 == 0 {
			require.Eventually(t, func() bool { return relaySideWaiting(srv, job, 0, 1, 0) }, 5*time.Second, 5*time.Millisecond)
		}
		rb.send(signedRelayHello(t, job, 1, 0, vb.Nonce))
		require.IsType(t, relayReady{}, ra.mustRecv())
		require.IsType(t, relayReady{}, rb.mustRecv())
		ra.sendBytes([]byte("ping"))
		rb.sendBytes([]byte("pong"))
		buf := make([]byte, 4)
		rb.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := rb.br.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(buf))
		ra.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = ra.br.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, "pong", string(buf))
	}
	assert.Equal(t, int64(5), srv.Metrics().RelaysTotal)
	assert.Equal(t, int64(0), srv.Metrics().RelayFailures)
}
