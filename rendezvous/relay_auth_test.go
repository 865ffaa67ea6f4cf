package rendezvous

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelayHelloNoJobOracle: a relay-hello that does not verify gets the
// same error whether or not its job is in progress, so a client without the
// secret cannot tell which job IDs are live.
func TestRelayHelloNoJobOracle(t *testing.T) {
	srv := startLoopServer(t)
	member := dialRaw(t, srv.addr)
	member.join("live-job", 2, -1) // the job waits for its second member

	signedWith := func(secret []byte) func(*relayHello) {
		return func(rh *relayHello) {
			key, err := jobKey(secret, rh.Job)
			require.NoError(t, err)
			signRelay(key, rh)
		}
	}
	unsigned := func(*relayHello) {}
	type answer struct {
		code Code
		msg  string // with the job ID replaced by JOB
	}
	for _, tc := range []struct {
		name string
		sign func(*relayHello)
	}{
		{"no MAC", unsigned},
		{"MAC under another secret", signedWith([]byte("another secret of 32 bytes, too!"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]answer{}
			for _, job := range []string{"live-job", "gone-job"} {
				r := dialRaw(t, srv.addr)
				rh := relayHello{Job: job, Rank: 0, Peer: 1, Nonce: newNonce()}
				tc.sign(&rh)
				r.send(rh)
				e := r.expectError(CodeAuth)
				got[job] = answer{e.Code, strings.ReplaceAll(e.Msg, job, "JOB")}
			}
			assert.Equal(t, got["live-job"], got["gone-job"])
		})
	}
	// With the secret, a job that is not in progress is an invalid ticket
	// (TestRelayReplayRevealsNothing: the same answer as any other).
	r := dialRaw(t, srv.addr)
	rh := relayHello{Job: "gone-job", Rank: 0, Peer: 1, Nonce: newNonce()}
	signedWith(testSecret)(&rh)
	r.send(rh)
	e := r.expectError(CodeReplay)
	assert.Contains(t, e.Msg, "is not valid")
}

// TestRelayReplayRevealsNothing: a relay-hello captured off the wire (its
// MAC verifies) and replayed gets one and the same answer whether its job
// is still setting up links, has ended, or a new job of the same ID is
// waiting, and the same as any other invalid ticket: a replay does not tell
// an observer whether the job still runs.
func TestRelayReplayRevealsNothing(t *testing.T) {
	srv := startLoopServer(t)
	const job = "replayed"
	a, b, va, vb := relayedPair(t, srv.addr, job)
	key, err := jobKey(testSecret, job)
	require.NoError(t, err)
	hello := func(rank int, ticket [nonceSize]byte) relayHello {
		rh := relayHello{Job: job, Rank: rank, Peer: 1 - rank, Nonce: ticket}
		signRelay(key, &rh)
		return rh
	}
	captured := hello(0, va.Nonce)
	ra, rb := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
	ra.send(captured)
	rb.send(hello(1, vb.Nonce))
	require.IsType(t, relayReady{}, ra.mustRecv())
	require.IsType(t, relayReady{}, rb.mustRecv())

	replay := func(rh relayHello) errorMsg {
		t.Helper()
		r := dialRaw(t, srv.addr)
		r.send(rh)
		m := r.mustRecv()
		e, ok := m.(errorMsg)
		require.True(t, ok, "got %#v, want an error frame", m)
		r.expectClosed()
		return e
	}
	answers := map[string]errorMsg{}
	answers["job punching, ticket used"] = replay(captured)
	answers["job punching, other side's ticket"] = replay(hello(0, vb.Nonce))
	answers["job punching, unknown ticket"] = replay(hello(0, newNonce()))

	a.send(done{})
	b.send(done{})
	require.Eventually(t, func() bool { return srv.Metrics().Jobs == 0 }, 5*time.Second, 5*time.Millisecond)
	answers["job ended"] = replay(captured)

	w := dialRaw(t, srv.addr)
	w.join(job, 2, -1) // a new job of the same ID, waiting for members
	answers["same job ID waiting again"] = replay(captured)

	want := answers["job ended"]
	for name, got := range answers {
		assert.Equal(t, want, got, "%s: the answer differs from a replay after the job ended", name)
	}
}
