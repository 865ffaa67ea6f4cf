package crc32c

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/cpu"
)

// canHybrid: updateHybrid can run here, whether or not Update picks it.
var canHybrid = haveVector && cpu.X86.HasSSE42

// TestHybridMatchesHashCRC32 runs updateHybrid directly over one to three
// blocks at five alignments within a cache line, from random initial
// states, with a remainder shorter than a block (left out), and with
// one random byte in just one of a block's parts (the folded part or one
// of the eight lanes), so that a wrong shift constant names its lane.
func TestHybridMatchesHashCRC32(t *testing.T) {
	if !canHybrid {
		t.Skip("this CPU (or architecture) has no AVX-512 VPCLMULQDQ and SSE4.2: updateHybrid cannot run here")
	}
	r := rand.New(rand.NewPCG(13, 14))
	buf := randomBytes(r, 3*hybridBlock+128)
	for blocks := 1; blocks <= 3; blocks++ {
		for _, off := range []int{0, 1, 8, 13, 63} {
			p := buf[off : off+blocks*hybridBlock]
			crc := r.Uint32()
			require.Equal(t, crc32.Update(crc, oracle, p), ^updateHybrid(^crc, p), "%d blocks at offset %d", blocks, off)
			tail := buf[off : off+blocks*hybridBlock+63]
			require.Equal(t, crc32.Update(crc, oracle, p), ^updateHybrid(^crc, tail), "%d blocks and 63 bytes at offset %d", blocks, off)
		}
	}

	parts := []struct {
		name     string
		from, to int
	}{{"folded part", 0, hybridFolded}}
	for k := range 8 {
		from := hybridFolded + k*hybridLane
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
		whole := p[:n/hybridBlock*hybridBlock]
		b.Run(fmt.Sprintf("hybrid/%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(whole)))
			for b.Loop() {
				updateHybrid(0, whole)
			}
		})
	}
}

// TestHybridGeometry checks the shift constants of crc32c_amd64.s against
// their derivation from the block geometry, and the geometry that the
// tests shared with other architectures assume.
func TestHybridGeometry(t *testing.T) {
	data := asmData(t)
	for j := 1; j <= 8; j++ {
		at := fmt.Sprintf("hybridK+%d", 8*(j-1))
		want := uint64(xPowShifted(uint64(8*j*hybridLane-33), 0))
		if got, ok := data[at]; assert.True(t, ok, "no DATA %s in crc32c_amd64.s", at) {
			assert.Equal(t, want, got, "%s: %#x, derived %#x", at, got, want)
		}
	}
	require.Equal(t, testHybridBlock, hybridBlock)
}
