package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelayErrorsSayRelayOnce: a relay error reads "relay: rank 1 ...", its
// code once, not "relay: relay: rank 1 ..." (the code's name and a prefix
// in the message), which Join then wrapped as "relay to rank 1: the server
// refused the relay: relay: relay: ...".
func TestRelayErrorsSayRelayOnce(t *testing.T) {
	srv := startLoopServer(t, WithRelayTimeout(200*time.Millisecond))
	text := func(e errorMsg) string { return (&Error{Code: e.Code, Rank: e.Rank, Msg: e.Msg}).Error() }

	// The partner never comes; then it comes late.
	_, _, va, vb := relayedPair(t, srv.addr, "late-text")
	ra := dialRaw(t, srv.addr)
	ra.send(relayHelloFor(t, "late-text", 0, va))
	assert.Equal(t, "relay: rank 1 did not connect within 200ms", text(ra.expectError(CodeRelay)))
	rb := dialRaw(t, srv.addr)
	rb.send(relayHelloFor(t, "late-text", 1, vb))
	assert.Equal(t, "relay: rank 0 gave up waiting for rank 1 after 200ms", text(rb.expectError(CodeRelay)))

	// The waiting side hangs up.
	_, _, va, vb = relayedPair(t, srv.addr, "gone-text")
	ra = dialRaw(t, srv.addr)
	ra.send(relayHelloFor(t, "gone-text", 0, va))
	require.Eventually(t, func() bool { return relaySideWaiting(srv, "gone-text", 0, 1, 0) }, 5*time.Second, 5*time.Millisecond)
	ra.c.Close()
	require.Eventually(t, func() bool { return srv.Metrics().RelayFailures == 2 }, 5*time.Second, 5*time.Millisecond)
	rb = dialRaw(t, srv.addr)
	rb.send(relayHelloFor(t, "gone-text", 1, vb))
	assert.Equal(t, "relay: rank 0 disconnected while waiting for rank 1 (hung up)", text(rb.expectError(CodeRelay)))
}
