package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelayHelloDuringShutdown: a relay-hello that arrives once shutdown
// has begun gets a shutdown error, valid ticket or not: the same answer
// for every job, so it reveals nothing about one.
func TestRelayHelloDuringShutdown(t *testing.T) {
	srv := startLoopServer(t, WithDrainTimeout(5*time.Second))
	const job = "shut"
	_, _, va, _ := relayedPair(t, srv.addr, job)
	early, other := dialRaw(t, srv.addr), dialRaw(t, srv.addr) // accepted, silent
	require.Eventually(t, func() bool { return srv.Metrics().Connections >= 4 }, 5*time.Second, 5*time.Millisecond)
	srv.cancel()
	require.Eventually(t, srv.isClosing, 5*time.Second, time.Millisecond)
	early.send(signedRelayHello(t, job, 0, 1, va.Nonce))
	e1 := early.expectError(CodeShutdown)
	other.send(signedRelayHello(t, "no-such-job", 0, 1, newNonce()))
	e2 := other.expectError(CodeShutdown)
	assert.Equal(t, e1, e2)
}
