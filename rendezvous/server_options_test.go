package rendezvous

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServerOptionsUnderMillisecond: a duration the protocol carries in
// milliseconds (or that the command refuses alike) under 1ms makes Serve
// refuse to start, naming the option; 1ms exactly is fine.
func TestServerOptionsUnderMillisecond(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  ServerOption
	}{
		{"WithJobTimeout", WithJobTimeout(999 * time.Microsecond)},
		{"WithDefaultPunchTimeout", WithDefaultPunchTimeout(time.Microsecond)},
		{"WithRelayTimeout", WithRelayTimeout(500 * time.Microsecond)},
		{"WithHandshakeTimeout", WithHandshakeTimeout(time.Nanosecond)},
		{"WithPingInterval", WithPingInterval(500 * time.Microsecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv := NewServer(testSecret, WithMaxConns(5), tc.opt)
			err = srv.Serve(ctx, ln, nil)
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.name)
			assert.ErrorContains(t, err, "at least 1ms")
			_, err = ln.Accept()
			assert.True(t, errors.Is(err, net.ErrClosed), "the refused Serve closes its listener: %v", err)
		})
	}
	ok := NewServer(testSecret, WithJobTimeout(time.Millisecond), WithDefaultPunchTimeout(time.Millisecond),
		WithRelayTimeout(time.Millisecond), WithHandshakeTimeout(time.Millisecond), WithPingInterval(time.Millisecond))
	require.NoError(t, ok.cfg.err)
}
