package rendezvous

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/punch"
)

// A STUN client gets one handshake timeout for its whole connection: asking
// again and again does not keep a connection without the secret open.
func TestSTUNConnectionBounded(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := startLoopServer(t, WithHandshakeTimeout(timeout))
	c, err := net.Dial("tcp4", srv.addr)
	require.NoError(t, err)
	defer c.Close()
	began := time.Now()
	answered := 0
	for range maxSTUNPerStream {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = punch.DiscoverConn(ctx, c)
		cancel()
		if err != nil {
			break
		}
		answered++
		time.Sleep(timeout / 4)
	}
	require.Error(t, err, "all %d requests answered over %v", answered, time.Since(began))
	assert.Less(t, time.Since(began), timeout+time.Second)
	assert.Positive(t, answered)
}

// A member whose connection is reset (a worker that dies, a NAT that drops
// the mapping) left the job; it did not send a malformed frame.
func TestResetMemberIsNotMalformed(t *testing.T) {
	srv := startLoopServer(t)
	a, b := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
	a.join("rst", 2, 0)
	b.join("rst", 2, 1)
	a.started()
	b.started()
	require.NoError(t, a.c.(*net.TCPConn).SetLinger(0))
	a.c.Close() // RST

	m := b.mustRecv()
	e, ok := m.(errorMsg)
	require.True(t, ok, "got %#v", m)
	assert.Equal(t, CodeMemberLeft, e.Code)
	assert.Equal(t, 0, e.Rank)
	assert.NotContains(t, e.Msg, "malformed")
	assert.Contains(t, e.Msg, "connection lost")
	assert.Zero(t, srv.Metrics().Rejected[CodeMalformed])

	// Closed after hello, before joining: nothing rejected either (once
	// the server has seen every connection end).
	b.c.Close()
	c := dialRaw(t, srv.addr)
	c.hello()
	c.c.Close()
	require.Eventually(t, func() bool { return srv.Metrics().Connections == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.Empty(t, srv.Metrics().Rejected)
}

// A relay partner that comes after the first side gave up hears that, not
// that its ticket is unknown.
func TestRelayPartnerLate(t *testing.T) {
	srv := startLoopServer(t, WithRelayTimeout(200*time.Millisecond))
	_, _, va, vb := relayedPair(t, srv.addr, "late")
	key, _ := jobKey(testSecret, "late")
	hello := func(rank int, v verdict) relayHello {
		rh := relayHello{Job: "late", Rank: rank, Peer: 1 - rank, Nonce: v.Nonce}
		signRelay(key, &rh)
		return rh
	}
	ra := dialRaw(t, srv.addr)
	ra.send(hello(0, va))
	ra.expectError(CodeRelay)

	rb := dialRaw(t, srv.addr)
	rb.send(hello(1, vb))
	e := rb.expectError(CodeRelay)
	assert.Equal(t, 0, e.Rank)
	assert.Contains(t, e.Msg, "rank 0 gave up waiting for rank 1")

	// The ticket is spent all the same.
	rb2 := dialRaw(t, srv.addr)
	rb2.send(hello(1, vb))
	rb2.expectError(CodeReplay)
}

// A member that said done may not keep its control connection open: the
// server closes it within a handshake timeout.
func TestDoneMemberConnectionBounded(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := startLoopServer(t, WithHandshakeTimeout(timeout), WithPingInterval(50*time.Millisecond))
	a, b, _, _ := relayedPair(t, srv.addr, "linger")
	a.send(done{})
	b.send(done{})
	require.Eventually(t, func() bool { return srv.Metrics().Jobs == 0 }, 5*time.Second, 10*time.Millisecond)

	began := time.Now()
	for _, r := range []*rawClient{a, b} {
		// Answer pings, as a client that lingers would, for at most 5 s.
		var err error
		for time.Since(began) < 5*time.Second && err == nil {
			r.c.SetReadDeadline(time.Now().Add(time.Second))
			var m message
			if m, err = readMessage(r.br, MaxPayload); err == nil {
				if p, ok := m.(ping); ok {
					writeMessage(r.c, pong(p))
				}
			}
		}
		require.Error(t, err, "the server closes a done member's connection")
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the connection is still open: %v", err)
	}
	assert.Less(t, time.Since(began), timeout+2*time.Second)
	require.Eventually(t, func() bool { return srv.Metrics().Connections == 0 }, 5*time.Second, 10*time.Millisecond)
}

// A relay side waiting for its partner when the job ends complete (every
// member said done, before its links were ready) is told at once: nobody
// can claim the other ticket of a job that is gone. It does not wait out
// the relay timeout, nor hold up a shutdown past the drain timeout.
func TestRelayWaitEndsWithJob(t *testing.T) {
	srv := startLoopServer(t, WithRelayTimeout(time.Hour), WithDrainTimeout(100*time.Millisecond))
	a, b, va, _ := relayedPair(t, srv.addr, "done-early")
	key, err := jobKey(testSecret, "done-early")
	require.NoError(t, err)
	rh := relayHello{Job: "done-early", Rank: 0, Peer: 1, Nonce: va.Nonce}
	signRelay(key, &rh)
	ra := dialRaw(t, srv.addr)
	ra.send(rh)
	require.Eventually(t, func() bool { return goroutinesIn("rendezvous.(*Server).awaitPartner") == 1 },
		5*time.Second, 5*time.Millisecond, "the relay side waits for its partner")
	a.send(done{})
	b.send(done{})

	e := ra.expectError(CodeRelay) // within expectError's 10 s, not the hour
	assert.Contains(t, e.Msg, "ended")
	srv.stop(t)
	assert.Zero(t, goroutinesIn("rendezvous.(*Server).awaitPartner"))
	assert.Zero(t, srv.Metrics().Connections)
}
