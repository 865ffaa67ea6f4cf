package frame

import (
	"cmp"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// sortKeyCols is one resolved sort key: the column and its direction.
type sortKeyCols struct {
	col        arrow.Array
	desc       bool
	nullsFirst bool
}

// rowOrder builds the comparator of rows of a against rows of b over the
// same sort keys (a and b hold the key columns in key order).
func rowOrder(a, b []arrow.Array, keys []sortKeyCols) (rowsCmp, error) {
	c := make(rowsCmp, len(keys))
	for k, key := range keys {
		f, err := newCmp(a[k], b[k], key.desc, key.nullsFirst)
		if err != nil {
			return nil, fmt.Errorf("sort key %d: %w", k, err)
		}
		c[k] = f
	}
	return c, nil
}

// sortRows sorts the row indices idx stably by the keys. One integer or
// floating-point key takes a typed path that sorts (value, row) pairs;
// anything else compares rows column by column. It looks at ctx every
// pollRows rows (see sortStable).
func sortRows(ctx context.Context, idx []int32, keys []sortKeyCols) error {
	if len(keys) == 1 {
		if done, err := sortOneKey(ctx, idx, keys[0]); done {
			return err
		}
	}
	cols := make([]arrow.Array, len(keys))
	for k, key := range keys {
		cols[k] = key.col
	}
	c, err := rowOrder(cols, cols, keys)
	if err != nil {
		return err
	}
	return sortStable(ctx, idx, func(a, b int32) int { return c.compare(int(a), int(b)) })
}

// sortOneKey is the typed path of sortRows; it reports false for the types it
// does not handle.
func sortOneKey(ctx context.Context, idx []int32, key sortKeyCols) (bool, error) {
	switch key.col.DataType().ID() {
	case arrow.INT8:
		return true, sortByValue(ctx, idx, key, rawValues[int8](key.col), cmp.Compare[int8])
	case arrow.INT16:
		return true, sortByValue(ctx, idx, key, rawValues[int16](key.col), cmp.Compare[int16])
	case arrow.INT32, arrow.DATE32, arrow.TIME32:
		return true, sortByValue(ctx, idx, key, rawValues[int32](key.col), cmp.Compare[int32])
	case arrow.INT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION:
		return true, sortByValue(ctx, idx, key, rawValues[int64](key.col), cmp.Compare[int64])
	case arrow.UINT8:
		return true, sortByValue(ctx, idx, key, rawValues[uint8](key.col), cmp.Compare[uint8])
	case arrow.UINT16:
		return true, sortByValue(ctx, idx, key, rawValues[uint16](key.col), cmp.Compare[uint16])
	case arrow.UINT32:
		return true, sortByValue(ctx, idx, key, rawValues[uint32](key.col), cmp.Compare[uint32])
	case arrow.UINT64:
		return true, sortByValue(ctx, idx, key, rawValues[uint64](key.col), cmp.Compare[uint64])
	case arrow.FLOAT32:
		return true, sortByValue(ctx, idx, key, rawValues[float32](key.col), cmpFloatValue[float32])
	case arrow.FLOAT64:
		return true, sortByValue(ctx, idx, key, rawValues[float64](key.col), cmpFloatValue[float64])
	}
	return false, nil
}

type valueRow[T any] struct {
	v   T
	row int32
}

// sortByValue sorts idx by vals[idx[i]]: the non-null rows as (value, row)
// pairs, which keeps the comparisons in cache; ties keep their order in idx.
// Null rows keep their order and go first or last.
func sortByValue[T any](ctx context.Context, idx []int32, key sortKeyCols, vals []T, compare func(a, b T) int) error {
	valid := validityOf(key.col)
	ps := make([]valueRow[T], 0, len(idx))
	var nulls []int32
	for lo := 0; lo < len(idx); lo += pollRows {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, r := range idx[lo:min(lo+pollRows, len(idx))] {
			if valid.bits != nil && !valid.valid(int(r)) {
				nulls = append(nulls, r)
				continue
			}
			ps = append(ps, valueRow[T]{vals[r], r})
		}
	}
	sign := 1
	if key.desc {
		sign = -1
	}
	if err := sortStable(ctx, ps, func(a, b valueRow[T]) int { return sign * compare(a.v, b.v) }); err != nil {
		return err
	}
	out := idx[:0]
	if key.nullsFirst {
		out = append(out, nulls...)
	}
	for _, p := range ps {
		out = append(out, p.row)
	}
	if !key.nullsFirst {
		_ = append(out, nulls...) // fills idx in place
	}
	return nil
}
