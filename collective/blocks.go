package collective

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// floorPow2 returns the largest power of two <= p (p >= 1).
func floorPow2(p int) int { return 1 << (bits.Len(uint(p)) - 1) }

// ceilPow2 returns the smallest power of two >= p (p >= 1).
func ceilPow2(p int) int {
	if p <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(p-1))
}

func isPow2(p int) bool { return p > 0 && p&(p-1) == 0 }

// lowbit returns the lowest set bit of v (v > 0).
func lowbit(v int) int { return v & -v }

// split divides n items into parts as equal as possible, the first n%parts
// one larger; it returns the counts and their offsets.
func split(n, parts int) (counts, offs []int) {
	counts = make([]int, parts)
	offs = make([]int, parts+1)
	for i := range counts {
		counts[i] = n / parts
		if i < n%parts {
			counts[i]++
		}
		offs[i+1] = offs[i] + counts[i]
	}
	return counts, offs
}

// A bundle is several blocks sent as one message: a table of one
// little-endian uint64 per block, then the blocks. A table entry is the
// block's length, or for a deferred block (announced but not sent, see
// Allgather) deferredBit | its length. The receiver knows how many blocks
// to expect; the sender writes the blocks straight from where they are
// (vectored write), the receiver slices them out of the received buffer.
const deferredBit = uint64(1) << 63

// bundle returns the buffers of a bundle of blocks: the table, then each
// block. meta, if not nil, marks deferred blocks with their length (>= 0;
// -1 for a block that is sent).
func bundle(blocks [][]byte, meta []int64) [][]byte {
	out := make([][]byte, 0, len(blocks)+1)
	table := make([]byte, 8*len(blocks))
	out = append(out, table)
	for i, b := range blocks {
		v := uint64(len(b))
		if meta != nil && meta[i] >= 0 {
			v = deferredBit | uint64(meta[i])
		} else {
			out = append(out, b)
		}
		binary.LittleEndian.PutUint64(table[8*i:], v)
	}
	return out
}

// unbundle slices a bundle of len(blocks) blocks out of b into blocks (and
// meta, if not nil).
func unbundle(b []byte, blocks [][]byte, meta []int64) error {
	cnt := len(blocks)
	if len(b) < 8*cnt {
		return fmt.Errorf("%w: bundle of %d bytes too short for %d blocks", ErrMismatch, len(b), cnt)
	}
	off := 8 * cnt
	for i := range cnt {
		v := binary.LittleEndian.Uint64(b[8*i:])
		if v&deferredBit != 0 {
			if meta == nil {
				return fmt.Errorf("%w: unexpected deferred block in bundle", ErrMismatch)
			}
			blocks[i] = nil
			meta[i] = int64(v &^ deferredBit)
			continue
		}
		if meta != nil {
			meta[i] = -1
		}
		if v > uint64(len(b)-off) {
			return fmt.Errorf("%w: bundle block %d of %d bytes overruns the message", ErrMismatch, i, v)
		}
		blocks[i] = b[off : off+int(v) : off+int(v)]
		off += int(v)
	}
	if off != len(b) {
		return fmt.Errorf("%w: bundle has %d bytes after its blocks", ErrMismatch, len(b)-off)
	}
	return nil
}
