package frame

import (
	"context"
	"math"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
)

// hllBits is the register count (2^hllBits) of the distinct-count estimate:
// a relative error of about 1.04/sqrt(4096) = 1.6%.
const hllBits = 12

// estimateDistinct estimates the number of distinct key rows among the n
// rows of keys with HyperLogLog over their arrowio.HashRows hashes: one pass
// of hashing, no table. The register comes from the low bits of the hash and
// the rank from the trailing zeros of the next ones: the high bits may be
// constrained when the frame was shuffled (PartitionOf uses them).
func estimateDistinct(ctx context.Context, keys []arrow.Array, n int) (float64, error) {
	const m = 1 << hllBits
	var reg [m]uint8
	scratch := make([]uint64, min(hashBlock, n))
	if err := hashBlocks(ctx, keys, n, scratch, func(hs []uint64, _ int) {
		for _, h := range hs {
			r := uint8(bits.TrailingZeros64(h>>hllBits|1<<(63-hllBits))) + 1
			if i := h & (m - 1); r > reg[i] {
				reg[i] = r
			}
		}
	}); err != nil {
		return 0, err
	}
	sum, zeros := 0.0, 0
	for _, r := range reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	est := 0.7213 / (1 + 1.079/m) * m * m / sum
	if est <= 2.5*m && zeros > 0 { // small range: linear counting
		est = m * math.Log(float64(m)/float64(zeros))
	}
	return est, nil
}
