package crc32c

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// testHybridBlock is hybridBlock on amd64 (TestHybridGeometry), so that
// the tests here probe the same lengths on every architecture.
const testHybridBlock = 16640 + 8*1536

// TestUpdateCachedAroundHybridBlocks checks UpdateCached at lengths around
// whole blocks, where it hands over between updateHybrid, updateVector and
// hash/crc32, and in pieces of random lengths.
func TestUpdateCachedAroundHybridBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	const block = testHybridBlock
	p := randomBytes(r, 2*block+1024)
	for _, n := range []int{block - 1, block, block + 1, block + 15, block + 16, block + 511, block + 512, block + 1000, 2*block - 1, 2 * block, 2*block + 1023} {
		crc := r.Uint32()
		require.Equal(t, crc32.Update(crc, oracle, p[:n]), UpdateCached(crc, p[:n]), "length %d", n)
	}
	want := crc32.Checksum(p, oracle)
	for range 20 {
		var crc uint32
		for rest := p; len(rest) > 0; {
			k := min(len(rest), r.IntN(3*block))
			crc = UpdateCached(crc, rest[:k])
			rest = rest[k:]
		}
		require.Equal(t, want, crc)
	}
}

// TestHybridPath says whether UpdateCached uses updateHybrid on this CPU.
func TestHybridPath(t *testing.T) {
	if !haveHybrid {
		t.Skip("UpdateCached does not use updateHybrid on this CPU (it is chosen on AMD family 1Ah and later only); TestHybridMatchesHashCRC32 still checks it where it can run")
	}
}
