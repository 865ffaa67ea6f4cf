package collective

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unsafe"

	"github.com/fnmesh/fnmesh/internal/crc32c"
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

// Messages and frames. Every message of a collective travels as frames of
// at most the frame limit M (WithMaxFrame): a message of n < M bytes is one
// frame, as it always was; a longer one is frames of exactly M bytes while
// at least M bytes remain, then one last frame of the rest, which is empty
// when n is a multiple of M. A frame shorter than M ends a message, so the
// framing delimits itself (a receiver that does not know the length reads
// frames until a short one: recvRest) and is prefix-free: the frames of two
// different lengths differ in the size of one of the shorter one's frames.
// A receiver that knows the length it expects posts exactly that length's
// frames (postExact), each of which must come with its exact size, so a
// sender that disagrees about the length is ErrMismatch on the first frame
// that differs, never a receive left waiting for a frame that does not come
// nor a frame left over for nobody. Below the limit nothing changes: one
// frame, one receive, one comparison.

// sendMsg sends the concatenation of bufs to rank `to` at step, as one
// frame or, when it reaches the frame limit, as several.
func (cl *call) sendMsg(to, step int, bufs ...[]byte) error {
	limit := cl.c.t.maxFrame
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total < limit {
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
	return cl.send(to, step, frame...) // the short last frame, maybe empty
}

// forward sends b to rank `to` at step with its checksum s if known: a
// message this rank received whole and has not changed, which arrived with
// checksum s, or blocks whose checksum was computed as they were copied or
// reduced into place (copySum, combineSum) or joined from such checksums
// (crc32c.Combine). A message of one frame whose checksum is known goes out
// with it; any other is sent as sendMsg sends it.
func (cl *call) forward(to, step int, b []byte, s msgSum) error {
	if !s.ok || len(b) >= cl.c.t.maxFrame {
		return cl.sendMsg(to, step, b)
	}
	return cl.c.links[to].sendSum(nil, cl.tag(step), [][]byte{b}, s)
}

// copySumPiece is how much copySum copies before it checksums what it
// copied: small enough to be still in cache.
const copySumPiece = 64 << 10

// copySum copies src into dst (as copy does) and returns the CRC32C of the
// copy, computed a piece at a time right after the piece is copied. A
// block a rank copies into place before sending it, such as its own block
// of AllgatherInto, then goes out with that checksum (forward) instead of
// being read again to checksum it on its way out, and in one write. A dst
// that overlaps src is copied whole first, as copy would.
func copySum(dst, src []byte) msgSum {
	src = src[:min(len(src), len(dst))]
	if overlaps(dst, src) {
		copy(dst, src)
		return msgSum{crc: crc32c.Checksum(dst[:len(src)]), ok: true}
	}
	var crc uint32
	for off := 0; off < len(src); off += copySumPiece {
		end := min(off+copySumPiece, len(src))
		copy(dst[off:end], src[off:end])
		crc = crc32c.UpdateCached(crc, dst[off:end])
	}
	return msgSum{crc: crc, ok: true}
}

// overlaps reports whether a and b share memory.
func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}

// recvRest completes a message of unknown length of which b is the first
// frame, received from rank `from` at step: while the last frame was full,
// it receives the next one and appends it. It allocates by what arrives,
// never by what a peer announces.
func (cl *call) recvRest(b []byte, from, step int) ([]byte, error) {
	limit := cl.c.t.maxFrame
	for last := len(b); last == limit; {
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

// recvFresh waits for req, the first frame of a message of unknown length
// from rank `from` at step, and receives the rest: the whole message, in a
// buffer the caller owns.
func (cl *call) recvFresh(req *request, from, step int) ([]byte, error) {
	b, _, err := cl.recvFreshSum(req, from, step)
	return b, err
}

// recvFreshSum is recvFresh that also returns the checksum the message
// arrived with, for forwarding it.
func (cl *call) recvFreshSum(req *request, from, step int) ([]byte, msgSum, error) {
	b, _, s, err := waitSum(req)
	if err == nil && len(b) == cl.c.t.maxFrame {
		b, err = cl.recvRest(b, from, step)
		s = msgSum{}
	}
	return b, s, err
}

// recvBundle receives a bundle of cnt blocks from rank `from` at step whose
// first frame req receives, and slices it into blocks (and meta).
func (cl *call) recvBundle(req *request, from, step int, blocks [][]byte, meta []int64) error {
	b, err := cl.recvFresh(req, from, step)
	if err != nil {
		return err
	}
	return unbundle(b, blocks, meta)
}

// postExact appends to reqs the receives of a message of exactly len(dst)
// bytes from rank `from` at step, straight into dst: one per frame.
func (cl *call) postExact(reqs []*request, from, step int, dst []byte) []*request {
	limit := cl.c.t.maxFrame
	for len(dst) >= limit {
		reqs = append(reqs, cl.post(from, step, modeExact, dst[:limit]))
		dst = dst[limit:]
	}
	return append(reqs, cl.post(from, step, modeExact, dst))
}

// waitAll waits for reqs in order. On an error it abandons the rest.
func (cl *call) waitAll(reqs []*request) error {
	for i, r := range reqs {
		if _, _, err := wait(r); err != nil {
			cl.abandon(err, reqs[i+1:]...)
			return err
		}
	}
	return nil
}

// recvExact receives a message of exactly len(dst) bytes from rank `from`
// at step into dst.
func (cl *call) recvExact(from, step int, dst []byte) error {
	_, err := cl.recvExactSum(from, step, dst)
	return err
}

// recvExactSum is recvExact that also returns the checksum the message
// arrived with, for forwarding it.
func (cl *call) recvExactSum(from, step int, dst []byte) (msgSum, error) {
	if len(dst) < cl.c.t.maxFrame {
		_, _, s, err := waitSum(cl.post(from, step, modeExact, dst))
		return s, err
	}
	return msgSum{}, cl.waitAll(cl.postExact(nil, from, step, dst))
}

// sendrecvExact sends bufs to rank `to` and receives exactly len(dst) bytes
// from `from` into dst at step, posting the receive first so that the
// payload lands directly in dst. Either message may exceed the frame
// limit.
func (cl *call) sendrecvExact(to, from, step int, dst []byte, bufs ...[]byte) error {
	return cl.sendrecvExactSum(to, from, step, dst, msgSum{}, bufs...)
}

// sendrecvExactSum is sendrecvExact whose message, if sum.ok, is one buffer
// with that checksum, which goes out with it (forward).
func (cl *call) sendrecvExactSum(to, from, step int, dst []byte, sum msgSum, bufs ...[]byte) error {
	if len(dst) < cl.c.t.maxFrame {
		r := cl.post(from, step, modeExact, dst)
		if err := cl.sendKnown(to, step, sum, bufs); err != nil {
			cl.abandon(err, r)
			return err
		}
		_, _, err := wait(r)
		return err
	}
	reqs := cl.postExact(nil, from, step, dst)
	if err := cl.sendKnown(to, step, sum, bufs); err != nil {
		cl.abandon(err, reqs...)
		return err
	}
	return cl.waitAll(reqs)
}

// sendKnown sends bufs as sendMsg does or, if sum.ok, its one buffer with
// that checksum (forward).
func (cl *call) sendKnown(to, step int, sum msgSum, bufs [][]byte) error {
	if sum.ok && len(bufs) == 1 {
		return cl.forward(to, step, bufs[0], sum)
	}
	return cl.sendMsg(to, step, bufs...)
}

// sendrecvBundle sends a bundle (bufs) to rank `to` and receives one of cnt
// blocks from `from` at step, into blocks (and meta).
func (cl *call) sendrecvBundle(to, from, step int, blocks [][]byte, meta []int64, bufs ...[]byte) error {
	r := cl.post(from, step, modeFresh, nil)
	if err := cl.sendMsg(to, step, bufs...); err != nil {
		cl.abandon(err, r)
		return err
	}
	return cl.recvBundle(r, from, step, blocks, meta)
}

// recvs is the receives posted ahead for a sequence of messages of known
// lengths (one per step of a ring, one per peer of a batch), awaited in
// order: message i's frames are reqs[start(i):start(i+1)].
type recvs struct {
	reqs   []*request
	starts []int // while multi is false every message is one frame: message i is reqs[i]
	multi  bool
}

func (rs *recvs) reset() {
	clear(rs.reqs)
	rs.reqs, rs.starts, rs.multi = rs.reqs[:0], rs.starts[:0], false
}

// count is the number of messages posted.
func (rs *recvs) count() int {
	if rs.multi {
		return len(rs.starts)
	}
	return len(rs.reqs)
}

func (rs *recvs) start(i int) int {
	switch {
	case i >= rs.count():
		return len(rs.reqs)
	case rs.multi:
		return rs.starts[i]
	}
	return i
}

// exact posts the receives of the next message: exactly len(dst) bytes from
// rank `from` at step, into dst.
func (rs *recvs) exact(cl *call, from, step int, dst []byte) {
	first := len(rs.reqs)
	n := rs.count()
	rs.reqs = cl.postExact(rs.reqs, from, step, dst)
	switch {
	case rs.multi:
		rs.starts = append(rs.starts, first)
	case len(rs.reqs) > first+1: // the first message of several frames
		rs.starts = rs.starts[:0]
		for i := range n + 1 {
			rs.starts = append(rs.starts, i)
		}
		rs.multi = true
	}
}

// fresh posts the receive of the first frame of the next message, of
// unknown length; the caller gets the message with recvFresh(rs.first(i)).
func (rs *recvs) fresh(cl *call, from, step int) {
	first := len(rs.reqs)
	rs.reqs = append(rs.reqs, cl.post(from, step, modeFresh, nil))
	if rs.multi {
		rs.starts = append(rs.starts, first)
	}
}

// first returns the receive of message i's first frame.
func (rs *recvs) first(i int) *request { return rs.reqs[rs.start(i)] }

// wait waits for message i's frames. On an error it abandons every receive
// posted after the one that failed.
func (rs *recvs) wait(cl *call, i int) error {
	_, err := rs.waitSum(cl, i)
	return err
}

// waitSum is wait that also returns the checksum message i arrived with,
// for forwarding it (known only for a message of one frame).
func (rs *recvs) waitSum(cl *call, i int) (msgSum, error) {
	lo, hi := rs.start(i), rs.start(i+1)
	var s msgSum
	for j := lo; j < hi; j++ {
		_, _, js, err := waitSum(rs.reqs[j])
		if err != nil {
			cl.abandon(err, rs.reqs[j+1:]...)
			return msgSum{}, err
		}
		s = js
	}
	if hi-lo != 1 {
		s = msgSum{}
	}
	return s, nil
}

// abandonFrom gives the call up after err, withdrawing the receives of
// messages i and later (see call.abandon).
func (rs *recvs) abandonFrom(cl *call, err error, i int) {
	cl.abandon(err, rs.reqs[rs.start(i):]...)
}

// afterFirst abandons, after err, every receive of message i but its first
// frame's (which the caller has consumed) and of the later messages.
func (rs *recvs) afterFirst(cl *call, err error, i int) {
	cl.abandon(err, rs.reqs[rs.start(i)+1:]...)
}
