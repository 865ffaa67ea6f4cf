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
	hello := func(rank int, v verdict) relayHello { return relayHelloFor(t, "late", rank, v) }
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
					writeMessage(r.c, pong{Seq: p.Seq})
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

// serverGoroutines counts the goroutines serving connections: handlers,
// member writers, relay waits and copies.
func serverGoroutines() int {
	n := 0
	for _, fn := range []string{"rendezvous.(*Server).handleConn", "rendezvous.(*member).writeLoop",
		"rendezvous.(*Server).awaitPartner", "rendezvous.(*Server).pump"} {
		n += goroutinesIn(fn)
	}
	return n
}

// TestHostileClientsLeaveNothing: clients that stall (silent, a partial
// frame, a byte at a time) or disconnect at each step of the protocol cost
// the server nothing once they are gone: no connection, job, member or
// goroutine is left, and the members of their jobs are told.
func TestHostileClientsLeaveNothing(t *testing.T) {
	srv := startLoopServer(t, WithHandshakeTimeout(300*time.Millisecond), WithPingInterval(100*time.Millisecond),
		WithRelayTimeout(300*time.Millisecond))
	relayHelloFor := func(job string, v verdict) relayHello {
		key, err := jobKey(testSecret, job)
		require.NoError(t, err)
		rh := relayHello{Job: job, Rank: 0, Peer: 1, Nonce: v.Nonce}
		signRelay(key, &rh)
		return rh
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"connects and closes", func(t *testing.T) { dialRaw(t, srv.addr).c.Close() }},
		{"connects and stays silent", func(t *testing.T) { dialRaw(t, srv.addr).expectError(CodeTimeout) }},
		{"partial header", func(t *testing.T) {
			r := dialRaw(t, srv.addr)
			r.sendBytes([]byte{'F', 'M', ProtoVersion})
			r.expectError(CodeTimeout)
		}},
		{"partial payload", func(t *testing.T) {
			r := dialRaw(t, srv.addr)
			r.sendBytes([]byte{'F', 'M', ProtoVersion, byte(typeRelayHello), 0, 0, 0x10, 0, 1, 2})
			r.expectError(CodeTimeout) // the payload did not arrive in time
		}},
		{"a byte at a time", func(t *testing.T) {
			r := dialRaw(t, srv.addr)
			for _, b := range encodeFrame(hello{})[:7] {
				if _, err := r.c.Write([]byte{b}); err != nil {
					break
				}
				time.Sleep(60 * time.Millisecond)
			}
			r.expectError(CodeTimeout)
		}},
		{"partial STUN", func(t *testing.T) {
			r := dialRaw(t, srv.addr)
			r.sendBytes([]byte{0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42})
			r.expectClosed()
		}},
		{"closes after hello", func(t *testing.T) { r := dialRaw(t, srv.addr); r.hello(); r.c.Close() }},
		{"closes after join", func(t *testing.T) { r := dialRaw(t, srv.addr); r.join("after-join", 2, -1); r.c.Close() }},
		{"silent after join", func(t *testing.T) {
			r := dialRaw(t, srv.addr)
			r.join("silent", 2, -1)
			r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for { // read the pings without answering, until the server gives up
				if _, err := readMessage(r.br, MaxPayload); err != nil {
					break
				}
			}
		}},
		{"closes after start", func(t *testing.T) {
			a, b := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
			a.join("after-start", 2, 0)
			b.join("after-start", 2, 1)
			a.started()
			b.started()
			a.c.Close()
			assert.Equal(t, 0, b.expectError(CodeMemberLeft).Rank)
		}},
		{"closes after its verdict", func(t *testing.T) {
			a, b, _, _ := relayedPair(t, srv.addr, "after-verdict")
			a.c.Close()
			assert.Equal(t, 0, b.expectError(CodeMemberLeft).Rank)
		}},
		{"closes its relay connection while it waits", func(t *testing.T) {
			_, _, va, _ := relayedPair(t, srv.addr, "relay-closed")
			ra := dialRaw(t, srv.addr)
			ra.send(relayHelloFor("relay-closed", va))
			ra.c.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run) // each subtest's connections close as it ends
	}
	require.Eventually(t, func() bool {
		m := srv.Metrics()
		return m.Jobs == 0 && m.Members == 0 && m.Connections == 0 && serverGoroutines() == 0
	}, 10*time.Second, 20*time.Millisecond, "left: %+v, %d goroutines", srv.Metrics(), serverGoroutines())
}

// TestShutdownCutsRelays: a shutting-down server cuts established relays
// at the drain timeout and leaves no connection or goroutine behind.
func TestShutdownCutsRelays(t *testing.T) {
	srv := startLoopServer(t, WithDrainTimeout(200*time.Millisecond))
	ra, rb := establishedRelay(t, srv, "cut")

	srv.stop(t)
	for _, r := range []*rawClient{ra, rb} {
		r.expectClosed()
	}
	m := srv.Metrics()
	assert.Zero(t, m.RelaysActive)
	assert.Zero(t, m.Connections)
	assert.Zero(t, m.Jobs)
	assert.Zero(t, m.Members)
	assert.Equal(t, int64(1), m.JobsEnded["shutdown"])
	assert.Zero(t, serverGoroutines())
}
