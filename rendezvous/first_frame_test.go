package rendezvous

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFirstFrameCutShortNotMalformed: a client that resets its connection in
// the middle of its first frame's payload sent nothing malformed, as one
// that resets it in the middle of a later frame does not
// (TestResetMemberIsNotMalformed): the server counts no rejection and tries
// no error frame on the dead connection. (One that closes it with a FIN may
// still read, and is told the frame was truncated: TestServerRejects.)
func TestFirstFrameCutShortNotMalformed(t *testing.T) {
	key, err := jobKey(testSecret, "cut")
	require.NoError(t, err)
	rh := relayHello{Job: "cut", Rank: 0, Peer: 1, Nonce: newNonce()}
	signRelay(key, &rh)
	relayFrame := encodeFrame(rh)
	tests := []struct {
		name string
		end  func(c *net.TCPConn)
		want map[Code]int64
	}{
		{"close", func(c *net.TCPConn) { c.Close() }, map[Code]int64{CodeMalformed: 1}},
		{"reset", func(c *net.TCPConn) { abortConn(c) }, map[Code]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startLoopServer(t)
			c, err := net.DialTimeout("tcp4", srv.addr, 5*time.Second)
			require.NoError(t, err)
			defer c.Close()
			// The header and part of the payload of a relay-hello.
			_, err = c.Write(relayFrame[:frameHeader+10])
			require.NoError(t, err)
			time.Sleep(50 * time.Millisecond) // the server reads the header and waits for the rest
			tt.end(c.(*net.TCPConn))
			require.Eventually(t, func() bool { return srv.Metrics().Connections == 0 }, 10*time.Second, 5*time.Millisecond)
			assert.Equal(t, tt.want, srv.Metrics().Rejected)
		})
	}
}
