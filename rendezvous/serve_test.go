package rendezvous

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goroutinesIn counts the goroutines whose stack contains fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			n++
		}
	}
	return n
}

// TestOverloadRefusalsBounded: connections over WithMaxConns cost at most
// maxRefusing short-lived handlers, however many arrive, and Serve returns
// only after those handlers are done.
func TestOverloadRefusalsBounded(t *testing.T) {
	srv := startLoopServer(t, WithMaxConns(1), WithDrainTimeout(100*time.Millisecond))
	hold := dialRaw(t, srv.addr) // takes the only slot (and stays silent)
	require.Eventually(t, func() bool { return srv.Metrics().Connections == 1 }, 5*time.Second, 5*time.Millisecond)

	const flood = 300
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	peak := 0
	for range flood {
		c, err := net.DialTimeout("tcp", srv.addr, 5*time.Second)
		if errors.Is(err, syscall.ECONNRESET) {
			// Reset at once (over maxRefusing), before this busy dialer
			// had seen its connect complete: a refusal too.
			peak = max(peak, goroutinesIn("rendezvous.(*Server).rejectConn"))
			continue
		}
		require.NoError(t, err)
		conns = append(conns, c)
		// Keep sending and never close: a refusal's drain runs its whole
		// time.
		_, _ = c.Write(make([]byte, 100))
		peak = max(peak, goroutinesIn("rendezvous.(*Server).rejectConn"))
	}
	require.Eventually(t, func() bool { return srv.Metrics().Rejected[CodeOverloaded] == flood },
		5*time.Second, 5*time.Millisecond)
	peak = max(peak, goroutinesIn("rendezvous.(*Server).rejectConn"))
	assert.LessOrEqual(t, peak, maxRefusing, "handlers refusing connections at once")
	assert.Positive(t, peak, "some refusals get their error frame")

	// A refused connection that got its frame reads "overloaded".
	answered := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if m, err := readMessage(c, MaxPayload); err == nil {
			if e, ok := m.(errorMsg); ok && e.Code == CodeOverloaded {
				answered++
			}
		}
	}
	assert.Positive(t, answered)

	srv.stop(t)
	assert.Zero(t, goroutinesIn("rendezvous.(*Server).rejectConn"), "refusals outlived Serve")
	srv.mu.Lock()
	assert.Empty(t, srv.refusing)
	srv.mu.Unlock()
	_ = hold
}

// TestServeOnce: a second Serve while one runs fails (and closes its
// listener) instead of racing on the server's state; after the first
// returns, the server does not serve again.
func TestServeOnce(t *testing.T) {
	srv := startLoopServer(t, WithDrainTimeout(100*time.Millisecond))
	r := dialRaw(t, srv.addr)
	r.hello() // the first Serve is serving

	ln2, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Serve(ctx, ln2, nil)
	require.ErrorContains(t, err, "already serving")
	_, err = ln2.Accept()
	assert.True(t, errors.Is(err, net.ErrClosed), "the refused Serve closes its listener: %v", err)

	// The first Serve still works.
	r2 := dialRaw(t, srv.addr)
	r2.hello()

	srv.stop(t)
	ln3, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	err = srv.Serve(ctx, ln3, nil)
	require.ErrorContains(t, err, "already shut down")
	_, err = ln3.Accept()
	assert.True(t, errors.Is(err, net.ErrClosed))
}
