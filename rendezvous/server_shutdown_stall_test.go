package rendezvous

import (
	"bufio"
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShutdownEndsStalledWrites: a client that stops reading leaves the
// server's write to it blocked once the window is full (here a netsim
// window of 16 bytes, so that the first frame that does not fit blocks). A
// shutdown must end such a connection at once, whatever phase its write is
// in: the challenge of a connection that sent its hello, the answer to a
// STUN request, the joined frame of a waiting member, the pings of a
// member that is done, the error frame of a relay side waiting for its
// partner. Before the fix each of them held the shutdown up until its
// write deadline (the handshake timeout for the first four, cut by the
// drain timeout; the rejection timeout, 3 s, for the relay side).
func TestShutdownEndsStalledWrites(t *testing.T) {
	stunRequest := func() []byte {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:2], 0x0001) // Binding request, no attributes
		binary.BigEndian.PutUint32(b[4:8], 0x2112A442)
		copy(b[8:], "fnmesh-test!")
		return b
	}
	tests := []struct {
		name  string
		opts  []ServerOption
		conns int64                                                    // connections setup leaves open
		setup func(t *testing.T, r *rawClient, dial func() *rawClient) // leaves the server blocked writing to r
	}{
		{"challenge unread", nil, 1, func(t *testing.T, r *rawClient, _ func() *rawClient) {
			r.send(hello{})
		}},
		{"STUN answer unread", nil, 1, func(t *testing.T, r *rawClient, _ func() *rawClient) {
			r.sendBytes(stunRequest())
		}},
		{"joined unread", nil, 1, func(t *testing.T, r *rawClient, _ func() *rawClient) {
			r.hello()
			r.send(r.joinMsg("stalled-waiting", 2, 0, testSecret))
		}},
		{"pings unread after done", []ServerOption{WithPingInterval(10 * time.Millisecond)}, 1, func(t *testing.T, r *rawClient, _ func() *rawClient) {
			r.join("stalled-done", 1, 0)
			r.started()
			r.send(done{})
			time.Sleep(200 * time.Millisecond) // pings fill the window
		}},
		// The relay side that waits for its partner is told "shutdown"
		// (its job failed) and does not read it; nor do the members.
		{"relay side waiting, error unread", nil, 3, func(t *testing.T, r *rawClient, dial func() *rawClient) {
			other := dial()
			r.join("stalled-relay", 2, 0)
			other.join("stalled-relay", 2, 1)
			r.started()
			other.started()
			r.send(report{Peer: 1, Outcome: outcomeFailed})
			v, ok := r.mustRecv().(verdict)
			require.True(t, ok)
			require.Equal(t, TierRelay, v.Tier)
			key, err := jobKey(testSecret, "stalled-relay")
			require.NoError(t, err)
			rh := relayHello{Job: "stalled-relay", Rank: 0, Peer: 1, Nonce: v.Nonce}
			signRelay(key, &rh)
			dial().send(rh)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				in := netsim.New(netsim.WithSeed(1), netsim.WithTCPBuffer(16))
				defer in.Close()
				link := netsim.Link{Latency: time.Millisecond}
				// Handshake and drain timeouts at their defaults (10 s).
				srv := startSimServer(t, in, link, tt.opts...)
				h := must(in.AddHost(netip.MustParseAddr("198.51.100.7"), netsim.WithLink(link)))
				dial := func() *rawClient {
					c, err := h.DialTCP(context.Background(), netip.AddrPort{}, simServerAddr)
					require.NoError(t, err)
					t.Cleanup(func() { c.Close() })
					return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
				}
				tt.setup(t, dial(), dial)
				time.Sleep(100 * time.Millisecond)
				synctest.Wait()
				require.Equal(t, tt.conns, srv.Metrics().Connections)

				began := time.Now()
				srv.cancel()
				select {
				case err := <-srv.done:
					require.NoError(t, err)
				case <-time.After(time.Minute):
					t.Fatal("server did not stop")
				}
				took := time.Since(began)
				assert.LessOrEqual(t, took, 2*shutdownAnswerTimeout, "shutdown waited for a connection the server could not write to")
			})
		})
	}
}
