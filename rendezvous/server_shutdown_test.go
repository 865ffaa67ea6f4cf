package rendezvous

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/punch"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShutdownDoesNotWaitForIdleConnections: a shutdown lets established
// relays run for the drain timeout, but nothing else holds it up: a
// connection that has not identified itself yet (silent, or between its
// hello and its join) is told "shutdown", a STUN connection and the
// control connection of a member that is done are closed, at once, not
// when their handshake timeout or the drain timeout runs out.
func TestShutdownDoesNotWaitForIdleConnections(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, srv *loopServer) *rawClient
		want  Code // the error frame the client gets; 0: the connection is just closed
	}{
		{"silent new connection", func(t *testing.T, srv *loopServer) *rawClient {
			return dialRaw(t, srv.addr)
		}, CodeShutdown},
		{"hello without join", func(t *testing.T, srv *loopServer) *rawClient {
			r := dialRaw(t, srv.addr)
			r.hello()
			return r
		}, CodeShutdown},
		{"STUN over TCP after a request", func(t *testing.T, srv *loopServer) *rawClient {
			r := dialRaw(t, srv.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := punch.DiscoverConn(ctx, r.c)
			require.NoError(t, err)
			return r
		}, 0},
		{"member done, connection open", func(t *testing.T, srv *loopServer) *rawClient {
			r := dialRaw(t, srv.addr)
			r.join("done-open", 1, 0)
			r.started()
			r.send(done{})
			require.Eventually(t, func() bool { return srv.Metrics().Jobs == 0 }, 5*time.Second, time.Millisecond)
			return r
		}, 0},
		{"waiting member", func(t *testing.T, srv *loopServer) *rawClient {
			r := dialRaw(t, srv.addr)
			r.join("waiting", 2, 0)
			return r
		}, CodeShutdown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startLoopServer(t) // default handshake and drain timeouts: 10 s
			r := tt.setup(t, srv)
			require.Eventually(t, func() bool { return srv.Metrics().Connections == 1 }, 5*time.Second, time.Millisecond)
			began := time.Now()
			srv.stop(t)
			assert.Less(t, time.Since(began), 3*time.Second, "shutdown waited for the connection")
			if tt.want != 0 {
				r.expectError(tt.want)
				return
			}
			r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				m, err := readMessage(r.br, MaxPayload)
				if err != nil {
					var ne net.Error
					require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection still open: %v", err)
					break
				}
				_, isPing := m.(ping)
				require.True(t, isPing, "got %#v", m)
			}
		})
	}
}
