package rendezvous

import (
	"bufio"
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStalledMemberEvictionSaysWhy: a member that stops reading leaves the
// server's write to it blocked (a netsim window of 16 bytes) until the
// write deadline; the server then closes it and the job fails. The other
// member's member-left error must say what went wrong with that rank (the
// server could not write to it), not "use of closed network connection",
// which is only how the server's own close ended its read.
func TestStalledMemberEvictionSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := netsim.New(netsim.WithSeed(1), netsim.WithTCPBuffer(16))
		defer in.Close()
		link := netsim.Link{Latency: time.Millisecond}
		// Pings far apart: the stalled member is not evicted for silence
		// before its write times out.
		srv := startSimServer(t, in, link, WithPingInterval(time.Minute))
		defer srv.stop(t)
		h := must(in.AddHost(netip.MustParseAddr("198.51.100.7"), netsim.WithLink(link)))
		dial := func() *rawClient {
			c, err := h.DialTCP(context.Background(), netip.AddrPort{}, simServerAddr)
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
		}
		a, b := dial(), dial()
		a.join("stall", 2, 0)
		b.join("stall", 2, 1) // and reads nothing more: the peer table does not fit
		a.started()

		m := a.mustRecv()
		if _, ok := m.(verdict); ok { // the pair, unreported, is relayed first
			m = a.mustRecv()
		}
		e, ok := m.(errorMsg)
		require.True(t, ok, "got %#v", m)
		assert.Equal(t, CodeMemberLeft, e.Code)
		assert.Equal(t, 1, e.Rank)
		t.Log(e.Msg)
		assert.Contains(t, e.Msg, "writing to it failed")
		assert.NotContains(t, e.Msg, "use of closed")
	})
}
