package collective

import (
	"context"
	"fmt"
	"math"

	"github.com/fnmesh/fnmesh/internal/crc32c"
)

// Allgather gives every rank every rank's data: result[i] is rank i's data
// (result[Rank()] is data itself). Ranks may contribute different sizes,
// including zero.
//
// Algorithms: ring (p-1 steps, bandwidth-optimal), recursive doubling (lg p
// steps; extra ranks folded in when p is not a power of two) and Bruck
// (ceil(lg p) steps for any p). Auto must agree on one algorithm without
// knowing the other ranks' sizes, so it runs recursive doubling (p a power
// of two) or Bruck, in which every rank whose data is small (at most the
// short-message threshold divided by p) sends it at once and every other
// rank only announces its size. If nobody deferred, that single pass is the
// whole allgather; otherwise every rank now knows the total of the deferred
// data and runs the algorithm the thresholds pick for it.
func (c *Comm) Allgather(ctx context.Context, data []byte) (out [][]byte, err error) {
	cl, err := c.begin(ctx, "allgather")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	if a := cl.tun.Force[OpAllgather]; a != Auto {
		cl.use(wireOf(a), 0)
		if c.size == 1 {
			return [][]byte{data}, nil
		}
		return cl.allgatherWith(a, 0, data, nil)
	}
	cl.use(wireAllgatherAuto, 0)
	if c.size == 1 {
		return [][]byte{data}, nil
	}
	return cl.allgatherAuto(data)
}

// AllgatherInto is the allgather of equal-sized blocks, as MPI_Allgather:
// every rank passes data of the same length and out of Size() times that
// length; block i of out receives rank i's data. The total size is known on
// every rank, so the algorithm is chosen directly: with Size() a power of
// two, recursive doubling at every size (each step's blocks are contiguous
// in out and read straight into place); otherwise Bruck below the
// short-message threshold and the ring above it, which reads every block
// straight into out.
func (c *Comm) AllgatherInto(ctx context.Context, data, out []byte) (err error) {
	cl, err := c.begin(ctx, "allgather")
	if err != nil {
		return err
	}
	defer cl.finish(&err)
	n, p := len(data), c.size
	if len(out)%p != 0 || len(out)/p != n { // not len(out) != n*p, which can overflow
		return fmt.Errorf("%w: out has %d bytes, want %d ranks x %d", ErrMismatch, len(out), p, n)
	}
	a := cl.tun.Force[OpAllgather]
	switch {
	case a != Auto:
	case isPow2(p):
		a = AllgatherRecursiveDoubling
	case len(out) < cl.tun.AllgatherShort:
		a = AllgatherBruck
	default:
		a = AllgatherRing
	}
	cl.use(wireOf(a), sizeIdent(n))
	inPlace := a == AllgatherRing || a == AllgatherRecursiveDoubling && isPow2(p)
	// The first send of the ring and of recursive doubling is this rank's
	// block: checksummed as it is copied into place, it goes out with that
	// checksum (copySum).
	var own msgSum
	if inPlace && p > 1 && c.t.checksum && n < c.t.maxFrame {
		own = copySum(out[c.rank*n:(c.rank+1)*n], data)
	} else {
		copy(out[c.rank*n:], data)
	}
	if p == 1 {
		return nil
	}
	if a == AllgatherRecursiveDoubling && inPlace {
		return cl.allgatherRecDoublingInto(0, out, n, own)
	}
	into := make([][]byte, p)
	for i := range into {
		into[i] = out[i*n : (i+1)*n]
	}
	if a == AllgatherRing {
		_, err := cl.allgatherRingInto(0, into, own)
		return err
	}
	blocks, err := cl.allgatherWith(a, 0, data, nil)
	if err != nil {
		return err
	}
	for i, b := range blocks {
		if len(b) != n {
			return fmt.Errorf("%w: %s sent %d bytes, want %d", ErrMismatch, cl.c.name(i), len(b), n)
		}
		if i != c.rank {
			copy(into[i], b)
		}
	}
	return nil
}

// Steps: each algorithm uses steps base .. base+allgatherSteps-1. Auto's
// probe pass runs at base 0 and its second pass at allgatherBase(algo), so
// that ranks whose tunings differ (an error) cannot take a message of one
// algorithm for another's.
const allgatherSteps = MaxRanks

func allgatherBase(a Algorithm) int {
	switch a {
	case AllgatherRing:
		return allgatherSteps
	case AllgatherRecursiveDoubling:
		return 2 * allgatherSteps
	default:
		return 3 * allgatherSteps
	}
}

// allgatherShort returns the total size below which the latency-optimal
// algorithm wins, and that algorithm.
func (cl *call) allgatherShort() (int, Algorithm) {
	t := cl.tun
	if isPow2(cl.c.size) {
		return t.AllgatherShortPow2, AllgatherRecursiveDoubling
	}
	return t.AllgatherShort, AllgatherBruck
}

func (cl *call) allgatherAuto(data []byte) ([][]byte, error) {
	c := cl.c
	p := c.size
	short, fast := cl.allgatherShort()
	meta := make([]int64, p)
	meta[c.rank] = -1
	if len(data) > short/p {
		meta[c.rank] = int64(len(data)) // deferred: announce only
	}
	out, err := cl.allgatherWith(fast, 0, data, meta)
	if err != nil {
		return nil, err
	}
	total, deferred := 0, false
	for _, m := range meta {
		if m >= 0 {
			// Announced lengths come from the peers: add without overflow.
			if m > int64(math.MaxInt-total) {
				total = math.MaxInt
			} else {
				total += int(m)
			}
			deferred = true
		}
	}
	if !deferred {
		return out, nil
	}
	algo := AllgatherRing
	if total < short {
		algo = fast
	}
	mine := []byte(nil)
	if meta[c.rank] >= 0 {
		mine = data
	}
	second, err := cl.allgatherWith(algo, allgatherBase(algo), mine, nil)
	if err != nil {
		return nil, err
	}
	for i, m := range meta {
		if m < 0 {
			continue
		}
		if int64(len(second[i])) != m {
			return nil, fmt.Errorf("%w: %s announced %d bytes and sent %d", ErrMismatch, cl.c.name(i), m, len(second[i]))
		}
		out[i] = second[i]
	}
	return out, nil
}

// allgatherWith runs one algorithm. If meta is not nil, meta[rank] marks
// this rank's block deferred (>= 0: its announced length) and the other
// ranks' marks are filled in.
func (cl *call) allgatherWith(a Algorithm, base int, data []byte, meta []int64) ([][]byte, error) {
	switch a {
	case AllgatherRing:
		return cl.allgatherRing(base, data)
	case AllgatherRecursiveDoubling:
		return cl.allgatherRecDoubling(base, data, meta)
	default:
		return cl.allgatherBruck(base, data, meta)
	}
}

// allgatherRing: in step s rank r sends block r-s to r+1 and receives
// block r-s-1 from r-1. Every receive is posted before the first send, so
// each block is read straight into its own buffer.
func (cl *call) allgatherRing(base int, data []byte) ([][]byte, error) {
	out := make([][]byte, cl.c.size)
	out[cl.c.rank] = data
	return cl.allgatherRingInto(base, out, msgSum{})
}

// allgatherRingInto runs the ring over out, whose entry for this rank holds
// its data, with checksum own if it is known. Entries for other ranks that
// are not nil are buffers of the exact size to receive into; nil ones get
// new buffers.
func (cl *call) allgatherRingInto(base int, out [][]byte, own msgSum) ([][]byte, error) {
	c := cl.c
	p, r := c.size, c.rank
	right, left := (r+1)%p, (r-1+p)%p
	var rs recvs
	rs.reqs = make([]*request, 0, p-1)
	for s := range p - 1 {
		if dst := out[(r-s-1+p)%p]; dst != nil {
			rs.exact(cl, left, base+s, dst)
		} else {
			rs.fresh(cl, left, base+s)
		}
	}
	sum := own // of the block sent next: this rank's, then the one received last
	for s := range p - 1 {
		if err := cl.forward(right, base+s, out[(r-s+p)%p], sum); err != nil {
			rs.abandonFrom(cl, err, s)
			return nil, err
		}
		if out[(r-s-1+p)%p] != nil { // not written before step s: as when posted
			var err error
			if sum, err = rs.waitSum(cl, s); err != nil {
				return nil, err
			}
			continue
		}
		b, got, err := cl.recvFreshSum(rs.first(s), left, base+s)
		if err != nil {
			rs.afterFirst(cl, err, s)
			return nil, err
		}
		out[(r-s-1+p)%p], sum = b, got
	}
	return out, nil
}

// allgatherRecDoublingInto is recursive doubling over out, for p a power of
// two and blocks of n bytes: in step k rank r exchanges the 2^k blocks of
// its group of 2^k ranks, contiguous in out, with rank r xor 2^k, and reads
// the other group's straight into place. own is the checksum of this rank's
// block if known. What a rank sends in step k+1 is what it sent in step k
// joined with what it received, so its checksum is theirs joined
// (crc32c.Combine) and no block is read again to be checksummed.
func (cl *call) allgatherRecDoublingInto(base int, out []byte, n int, own msgSum) error {
	p, r := cl.c.size, cl.c.rank
	sum := own // of what this rank sends next
	var rs recvs
	rs.reqs = make([]*request, 0, 1)
	for mask, step := 1, base; mask < p; mask, step = mask<<1, step+1 {
		peer := r ^ mask
		lo, plo := (r&^(mask-1))*n, (peer&^(mask-1))*n
		mine, theirs := out[lo:lo+mask*n], out[plo:plo+mask*n]
		rs.reset()
		rs.exact(cl, peer, step, theirs)
		if err := cl.forward(peer, step, mine, sum); err != nil {
			rs.abandonFrom(cl, err, 0)
			return err
		}
		got, err := rs.waitSum(cl, 0)
		if err != nil {
			return err
		}
		switch {
		case !sum.ok || !got.ok:
			sum = msgSum{}
		case plo > lo:
			sum.crc = crc32c.Combine(sum.crc, got.crc, int64(len(theirs)))
		default:
			sum.crc = crc32c.Combine(got.crc, sum.crc, int64(len(mine)))
		}
	}
	return nil
}

// allgatherRecDoubling: in step k rank r exchanges everything it holds with
// r xor 2^k. When p is not a power of two, rank pof2+i first hands its
// block to rank i and gets the whole result from it at the end.
func (cl *call) allgatherRecDoubling(base int, data []byte, meta []int64) ([][]byte, error) {
	c := cl.c
	p, r := c.size, c.rank
	pof2 := floorPow2(p)
	rem := p - pof2
	out := make([][]byte, p)
	out[r] = data
	stepIn, stepOut := base, base+allgatherSteps-1

	// own returns the indices of the blocks held by the group of
	// newranks [lo, lo+m): each newrank i < rem also holds i+pof2's.
	own := func(lo, m int) []int {
		idx := make([]int, 0, 2*m)
		for i := lo; i < lo+m; i++ {
			idx = append(idx, i)
		}
		for i := lo; i < lo+m && i < rem; i++ {
			idx = append(idx, i+pof2)
		}
		return idx
	}
	pick := func(idx []int) ([][]byte, []int64) {
		bl := make([][]byte, len(idx))
		var me []int64
		if meta != nil {
			me = make([]int64, len(idx))
		}
		for j, i := range idx {
			bl[j] = out[i]
			if meta != nil {
				me[j] = meta[i]
			}
		}
		return bl, me
	}
	// place receives the bundle of blocks idx from rank `from` at step,
	// whose first frame req receives.
	place := func(req *request, from, step int, idx []int) error {
		bl := make([][]byte, len(idx))
		var me []int64
		if meta != nil {
			me = make([]int64, len(idx))
		}
		if err := cl.recvBundle(req, from, step, bl, me); err != nil {
			return err
		}
		for j, i := range idx {
			out[i] = bl[j]
			if meta != nil {
				meta[i] = me[j]
			}
		}
		return nil
	}

	if r >= pof2 {
		bl, me := pick([]int{r})
		req := cl.post(r-pof2, stepOut, modeFresh, nil)
		if err := cl.sendMsg(r-pof2, stepIn, bundle(bl, me)...); err != nil {
			cl.abandon(err, req)
			return nil, err
		}
		all := make([]int, p)
		for i := range all {
			all[i] = i
		}
		if err := place(req, r-pof2, stepOut, all); err != nil {
			return nil, err
		}
		out[r] = data
		return out, nil
	}
	if r < rem {
		if err := place(cl.post(r+pof2, stepIn, modeFresh, nil), r+pof2, stepIn, []int{r + pof2}); err != nil {
			return nil, err
		}
	}
	for k, mask := 1, 1; mask < pof2; k, mask = k+1, mask<<1 {
		partner := r ^ mask
		bl, me := pick(own(r&^(mask-1), mask))
		req := cl.post(partner, base+k, modeFresh, nil)
		if err := cl.sendMsg(partner, base+k, bundle(bl, me)...); err != nil {
			cl.abandon(err, req)
			return nil, err
		}
		if err := place(req, partner, base+k, own(partner&^(mask-1), mask)); err != nil {
			return nil, err
		}
	}
	if r < rem {
		all := make([]int, p)
		for i := range all {
			all[i] = i
		}
		bl, me := pick(all)
		if err := cl.sendMsg(r+pof2, stepOut, bundle(bl, me)...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// allgatherBruck: in round k rank r sends the blocks it holds (those of
// ranks r .. r+2^k-1) to r-2^k and receives as many from r+2^k.
func (cl *call) allgatherBruck(base int, data []byte, meta []int64) ([][]byte, error) {
	c := cl.c
	p, r := c.size, c.rank
	held := make([][]byte, p) // held[i] is rank (r+i)%p's block
	var hmeta []int64
	if meta != nil {
		hmeta = make([]int64, p)
		hmeta[0] = meta[r]
	}
	held[0] = data
	for k, d := 0, 1; d < p; k, d = k+1, d*2 {
		cnt := min(d, p-d)
		var me []int64
		if hmeta != nil {
			me = hmeta[:cnt]
		}
		var into []int64
		if hmeta != nil {
			into = hmeta[d : d+cnt]
		}
		if err := cl.sendrecvBundle((r-d+p)%p, (r+d)%p, base+k, held[d:d+cnt], into, bundle(held[:cnt], me)...); err != nil {
			return nil, err
		}
	}
	out := make([][]byte, p)
	for i, b := range held {
		out[(r+i)%p] = b
		if meta != nil {
			meta[(r+i)%p] = hmeta[i]
		}
	}
	return out, nil
}
