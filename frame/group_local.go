package frame

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// groupRows gives every row a dense group id by its key columns (rows whose
// keys are equal, nulls included, share a group; ids in order of first
// appearance) and returns the first row of each group. With no key columns
// every row is in group 0, and there is one group even when there are no
// rows (a global aggregate has one result row). Many rows of one 4- or 8-byte
// integer-like key go through radixGroup, whose groups come in another order.
func groupRows(ctx context.Context, keys []arrow.Array, n int) (gids, firsts []int32, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	gids = make([]int32, n)
	if len(keys) == 0 {
		return gids, []int32{0}, nil
	}
	if len(keys) == 1 && n >= 4*radixRows {
		switch w, ok := fixedIntWidth(keys[0].DataType()); {
		case ok && w == 8:
			return radixGroup[uint64](ctx, keys[0])
		case ok && w == 4:
			return radixGroup[uint32](ctx, keys[0])
		}
	}
	ix, err := newKeyIndex(keys, nil, false, 0)
	if err != nil {
		return nil, nil, err
	}
	scratch := make([]uint64, min(hashBlock, n))
	if err := hashBlocks(ctx, keys, n, scratch, func(h []uint64, lo int) {
		ix.insert(h, lo, gids[lo:lo+len(h)])
	}); err != nil {
		return nil, nil, fmt.Errorf("hash group keys: %w", err)
	}
	return gids, ix.firsts(), nil
}

// kernelSpec is one per-group aggregation of one input column (col < 0 for
// kCountAll).
type kernelSpec struct {
	k   kernel
	col int
}

// aggregateLocal groups the rows of cols by the columns keyIdx and computes
// the kernels per group. It returns the key columns (one row per group, the
// group's first row) followed by one column per kernel. Without key columns
// it returns one row.
func aggregateLocal(ctx context.Context, mem memory.Allocator, cols []arrow.Array, n int, keyIdx []int, specs []kernelSpec) ([]arrow.Array, error) {
	return aggregateRows(ctx, mem, cols, n, keyIdx, specs, false)
}

// aggregateRows is aggregateLocal; with perRow every row is its own group
// (no hashing: the keys pass through and each kernel sees one row), which
// turns raw rows into partial aggregates when grouping would not reduce
// them.
func aggregateRows(ctx context.Context, mem memory.Allocator, cols []arrow.Array, n int, keyIdx []int, specs []kernelSpec, perRow bool) ([]arrow.Array, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	keys := make([]arrow.Array, len(keyIdx))
	for i, k := range keyIdx {
		keys[i] = cols[k]
	}
	var gids, firsts []int32
	if perRow && len(keys) > 0 {
		gids = make([]int32, n)
		for i := range gids {
			gids[i] = int32(i)
		}
	} else {
		// Group by value: dictionary-encoded keys are decoded for the index
		// (the output keeps the column's own type).
		byValue := make([]arrow.Array, len(keys))
		defer releaseAll(byValue)
		for i, k := range keys {
			d, err := decoded(ctx, mem, k)
			if err != nil {
				return nil, err
			}
			byValue[i] = d
		}
		var err error
		if gids, firsts, err = groupRows(ctx, byValue, n); err != nil {
			return nil, err
		}
	}
	ng := len(firsts)
	if gids != nil && firsts == nil { // per row
		ng = n
	}
	out := make([]arrow.Array, 0, len(keys)+len(specs))
	fail := func(err error) ([]arrow.Array, error) {
		releaseAll(out)
		return nil, err
	}
	for _, k := range keys {
		if firsts == nil { // per row: the keys as they are
			k.Retain()
			out = append(out, k)
			continue
		}
		a, err := take(ctx, mem, k, firsts)
		if err != nil {
			return fail(err)
		}
		out = append(out, a)
	}
	for _, s := range specs {
		var col arrow.Array
		if s.col >= 0 {
			col = cols[s.col]
		}
		a, err := aggregate(ctx, mem, s.k, col, gids, ng)
		if err != nil {
			return fail(err)
		}
		out = append(out, a)
	}
	return out, nil
}
