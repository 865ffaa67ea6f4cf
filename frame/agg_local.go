package frame

import (
	"cmp"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// kernel is one aggregation the local engine computes per group.
type kernel int

const (
	kSum      kernel = iota // sum of non-null values; null when there are none
	kCount                  // number of non-null values (int64)
	kCountAll               // number of rows (int64)
	kMin                    // smallest non-null value; null when there are none
	kMax                    // largest non-null value; null when there are none
	kSumF64                 // sum of non-null values as float64 (the numerator of a mean)
)

func (k kernel) String() string {
	return [...]string{"sum", "count", "count_all", "min", "max", "sum_f64"}[k]
}

// sumType is the type a sum of dt produces: int64 for signed integers, uint64
// for unsigned ones, float64 for floating point.
func sumType(dt arrow.DataType) (arrow.DataType, error) {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
		return arrow.PrimitiveTypes.Int64, nil
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return arrow.PrimitiveTypes.Uint64, nil
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return arrow.PrimitiveTypes.Float64, nil
	}
	return nil, fmt.Errorf("cannot sum values of type %s", dt)
}

// orderable reports whether min and max are defined on dt.
func orderable(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO:
		return false
	}
	return isKeyType(dt)
}

// kernelType is the output type of kernel k over a column of type dt.
func kernelType(k kernel, dt arrow.DataType) (arrow.DataType, error) {
	switch k {
	case kSum:
		return sumType(dt)
	case kSumF64:
		if _, err := sumType(dt); err != nil {
			return nil, err
		}
		return arrow.PrimitiveTypes.Float64, nil
	case kCount, kCountAll:
		return arrow.PrimitiveTypes.Int64, nil
	}
	if !orderable(dt) {
		return nil, fmt.Errorf("cannot take %s of values of type %s", k, dt)
	}
	return dt, nil
}

// aggregate computes kernel k of col per group: gids[r] is the group of row r
// (0 <= gid < ng). col is nil for kCountAll. It looks at ctx every pollRows
// rows.
func aggregate(ctx context.Context, mem memory.Allocator, k kernel, col arrow.Array, gids []int32, ng int) (arrow.Array, error) {
	switch k {
	case kCountAll:
		counts := make([]int64, ng)
		for lo := 0; lo < len(gids); lo += pollRows {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for _, g := range gids[lo:min(lo+pollRows, len(gids))] {
				counts[g]++
			}
		}
		return fromSlice(mem, arrow.PrimitiveTypes.Int64, counts, nil), nil
	case kCount:
		counts := make([]int64, ng)
		valid := validityOf(col)
		for lo := 0; lo < len(gids); lo += pollRows {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for r := lo; r < min(lo+pollRows, len(gids)); r++ {
				if valid.valid(r) {
					counts[gids[r]]++
				}
			}
		}
		return fromSlice(mem, arrow.PrimitiveTypes.Int64, counts, nil), nil
	case kSum:
		return sumColumn(ctx, mem, col, gids, ng)
	case kSumF64:
		return sumFloatColumn(ctx, mem, col, gids, ng)
	case kMin, kMax:
		return extremeColumn(ctx, mem, col, gids, ng, k == kMax)
	}
	return nil, fmt.Errorf("unknown aggregation %d", k)
}

func sumColumn(ctx context.Context, mem memory.Allocator, col arrow.Array, gids []int32, ng int) (arrow.Array, error) {
	switch col.DataType().ID() {
	case arrow.INT8:
		return sumAs[int8, int64](ctx, mem, col, gids, ng)
	case arrow.INT16:
		return sumAs[int16, int64](ctx, mem, col, gids, ng)
	case arrow.INT32:
		return sumAs[int32, int64](ctx, mem, col, gids, ng)
	case arrow.INT64:
		return sumAs[int64, int64](ctx, mem, col, gids, ng)
	case arrow.UINT8:
		return sumAs[uint8, uint64](ctx, mem, col, gids, ng)
	case arrow.UINT16:
		return sumAs[uint16, uint64](ctx, mem, col, gids, ng)
	case arrow.UINT32:
		return sumAs[uint32, uint64](ctx, mem, col, gids, ng)
	case arrow.UINT64:
		return sumAs[uint64, uint64](ctx, mem, col, gids, ng)
	case arrow.FLOAT32:
		return sumAs[float32, float64](ctx, mem, col, gids, ng)
	case arrow.FLOAT64:
		return sumAs[float64, float64](ctx, mem, col, gids, ng)
	case arrow.FLOAT16:
		vals := rawValues[float16.Num](col)
		f := make([]float64, len(vals))
		for i, v := range vals {
			f[i] = float64(v.Float32())
		}
		return sumSlice[float64, float64](ctx, mem, f, validityOf(col), gids, ng)
	}
	_, err := sumType(col.DataType())
	return nil, err
}

// sumFloatColumn sums any numeric column per group as float64.
func sumFloatColumn(ctx context.Context, mem memory.Allocator, col arrow.Array, gids []int32, ng int) (arrow.Array, error) {
	switch col.DataType().ID() {
	case arrow.INT8:
		return sumAs[int8, float64](ctx, mem, col, gids, ng)
	case arrow.INT16:
		return sumAs[int16, float64](ctx, mem, col, gids, ng)
	case arrow.INT32:
		return sumAs[int32, float64](ctx, mem, col, gids, ng)
	case arrow.INT64:
		return sumAs[int64, float64](ctx, mem, col, gids, ng)
	case arrow.UINT8:
		return sumAs[uint8, float64](ctx, mem, col, gids, ng)
	case arrow.UINT16:
		return sumAs[uint16, float64](ctx, mem, col, gids, ng)
	case arrow.UINT32:
		return sumAs[uint32, float64](ctx, mem, col, gids, ng)
	case arrow.UINT64:
		return sumAs[uint64, float64](ctx, mem, col, gids, ng)
	}
	return sumColumn(ctx, mem, col, gids, ng) // floats sum as float64 already
}

type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

func sumAs[T number, A int64 | uint64 | float64](ctx context.Context, mem memory.Allocator, col arrow.Array, gids []int32, ng int) (arrow.Array, error) {
	return sumSlice[T, A](ctx, mem, rawValues[T](col), validityOf(col), gids, ng)
}

// sumSlice sums vals per group in the accumulator type A. Integer sums wrap
// on overflow, as Go's and Arrow's integer arithmetic does.
func sumSlice[T number, A int64 | uint64 | float64](ctx context.Context, mem memory.Allocator, vals []T, valid bitmap, gids []int32, ng int) (arrow.Array, error) {
	sums := make([]A, ng)
	seen := make([]bool, ng)
	for lo := 0; lo < len(gids); lo += pollRows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+pollRows, len(gids))
		vs := vals[lo:hi]
		if valid.bits == nil {
			for r, g := range gids[lo:hi] {
				sums[g] += A(vs[r])
				seen[g] = true
			}
		} else {
			for r, g := range gids[lo:hi] {
				if valid.valid(lo + r) {
					sums[g] += A(vs[r])
					seen[g] = true
				}
			}
		}
	}
	var dt arrow.DataType
	switch any(sums).(type) {
	case []int64:
		dt = arrow.PrimitiveTypes.Int64
	case []uint64:
		dt = arrow.PrimitiveTypes.Uint64
	default:
		dt = arrow.PrimitiveTypes.Float64
	}
	return fromSlice(mem, dt, sums, seen), nil
}

// extremeColumn computes min or max per group: typed over the value buffer
// for fixed-width types, by best row (then a gather) for the others.
func extremeColumn(ctx context.Context, mem memory.Allocator, col arrow.Array, gids []int32, ng int, isMax bool) (arrow.Array, error) {
	dt := col.DataType()
	if !orderable(dt) {
		return nil, fmt.Errorf("cannot order values of type %s", dt)
	}
	switch dt.ID() {
	case arrow.INT8:
		return extreme(ctx, mem, dt, rawValues[int8](col), col, gids, ng, isMax, cmp.Compare[int8])
	case arrow.INT16:
		return extreme(ctx, mem, dt, rawValues[int16](col), col, gids, ng, isMax, cmp.Compare[int16])
	case arrow.INT32, arrow.DATE32, arrow.TIME32, arrow.INTERVAL_MONTHS, arrow.DECIMAL32:
		return extreme(ctx, mem, dt, rawValues[int32](col), col, gids, ng, isMax, cmp.Compare[int32])
	case arrow.INT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION, arrow.DECIMAL64:
		return extreme(ctx, mem, dt, rawValues[int64](col), col, gids, ng, isMax, cmp.Compare[int64])
	case arrow.UINT8:
		return extreme(ctx, mem, dt, rawValues[uint8](col), col, gids, ng, isMax, cmp.Compare[uint8])
	case arrow.UINT16:
		return extreme(ctx, mem, dt, rawValues[uint16](col), col, gids, ng, isMax, cmp.Compare[uint16])
	case arrow.UINT32:
		return extreme(ctx, mem, dt, rawValues[uint32](col), col, gids, ng, isMax, cmp.Compare[uint32])
	case arrow.UINT64:
		return extreme(ctx, mem, dt, rawValues[uint64](col), col, gids, ng, isMax, cmp.Compare[uint64])
	case arrow.FLOAT32:
		return extreme(ctx, mem, dt, rawValues[float32](col), col, gids, ng, isMax, cmpFloatValue[float32])
	case arrow.FLOAT64:
		return extreme(ctx, mem, dt, rawValues[float64](col), col, gids, ng, isMax, cmpFloatValue[float64])
	}
	// Any other orderable type: find the best row of each group, then gather.
	order, err := newCmp(col, col, isMax, false)
	if err != nil {
		return nil, err
	}
	valid := validityOf(col)
	best := make([]int32, ng)
	for g := range best {
		best[g] = -1
	}
	for lo := 0; lo < len(gids); lo += pollRows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for r := lo; r < min(lo+pollRows, len(gids)); r++ {
			if !valid.valid(r) {
				continue
			}
			if g := gids[r]; best[g] < 0 || order(r, int(best[g])) < 0 {
				best[g] = int32(r)
			}
		}
	}
	return take(ctx, mem, col, best)
}

// extreme is min (or max) per group over a fixed-width value slice; NaN is
// the largest float, as in sorting.
func extreme[T any](ctx context.Context, mem memory.Allocator, dt arrow.DataType, vals []T, col arrow.Array, gids []int32, ng int, isMax bool, compare func(a, b T) int) (arrow.Array, error) {
	best := make([]T, ng)
	seen := make([]bool, ng)
	valid := validityOf(col)
	sign := 1
	if isMax {
		sign = -1
	}
	for lo := 0; lo < len(gids); lo += pollRows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+pollRows, len(gids))
		vs := vals[lo:hi]
		for r, g := range gids[lo:hi] {
			if valid.bits != nil && !valid.valid(lo+r) {
				continue
			}
			v := vs[r]
			if !seen[g] || sign*compare(v, best[g]) < 0 {
				best[g], seen[g] = v, true
			}
		}
	}
	return fromSliceAny(mem, dt, best, seen), nil
}

// fromSlice builds an array of type dt from Go values; valid (nil = all
// valid) marks the non-null slots.
func fromSlice[T arrow.FixedWidthType](mem memory.Allocator, dt arrow.DataType, vals []T, valid []bool) arrow.Array {
	return fromSliceAny(mem, dt, vals, valid)
}

func fromSliceAny[T any](mem memory.Allocator, dt arrow.DataType, vals []T, valid []bool) arrow.Array {
	n := len(vals)
	var zero T
	width := int(sizeOf(zero))
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(n * width)
	if n > 0 {
		copy(buf.Bytes(), unsafeBytes(vals))
	}
	var bm *memory.Buffer
	nulls := 0
	for _, v := range valid {
		if !v {
			nulls++
		}
	}
	if nulls > 0 {
		bm = memory.NewResizableBuffer(mem)
		bm.Resize(int(bitutil.BytesForBits(int64(n))))
		bits := bm.Bytes()
		clear(bits)
		for i, v := range valid {
			if v {
				bitutil.SetBit(bits, i)
			}
		}
	}
	data := array.NewData(dt, n, []*memory.Buffer{bm, buf}, nil, nulls, 0)
	defer data.Release()
	buf.Release()
	if bm != nil {
		bm.Release()
	}
	return array.MakeFromData(data)
}
