package collective

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
	t.Run("a part over the limit is still refused", func(t *testing.T) {
		comms := newComms(t, pipeKind, 2, WithMaxFrame(100), WithAlgorithm(GatherLinear))
		errs := runAll(t, comms, 20*time.Second, func(ctx context.Context, c *Comm) error {
			_, err := c.Gather(ctx, 0, make([]byte, 101))
			return err
		})
		require.ErrorIs(t, errs[1], ErrFrameTooLarge)
		require.Error(t, errs[0])
	})
}
