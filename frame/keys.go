package frame

import (
	"bytes"
	"cmp"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/float16"
)

// bitmap is a read-only view of an Arrow validity bitmap. A nil bits means
// every slot is valid.
type bitmap struct {
	bits []byte
	off  int
}

func validityOf(a arrow.Array) bitmap {
	if a.NullN() == 0 {
		return bitmap{}
	}
	return bitmap{bits: a.NullBitmapBytes(), off: a.Data().Offset()}
}

func (b bitmap) valid(i int) bool {
	if b.bits == nil {
		return true
	}
	i += b.off
	return b.bits[i>>3]&(1<<(i&7)) != 0
}

// isKeyType reports whether values of dt can be hashed, compared for
// equality and ordered by frame's kernels.
func isKeyType(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.BOOL, arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY,
		arrow.FIXED_SIZE_BINARY, arrow.DECIMAL128, arrow.DECIMAL256, arrow.FLOAT16:
		return true
	}
	_, ok := fixedWidth(dt)
	return ok
}

// fixedWidth returns the byte width of the fixed-width, non-boolean types whose
// values compare for equality bit for bit.
func fixedWidth(dt arrow.DataType) (int, bool) {
	switch dt.ID() {
	case arrow.INT8, arrow.UINT8:
		return 1, true
	case arrow.INT16, arrow.UINT16, arrow.FLOAT16:
		return 2, true
	case arrow.INT32, arrow.UINT32, arrow.FLOAT32, arrow.DATE32, arrow.TIME32, arrow.INTERVAL_MONTHS, arrow.DECIMAL32:
		return 4, true
	case arrow.INT64, arrow.UINT64, arrow.FLOAT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP,
		arrow.DURATION, arrow.INTERVAL_DAY_TIME, arrow.DECIMAL64:
		return 8, true
	case arrow.DECIMAL128, arrow.INTERVAL_MONTH_DAY_NANO:
		return 16, true
	case arrow.DECIMAL256:
		return 32, true
	}
	return 0, false
}

// rawValues returns the value buffer of a fixed-width array as a slice of T
// (len = a.Len()), reinterpreting its bytes.
func rawValues[T arrow.FixedWidthType](a arrow.Array) []T {
	return arrow.GetValues[T](a.Data(), 1)
}

// eqFunc reports whether row i of one column equals row j of another.
type eqFunc func(i, j int) bool

// newEq returns an equality test between row i of a and row j of b, which must
// have the same type. Two nulls are equal (group-by semantics); joins drop
// rows with null keys before they compare. Floating-point values compare as
// arrowio.HashRows hashes them: by value, -0 equal to +0 and every NaN equal
// to every other NaN. Other values compare bit for bit.
func newEq(a, b arrow.Array) (eqFunc, error) {
	if !arrow.TypeEqual(a.DataType(), b.DataType()) {
		return nil, fmt.Errorf("key types differ: %s and %s", a.DataType(), b.DataType())
	}
	va, vb := validityOf(a), validityOf(b)
	var eq eqFunc
	switch dt := a.DataType(); dt.ID() {
	case arrow.BOOL:
		x, y := a.(*array.Boolean), b.(*array.Boolean)
		eq = func(i, j int) bool { return x.Value(i) == y.Value(j) }
	case arrow.STRING, arrow.BINARY:
		xo, xd := varOffsets[int32](a)
		yo, yd := varOffsets[int32](b)
		eq = func(i, j int) bool { return bytes.Equal(xd[xo[i]:xo[i+1]], yd[yo[j]:yo[j+1]]) }
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		xo, xd := varOffsets[int64](a)
		yo, yd := varOffsets[int64](b)
		eq = func(i, j int) bool { return bytes.Equal(xd[xo[i]:xo[i+1]], yd[yo[j]:yo[j+1]]) }
	case arrow.FIXED_SIZE_BINARY:
		x, y := a.(*array.FixedSizeBinary), b.(*array.FixedSizeBinary)
		eq = func(i, j int) bool { return bytes.Equal(x.Value(i), y.Value(j)) }
	case arrow.FLOAT16:
		x, y := rawValues[float16.Num](a), rawValues[float16.Num](b)
		eq = func(i, j int) bool { return floatEq(x[i].Float32(), y[j].Float32()) }
	case arrow.FLOAT32:
		x, y := rawValues[float32](a), rawValues[float32](b)
		eq = func(i, j int) bool { return floatEq(x[i], y[j]) }
	case arrow.FLOAT64:
		x, y := rawValues[float64](a), rawValues[float64](b)
		eq = func(i, j int) bool { return floatEq(x[i], y[j]) }
	default:
		w, ok := fixedWidth(dt)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %s", dt)
		}
		switch w {
		case 1:
			eq = eqFixed(rawValues[uint8](a), rawValues[uint8](b))
		case 2:
			eq = eqFixed(rawValues[uint16](a), rawValues[uint16](b))
		case 4:
			eq = eqFixed(rawValues[uint32](a), rawValues[uint32](b))
		case 8:
			eq = eqFixed(rawValues[uint64](a), rawValues[uint64](b))
		case 16:
			eq = eqFixed(rawValues[decimal128.Num](a), rawValues[decimal128.Num](b))
		case 32:
			eq = eqFixed(rawValues[decimal256.Num](a), rawValues[decimal256.Num](b))
		}
	}
	if va.bits == nil && vb.bits == nil {
		return eq, nil
	}
	return func(i, j int) bool {
		ni, nj := !va.valid(i), !vb.valid(j)
		if ni || nj {
			return ni && nj
		}
		return eq(i, j)
	}, nil
}

func floatEq[T float32 | float64](a, b T) bool { return a == b || (a != a && b != b) }

func eqFixed[T comparable](x, y []T) eqFunc {
	return func(i, j int) bool { return x[i] == y[j] }
}

// varOffsets returns the offsets (len = a.Len()+1) and the whole data buffer of
// a variable-width binary or string array: value i is data[off[i]:off[i+1]].
func varOffsets[O int32 | int64](a arrow.Array) ([]O, []byte) {
	d := a.Data()
	var data []byte
	if b := d.Buffers()[2]; b != nil {
		data = b.Bytes()
	}
	if d.Buffers()[1] == nil || d.Buffers()[1].Len() == 0 {
		return make([]O, a.Len()+1), data
	}
	return arrow.GetOffsets[O](d, 1), data
}

// rowsEq compares row i of the key columns a with row j of the key columns b.
type rowsEq []eqFunc

func newRowsEq(a, b []arrow.Array) (rowsEq, error) {
	eqs := make(rowsEq, len(a))
	for k := range a {
		eq, err := newEq(a[k], b[k])
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", k, err)
		}
		eqs[k] = eq
	}
	return eqs, nil
}

func (e rowsEq) equal(i, j int) bool {
	for _, eq := range e {
		if !eq(i, j) {
			return false
		}
	}
	return true
}

// cmpFunc orders row i of one column against row j of another: negative if i
// sorts first, zero if tied.
type cmpFunc func(i, j int) int

// newCmp returns the order of row i of a against row j of b (same type) for a
// sort key: nulls first or last whatever the direction; NaN after every number
// in ascending order, before them in descending order (see cmpFloat).
func newCmp(a, b arrow.Array, desc, nullsFirst bool) (cmpFunc, error) {
	if !arrow.TypeEqual(a.DataType(), b.DataType()) {
		return nil, fmt.Errorf("sort key types differ: %s and %s", a.DataType(), b.DataType())
	}
	var c cmpFunc
	switch dt := a.DataType(); dt.ID() {
	case arrow.INT8:
		c = cmpOrdered(rawValues[int8](a), rawValues[int8](b))
	case arrow.INT16:
		c = cmpOrdered(rawValues[int16](a), rawValues[int16](b))
	case arrow.INT32, arrow.DATE32, arrow.TIME32, arrow.INTERVAL_MONTHS, arrow.DECIMAL32:
		c = cmpOrdered(rawValues[int32](a), rawValues[int32](b))
	case arrow.INT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION, arrow.DECIMAL64:
		c = cmpOrdered(rawValues[int64](a), rawValues[int64](b))
	case arrow.UINT8:
		c = cmpOrdered(rawValues[uint8](a), rawValues[uint8](b))
	case arrow.UINT16:
		c = cmpOrdered(rawValues[uint16](a), rawValues[uint16](b))
	case arrow.UINT32:
		c = cmpOrdered(rawValues[uint32](a), rawValues[uint32](b))
	case arrow.UINT64:
		c = cmpOrdered(rawValues[uint64](a), rawValues[uint64](b))
	case arrow.FLOAT32:
		c = cmpFloat(rawValues[float32](a), rawValues[float32](b))
	case arrow.FLOAT64:
		c = cmpFloat(rawValues[float64](a), rawValues[float64](b))
	case arrow.FLOAT16:
		x, y := rawValues[float16.Num](a), rawValues[float16.Num](b)
		c = func(i, j int) int { return cmpFloatValue(x[i].Float32(), y[j].Float32()) }
	case arrow.DECIMAL128:
		x, y := rawValues[decimal128.Num](a), rawValues[decimal128.Num](b)
		c = func(i, j int) int { return x[i].Cmp(y[j]) }
	case arrow.DECIMAL256:
		x, y := rawValues[decimal256.Num](a), rawValues[decimal256.Num](b)
		c = func(i, j int) int { return x[i].Cmp(y[j]) }
	case arrow.BOOL:
		x, y := a.(*array.Boolean), b.(*array.Boolean)
		c = func(i, j int) int {
			xi, yj := x.Value(i), y.Value(j)
			switch {
			case xi == yj:
				return 0
			case !xi:
				return -1
			}
			return 1
		}
	case arrow.STRING, arrow.BINARY:
		xo, xd := varOffsets[int32](a)
		yo, yd := varOffsets[int32](b)
		c = func(i, j int) int { return bytes.Compare(xd[xo[i]:xo[i+1]], yd[yo[j]:yo[j+1]]) }
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		xo, xd := varOffsets[int64](a)
		yo, yd := varOffsets[int64](b)
		c = func(i, j int) int { return bytes.Compare(xd[xo[i]:xo[i+1]], yd[yo[j]:yo[j+1]]) }
	case arrow.FIXED_SIZE_BINARY:
		x, y := a.(*array.FixedSizeBinary), b.(*array.FixedSizeBinary)
		c = func(i, j int) int { return bytes.Compare(x.Value(i), y.Value(j)) }
	default:
		return nil, fmt.Errorf("cannot order values of type %s", dt)
	}
	if desc {
		asc := c
		c = func(i, j int) int { return -asc(i, j) }
	}
	va, vb := validityOf(a), validityOf(b)
	if va.bits == nil && vb.bits == nil {
		return c, nil
	}
	nullSide := 1
	if nullsFirst {
		nullSide = -1
	}
	return func(i, j int) int {
		ni, nj := !va.valid(i), !vb.valid(j)
		switch {
		case ni && nj:
			return 0
		case ni:
			return nullSide
		case nj:
			return -nullSide
		}
		return c(i, j)
	}, nil
}

func cmpOrdered[T cmp.Ordered](x, y []T) cmpFunc {
	return func(i, j int) int { return cmp.Compare(x[i], y[j]) }
}

// cmpFloat orders floats by value, -0 tied with +0, every NaN tied with every
// other NaN and after +Inf: the order agrees with floatEq, so a sort-merge join
// matches exactly the rows a hash join matches.
func cmpFloat[T float32 | float64](x, y []T) cmpFunc {
	return func(i, j int) int { return cmpFloatValue(x[i], y[j]) }
}

func cmpFloatValue[T float32 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	case a == b:
		return 0
	}
	an, bn := a != a, b != b
	switch {
	case an && bn:
		return 0
	case an:
		return 1
	}
	return -1
}

// rowsCmp orders rows lexicographically over several sort keys.
type rowsCmp []cmpFunc

func (r rowsCmp) compare(i, j int) int {
	for _, c := range r {
		if v := c(i, j); v != 0 {
			return v
		}
	}
	return 0
}
