package rendezvous

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The triangle gives every unordered pair its own byte, and a pair's two
// reports and its tier are independent of each other and of every other
// pair.
func TestPairTable(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 17, 64} {
		pt := newPairTable(n)
		require.Len(t, pt.b, n*(n-1)/2, "n=%d", n)
		seen := make([]bool, len(pt.b))
		for a := 0; a < n; a++ {
			for b := a + 1; b < n; b++ {
				i := pt.index(a, b)
				require.Equal(t, i, pt.index(b, a), "n=%d: index(%d,%d)", n, a, b)
				require.False(t, seen[i], "n=%d: pair (%d,%d) shares byte %d", n, a, b, i)
				seen[i] = true
			}
		}
		// Fill every field with a value derived from the pair, then
		// read every one back.
		rep := func(from, about int) uint8 { return uint8(1 + (from*7+about*3)%3) }
		tier := func(a, b int) Tier { return Tier(1 + (a+b)%3) }
		for a := 0; a < n; a++ {
			for b := 0; b < n; b++ {
				if a != b {
					pt.setReport(a, b, rep(a, b))
				}
				if a < b {
					pt.setTier(a, b, tier(a, b))
				}
			}
		}
		for a := 0; a < n; a++ {
			for b := 0; b < n; b++ {
				if a == b {
					continue
				}
				assert.Equal(t, rep(a, b), pt.report(a, b), "n=%d: report %d->%d", n, a, b)
				assert.Equal(t, tier(min(a, b), max(a, b)), pt.tier(a, b), "n=%d: tier (%d,%d)", n, a, b)
			}
		}
	}
}

// A fresh table has no reports and no tiers; setting one side's report
// leaves the other side's and the tier unset.
func TestPairTableFieldsIndependent(t *testing.T) {
	pt := newPairTable(4)
	assert.Zero(t, pt.report(1, 3))
	assert.Zero(t, pt.report(3, 1))
	assert.Zero(t, pt.tier(1, 3))
	pt.setReport(3, 1, 1+uint8(outcomePublic))
	assert.Zero(t, pt.report(1, 3))
	assert.Equal(t, 1+uint8(outcomePublic), pt.report(3, 1))
	assert.Zero(t, pt.tier(1, 3))
	pt.setTier(3, 1, TierRelay)
	assert.Equal(t, TierRelay, pt.tier(1, 3))
	assert.Equal(t, 1+uint8(outcomePublic), pt.report(3, 1))
	assert.Zero(t, pt.report(1, 3))
	for _, p := range [][2]int{{0, 1}, {0, 2}, {0, 3}, {1, 2}, {2, 3}} {
		assert.Zero(t, pt.tier(p[0], p[1]), "pair %v", p)
	}
}

// A 4096-rank job's pair state is one byte per pair: 8 MiB, where an n×n
// table of 8-byte tiers and a second n×n of reports took 144 MiB.
func TestPairTableSize(t *testing.T) {
	const n = MaxWorld
	allocs := testing.AllocsPerRun(1, func() { _ = newPairTable(n) })
	assert.LessOrEqual(t, allocs, 1.0)
	assert.Len(t, newPairTable(n).b, n*(n-1)/2)
}
