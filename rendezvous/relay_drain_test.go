package rendezvous

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShutdownDrainsEstablishedRelays: once shutdown has begun, every
// connection's deadline is capped at shutdownAnswerTimeout from then, except
// an established relay's: it runs on for the drain timeout. Bytes still pass
// both ways well after shutdownAnswerTimeout, and the server stops once both
// sides close, before the drain timeout.
func TestShutdownDrainsEstablishedRelays(t *testing.T) {
	const drain = 2 * time.Minute // longer than any wait below, however loaded the machine
	srv := startLoopServer(t, WithDrainTimeout(drain))
	ra, rb := establishedRelay(t, srv, "drain")

	began := time.Now()
	srv.cancel()
	require.Eventually(t, srv.isClosing, 10*time.Second, time.Millisecond)
	time.Sleep(shutdownAnswerTimeout + 500*time.Millisecond) // past every capped deadline

	pass := func(from, to *rawClient, msg string) {
		t.Helper()
		_, err := from.c.Write([]byte(msg))
		require.NoError(t, err)
		require.NoError(t, to.c.SetReadDeadline(time.Now().Add(30*time.Second)))
		got := make([]byte, len(msg))
		_, err = io.ReadFull(to.br, got)
		require.NoError(t, err, "the relay was cut %v after shutdown began", time.Since(began))
		assert.Equal(t, msg, string(got))
	}
	pass(ra, rb, "a to b, during the drain")
	pass(rb, ra, "b to a, during the drain")
	assert.Equal(t, int64(1), srv.Metrics().RelaysActive)

	ra.c.Close()
	rb.c.Close()
	select {
	case <-srv.done:
		srv.done <- nil // for the cleanup's stop
	case <-time.After(drain / 2):
		t.Fatal("the server did not stop once the relay's sides closed")
	}
}
