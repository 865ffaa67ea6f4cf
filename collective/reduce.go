package collective

import (
	"context"
	"fmt"
)

// Reduce combines every rank's data element by element with op and returns
// the result on root (nil on the other ranks). data must have the same
// length on every rank; it is not modified.
//
// Algorithms: binomial tree (short vectors) or Rabenseifner's
// reduce-scatter by recursive halving followed by a gather of the reduced
// pieces to the root (long vectors). Both keep rank order for a
// non-commutative op.
func Reduce[T Number](ctx context.Context, c *Comm, root int, data []T, op Op[T]) ([]T, error) {
	rd, err := op.reducer()
	if err != nil {
		return nil, c.failCall(ctx, "reduce", err)
	}
	acc := make([]T, len(data))
	copy(acc, data)
	isRoot, err := c.reduce(ctx, root, asBytes(acc), &rd)
	if err != nil || !isRoot {
		return nil, err
	}
	return acc, nil
}

// ReduceBytes is Reduce over elements of op's element size held in bytes.
func ReduceBytes(ctx context.Context, c *Comm, root int, data []byte, op BytesOp) ([]byte, error) {
	rd, err := op.reducer()
	if err != nil {
		return nil, c.failCall(ctx, "reduce", err)
	}
	acc := append([]byte(nil), data...)
	isRoot, err := c.reduce(ctx, root, acc, &rd)
	if err != nil || !isRoot {
		return nil, err
	}
	return acc, nil
}

// Allreduce combines every rank's data element by element with op and
// returns the result on every rank. data must have the same length on every
// rank; it is not modified.
//
// Algorithms: recursive doubling (lg p exchanges of the whole vector; short
// vectors), Rabenseifner (reduce-scatter by recursive halving, allgather by
// recursive doubling; 2 lg p steps moving 2n(p-1)/p bytes) and ring
// (reduce-scatter and allgather around a ring, 2(p-1) steps, pipelined in
// chunks so that reducing overlaps the transfer; commutative ops only).
// Extra ranks are folded in when p is not a power of two.
func Allreduce[T Number](ctx context.Context, c *Comm, data []T, op Op[T]) ([]T, error) {
	rd, err := op.reducer()
	if err != nil {
		return nil, c.failCall(ctx, "allreduce", err)
	}
	acc := make([]T, len(data))
	if err := c.allreduce(ctx, asBytes(data), asBytes(acc), &rd); err != nil {
		return nil, err
	}
	return acc, nil
}

// AllreduceInto is Allreduce writing the result into out, which must have
// the length of data and may be data itself (in place, as MPI_IN_PLACE) but
// must not otherwise overlap it. It allocates nothing but pooled scratch
// space; for large vectors data is not copied to out first, the first
// reduction step reads it where it is.
func AllreduceInto[T Number](ctx context.Context, c *Comm, data, out []T, op Op[T]) error {
	rd, err := op.reducer()
	if err != nil {
		return c.failCall(ctx, "allreduce", err)
	}
	if len(out) != len(data) {
		return c.failCall(ctx, "allreduce", fmt.Errorf("%w: out has %d elements, data %d", ErrInvalidArgument, len(out), len(data)))
	}
	src := asBytes(data)
	if len(data) > 0 && &out[0] == &data[0] {
		src = nil // in place
	}
	return c.allreduce(ctx, src, asBytes(out), &rd)
}

// AllreduceBytes is Allreduce over elements of op's element size held in
// bytes.
func AllreduceBytes(ctx context.Context, c *Comm, data []byte, op BytesOp) ([]byte, error) {
	rd, err := op.reducer()
	if err != nil {
		return nil, c.failCall(ctx, "allreduce", err)
	}
	acc := make([]byte, len(data))
	if err := c.allreduce(ctx, data, acc, &rd); err != nil {
		return nil, err
	}
	return acc, nil
}

// ReduceScatter combines every rank's data element by element with op and
// scatters the result: rank i gets counts[i] elements, the i-th piece of
// the reduced vector. counts must be the same on every rank and sum to
// len(data).
//
// Algorithms: recursive halving (lg p steps; short vectors, commutative
// ops), pairwise exchange (p-1 steps; any op, rank order kept for a
// non-commutative one) and ring (p-1 steps, pipelined in chunks;
// commutative ops).
func ReduceScatter[T Number](ctx context.Context, c *Comm, data []T, counts []int, op Op[T]) ([]T, error) {
	rd, err := op.reducer()
	if err != nil {
		return nil, c.failCall(ctx, "reduce-scatter", err)
	}
	acc := make([]T, len(data))
	copy(acc, data)
	mine, err := c.reduceScatter(ctx, asBytes(acc), counts, &rd)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(mine)/rd.elem)
	copy(asBytes(out), mine)
	return out, nil
}

// ReduceScatterBytes is ReduceScatter over elements of op's element size
// held in bytes; counts are in elements.
func ReduceScatterBytes(ctx context.Context, c *Comm, data []byte, counts []int, op BytesOp) ([]byte, error) {
	rd, err := op.reducer()
	if err != nil {
		return nil, c.failCall(ctx, "reduce-scatter", err)
	}
	acc := append([]byte(nil), data...)
	mine, err := c.reduceScatter(ctx, acc, counts, &rd)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), mine...), nil
}

// ---- selection ----------------------------------------------------------

func (cl *call) allreduceAlgorithm(n, count int, rd *reducer) Algorithm {
	t, c := cl.tun, cl.c
	a := t.Force[OpAllreduce]
	if a == Auto {
		switch {
		case n <= t.AllreduceShort || count < floorPow2(c.size):
			a = AllreduceRecursiveDoubling
		case rd.commutative && n >= t.AllreduceRingMin && c.size&(c.size-1) != 0:
			// Rabenseifner folds the ranks beyond a power of two in and
			// out with two whole-vector transfers; the ring does not.
			a = AllreduceRing
		default:
			a = AllreduceRabenseifner
		}
	}
	if a == AllreduceRing && !rd.commutative {
		a = AllreduceRabenseifner // the ring cannot keep rank order
	}
	return a
}

func (cl *call) reduceAlgorithm(n, count int) Algorithm {
	t, c := cl.tun, cl.c
	if a := t.Force[OpReduce]; a != Auto {
		return a
	}
	if n <= t.ReduceShort || count < floorPow2(c.size) {
		return ReduceBinomial
	}
	return ReduceScatterGather
}

func (cl *call) reduceScatterAlgorithm(n int, rd *reducer) Algorithm {
	t := cl.tun
	a := t.Force[OpReduceScatter]
	if a == Auto {
		a = ReduceScatterPairwise
		if rd.commutative && n <= t.ReduceScatterShort {
			a = ReduceScatterRecursiveHalving
		}
	}
	if !rd.commutative && a != ReduceScatterPairwise {
		a = ReduceScatterPairwise // the only one that keeps rank order here
	}
	return a
}

// ---- entry points over bytes ---------------------------------------------

// allreduce reduces into acc. src, if not nil, holds this rank's data (of
// acc's length; acc's contents do not matter): the large-vector algorithms
// then reduce from it into acc as they go, with no copy first. src nil:
// acc holds the data (in place).
func (c *Comm) allreduce(ctx context.Context, src, acc []byte, rd *reducer) (err error) {
	cl, err := c.begin(ctx, "allreduce")
	if err != nil {
		return err
	}
	defer cl.finish(&err)
	if err := rd.checkLen(len(acc)); err != nil {
		return err
	}
	if len(acc) == 0 {
		src = nil
	}
	algo := AllreduceRecursiveDoubling
	if c.size > 1 {
		algo = cl.allreduceAlgorithm(len(acc), len(acc)/rd.elem, rd)
	}
	cl.use(wireOf(algo), rd.ident()|sizeIdent(rd.elem, len(acc)))
	if src != nil && (c.size == 1 || algo == AllreduceRecursiveDoubling) {
		copy(acc, src)
		src = nil
	}
	if c.size == 1 {
		return nil
	}
	switch algo {
	case AllreduceRecursiveDoubling:
		return cl.allreduceRecDoubling(acc, rd)
	case AllreduceRing:
		return cl.allreduceRing(src, acc, rd)
	default:
		return cl.allreduceRabenseifner(src, acc, rd)
	}
}

func (c *Comm) reduce(ctx context.Context, root int, acc []byte, rd *reducer) (isRoot bool, err error) {
	cl, err := c.begin(ctx, "reduce")
	if err != nil {
		return false, err
	}
	defer cl.finish(&err)
	if err := c.checkRoot(root); err != nil {
		return false, err
	}
	if err := rd.checkLen(len(acc)); err != nil {
		return false, err
	}
	algo := cl.reduceAlgorithm(len(acc), len(acc)/rd.elem)
	cl.use(wireOf(algo), rootIdent(root)|rd.ident())
	if c.size == 1 {
		return true, nil
	}
	if algo == ReduceScatterGather {
		return c.rank == root, cl.reduceScatterGather(root, acc, rd)
	}
	return c.rank == root, cl.reduceBinomial(root, acc, rd)
}

func (c *Comm) reduceScatter(ctx context.Context, acc []byte, counts []int, rd *reducer) (mine []byte, err error) {
	cl, err := c.begin(ctx, "reduce-scatter")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	if len(counts) != c.size {
		return nil, fmt.Errorf("%w: %d counts for %d ranks", ErrMismatch, len(counts), c.size)
	}
	if err := rd.checkLen(len(acc)); err != nil {
		return nil, err
	}
	offs := make([]int, c.size+1)
	for i, n := range counts {
		if n < 0 {
			return nil, fmt.Errorf("%w: negative count %d for rank %d", ErrInvalidArgument, n, i)
		}
		// Checked before the multiplication, which could overflow.
		if n > (len(acc)-offs[i])/rd.elem {
			return nil, fmt.Errorf("%w: counts up to rank %d sum to more than the %d elements of data", ErrMismatch, i, len(acc)/rd.elem)
		}
		offs[i+1] = offs[i] + n*rd.elem
	}
	if offs[c.size] != len(acc) {
		return nil, fmt.Errorf("%w: counts sum to %d elements, data has %d bytes of %d-byte elements", ErrMismatch, offs[c.size]/rd.elem, len(acc), rd.elem)
	}
	algo := cl.reduceScatterAlgorithm(len(acc), rd)
	h := sizeHashInit.add(rd.elem)
	for _, n := range counts {
		h = h.add(n)
	}
	cl.use(wireOf(algo), rd.ident()|h.ident())
	if c.size > 1 {
		switch algo {
		case ReduceScatterRecursiveHalving:
			err = cl.reduceScatterHalving(acc, offs, rd)
		case ReduceScatterRing:
			err = cl.ringReduceScatter(nil, acc, offs, rd, 0)
		default:
			err = cl.reduceScatterPairwise(acc, offs, rd)
		}
	}
	if err != nil {
		return nil, err
	}
	return acc[offs[c.rank]:offs[c.rank+1]], nil
}
