package collective

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
)

// Bcast broadcasts root's data to every rank and returns it. data is read
// on the root only (other ranks may pass nil); the root gets data itself
// back, the other ranks a new buffer.
//
// Algorithms: a binomial tree (lg p steps of the whole message) for short
// messages or few ranks, else a binomial scatter of p blocks followed by a
// ring allgather (van de Geijn), which moves 2n(p-1)/p bytes per rank
// instead of n lg p. The root picks and tells the others in a small
// preamble, so only the root needs to know the size.
func (c *Comm) Bcast(ctx context.Context, root int, data []byte) (out []byte, err error) {
	cl, err := c.begin(ctx, "bcast")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	if err := c.checkRoot(root); err != nil {
		return nil, err
	}
	cl.use(wireBcast, rootIdent(root))
	return cl.bcast(root, data)
}

// checkRoot checks a collective's root. It is called inside the call (after
// begin), so that a bad root poisons the communicator: the other ranks run
// the collective and would otherwise wait for this rank, and this rank's
// next call would take their messages for this one.
func (c *Comm) checkRoot(root int) error {
	if root < 0 || root >= c.size {
		return fmt.Errorf("%w: root %d out of range 0..%d", ErrInvalidArgument, root, c.size-1)
	}
	return nil
}

// BcastInto broadcasts root's buf into every rank's buf, as MPI_Bcast does:
// every rank passes a buffer of the same length, which the root reads and
// the others overwrite. Because every rank knows the size, no preamble is
// sent and each message is read straight into buf; nothing is allocated.
// For the same reason every rank picks the algorithm itself, from its own
// tuning (BcastShort, BcastMinRanks, Force[OpBcast]): unlike Bcast, where
// only the root's counts, BcastInto needs those the same on every rank
// (ranks that pick differently get ErrMismatch, not a hang).
func (c *Comm) BcastInto(ctx context.Context, root int, buf []byte) (err error) {
	cl, err := c.begin(ctx, "bcast")
	if err != nil {
		return err
	}
	defer cl.finish(&err)
	if err := c.checkRoot(root); err != nil {
		return err
	}
	// Every rank picks by its own len(buf): ranks whose lengths differ may
	// pick different algorithms, which the wire id tells apart.
	algo := cl.bcastAlgorithm(len(buf))
	cl.use(wireOf(algo), rootIdent(root))
	if c.size == 1 {
		return nil
	}
	return cl.bcastKnown(root, buf, algo)
}

// bcastKnown is Bcast when every rank knows the size.
func (cl *call) bcastKnown(root int, buf []byte, algo Algorithm) error {
	c := cl.c
	p := c.size
	n := len(buf)
	vr := (c.rank - root + p) % p
	real := func(v int) int { return (v + root) % p }
	mask := ceilPow2(p)
	var sum msgSum // of the whole buf, received in a binomial tree
	if vr != 0 {
		mask = lowbit(vr)
		into := buf
		if algo != BcastBinomial {
			lo, hi := bcastSegment(n, p, vr)
			into = buf[lo:hi]
		}
		var err error
		if sum, err = cl.recvExactSum(real(vr-mask), bcastStepSegment, into); err != nil {
			return err
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		child := vr + mask
		if child >= p {
			continue
		}
		if algo == BcastBinomial {
			if err := cl.forward(real(child), bcastStepSegment, buf, sum); err != nil {
				return err
			}
			continue
		}
		lo, hi := bcastSegment(n, p, child)
		if err := cl.sendMsg(real(child), bcastStepSegment, buf[lo:hi]); err != nil {
			return err
		}
	}
	if algo == BcastBinomial {
		return nil
	}
	return cl.bcastRing(root, vr, n, buf)
}

// bcastAlgorithm is the root's choice.
func (cl *call) bcastAlgorithm(n int) Algorithm {
	t, c := cl.tun, cl.c
	if a := t.Force[OpBcast]; a != Auto {
		return a
	}
	if n <= t.BcastShort || c.size < t.BcastMinRanks {
		return BcastBinomial
	}
	return BcastScatterAllgather
}

const preambleLen = 9 // algorithm (1 byte), total length (8 bytes)

// Steps (tags within the call) of bcast.
const (
	bcastStepPreamble = 0
	bcastStepSegment  = 1
	bcastStepRing     = 2 // + ring step
)

func (cl *call) bcast(root int, data []byte) ([]byte, error) {
	c := cl.c
	p, r := c.size, c.rank
	if p == 1 {
		return data, nil
	}
	vr := (r - root + p) % p
	real := func(v int) int { return (v + root) % p }

	var (
		algo Algorithm
		n    int
		pre  [preambleLen]byte
		out  []byte
		msg  []byte // a binomial tree's message as received: pre, then out
		sum  msgSum // ... and its checksum
	)
	if vr == 0 {
		n, out = len(data), data
		algo = cl.bcastAlgorithm(n)
		pre[0] = byte(algo)
		binary.LittleEndian.PutUint64(pre[1:], uint64(n))
	} else {
		parent := real(vr - lowbit(vr))
		limit := c.t.maxFrame
		// The preamble message is the preamble followed, for a binomial
		// tree, by the whole payload; for scatter-allgather the parent's
		// next message is this subtree's segment, whose first frame the
		// reader puts straight into the result once the preamble has told
		// the size (when the preamble fits a frame: with a smaller limit
		// the segment is received once the preamble is complete).
		var seen [preambleLen]byte // the preamble, as the link's deliverer saw it
		l := c.links[parent]
		preReq := l.newReq(cl.tag(bcastStepPreamble), modeFresh, nil, nil)
		preReq.peek = func(b []byte) { copy(seen[:], b) }
		l.postReq(preReq)
		// alloc sizes the result by the preamble once the segment's first
		// frame has the size the preamble implies (so that a peer that
		// disagrees cannot make this rank allocate what it announces).
		alloc := func(m int) []byte {
			t64 := binary.LittleEndian.Uint64(seen[1:])
			if t64 > uint64(math.MaxInt-p) {
				return nil // would overflow bcastSegment; a mismatch
			}
			total := int(t64)
			lo, hi := bcastSegment(total, p, vr)
			if m != min(hi-lo, limit) { // the segment's first frame
				return nil
			}
			out = make([]byte, total)
			return out[lo : lo+m]
		}
		var segReq *request
		if limit > preambleLen {
			segReq = cl.postFunc(parent, bcastStepSegment, alloc)
		}
		abandon := func(err error) {
			if segReq != nil {
				cl.abandon(err, segReq)
			}
		}
		var err error
		msg, sum, err = cl.recvFreshSum(preReq, parent, bcastStepPreamble)
		if err == nil && len(msg) < preambleLen {
			err = fmt.Errorf("%w: bcast preamble of %d bytes", ErrMismatch, len(msg))
		}
		if err != nil {
			abandon(err)
			return nil, err
		}
		copy(pre[:], msg)
		algo, n = Algorithm(pre[0]), int(binary.LittleEndian.Uint64(pre[1:]))
		switch algo {
		case BcastBinomial:
			if len(msg)-preambleLen != n {
				err := fmt.Errorf("%w: bcast preamble says %d bytes, message has %d", ErrMismatch, n, len(msg)-preambleLen)
				abandon(err)
				return nil, err
			}
			if segReq != nil {
				c.links[parent].cancel(segReq, nil)
			}
			out = msg[preambleLen:]
		case BcastScatterAllgather:
			if segReq == nil {
				copy(seen[:], pre[:])
				segReq = cl.postFunc(parent, bcastStepSegment, alloc)
			}
			if _, _, err := wait(segReq); err != nil {
				return nil, err
			}
			if len(out) != n { // out was sized by the same preamble
				return nil, fmt.Errorf("%w: bcast preamble says %d bytes, segment for %d", ErrMismatch, n, len(out))
			}
			if lo, hi := bcastSegment(n, p, vr); hi-lo >= limit {
				// The first frame is in; the rest follows.
				if err := cl.recvExact(parent, bcastStepSegment, out[lo+limit:hi]); err != nil {
					return nil, err
				}
			}
		default:
			err := fmt.Errorf("%w: bcast preamble names algorithm %d", ErrMismatch, pre[0])
			abandon(err)
			return nil, err
		}
	}

	// Send to children, largest subtree first.
	mask := ceilPow2(p)
	if vr != 0 {
		mask = lowbit(vr)
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		child := vr + mask
		if child >= p {
			continue
		}
		var err error
		switch {
		case algo == BcastBinomial && vr != 0:
			err = cl.forward(real(child), bcastStepPreamble, msg, sum)
		case algo == BcastBinomial:
			err = cl.sendMsg(real(child), bcastStepPreamble, pre[:], out)
		default:
			lo, hi := bcastSegment(n, p, child)
			if err = cl.sendMsg(real(child), bcastStepPreamble, pre[:]); err == nil {
				err = cl.sendMsg(real(child), bcastStepSegment, out[lo:hi])
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if algo == BcastBinomial {
		return out, nil
	}
	return out, cl.bcastRing(root, vr, n, out)
}

// bcastSegment is the byte range the binomial scatter gives relative rank
// vr: the blocks of its whole subtree.
func bcastSegment(n, p, vr int) (lo, hi int) {
	sub := ceilPow2(p)
	if vr != 0 {
		sub = lowbit(vr)
	}
	bs := (n + p - 1) / p
	lo = min(vr*bs, n)
	hi = min((vr+min(sub, p-vr))*bs, n)
	return lo, hi
}

// bcastRing is the allgather half of scatter-allgather: relative rank vr
// holds block vr and, over p-1 ring steps, receives every other block into
// out. The root has every block already; it forwards, and receives into a
// scratch buffer only to check what comes.
func (cl *call) bcastRing(root, vr, n int, out []byte) error {
	p := cl.c.size
	real := func(v int) int { return (v + root) % p }
	bs := (n + p - 1) / p
	block := func(i int) []byte { return out[min(i*bs, n):min((i+1)*bs, n)] }
	right, left := real((vr+1)%p), real((vr-1+p)%p)
	var scratch []byte
	if vr == 0 {
		var pb *pbuf
		scratch, pb = getBuf(bs)
		defer putScratch(pb)
	}
	var rs recvs
	rs.reqs = make([]*request, 0, p-1)
	for s := range p - 1 {
		dst := block((vr - s - 1 + 2*p) % p)
		if vr == 0 {
			dst = scratch[:len(dst)] // the root's receives all go here: it drops them
		}
		rs.exact(cl, left, bcastStepRing+s, dst)
	}
	var sum msgSum // of the block received last, forwarded next (not by the root, which has its own)
	for s := range p - 1 {
		if err := cl.forward(right, bcastStepRing+s, block((vr-s+p)%p), sum); err != nil {
			rs.abandonFrom(cl, err, s)
			return err
		}
		got, err := rs.waitSum(cl, s)
		if err != nil {
			return err
		}
		if vr != 0 {
			sum = got
		}
	}
	return nil
}
