package crc32c

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/cpu"
)

// canHybrid: updateHybrid can run here, whether or not Update picks it.
var canHybrid = haveVector && cpu.X86.HasSSE42

// TestHybridMatchesHashCRC32 runs updateHybrid directly over one to three
// blocks at every alignment class, from random initial states, and with
// one random byte in just one of a block's parts (the folded part or one
// of the eight lanes), so that a wrong shift constant names its lane.
func TestHybridMatchesHashCRC32(t *testing.T) {
	if !canHybrid {
		t.Skip("this CPU (or architecture) has no AVX-512 VPCLMULQDQ and SSE4.2: updateHybrid cannot run here")
	}
	r := rand.New(rand.NewPCG(13, 14))
	buf := randomBytes(r, 3*hybridBlock+64)
	for blocks := 1; blocks <= 3; blocks++ {
		for _, off := range []int{0, 1, 8, 13, 63} {
			p := buf[off : off+blocks*hybridBlock]
			crc := r.Uint32()
			require.Equal(t, crc32.Update(crc, oracle, p), ^updateHybrid(^crc, p), "%d blocks at offset %d", blocks, off)
		}
	}

	const folded = hybridBlock - 8*hybridLane
	parts := []struct {
		name     string
		from, to int
	}{{"folded part", 0, folded}}
	for k := range 8 {
		from := folded + k*hybridLane
		parts = append(parts, struct {
			name     string
			from, to int
		}{fmt.Sprintf("lane %d", k), from, from + hybridLane})
	}
	for _, part := range parts {
		for range 20 {
			p := make([]byte, hybridBlock)
			p[part.from+r.IntN(part.to-part.from)] = byte(1 + r.IntN(255))
			crc := r.Uint32()
			require.Equal(t, crc32.Update(crc, oracle, p), ^updateHybrid(^crc, p), part.name)
		}
	}
}

// TestUpdateCachedAroundHybridBlocks checks UpdateCached at lengths around
// whole blocks, where it hands over between updateHybrid, updateVector and
// hash/crc32, and in pieces of random lengths.
func TestUpdateCachedAroundHybridBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	const block = 16640 + 8*1536 // hybridBlock on amd64
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

func BenchmarkHybrid(b *testing.B) {
	if !canHybrid {
		b.Skip("updateHybrid cannot run here")
	}
	for _, n := range []int{256 << 10, 4 << 20, 64 << 20} {
		p := make([]byte, n)
		b.Run(fmt.Sprintf("vector/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				updateVector(0, p)
			}
		})
		b.Run(fmt.Sprintf("hybrid/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				updateHybrid(0, p[:n/hybridBlock*hybridBlock])
			}
		})
	}
}
