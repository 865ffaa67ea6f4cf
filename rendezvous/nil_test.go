package rendezvous

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The public API returns an error (or, for closing nothing, nil), never
// panics, on nil or zero values.
func TestNilAndZeroInputs(t *testing.T) {
	ctx := context.Background()
	var noCtx context.Context
	listener := func(t *testing.T) net.Listener {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	tests := []struct {
		name string
		call func(t *testing.T) error
		want string // in the error; "" for no error
	}{
		{"Serve: nil listener", func(*testing.T) error { return NewServer(testSecret).Serve(ctx, nil, nil) }, "nil listener"},
		{"Serve: nil context", func(t *testing.T) error { return NewServer(testSecret).Serve(noCtx, listener(t), nil) }, "nil context"},
		{"Serve: nil server", func(t *testing.T) error { return (*Server)(nil).Serve(ctx, listener(t), nil) }, "nil server"},
		{"Serve: zero server", func(t *testing.T) error { return (&Server{}).Serve(ctx, listener(t), nil) }, "empty secret"},
		{"NewServer: nil option", func(t *testing.T) error {
			return NewServer(testSecret, nil).Serve(ctx, nil, nil) // gets as far as the listener check
		}, "nil listener"},
		{"Join: nil context", func(*testing.T) error { _, err := Join(noCtx, "127.0.0.1:1", "j", 2, testSecret); return err }, "nil context"},
		{"Mesh.Close: nil mesh", func(*testing.T) error { return (*Mesh)(nil).Close() }, ""},
		{"Mesh.Close: zero links", func(*testing.T) error { return (&Mesh{Links: []*Link{nil, {}}}).Close() }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call(t) })
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("Mesh.Conns: nil mesh", func(t *testing.T) {
		require.NotPanics(t, func() { assert.Nil(t, (*Mesh)(nil).Conns()) })
	})
}

// TestNilServerAccessors: the metrics and HTTP handler of a nil *Server do
// not panic (Serve on one already says "nil server"): Metrics is all zeros,
// WritePrometheus fails saying so, and the handler answers 503.
func TestNilServerAccessors(t *testing.T) {
	var s *Server
	var m Metrics
	require.NotPanics(t, func() { m = s.Metrics() })
	assert.Zero(t, m.Connections)
	assert.Zero(t, m.Pairs[TierRelay])
	var b strings.Builder
	var err error
	require.NotPanics(t, func() { err = s.WritePrometheus(&b) })
	assert.ErrorContains(t, err, "nil server")
	var h http.Handler
	require.NotPanics(t, func() { h = s.Handler() })
	for _, path := range []string{"/healthz", "/metrics"} {
		rec := httptest.NewRecorder()
		require.NotPanics(t, func() { h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil)) }, path)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, path)
	}
}
