package collective

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorldRankOutOfRange: WorldRank maps a communicator's ranks to world
// ranks and answers -1 for a rank the communicator does not have, instead
// of panicking.
func TestWorldRankOutOfRange(t *testing.T) {
	comms := newComms(t, pipeKind, 3)
	c := comms[1]
	cases := []struct {
		r, want int
	}{
		{0, 0}, {1, 1}, {2, 2},
		{-1, -1}, {3, -1}, {1 << 40, -1}, {-1 << 40, -1},
	}
	for _, tc := range cases {
		require.NotPanics(t, func() { _ = c.WorldRank(tc.r) })
		assert.Equal(t, tc.want, c.WorldRank(tc.r), "WorldRank(%d)", tc.r)
	}
}
