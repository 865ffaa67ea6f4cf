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
	defer func() { err = cl.end(err) }()
	if err := c.checkRoot(root); err != nil {
		return nil, err
	}
	cl.use(wireBcast)
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
func (c *Comm) BcastInto(ctx context.Context, root int, buf []byte) (err error) {
	cl, err := c.begin(ctx, "bcast")
	if err != nil {
		return err
	}
	defer func() { err = cl.end(err) }()
	if err := c.checkRoot(root); err != nil {
		return err
	}
	// Every rank picks by its own len(buf): ranks whose lengths differ may
	// pick different algorithms, which the wire id tells apart.
	algo := c.bcastAlgorithm(len(buf))
	cl.use(wireOf(algo))
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
	if vr != 0 {
		mask = lowbit(vr)
		into := buf
		if algo != BcastBinomial {
			lo, hi := bcastSegment(n, p, vr)
			into = buf[lo:hi]
		}
		if _, _, err := cl.recv(real(vr-mask), bcastStepSegment, modeExact, into); err != nil {
			return err
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		child := vr + mask
		if child >= p {
			continue
		}
		out := buf
		if algo != BcastBinomial {
			lo, hi := bcastSegment(n, p, child)
			out = buf[lo:hi]
		}
		if err := cl.send(real(child), bcastStepSegment, out); err != nil {
			return err
		}
	}
	if algo == BcastBinomial {
		return nil
	}
	return cl.bcastRing(root, vr, n, buf)
}

// bcastAlgorithm is the root's choice.
func (c *Comm) bcastAlgorithm(n int) Algorithm {
	t := c.tune()
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
	)
	if vr == 0 {
		n, out = len(data), data
		algo = c.bcastAlgorithm(n)
		pre[0] = byte(algo)
		binary.LittleEndian.PutUint64(pre[1:], uint64(n))
	} else {
		parent := real(vr - lowbit(vr))
		// The preamble message is the preamble followed, for a binomial
		// tree, by the whole payload; for scatter-allgather the parent's
		// next message is this subtree's segment, which the reader puts
		// straight into the result once the preamble has told the size.
		var seen [preambleLen]byte // the preamble, as the link's deliverer saw it
		l := c.links[parent]
		preReq := l.newReq(cl.tag(bcastStepPreamble), modeFresh, nil, nil)
		preReq.peek = func(b []byte) { copy(seen[:], b) }
		l.postReq(preReq)
		segReq := cl.postFunc(parent, bcastStepSegment, func(m int) []byte {
			t64 := binary.LittleEndian.Uint64(seen[1:])
			if t64 > uint64(math.MaxInt-p) {
				return nil // would overflow bcastSegment; a mismatch
			}
			total := int(t64)
			lo, hi := bcastSegment(total, p, vr)
			if m != hi-lo {
				return nil
			}
			out = make([]byte, total)
			return out[lo:hi]
		})
		msg, _, err := wait(preReq)
		if err == nil && len(msg) < preambleLen {
			err = fmt.Errorf("%w: bcast preamble of %d bytes", ErrMismatch, len(msg))
		}
		if err == nil && len(msg) == c.t.maxFrame && Algorithm(msg[0]) == BcastBinomial {
			// Preamble and payload exceed one frame: the rest follows.
			want := uint64(preambleLen) + binary.LittleEndian.Uint64(msg[1:])
			msg, err = cl.recvRest(msg, parent, bcastStepPreamble, func([]byte) (uint64, bool) { return want, true })
		}
		if err != nil {
			cl.abandon(err, segReq)
			return nil, err
		}
		copy(pre[:], msg)
		algo, n = Algorithm(pre[0]), int(binary.LittleEndian.Uint64(pre[1:]))
		switch algo {
		case BcastBinomial:
			if len(msg)-preambleLen != n {
				err := fmt.Errorf("%w: bcast preamble says %d bytes, message has %d", ErrMismatch, n, len(msg)-preambleLen)
				cl.abandon(err, segReq)
				return nil, err
			}
			c.links[parent].cancel(segReq, nil)
			out = msg[preambleLen:]
		case BcastScatterAllgather:
			if _, _, err := wait(segReq); err != nil {
				return nil, err
			}
			if len(out) != n { // out was sized by the same preamble
				return nil, fmt.Errorf("%w: bcast preamble says %d bytes, segment for %d", ErrMismatch, n, len(out))
			}
		default:
			err := fmt.Errorf("%w: bcast preamble names algorithm %d", ErrMismatch, pre[0])
			cl.abandon(err, segReq)
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
		if algo == BcastBinomial {
			err = cl.sendSplit(real(child), bcastStepPreamble, pre[:], out)
		} else {
			lo, hi := bcastSegment(n, p, child)
			if err = cl.send(real(child), bcastStepPreamble, pre[:]); err == nil {
				err = cl.send(real(child), bcastStepSegment, out[lo:hi])
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
// out. The root has every block already; it forwards but discards.
func (cl *call) bcastRing(root, vr, n int, out []byte) error {
	p := cl.c.size
	real := func(v int) int { return (v + root) % p }
	bs := (n + p - 1) / p
	block := func(i int) []byte { return out[min(i*bs, n):min((i+1)*bs, n)] }
	right, left := real((vr+1)%p), real((vr-1+p)%p)
	reqs := make([]*request, p-1)
	for s := range p - 1 {
		j := (vr - s - 1 + 2*p) % p
		if vr == 0 {
			reqs[s] = cl.post(left, bcastStepRing+s, modeScratch, nil)
		} else {
			reqs[s] = cl.post(left, bcastStepRing+s, modeExact, block(j))
		}
	}
	for s := range p - 1 {
		if err := cl.send(right, bcastStepRing+s, block((vr-s+p)%p)); err != nil {
			cl.abandon(err, reqs[s:]...)
			return err
		}
		_, pb, err := wait(reqs[s])
		putBuf(pb)
		if err != nil {
			cl.abandon(err, reqs[s+1:]...)
			return err
		}
	}
	return nil
}
