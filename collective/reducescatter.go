package collective

// reduceScatterHalving (commutative ops): after the fold-in, group rank nr
// stands for ranks 2nr and 2nr+1 (nr < rem) or nr+rem, whose blocks are
// contiguous; in each step, largest distance first, it sends the half of
// its current range of group blocks that its partner keeps and reduces the
// half it keeps. It ends holding its own group block, and hands the
// folded-out rank its part.
func (cl *call) reduceScatterHalving(acc []byte, offs []int, rd *reducer) error {
	p, r := cl.c.size, cl.c.rank
	pof2 := floorPow2(p)
	rem := p - pof2
	tmp, pb := getBuf(len(acc))
	defer putScratch(pb)
	nr, err := cl.foldIn(acc, tmp, rd)
	if err != nil {
		return err
	}
	// gofs[g] is the byte offset of group rank g's blocks.
	gofs := make([]int, pof2+1)
	for g := range pof2 {
		if g < rem {
			gofs[g] = offs[2*g]
		} else {
			gofs[g] = offs[g+rem]
		}
	}
	gofs[pof2] = offs[p]
	if nr >= 0 {
		lo, hi := 0, pof2
		step := stepBase
		for mask := pof2 / 2; mask > 0; mask, step = mask>>1, step+1 {
			dst := realRank(nr^mask, rem)
			mid := lo + mask
			sLo, sHi, kLo, kHi := mid, hi, lo, mid
			if nr&mask != 0 {
				sLo, sHi, kLo, kHi = lo, mid, mid, hi
			}
			keep := acc[gofs[kLo]:gofs[kHi]]
			in := tmp[:len(keep)]
			if err := cl.sendrecvExact(dst, dst, step, in, acc[gofs[sLo]:gofs[sHi]]); err != nil {
				return err
			}
			if err := cl.combine(rd, keep, in, dst); err != nil {
				return err
			}
			lo, hi = kLo, kHi
		}
	}
	if r < 2*rem {
		if r%2 == 1 {
			return cl.sendMsg(r-1, stepFoldOut, acc[offs[r-1]:offs[r]])
		}
		return cl.recvExact(r+1, stepFoldOut, acc[offs[r]:offs[r+1]])
	}
	return nil
}

// reduceScatterPairwise: in step s rank r sends its contribution to rank
// r+s's block and receives rank r-s's contribution to its own. A
// commutative op reduces each as it arrives; a non-commutative one keeps
// them all and combines them in rank order at the end.
func (cl *call) reduceScatterPairwise(acc []byte, offs []int, rd *reducer) error {
	p, r := cl.c.size, cl.c.rank
	mine := acc[offs[r]:offs[r+1]]
	var (
		parts [][]byte
		pbs   []*pbuf
	)
	if !rd.commutative {
		parts = make([][]byte, p)
		pbs = make([]*pbuf, p)
		parts[r] = mine
		defer func() {
			if p := recover(); p != nil {
				panic(p) // receives may be posted: leave the buffers to the collector
			}
			for _, pb := range pbs {
				putBuf(pb)
			}
		}()
	}
	tmp, pb := getBuf(len(mine))
	defer putScratch(pb)
	for s := 1; s < p; s++ {
		to, from := (r+s)%p, (r-s+p)%p
		in := tmp
		if !rd.commutative {
			in, pbs[from] = getBuf(len(mine))
			parts[from] = in
		}
		if err := cl.sendrecvExact(to, from, 0, in, acc[offs[to]:offs[to+1]]); err != nil {
			return err
		}
		if rd.commutative && len(mine) > 0 {
			if err := rd.fwd(mine, in); err != nil {
				return err
			}
		}
	}
	if !rd.commutative && len(mine) > 0 {
		// mine = parts[0] ⊕ parts[1] ⊕ ... ⊕ parts[p-1]
		for j := r - 1; j >= 0; j-- {
			if err := rd.rev(mine, parts[j]); err != nil {
				return err
			}
		}
		for j := r + 1; j < p; j++ {
			if err := rd.fwd(mine, parts[j]); err != nil {
				return err
			}
		}
	}
	return nil
}
