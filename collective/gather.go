package collective

import (
	"context"
	"fmt"
)

// Gather collects every rank's data at root: on the root, result[i] is rank
// i's data (result[root] is data itself); other ranks get nil. Ranks may
// contribute different sizes, including zero.
//
// Algorithms: a binomial tree (lg p steps; each rank forwards its subtree's
// blocks, sliced out of what it received and sent on with vectored writes)
// or linear (every rank sends straight to the root). Auto uses the binomial
// tree: sizes differ per rank and are not known in advance, so there is no
// size-based switch; force GatherLinear for large gathers over few ranks.
func (c *Comm) Gather(ctx context.Context, root int, data []byte) (out [][]byte, err error) {
	cl, err := c.begin(ctx, "gather")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	if err := c.checkRoot(root); err != nil {
		return nil, err
	}
	if cl.tun.Force[OpGather] == GatherLinear {
		cl.use(wire(GatherLinear), rootIdent(root))
		return cl.gatherLinear(root, data)
	}
	cl.use(wire(GatherBinomial), rootIdent(root))
	return cl.gatherBinomial(root, data)
}

func (cl *call) gatherLinear(root int, data []byte) ([][]byte, error) {
	c := cl.c
	if c.rank != root {
		return nil, cl.sendMsg(root, 0, data)
	}
	out := make([][]byte, c.size)
	reqs := make([]*request, c.size)
	for i := range reqs {
		if i != root {
			reqs[i] = cl.post(i, 0, modeFresh, nil)
		}
	}
	out[root] = data
	for i, r := range reqs {
		if r == nil {
			continue
		}
		b, err := cl.recvFresh(r, i, 0)
		if err != nil {
			cl.abandon(err, reqs[i+1:]...)
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (cl *call) gatherBinomial(root int, data []byte) ([][]byte, error) {
	c := cl.c
	p := c.size
	vr := (c.rank - root + p) % p
	real := func(v int) int { return (v + root) % p }
	blocks := make([][]byte, p) // by relative rank
	blocks[vr] = data

	// Post the receives from every child first (smallest subtree first),
	// then take them in order.
	var kids []int
	var reqs []*request
	mask := 1
	for ; mask < p && vr&mask == 0; mask <<= 1 {
		if child := vr + mask; child < p {
			kids = append(kids, child)
			reqs = append(reqs, cl.post(real(child), 0, modeFresh, nil))
		}
	}
	for i, child := range kids {
		cnt := min(lowbit(child), p-child)
		if err := cl.recvBundle(reqs[i], real(child), 0, blocks[child:child+cnt], nil); err != nil {
			cl.abandon(err, reqs[i+1:]...)
			return nil, err
		}
	}
	if vr != 0 {
		cnt := min(lowbit(vr), p-vr)
		return nil, cl.sendMsg(real(vr-lowbit(vr)), 0, bundle(blocks[vr:vr+cnt], nil)...)
	}
	out := make([][]byte, p)
	for v, b := range blocks {
		out[real(v)] = b
	}
	return out, nil
}

// Scatter sends parts[i] from root to rank i and returns each rank's part.
// parts is read on the root only and must have Size() entries; parts may
// differ in size. The root gets parts[root] itself.
//
// Algorithms: binomial tree (the default) or linear (the root sends to
// every rank); force with ScatterBinomial / ScatterLinear.
func (c *Comm) Scatter(ctx context.Context, root int, parts [][]byte) (out []byte, err error) {
	cl, err := c.begin(ctx, "scatter")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	if err := c.checkRoot(root); err != nil {
		return nil, err
	}
	if c.rank == root && len(parts) != c.size {
		return nil, fmt.Errorf("%w: %d parts for %d ranks", ErrMismatch, len(parts), c.size)
	}
	if cl.tun.Force[OpScatter] == ScatterLinear {
		cl.use(wire(ScatterLinear), rootIdent(root))
		return cl.scatterLinear(root, parts)
	}
	cl.use(wire(ScatterBinomial), rootIdent(root))
	return cl.scatterBinomial(root, parts)
}

func (cl *call) scatterLinear(root int, parts [][]byte) ([]byte, error) {
	c := cl.c
	if c.rank != root {
		return cl.recvFresh(cl.post(root, 0, modeFresh, nil), root, 0)
	}
	for i := range c.size {
		j := (root + i) % c.size // start with the root's right neighbour
		if j == root {
			continue
		}
		if err := cl.sendMsg(j, 0, parts[j]); err != nil {
			return nil, err
		}
	}
	return parts[root], nil
}

func (cl *call) scatterBinomial(root int, parts [][]byte) ([]byte, error) {
	c := cl.c
	p := c.size
	vr := (c.rank - root + p) % p
	real := func(v int) int { return (v + root) % p }
	blocks := make([][]byte, p) // by relative rank
	mask := ceilPow2(p)
	if vr == 0 {
		for v := range blocks {
			blocks[v] = parts[real(v)]
		}
	} else {
		mask = lowbit(vr)
		cnt := min(mask, p-vr)
		parent := real(vr - mask)
		if err := cl.recvBundle(cl.post(parent, 0, modeFresh, nil), parent, 0, blocks[vr:vr+cnt], nil); err != nil {
			return nil, err
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		child := vr + mask
		if child >= p {
			continue
		}
		cnt := min(mask, p-child)
		if err := cl.sendMsg(real(child), 0, bundle(blocks[child:child+cnt], nil)...); err != nil {
			return nil, err
		}
	}
	return blocks[vr], nil
}
