package collective

import "github.com/fnmesh/fnmesh/internal/crc32c"

// Steps of the reduction algorithms within one call.
const (
	stepFoldIn  = 0
	stepFoldOut = maxStep
	stepBase    = 1
)

// realRank maps a rank of the power-of-two group back to its rank after
// the fold-in: newranks below rem are the odd ranks 1, 3, ...
func realRank(nr, rem int) int {
	if nr < rem {
		return 2*nr + 1
	}
	return nr + rem
}

// foldIn makes the ranks a power-of-two group: of the first 2*rem ranks
// (rem = p - pof2) each even one hands its vector to the next odd one,
// which combines them (the even one is the lower operand) and stands for
// both. It returns this rank's rank in the group, or -1 for a rank that
// sits out until foldOut.
func (cl *call) foldIn(acc, tmp []byte, rd *reducer) (int, error) {
	p, r := cl.c.size, cl.c.rank
	rem := p - floorPow2(p)
	switch {
	case r >= 2*rem:
		return r - rem, nil
	case r%2 == 0:
		return -1, cl.sendMsg(r+1, stepFoldIn, acc)
	default:
		if err := cl.recvExact(r-1, stepFoldIn, tmp); err != nil {
			return 0, err
		}
		if len(acc) == 0 {
			return r / 2, nil
		}
		return r / 2, rd.rev(acc, tmp)
	}
}

// foldOut hands the result back to the ranks that sat out.
func (cl *call) foldOut(acc []byte) error {
	p, r := cl.c.size, cl.c.rank
	rem := p - floorPow2(p)
	switch {
	case r >= 2*rem:
		return nil
	case r%2 == 0:
		return cl.recvExact(r+1, stepFoldOut, acc)
	default:
		return cl.sendMsg(r-1, stepFoldOut, acc)
	}
}

// combine reduces in into acc, in coming from rank `from`. Its error is
// the op's panic (ErrPanic).
func (cl *call) combine(rd *reducer, acc, in []byte, from int) error {
	if len(acc) == 0 {
		return nil
	}
	if from < cl.c.rank {
		return rd.rev(acc, in)
	}
	return rd.fwd(acc, in)
}

// combineLocal is combineFrom with local if local is not nil, else
// combine.
func (cl *call) combineLocal(rd *reducer, acc, local, in []byte, from int) error {
	if local != nil {
		return cl.combineFrom(rd, acc, local, in, from)
	}
	return cl.combine(rd, acc, in, from)
}

// combineSum is combineLocal a piece at a time, and returns the CRC32C of
// the result, each piece checksummed right after it is reduced, while it
// is in cache: a block sent next as it was reduced goes out with that
// checksum (forward) instead of being read again on its way out.
func (cl *call) combineSum(rd *reducer, acc, local, in []byte, from int) (msgSum, error) {
	piece := max(copySumPiece/rd.elem, 1) * rd.elem
	var crc uint32
	for off := 0; off < len(acc); off += piece {
		end := min(off+piece, len(acc))
		var l []byte
		if local != nil {
			l = local[off:end]
		}
		if err := cl.combineLocal(rd, acc[off:end], l, in[off:end], from); err != nil {
			return msgSum{}, err
		}
		crc = crc32c.UpdateCached(crc, acc[off:end])
	}
	return msgSum{crc: crc, ok: true}, nil
}

// combineFrom sets dst to local ⊕ in, in coming from rank `from`: the first
// reduction into a result that does not hold this rank's data yet.
func (cl *call) combineFrom(rd *reducer, dst, local, in []byte, from int) error {
	if len(dst) == 0 {
		return nil
	}
	if from < cl.c.rank {
		return rd.to(dst, in, local)
	}
	return rd.to(dst, local, in)
}

// putScratch returns a scratch buffer that receives were posted into to the
// pool, unless the function that deferred it is panicking: its receives
// may then still be posted, and the link would write into a buffer handed
// out again. (Every other way out of an algorithm waits for its receives
// or withdraws them first.) It must be deferred directly.
func putScratch(pb *pbuf) {
	if p := recover(); p != nil {
		panic(p) // the buffer is left to the garbage collector
	}
	putBuf(pb)
}

// allreduceRecDoubling: lg p exchanges of the whole vector with rank
// xor 2^k; the lower rank's vector is the left operand, for a commutative
// op too: both partners compute the same lower ⊕ upper, so every rank ends
// with the same bits (b ⊕ a need not be a ⊕ b bit for bit, even for a
// float sum: x86 keeps the first operand's NaN). The rank whose partner is
// lower reduces its own vector into the received one (fwd, no reversed
// op needed) and takes that buffer as its vector from then on.
func (cl *call) allreduceRecDoubling(acc []byte, rd *reducer) error {
	p, r := cl.c.size, cl.c.rank
	pof2 := floorPow2(p)
	rem := p - pof2
	tmp, pb := getBuf(len(acc))
	defer putScratch(pb)
	nr, err := cl.foldIn(acc, tmp, rd)
	if err != nil {
		return err
	}
	if nr >= 0 {
		cur, in := acc, tmp
		for k, mask := stepBase, 1; mask < pof2; k, mask = k+1, mask<<1 {
			dst := realRank(nr^mask, rem)
			if err := cl.sendrecvExact(dst, dst, k, in, cur); err != nil {
				return err
			}
			if len(cur) == 0 {
				continue
			}
			if dst < r {
				// in = in ⊕ cur: in holds the lower ranks.
				if err := rd.fwd(in, cur); err != nil {
					return err
				}
				cur, in = in, cur
			} else if err := rd.fwd(cur, in); err != nil {
				return err
			}
		}
		if len(cur) > 0 && &cur[0] != &acc[0] {
			copy(acc, cur)
		}
	}
	return cl.foldOut(acc)
}

// allreduceRabenseifner: reduce-scatter by recursive halving, then
// allgather by recursive doubling, over pof2 blocks of the vector. If src
// is not nil it holds this rank's data and acc nothing yet: the first
// halving step reduces straight from src into acc (p a power of two; else
// src is copied first).
func (cl *call) allreduceRabenseifner(src, acc []byte, rd *reducer) error {
	p := cl.c.size
	pof2 := floorPow2(p)
	if src != nil && pof2 != p {
		copy(acc, src)
		src = nil
	}
	tmp, pb := getBuf(len(acc))
	defer putScratch(pb)
	nr, err := cl.foldIn(acc, tmp, rd)
	if err != nil {
		return err
	}
	if nr >= 0 {
		_, offs := split(len(acc)/rd.elem, pof2)
		for i := range offs {
			offs[i] *= rd.elem
		}
		lo, hi, sum, err := cl.halvingReduceScatter(src, acc, tmp, offs, nr, rd, stepBase, true)
		if err != nil {
			return err
		}
		if err := cl.doublingAllgather(acc, offs, nr, lo, hi, sum, stepBase+64); err != nil {
			return err
		}
	}
	return cl.foldOut(acc)
}

// halvingReduceScatter is the first half of Rabenseifner's algorithm over
// the pof2 group (after foldIn): in step k group rank nr exchanges half of
// the blocks it holds with nr xor 2^k, keeping the lower half if it is the
// lower of the two, and reduces the half it keeps. Partners at distance 1
// go first, so every partial result covers a contiguous run of ranks and a
// non-commutative op keeps rank order. offs are the blocks' byte offsets
// (pof2+1 entries). It returns the blocks [lo, hi) this rank ends up
// holding (one block) and, if sumLast and the communicator checksums, the
// block's checksum, computed as the last step reduces it, for the block's
// next send. If src is not nil, the data is in src and acc is filled by the
// first step (the blocks this rank does not keep are left for the
// allgather to fill).
func (cl *call) halvingReduceScatter(src, acc, tmp []byte, offs []int, nr int, rd *reducer, step int, sumLast bool) (lo, hi int, sum msgSum, err error) {
	p := cl.c.size
	pof2 := floorPow2(p)
	rem := p - pof2
	lo, hi = 0, pof2
	for mask := 1; mask < pof2; mask, step = mask<<1, step+1 {
		dst := realRank(nr^mask, rem)
		mid := lo + (hi-lo)/2
		sLo, sHi, kLo, kHi := mid, hi, lo, mid
		if nr&mask != 0 {
			sLo, sHi, kLo, kHi = lo, mid, mid, hi
		}
		keep := acc[offs[kLo]:offs[kHi]]
		in := tmp[:len(keep)]
		from := acc
		if src != nil {
			from = src
		}
		if err := cl.sendrecvExact(dst, dst, step, in, from[offs[sLo]:offs[sHi]]); err != nil {
			return 0, 0, msgSum{}, err
		}
		var local []byte
		if src != nil {
			local, src = src[offs[kLo]:offs[kHi]], nil
		}
		if sumLast && mask<<1 == pof2 && cl.c.t.checksum && len(keep) < cl.c.t.maxFrame {
			sum, err = cl.combineSum(rd, keep, local, in, dst)
		} else {
			err = cl.combineLocal(rd, keep, local, in, dst)
		}
		if err != nil {
			return 0, 0, msgSum{}, err
		}
		lo, hi = kLo, kHi
	}
	return lo, hi, sum, nil
}

// halvingOwner returns the block range group rank nr holds after
// halvingReduceScatter.
func halvingOwner(nr, pof2 int) (lo, hi int) {
	lo, hi = 0, pof2
	for mask := 1; mask < pof2; mask <<= 1 {
		mid := lo + (hi-lo)/2
		if nr&mask != 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, hi
}

// doublingAllgather undoes halvingReduceScatter's splitting: in each step
// group rank nr swaps the blocks it holds with its partner's, largest
// distance first, receiving straight into acc. The first step sends the
// block halvingReduceScatter left, with its checksum sum if that is known.
func (cl *call) doublingAllgather(acc []byte, offs []int, nr, lo, hi int, sum msgSum, step int) error {
	p := cl.c.size
	pof2 := floorPow2(p)
	rem := p - pof2
	for mask := pof2 / 2; mask > 0; mask, step = mask>>1, step+1 {
		dst := realRank(nr^mask, rem)
		size := hi - lo
		oLo, oHi := hi, hi+size
		if nr&mask != 0 {
			oLo, oHi = lo-size, lo
		}
		if err := cl.sendrecvExactSum(dst, dst, step, acc[offs[oLo]:offs[oHi]], sum, acc[offs[lo]:offs[hi]]); err != nil {
			return err
		}
		lo, hi, sum = min(lo, oLo), max(hi, oHi), msgSum{}
	}
	return nil
}

// allreduceRing: ring reduce-scatter over p blocks, then ring allgather.
// If src is not nil it holds the data and acc nothing yet (see
// ringReduceScatter).
func (cl *call) allreduceRing(src, acc []byte, rd *reducer) error {
	p := cl.c.size
	_, offs := split(len(acc)/rd.elem, p)
	for i := range offs {
		offs[i] *= rd.elem
	}
	if err := cl.ringReduceScatter(src, acc, offs, rd, 0); err != nil {
		return err
	}
	return cl.ringAllgather(acc, offs, p)
}

// ringReduceScatter: in step s rank r sends its partial sum of block
// r-s-1 to r+1 and adds the partial sum of block r-s-2 from r-1; after p-1
// steps it holds block r reduced over all ranks. Each step travels as
// chunks (see chunkUnit), each reduced as soon as it arrives while the next
// is in flight. Commutative ops only.
//
// If src is not nil, the data is in src and acc holds nothing yet: every
// block this rank receives is reduced from src into acc (each is received
// once), and the one it sends first goes from src. acc then holds its own
// reduced block; the others are the allgather's to fill.
func (cl *call) ringReduceScatter(src, acc []byte, offs []int, rd *reducer, step int) error {
	p, r := cl.c.size, cl.c.rank
	right, left := (r+1)%p, (r-1+p)%p
	unit := chunkUnit(cl.tun.ChunkSize, rd.elem, cl.c.t.maxFrame)
	maxBlock := 0
	for i := range p {
		maxBlock = max(maxBlock, offs[i+1]-offs[i])
	}
	tmp, pb := getBuf(maxBlock)
	defer putScratch(pb)
	var reqs []*request
	for s := range p - 1 {
		sb, rb := (r-s-1+2*p)%p, (r-s-2+2*p)%p
		send := acc[offs[sb]:offs[sb+1]]
		if s == 0 && src != nil {
			send = src[offs[sb]:offs[sb+1]]
		}
		into := acc[offs[rb]:offs[rb+1]]
		in := tmp[:len(into)]
		reduce := func(off int, b []byte) error {
			if src != nil {
				return cl.combineFrom(rd, into[off:off+len(b)], src[offs[rb]+off:offs[rb]+off+len(b)], b, left)
			}
			return cl.combine(rd, into[off:off+len(b)], b, left)
		}
		if unit == 0 {
			// No whole element fits a frame: the block is one message.
			if err := cl.sendrecvExact(right, left, step+s, in, send); err != nil {
				return err
			}
			if err := reduce(0, in); err != nil {
				return err
			}
			continue
		}
		// Chunks of exactly unit bytes, then a shorter last one (empty
		// when the block is a multiple of unit): the receiver knows from
		// the first chunk of another size that a sender that disagrees
		// about the block's length does (see chunkUnit).
		reqs = reqs[:0]
		for off := 0; ; off += unit {
			end := min(off+unit, len(in))
			reqs = append(reqs, cl.post(left, step+s, modeExact, in[off:end]))
			if end-off < unit {
				break
			}
		}
		nsend := len(send)/unit + 1
		for i := range max(nsend, len(reqs)) {
			if i < nsend {
				off := i * unit
				if err := cl.send(right, step+s, send[off:min(off+unit, len(send))]); err != nil {
					cl.abandon(err, reqs[min(i, len(reqs)):]...)
					return err
				}
			}
			if i < len(reqs) {
				b, _, err := wait(reqs[i])
				if err == nil {
					err = reduce(i*unit, b)
				}
				if err != nil {
					cl.abandon(err, reqs[i+1:]...)
					return err
				}
			}
		}
	}
	return nil
}

// chunkUnit is the size of the chunks a ring reduction sends a block in:
// Tuning.ChunkSize rounded down to whole elements, plus one element, and
// less than the frame limit so that each chunk is one frame; 0 when not
// even one element fits a frame (a block then travels as one message, in
// several frames). A block of n bytes is n/unit chunks of unit bytes and a
// last one of n%unit (empty when n is a multiple of unit): since the last
// chunk is always shorter than the others, a receiver that expects another
// length than the sender sends sees a chunk of the wrong size before the
// sender's chunks run out or its own do. The odd size (ChunkSize plus an
// element, not ChunkSize) keeps blocks of a round size from costing an
// empty last chunk: a 256 KiB block under the default ChunkSize is still
// one chunk.
func chunkUnit(chunkSize, elem, maxFrame int) int {
	u := min(chunkSize, maxFrame)/elem*elem + elem // no overflow: maxFrame < 4 GiB
	if fit := (maxFrame - 1) / elem * elem; fit < u {
		u = fit
	}
	return u
}

// ringAllgather: rank r holds block r of acc; in step s it sends block r-s
// to r+1 and receives block r-s-1 from r-1 straight into acc.
func (cl *call) ringAllgather(acc []byte, offs []int, step int) error {
	p, r := cl.c.size, cl.c.rank
	right, left := (r+1)%p, (r-1+p)%p
	var rs recvs
	rs.reqs = make([]*request, 0, p-1)
	for s := range p - 1 {
		b := (r - s - 1 + 2*p) % p
		rs.exact(cl, left, step+s, acc[offs[b]:offs[b+1]])
	}
	var sum msgSum // of the block received last, forwarded next
	for s := range p - 1 {
		b := (r - s + p) % p
		if err := cl.forward(right, step+s, acc[offs[b]:offs[b+1]], sum); err != nil {
			rs.abandonFrom(cl, err, s)
			return err
		}
		var err error
		if sum, err = rs.waitSum(cl, s); err != nil {
			return err
		}
	}
	return nil
}
