package collective

// reduceBinomial: in step k a rank whose bit k is clear receives the
// partial result of rank+2^k and combines it (its own is the left
// operand); a rank whose bit k is set sends its partial result to
// rank-2^k and is done. For a commutative op the tree is rooted at root;
// otherwise at rank 0, which keeps rank order, and rank 0 then sends the
// result to root.
func (cl *call) reduceBinomial(root int, acc []byte, rd *reducer) error {
	p, r := cl.c.size, cl.c.rank
	base := 0
	if rd.commutative {
		base = root
	}
	vr := (r - base + p) % p
	real := func(v int) int { return (v + base) % p }
	tmp, pb := getBuf(len(acc))
	defer putScratch(pb)
	for k, mask := stepBase, 1; mask < p; k, mask = k+1, mask<<1 {
		if vr&mask != 0 {
			if err := cl.sendMsg(real(vr-mask), k, acc); err != nil {
				return err
			}
			break
		}
		if src := vr + mask; src < p {
			if err := cl.recvExact(real(src), k, tmp); err != nil {
				return err
			}
			if len(acc) > 0 {
				if err := rd.fwd(acc, tmp); err != nil {
					return err
				}
			}
		}
	}
	if base != root {
		switch r {
		case base:
			return cl.sendMsg(root, stepFoldOut, acc)
		case root:
			return cl.recvExact(base, stepFoldOut, acc)
		}
	}
	return nil
}

// reduceScatterGather (Rabenseifner's reduce): after the fold-in, a
// reduce-scatter by recursive halving leaves each group rank one reduced
// block, which it sends straight to the root; the root receives every
// block directly into place.
func (cl *call) reduceScatterGather(root int, acc []byte, rd *reducer) error {
	p, r := cl.c.size, cl.c.rank
	pof2 := floorPow2(p)
	rem := p - pof2
	tmp, pb := getBuf(len(acc))
	defer putScratch(pb)
	nr, err := cl.foldIn(acc, tmp, rd)
	if err != nil {
		return err
	}
	_, offs := split(len(acc)/rd.elem, pof2)
	for i := range offs {
		offs[i] *= rd.elem
	}
	const stepGather = stepBase + 64
	if nr >= 0 {
		lo, hi, sum, err := cl.halvingReduceScatter(nil, acc, tmp, offs, nr, rd, stepBase, r != root)
		if err != nil {
			return err
		}
		if r != root {
			return cl.forward(root, stepGather, acc[offs[lo]:offs[hi]], sum)
		}
	}
	if r != root {
		return nil
	}
	reqs := make([]*request, 0, pof2)
	for g := range pof2 {
		if src := realRank(g, rem); src != root {
			lo, hi := halvingOwner(g, pof2)
			reqs = cl.postExact(reqs, src, stepGather, acc[offs[lo]:offs[hi]])
		}
	}
	return cl.waitAll(reqs)
}
