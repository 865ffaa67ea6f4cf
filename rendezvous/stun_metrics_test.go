package rendezvous

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/punch"
)

// TestSTUNTCPEndNotMalformed: a STUN-over-TCP client that got its answer and
// then closes its connection, with a FIN or with a RST (as Join's discovery
// does, abortConn, to free its punch port's 4-tuple at once), even in the
// middle of its next request, sent nothing malformed:
// rejected_total{code="malformed"} counts only requests that do not parse
// (a truncated one, ended by a FIN, does not).
func TestSTUNTCPEndNotMalformed(t *testing.T) {
	tests := []struct {
		name          string
		end           func(c *net.TCPConn)
		wantMalformed int64
	}{
		{"close", func(c *net.TCPConn) { c.Close() }, 0},
		{"reset", func(c *net.TCPConn) { abortConn(c) }, 0},
		{"reset mid-request", func(c *net.TCPConn) {
			c.Write([]byte{0, 1, 0, 0, 0x21, 0x12}) // the start of a Binding request
			time.Sleep(50 * time.Millisecond)
			abortConn(c)
		}, 0},
		{"close mid-request", func(c *net.TCPConn) { // a request that does not parse: truncated
			c.Write([]byte{0, 1, 0, 0, 0x21, 0x12})
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}, 1},
		{"not STUN", func(c *net.TCPConn) {
			c.Write(make([]byte, 20)) // a header whose magic cookie is 0: not STUN
			c.Close()
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startLoopServer(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := net.DialTimeout("tcp4", srv.addr, 5*time.Second)
			require.NoError(t, err)
			defer c.Close()
			_, err = punch.DiscoverConn(ctx, c)
			require.NoError(t, err)
			tt.end(c.(*net.TCPConn))
			require.Eventually(t, func() bool { return srv.Metrics().Connections == 0 }, 10*time.Second, 5*time.Millisecond)
			m := srv.Metrics()
			assert.Equal(t, int64(1), m.STUNRequests["tcp"])
			assert.Equal(t, tt.wantMalformed, m.Rejected[CodeMalformed], "rejected: %v", m.Rejected)
		})
	}
}
