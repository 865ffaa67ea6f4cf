package rendezvous

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRelayPipeSize(t *testing.T) {
	cases := []struct {
		active int64
		want   int
	}{
		{1, 1 << 20},
		{16, 1 << 20},
		{17, 256 << 10},
		{64, 256 << 10},
		{65, 0},
		{5000, 0},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, relayPipeSize(tc.active), "%d active pairs", tc.active)
	}
}

// TestRelayPipeBudget: the pipes of the first 64 relayed pairs (two each)
// and the default pipes (64 KiB) of 64 more fit Linux's default budget of
// pipe pages for an unprivileged user (fs.pipe-user-pages-soft, 16384 pages
// of 4 KiB), beyond which new pipes get 8 KiB.
func TestRelayPipeBudget(t *testing.T) {
	const budget = 16384 * 4096
	total := 0
	for active := int64(1); active <= 128; active++ {
		size := relayPipeSize(active)
		if size == 0 {
			size = 64 << 10
		}
		total += 2 * size
	}
	assert.LessOrEqual(t, total, budget)
}
