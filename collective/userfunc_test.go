package collective

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSendWaitsWithContext: a Send waiting for the link behind another
// Send honours its context: it returns the context's error at its
// deadline, having written nothing, and the communicator stays usable.
// (It used to wait for the write lock first, and watch its context only
// once it held it: forever, behind a send the peer never reads.)
func TestSendWaitsWithContext(t *testing.T) {
	a, b := net.Pipe() // a is never read: a Send on b blocks
	defer a.Close()
	c, err := New(0, []net.Conn{nil, b})
	require.NoError(t, err)
	first := make(chan error, 1)
	go func() { first <- c.Send(context.Background(), 1, 1, []byte("stuck")) }()
	time.Sleep(50 * time.Millisecond) // the first Send holds the link

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Send(ctx, 1, 1, []byte("second")) }()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 2*time.Second)
	case <-time.After(3 * time.Second):
		t.Fatal("the second Send is still blocked 3 s after its 200 ms deadline")
	}
	assert.NoError(t, c.Err(), "nothing was written: the communicator is usable")

	require.NoError(t, c.Close())
	select {
	case err := <-first:
		assert.Error(t, err, "closing ends the blocked Send")
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the blocked Send")
	}
}
