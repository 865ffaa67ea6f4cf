package rendezvous

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tempErr is an accept error worth retrying (as EMFILE is).
type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files (test)" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

// failingListener fails every Accept with a temporary error; its calls
// hook runs on each one.
type failingListener struct {
	mu           sync.Mutex
	calls        int
	closed       bool
	afterClosing int // Accept calls once closed
	onCall       func(n int)
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.closed {
		l.afterClosing++
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	l.calls++
	n := l.calls
	l.mu.Unlock()
	l.onCall(n)
	return nil, tempErr{}
}

func (l *failingListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

func (l *failingListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// TestAcceptBackoffWatchesShutdown: Serve's context ending during the
// accept loop's back-off ends the loop there; it does not sleep the
// back-off out and call Accept again.
func TestAcceptBackoffWatchesShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln := &failingListener{onCall: func(n int) {
		if n == 3 {
			cancel() // the loop is about to back off (20 ms)
		}
	}}
	done := make(chan error, 1)
	go func() { done <- NewServer(testSecret).Serve(ctx, ln, nil) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	ln.mu.Lock()
	defer ln.mu.Unlock()
	assert.Equal(t, 3, ln.calls)
	assert.Zero(t, ln.afterClosing, "the loop slept out its back-off and accepted again after shutdown")
}
