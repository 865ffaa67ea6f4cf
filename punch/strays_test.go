package punch

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// inflightCount is how many inbound handshakes p is running.
func (p *Port) inflightCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight)
}

// Idle connections that fill every inbound-handshake slot of a port do not
// lock a real peer out: its connection evicts the oldest stray (a RST)
// instead of being refused, and the punch links well within the handshake
// timeout that would otherwise free a slot.
func TestPortSurvivesIdleStrayFlood(t *testing.T) {
	for _, tc := range []struct {
		name   string
		strays int
	}{
		{"no strays", 0},
		{"every slot taken", maxPendingInbound},
		{"more strays than slots", maxPendingInbound + 36},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := listenOS(t, 0), listenOS(t, 1)
			strays := make([]net.Conn, tc.strays)
			for i := range strays {
				c, err := net.DialTimeout("tcp", a.Addr().String(), 5*time.Second)
				require.NoError(t, err)
				t.Cleanup(func() { c.Close() })
				strays[i] = c
			}
			require.Eventually(t, func() bool { return a.inflightCount() == min(tc.strays, maxPendingInbound) },
				5*time.Second, 5*time.Millisecond)

			// Shorter than the handshake timeout (5 s): no stray leaves
			// on its own before the punch must succeed.
			ctx := testCtx(t, 3*time.Second)
			ca, cb, ea, eb := punchPair(ctx, a, b, []netip.AddrPort{a.Addr()}, nil) // only b dials
			require.NoError(t, ea, "rank 0 (flooded)")
			require.NoError(t, eb, "rank 1 (dialing the flooded port)")
			defer ca.Close()
			defer cb.Close()
			requireSameLink(t, ca, cb)
			require.LessOrEqual(t, a.inflightCount(), maxPendingInbound)
			if tc.strays < maxPendingInbound {
				return
			}
			// The oldest stray was aborted; the newest still waits.
			buf := make([]byte, 1)
			_ = strays[0].SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err := strays[0].Read(buf)
			require.Error(t, err)
			require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the oldest stray is still open: %v", err)
			_ = strays[tc.strays-1].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err = strays[tc.strays-1].Read(buf)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the newest stray should still be waiting")
		})
	}
}
