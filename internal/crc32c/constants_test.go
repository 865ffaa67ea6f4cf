package crc32c

import (
	"math/bits"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// castagnoli is the CRC32C polynomial with its x^32 term.
const castagnoli = 0x11EDC6F41

// xnMod returns x^n mod P(x) over GF(2), P the Castagnoli polynomial.
func xnMod(n int) uint64 {
	r := uint64(1)
	for range n {
		r <<= 1
		if r&(1<<32) != 0 {
			r ^= castagnoli
		}
	}
	return r
}

// foldConstant is k(n) = bitreflect32(x^n mod P(x)) << 1: the multiplier
// that moves a bit-reflected 64-bit half of a lane forward by n-32 or n+32
// bits (Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
// Instruction", in the reflected domain).
func foldConstant(n int) uint64 {
	return uint64(bits.Reverse32(uint32(xnMod(n)))) << 1
}

// TestFoldConstants derives the constants of crc32c_amd64.s and compares
// them with the DATA lines of the assembly, so that a changed fold distance
// cannot keep stale constants.
func TestFoldConstants(t *testing.T) {
	data := asmData(t)
	cases := []struct {
		at   string
		want uint64
	}{
		{"k2048+0", foldConstant(2048 + 32)}, // 256 bytes forward
		{"k2048+8", foldConstant(2048 - 32)},
		{"k512+0", foldConstant(512 + 32)}, // 64 bytes
		{"k512+8", foldConstant(512 - 32)},
		{"k128+0", foldConstant(128 + 32)}, // 16 bytes
		{"k128+8", foldConstant(128 - 32)},
		{"k64+0", foldConstant(64)}, // 128 bits to 64
	}
	for _, tc := range cases {
		got, ok := data[tc.at]
		if assert.True(t, ok, "no DATA %s in crc32c_amd64.s", tc.at) {
			assert.Equal(t, tc.want, got, "%s: %#x, derived %#x", tc.at, got, tc.want)
		}
	}
	// Barrett reduction: P(x) reflected with its x^32 term, and
	// mu = x^64 div P(x), reflected (33 bits each).
	assert.Equal(t, uint64(bits.Reverse64(castagnoli)>>31), data["pmu+0"], "P(x) reflected")
	assert.Equal(t, uint64(bits.Reverse64(x64DivP())>>31), data["pmu+8"], "mu reflected")
}

// asmData returns the 8-byte DATA lines of crc32c_amd64.s by "symbol+offset".
func asmData(t *testing.T) map[string]uint64 {
	t.Helper()
	src, err := os.ReadFile("crc32c_amd64.s")
	require.NoError(t, err)
	data := map[string]uint64{}
	re := regexp.MustCompile(`DATA (\w+)<>\+(\d+)\(SB\)/8, \$0x([0-9a-fA-F]+)`)
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		v, err := strconv.ParseUint(m[3], 16, 64)
		require.NoError(t, err)
		data[m[1]+"+"+m[2]] = v
	}
	return data
}

// x64DivP returns the quotient of x^64 by P(x) over GF(2) (33 bits).
func x64DivP() uint64 {
	var q uint64
	rem := [2]uint64{0, 1} // x^64 as a 128-bit value: rem[1] holds bits 64..127
	for i := 64; i >= 32; i-- {
		var bit uint64
		if i >= 64 {
			bit = rem[1] >> (i - 64) & 1
		} else {
			bit = rem[0] >> i & 1
		}
		if bit == 0 {
			continue
		}
		shift := i - 32 // P(x) * x^shift cancels bit i
		q |= 1 << shift
		lo := uint64(castagnoli) << shift
		var hi uint64
		if shift > 31 {
			hi = uint64(castagnoli) >> (64 - shift)
		}
		rem[0] ^= lo
		rem[1] ^= hi
	}
	return q
}
