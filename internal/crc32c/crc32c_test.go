package crc32c

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// oracle is hash/crc32 with the Castagnoli table.
var oracle = crc32.MakeTable(crc32.Castagnoli)

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestUpdateMatchesHashCRC32 checks every length up to a few vector steps,
// at every alignment within a cache line, from random initial states.
func TestUpdateMatchesHashCRC32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := randomBytes(r, 3000+64)
	for n := 0; n <= 3000; n++ {
		off := n % 64
		p := buf[off : off+n]
		crc := r.Uint32()
		require.Equal(t, crc32.Update(crc, oracle, p), Update(crc, p), "length %d at offset %d", n, off)
	}
}

func TestUpdateLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1 << 16, 1<<20 + 13, 4<<20 + 4096 + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := randomBytes(r, n)
			require.Equal(t, crc32.Checksum(p, oracle), Checksum(p))
		})
	}
}

// TestUpdateInPieces: a checksum computed over pieces (as a link computes
// it chunk by chunk) equals the one over the whole.
func TestUpdateInPieces(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p := randomBytes(r, 1<<20)
	want := crc32.Checksum(p, oracle)
	for range 50 {
		var crc uint32
		for rest := p; len(rest) > 0; {
			k := min(len(rest), r.IntN(70000))
			crc = Update(crc, rest[:k])
			rest = rest[k:]
		}
		require.Equal(t, want, crc)
	}
}

// TestDetectsEveryBitFlip: a single flipped bit anywhere changes the
// checksum (CRC32C detects all 1-bit errors).
func TestDetectsEveryBitFlip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	p := randomBytes(r, 4096)
	want := Checksum(p)
	for i := range len(p) * 8 {
		p[i/8] ^= 1 << (i % 8)
		require.NotEqual(t, want, Checksum(p), "bit %d", i)
		p[i/8] ^= 1 << (i % 8)
	}
}

func TestKnownValue(t *testing.T) {
	// RFC 3720 B.4: 32 bytes of zeroes.
	require.Equal(t, uint32(0x8a9136aa), Checksum(make([]byte, 32)))
	// The same over a vector-sized input, against hash/crc32.
	zero := make([]byte, 4096)
	require.Equal(t, crc32.Checksum(zero, oracle), Checksum(zero))
}

func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{64, 512, 4 << 10, 256 << 10} {
		p := make([]byte, n)
		b.Run(fmt.Sprintf("crc32c/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				Update(0, p)
			}
		})
		b.Run(fmt.Sprintf("hash-crc32/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				crc32.Update(0, oracle, p)
			}
		})
	}
}

// TestVectorPath says whether the tests above exercised the vector code.
func TestVectorPath(t *testing.T) {
	if !haveVector {
		t.Skip("this CPU (or architecture) has no AVX-512 VPCLMULQDQ: the tests above checked the hash/crc32 path only")
	}
}

// TestCombine: Combine of two pieces' checksums is the checksum of their
// concatenation (hash/crc32 as the oracle), for empty pieces, lengths
// around powers of two and random splits.
func TestCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	p := randomBytes(r, 1<<20+77)
	splits := []struct{ a, b int }{{0, 0}, {0, 1}, {1, 0}, {5, 0}, {0, 5}, {1, 1}, {7, 8}, {64, 64}, {255, 257}, {4096, 4095}, {1 << 19, 1<<19 + 77}}
	for range 40 {
		a := r.IntN(len(p))
		splits = append(splits, struct{ a, b int }{a, r.IntN(len(p) - a + 1)})
	}
	for _, s := range splits {
		a, b := p[:s.a], p[s.a:s.a+s.b]
		want := crc32.Checksum(p[:s.a+s.b], oracle)
		got := Combine(crc32.Checksum(a, oracle), crc32.Checksum(b, oracle), int64(len(b)))
		require.Equal(t, want, got, "a %d bytes, b %d bytes", s.a, s.b)
	}
	// Three pieces, joined left to right and right to left.
	x, y, z := p[:1000], p[1000:300000], p[300000:]
	cx, cy, cz := Checksum(x), Checksum(y), Checksum(z)
	want := crc32.Checksum(p, oracle)
	require.Equal(t, want, Combine(Combine(cx, cy, int64(len(y))), cz, int64(len(z))))
	require.Equal(t, want, Combine(cx, Combine(cy, cz, int64(len(z))), int64(len(y)+len(z))))
	// Appending zeros: Combine with their checksum is Update over them.
	require.Equal(t, Update(cx, make([]byte, 1<<16)), Combine(cx, Checksum(make([]byte, 1<<16)), 1<<16))
}

func BenchmarkCombine(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = Combine(uint32(i), 0x12345678, 4<<20+int64(i&1023))
	}
}
