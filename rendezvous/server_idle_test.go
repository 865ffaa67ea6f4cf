package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSilentMemberGetsThreeFullIntervals: a member is evicted only after it
// has been silent for at least three ping intervals, whenever its last
// frame came. The read deadline used to be re-armed only once a quarter of
// it had run, so a frame soon after a re-arm did not move it: a member
// silent for 2¼ intervals after such a frame was evicted.
func TestSilentMemberGetsThreeFullIntervals(t *testing.T) {
	const interval = 100 * time.Millisecond
	srv := startLoopServer(t, WithPingInterval(interval))
	r := dialRaw(t, srv.addr)
	r.join("quiet", 2, -1)

	// Answer the next ping, then answer it again half an interval later:
	// two frames, the second too soon after the first to re-arm the old
	// deadline. Then fall silent.
	var p ping
	for i := 0; ; i++ {
		require.Less(t, i, 100, "no ping")
		r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := readMessage(r.br, MaxPayload)
		require.NoError(t, err)
		var ok bool
		if p, ok = m.(ping); ok {
			break
		}
	}
	r.send(pong{Seq: p.Seq})
	time.Sleep(interval / 2)
	// Taken before the send: the server cannot read the frame before it is
	// sent, so its deadline runs from no earlier than last. (Taken after,
	// a client descheduled between the send and time.Now measured less
	// silence than the server saw, while the server's deadline may pass
	// only just over 3 intervals after the frame: when the sleep above
	// overshoots by about a quarter interval, the frame comes just before
	// the deadline would be re-armed.)
	last := time.Now()
	r.send(pong{Seq: p.Seq}) // a late duplicate: ignored, but a frame all the same

	// Read (without answering) until the server closes the connection.
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "the server kept the silent member")
		if _, err := readMessage(r.br, MaxPayload); err != nil {
			break
		}
	}
	silent := time.Since(last)
	assert.GreaterOrEqual(t, silent, 3*interval, "evicted after %v of silence", silent)
	require.Eventually(t, func() bool { return srv.Metrics().Members == 0 }, 5*time.Second, 5*time.Millisecond)
}
