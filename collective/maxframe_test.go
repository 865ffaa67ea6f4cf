package collective

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// TestBundlesOverMaxFrame: collectives whose messages bundle several ranks'
// blocks (binomial gather and scatter, recursive-doubling and Bruck
// allgather, Bruck alltoall, split) and bcast's preamble work when a bundle
// exceeds WithMaxFrame though every block fits: the bundle travels as
// several frames. The reviewer's case: 8 ranks, WithMaxFrame(1000),
// 400-byte parts (a 1632-byte bundle).
func TestBundlesOverMaxFrame(t *testing.T) {
	type coll struct {
		name string
		opts []Option
		call func(ctx context.Context, c *Comm, part int) error
	}
	gather := func(ctx context.Context, c *Comm, part int) error {
		for _, root := range []int{0, c.Size() - 1} {
			got, err := c.Gather(ctx, root, payload(c.Rank(), part, root))
			if err != nil {
				return err
			}
			if c.Rank() != root {
				continue
			}
			for i, b := range got {
				if !bytes.Equal(b, payload(i, part, root)) {
					return fmt.Errorf("gather root %d: block %d wrong", root, i)
				}
			}
		}
		return nil
	}
	scatter := func(ctx context.Context, c *Comm, part int) error {
		for _, root := range []int{0, c.Size() - 1} {
			var parts [][]byte
			if c.Rank() == root {
				for i := range c.Size() {
					parts = append(parts, payload(i, part+i, root))
				}
			}
			got, err := c.Scatter(ctx, root, parts)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, payload(c.Rank(), part+c.Rank(), root)) {
				return fmt.Errorf("scatter root %d: wrong part", root)
			}
		}
		return nil
	}
	allgather := func(ctx context.Context, c *Comm, part int) error {
		got, err := c.Allgather(ctx, payload(c.Rank(), part+c.Rank(), 1))
		if err != nil {
			return err
		}
		for i, b := range got {
			if !bytes.Equal(b, payload(i, part+i, 1)) {
				return fmt.Errorf("allgather: block %d wrong", i)
			}
		}
		return nil
	}
	allgatherInto := func(ctx context.Context, c *Comm, part int) error {
		out := make([]byte, part*c.Size())
		if err := c.AllgatherInto(ctx, payload(c.Rank(), part, 2), out); err != nil {
			return err
		}
		for i := range c.Size() {
			if !bytes.Equal(out[i*part:(i+1)*part], payload(i, part, 2)) {
				return fmt.Errorf("allgather-into: block %d wrong", i)
			}
		}
		return nil
	}
	alltoall := func(ctx context.Context, c *Comm, part int) error {
		p := c.Size()
		data := make([]byte, 0, part*p)
		for j := range p {
			data = append(data, payload(c.Rank()*p+j, part, 3)...)
		}
		got, err := c.Alltoall(ctx, data)
		if err != nil {
			return err
		}
		for j := range p {
			if !bytes.Equal(got[j*part:(j+1)*part], payload(j*p+c.Rank(), part, 3)) {
				return fmt.Errorf("alltoall: block from %d wrong", j)
			}
		}
		return nil
	}
	bcast := func(ctx context.Context, c *Comm, part int) error {
		// A payload of the frame limit itself: with the 9-byte preamble
		// the first message is larger than a frame.
		n := part
		for _, root := range []int{0, c.Size() - 1} {
			var data []byte
			if c.Rank() == root {
				data = payload(root, n, 4)
			}
			got, err := c.Bcast(ctx, root, data)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, payload(root, n, 4)) {
				return fmt.Errorf("bcast root %d: wrong data", root)
			}
		}
		return nil
	}
	split := func(ctx context.Context, c *Comm, _ int) error {
		sub, err := c.Split(ctx, c.Rank()%2, -c.Rank())
		if err != nil {
			return err
		}
		want := (c.Size() - c.Rank() - 1) / 2 // ranked by descending world rank
		if sub.Rank() != want {
			return fmt.Errorf("split: rank %d in its part, want %d", sub.Rank(), want)
		}
		return sub.Barrier(ctx)
	}
	colls := []coll{
		{"gather", nil, gather},
		{"gather-linear", []Option{WithAlgorithm(GatherLinear)}, gather},
		{"scatter", nil, scatter},
		{"allgather", nil, allgather},
		{"allgather-recursive-doubling", []Option{WithAlgorithm(AllgatherRecursiveDoubling)}, allgather},
		{"allgather-bruck", []Option{WithAlgorithm(AllgatherBruck)}, allgather},
		{"allgather-into-recursive-doubling", []Option{WithAlgorithm(AllgatherRecursiveDoubling)}, allgatherInto},
		{"allgather-into-bruck", []Option{WithAlgorithm(AllgatherBruck)}, allgatherInto},
		{"alltoall-bruck", []Option{WithAlgorithm(AlltoallBruck)}, alltoall},
		{"bcast", nil, bcast},
		{"split", nil, split},
	}
	cases := []struct {
		p, maxFrame, part int
	}{
		{8, 1000, 400},  // the reviewer's case
		{7, 1000, 400},  // folded ranks in recursive doubling
		{8, 1000, 1000}, // parts of exactly the limit
		{5, 1000, 0},    // empty parts
		{8, 24, 24},     // a bundle's table alone spans frames
		{3, 4096, 4096}, // few ranks
		{6, 256 << 10, 100 << 10},
	}
	for _, tc := range cases {
		for _, cc := range colls {
			t.Run(fmt.Sprintf("%s/p=%d/max=%d/part=%d", cc.name, tc.p, tc.maxFrame, tc.part), func(t *testing.T) {
				opts := append([]Option{WithMaxFrame(tc.maxFrame)}, cc.opts...)
				comms := newComms(t, tcpMesh, tc.p, opts...)
				requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
					return cc.call(ctx, c, tc.part)
				})
			})
		}
	}
	t.Run("pipes", func(t *testing.T) {
		for _, cc := range colls {
			comms := newComms(t, pipeKind, 8, append([]Option{WithMaxFrame(1000)}, cc.opts...)...)
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				return cc.call(ctx, c, 400)
			})
		}
	})
	t.Run("a part over the limit travels in frames", func(t *testing.T) {
		comms := newComms(t, pipeKind, 2, WithMaxFrame(100), WithAlgorithm(GatherLinear))
		requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
			got, err := c.Gather(ctx, 0, payload(c.Rank(), 101, 9))
			if err != nil || c.Rank() != 0 {
				return err
			}
			if !bytes.Equal(got[1], payload(1, 101, 9)) {
				return fmt.Errorf("gather: rank 1's part wrong")
			}
			return nil
		})
	})
}

// frameCall runs one collective with every rank's contribution of about n
// bytes (n varies per rank where the collective allows) and checks the
// result.
type frameCall func(ctx context.Context, c *Comm, n int) error

// frameCalls is one call of every collective, for
// TestEveryCollectiveOverMaxFrame.
var frameCalls = map[Collective]frameCall{
	OpBarrier: func(ctx context.Context, c *Comm, _ int) error { return c.Barrier(ctx) },
	OpBcast: func(ctx context.Context, c *Comm, n int) error {
		root := c.Size() - 1
		want := payload(root, n, 11)
		var data []byte
		if c.Rank() == root {
			data = want
		}
		got, err := c.Bcast(ctx, root, data)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("bcast: wrong data")
		}
		buf := make([]byte, n)
		if c.Rank() == 0 {
			copy(buf, payload(0, n, 12))
		}
		if err := c.BcastInto(ctx, 0, buf); err != nil {
			return err
		}
		if !bytes.Equal(buf, payload(0, n, 12)) {
			return fmt.Errorf("bcast-into: wrong data")
		}
		return nil
	},
	OpGather: func(ctx context.Context, c *Comm, n int) error {
		root := c.Size() / 2
		got, err := c.Gather(ctx, root, payload(c.Rank(), n+37*c.Rank(), 13))
		if err != nil || c.Rank() != root {
			return err
		}
		for i, b := range got {
			if !bytes.Equal(b, payload(i, n+37*i, 13)) {
				return fmt.Errorf("gather: block %d wrong", i)
			}
		}
		return nil
	},
	OpScatter: func(ctx context.Context, c *Comm, n int) error {
		root := c.Size() - 1
		var parts [][]byte
		if c.Rank() == root {
			for i := range c.Size() {
				parts = append(parts, payload(i, n+37*i, 14))
			}
		}
		got, err := c.Scatter(ctx, root, parts)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, payload(c.Rank(), n+37*c.Rank(), 14)) {
			return fmt.Errorf("scatter: wrong part")
		}
		return nil
	},
	OpAllgather: func(ctx context.Context, c *Comm, n int) error {
		got, err := c.Allgather(ctx, payload(c.Rank(), n+37*c.Rank(), 15))
		if err != nil {
			return err
		}
		for i, b := range got {
			if !bytes.Equal(b, payload(i, n+37*i, 15)) {
				return fmt.Errorf("allgather: block %d wrong", i)
			}
		}
		out := make([]byte, n*c.Size())
		if err := c.AllgatherInto(ctx, payload(c.Rank(), n, 16), out); err != nil {
			return err
		}
		for i := range c.Size() {
			if !bytes.Equal(out[i*n:(i+1)*n], payload(i, n, 16)) {
				return fmt.Errorf("allgather-into: block %d wrong", i)
			}
		}
		return nil
	},
	OpAlltoall: func(ctx context.Context, c *Comm, n int) error {
		p := c.Size()
		data := make([]byte, 0, n*p)
		for j := range p {
			data = append(data, payload(c.Rank()*p+j, n, 17)...)
		}
		got, err := c.Alltoall(ctx, data)
		if err != nil {
			return err
		}
		for j := range p {
			if !bytes.Equal(got[j*n:(j+1)*n], payload(j*p+c.Rank(), n, 17)) {
				return fmt.Errorf("alltoall: block from %d wrong", j)
			}
		}
		return nil
	},
	OpAlltoallv: func(ctx context.Context, c *Comm, n int) error {
		p, r := c.Size(), c.Rank()
		size := func(from, to int) int { return n + 31*from + 7*to }
		parts := make([][]byte, p)
		for j := range parts {
			parts[j] = payload(r*p+j, size(r, j), 18)
		}
		got, err := c.Alltoallv(ctx, parts)
		if err != nil {
			return err
		}
		out := make([][]byte, p)
		for j := range out {
			out[j] = make([]byte, size(j, r))
		}
		if err := c.AlltoallvInto(ctx, parts, out); err != nil {
			return err
		}
		for j := range p {
			want := payload(j*p+r, size(j, r), 18)
			if !bytes.Equal(got[j], want) || !bytes.Equal(out[j], want) {
				return fmt.Errorf("alltoallv: part from %d wrong", j)
			}
		}
		return nil
	},
	OpReduce: func(ctx context.Context, c *Comm, n int) error {
		k := n/8 + 1
		for _, op := range frameOps() {
			root := c.Size() / 2
			got, err := Reduce(ctx, c, root, frameVec(c.Rank(), k), op.op)
			if err != nil {
				return err
			}
			if c.Rank() == root {
				if err := op.check(got, c.Size(), k); err != nil {
					return fmt.Errorf("reduce %s: %w", op.op, err)
				}
			}
		}
		return nil
	},
	OpAllreduce: func(ctx context.Context, c *Comm, n int) error {
		k := n/8 + 1
		for _, op := range frameOps() {
			got, err := Allreduce(ctx, c, frameVec(c.Rank(), k), op.op)
			if err != nil {
				return err
			}
			if err := op.check(got, c.Size(), k); err != nil {
				return fmt.Errorf("allreduce %s: %w", op.op, err)
			}
		}
		return nil
	},
	OpReduceScatter: func(ctx context.Context, c *Comm, n int) error {
		p := c.Size()
		counts := make([]int, p)
		total := 0
		for i := range counts {
			counts[i] = n/8 + 3*i
			total += counts[i]
		}
		for _, op := range frameOps() {
			got, err := ReduceScatter(ctx, c, frameVec(c.Rank(), total), counts, op.op)
			if err != nil {
				return err
			}
			off := 0
			for i := range c.Rank() {
				off += counts[i]
			}
			if len(got) != counts[c.Rank()] {
				return fmt.Errorf("reduce-scatter %s: %d elements, want %d", op.op, len(got), counts[c.Rank()])
			}
			if err := op.checkRange(got, p, off); err != nil {
				return fmt.Errorf("reduce-scatter %s: %w", op.op, err)
			}
		}
		return nil
	},
}

// frameVec is rank r's vector of k elements for the reductions of
// TestEveryCollectiveOverMaxFrame.
func frameVec(r, k int) []int64 {
	v := make([]int64, k)
	for i := range v {
		v[i] = int64(1000*r + i)
	}
	return v
}

// frameOp is a reduction and its expected result over frameVecs.
type frameOp struct {
	op   Op[int64]
	want func(p, i int) int64 // element i of the result
}

// frameOps are a commutative op (Sum) and a non-commutative one (the
// right operand: the result is the last rank's vector).
func frameOps() []frameOp {
	return []frameOp{
		{Sum[int64](), func(p, i int) int64 { return int64(1000*p*(p-1)/2 + p*i) }},
		{NewOp(func(_, b int64) int64 { return b }, false), func(p, i int) int64 { return int64(1000*(p-1) + i) }},
	}
}

func (o frameOp) check(got []int64, p, k int) error {
	if len(got) != k {
		return fmt.Errorf("%d elements, want %d", len(got), k)
	}
	return o.checkRange(got, p, 0)
}

// checkRange checks got as the elements of the result from off on.
func (o frameOp) checkRange(got []int64, p, off int) error {
	for i, v := range got {
		if want := o.want(p, off+i); v != want {
			return fmt.Errorf("element %d is %d, want %d", off+i, v, want)
		}
	}
	return nil
}

// TestEveryCollectiveOverMaxFrame: WithMaxFrame bounds the frames, never
// what a collective moves. Every collective under every algorithm (and
// Auto) works when its messages — one rank's block, a vector, a ring
// chunk, a segment, a bundle — exceed the frame limit, including messages
// of exactly a multiple of the limit, over TCP and over pipes; and the
// reviewer's cases: an 8-rank Bcast of 400 KiB and a 2-rank Allreduce of
// 160 KB under WithMaxFrame(64 << 10).
func TestEveryCollectiveOverMaxFrame(t *testing.T) {
	cases := []struct {
		kind        meshKind
		p, max, n   int
		tiny, short bool // tiny switch points (Auto's large paths); a few collectives only
	}{
		{tcpMesh, 2, 100, 250, false, false},
		{tcpMesh, 3, 128, 512, true, false}, // multiples of the limit
		{tcpMesh, 5, 100, 1000, false, false},
		{tcpMesh, 8, 64, 200, true, false},
		{tcpMesh, 3, 7, 40, false, false}, // a limit below the bcast preamble and an element
		{pipeKind, 4, 100, 700, false, false},
	}
	for _, tc := range cases {
		for op := range numCollectives {
			algos := append([]Algorithm{Auto}, Algorithms(op)...)
			for _, a := range algos {
				t.Run(fmt.Sprintf("%v/%v/p=%d/max=%d/n=%d/%s", op, a, tc.p, tc.max, tc.n, tc.kind), func(t *testing.T) {
					tun := DefaultTuning()
					if tc.tiny {
						tun = tinyTuning()
					}
					tun.ChunkSize = 3 * tc.max // ring chunks over the limit: capped
					tun.Force[op] = a
					comms := newComms(t, tc.kind, tc.p, WithMaxFrame(tc.max), WithTuning(tun))
					requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
						return frameCalls[op](ctx, c, tc.n)
					})
				})
			}
		}
	}
	t.Run("bcast of 400 KiB at 8 ranks", func(t *testing.T) {
		for _, a := range Algorithms(OpBcast) {
			comms := newComms(t, tcpMesh, 8, WithMaxFrame(64<<10), WithAlgorithm(a))
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				return frameCalls[OpBcast](ctx, c, 400<<10)
			})
		}
	})
	t.Run("allreduce of 160 KB at 2 ranks", func(t *testing.T) {
		comms := newComms(t, tcpMesh, 2, WithMaxFrame(64<<10))
		requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
			got, err := Allreduce(ctx, c, frameVec(c.Rank(), 20_000), Sum[int64]())
			if err != nil {
				return err
			}
			return frameOps()[0].check(got, 2, 20_000)
		})
	})
}
