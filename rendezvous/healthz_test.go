package rendezvous

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHealthzBeforeServe: /healthz says 503 until Serve has started, 200
// while it serves, 503 once it shuts down.
func TestHealthzBeforeServe(t *testing.T) {
	srv := NewServer(testSecret)
	h := httptest.NewServer(srv.Handler())
	defer h.Close()
	get := func() (int, string) {
		resp, err := http.Get(h.URL + "/healthz")
		require.NoError(t, err)
		defer resp.Body.Close()
		var b [64]byte
		n, _ := resp.Body.Read(b[:])
		return resp.StatusCode, string(b[:n])
	}
	code, body := get()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "not serving yet\n", body)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, nil) }()
	require.Eventually(t, func() bool { c, _ := get(); return c == http.StatusOK }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	code, body = get()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "shutting down\n", body)
}
