package punch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two Ports on loopback punch to each other from fixed ports and both get
// the two ends of the same authenticated connection.
func TestPunchLoopback(t *testing.T) {
	a, b := listenOS(t, 0), listenOS(t, 1)
	ctx := testCtx(t, 10*time.Second)
	ca, cb, ea, eb := punchPair(ctx, a, b, []netip.AddrPort{a.Addr()}, []netip.AddrPort{b.Addr()})
	require.NoError(t, ea)
	require.NoError(t, eb)
	defer ca.Close()
	defer cb.Close()
	require.Equal(t, a.Addr().String(), ca.LocalAddr().String(), "link must use the port itself")
	require.Equal(t, b.Addr().String(), cb.LocalAddr().String(), "link must use the port itself")
	requireSameLink(t, ca, cb)
}
