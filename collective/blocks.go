package collective

import (
	"encoding/binary"
	"fmt"
	"math"
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

// Messages larger than the frame limit. A bundle carries a subtree's or a
// partner's blocks and grows with the rank count, so it can exceed
// WithMaxFrame while every block fits: sendSplit then sends it as several
// frames of exactly maxFrame bytes (the last one shorter) with the same
// tag, and the receiver, which knows from the bundle's table (or from the
// length it expects) how much is coming, receives the rest after the first
// frame with recvRest or recvSplit. Messages within the limit travel as one
// frame, as before: the receiving side's extra work is one comparison.

// sendSplit sends the concatenation of bufs to rank `to` at step: one frame
// if it fits the frame limit, else consecutive full frames and a last,
// shorter one.
func (cl *call) sendSplit(to, step int, bufs ...[]byte) error {
	limit := cl.c.t.maxFrame
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total <= limit {
		return cl.send(to, step, bufs...)
	}
	var frame [][]byte
	size := 0
	for _, b := range bufs {
		for len(b) > 0 {
			k := min(len(b), limit-size)
			frame = append(frame, b[:k])
			b = b[k:]
			if size += k; size == limit {
				if err := cl.send(to, step, frame...); err != nil {
					return err
				}
				clear(frame)
				frame, size = frame[:0], 0
			}
		}
	}
	if size > 0 {
		return cl.send(to, step, frame...)
	}
	return nil
}

// recvRest completes a message of which b is the first frame, received from
// rank `from` at step: while the last frame was full (sendSplit's frames
// are) and need(b) says the message is longer than what came, it receives
// the next frame and appends it. need returns the message's length, or
// false when b is too short to tell. It never allocates by what need says
// (a peer that disagrees could announce anything), only by what arrives.
func (cl *call) recvRest(b []byte, from, step int, need func(b []byte) (uint64, bool)) ([]byte, error) {
	limit := cl.c.t.maxFrame
	for last := len(b); last == limit; {
		if n, ok := need(b); ok && uint64(len(b)) >= n {
			break
		}
		next, pb, err := cl.recv(from, step, modeScratch, nil)
		if err != nil {
			return nil, err
		}
		b = append(b[:len(b):len(b)], next...)
		last = len(next)
		putBuf(pb)
	}
	return b, nil
}

// bundleNeed returns the length function of a bundle of cnt blocks, for
// recvRest.
func bundleNeed(cnt int) func(b []byte) (uint64, bool) {
	return func(b []byte) (uint64, bool) {
		if len(b) < 8*cnt {
			return 0, false
		}
		n := uint64(8 * cnt)
		for i := range cnt {
			v := binary.LittleEndian.Uint64(b[8*i:])
			if v&deferredBit != 0 {
				continue
			}
			if n += v; n < v {
				return math.MaxUint64, true // overflow: more than can come
			}
		}
		return n, true
	}
}

// recvBundle receives a bundle of cnt blocks from rank `from` at step whose
// first frame req receives, and slices it into blocks (and meta).
func (cl *call) recvBundle(req *request, from, step int, blocks [][]byte, meta []int64) error {
	b, _, err := wait(req)
	if err == nil && len(b) == cl.c.t.maxFrame {
		b, err = cl.recvRest(b, from, step, bundleNeed(len(blocks)))
	}
	if err != nil {
		return err
	}
	return unbundle(b, blocks, meta)
}

// postSplit posts the receives of a message of exactly len(dst) bytes from
// rank `from` at step, straight into dst: one, or one per frame when the
// message exceeds the frame limit (sendSplit).
func (cl *call) postSplit(from, step int, dst []byte) []*request {
	limit := cl.c.t.maxFrame
	if len(dst) <= limit {
		return []*request{cl.post(from, step, modeExact, dst)}
	}
	reqs := make([]*request, 0, (len(dst)+limit-1)/limit)
	for off := 0; off < len(dst); off += limit {
		reqs = append(reqs, cl.post(from, step, modeExact, dst[off:min(off+limit, len(dst))]))
	}
	return reqs
}

// sendrecvSplit sends bufs to rank `to` and receives exactly len(dst) bytes
// from `from` into dst at step, either of which may exceed the frame limit.
func (cl *call) sendrecvSplit(to, from, step int, dst []byte, bufs ...[]byte) error {
	if len(dst) <= cl.c.t.maxFrame {
		r := cl.post(from, step, modeExact, dst)
		if err := cl.sendSplit(to, step, bufs...); err != nil {
			cl.abandon(err, r)
			return err
		}
		_, _, err := wait(r)
		return err
	}
	reqs := cl.postSplit(from, step, dst)
	if err := cl.sendSplit(to, step, bufs...); err != nil {
		cl.abandon(err, reqs...)
		return err
	}
	for i, r := range reqs {
		if _, _, err := wait(r); err != nil {
			cl.abandon(err, reqs[i+1:]...)
			return err
		}
	}
	return nil
}

// sendrecvBundle sends a bundle (bufs) to rank `to` and receives one of cnt
// blocks from `from` at step, into blocks (and meta).
func (cl *call) sendrecvBundle(to, from, step int, blocks [][]byte, meta []int64, bufs ...[]byte) error {
	r := cl.post(from, step, modeFresh, nil)
	if err := cl.sendSplit(to, step, bufs...); err != nil {
		cl.abandon(err, r)
		return err
	}
	return cl.recvBundle(r, from, step, blocks, meta)
}
