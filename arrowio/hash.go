package arrowio

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/zeebo/xxh3"
)

// The row hash. Every value is first reduced to a 64-bit value hash (the bits of a fixed-width value,
// XXH3 of the bytes of a variable-width one, a fold over children for nested values, nullHash for a
// null), and a row's hash folds its columns' value hashes, in order, through mix (the MurmurHash3 64-bit
// finalizer: a bijection with full avalanche). Everything is fixed: no per-process seed, so every rank
// of a job, in any process, computes the same hash for the same row.
const (
	rowSeed    uint64 = 0x243f6a8885a308d3 // first digits of pi: where a row hash starts
	nullHash   uint64 = 0x13198a2e03707344 // the value hash of a null, whatever its type
	listSeed   uint64 = 0xa4093822299f31d0 // where the fold over a list's elements starts
	structSeed uint64 = 0x082efa98ec4e6c89 // where the fold over a struct's fields starts
	canonNaN   uint64 = 0x7ff8000000000001 // every NaN hashes as this one
	scaleSeed  uint64 = 0x452821e638d01377 // where a decimal with digits after the point starts
	wideSeed   uint64 = 0xbe5466cf34e90c6c // where the fold over a wider-than-64-bit value starts
)

func mix(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

func combine(h, v uint64) uint64 { return mix(h ^ v) }

// HashRows computes the hash of every row of the key columns cols (all of the same length) into out,
// which must have that length: out[i] is the hash of (cols[0][i], cols[1][i], ...). It is the hash
// HashPartition partitions by (with PartitionOf), exported so that local hash operators built on top
// (hash join, group-by) agree with the shuffle that placed the rows.
//
// The hash depends only on the logical values and the order of the columns, never on how the data is
// laid out: slices, chunking, dictionary encoding (a dictionary column hashes as its values), offset
// width (string, large_string and string_view hash alike, as do the binary kinds) and integer width
// (int8(5), int64(5) and uint16(5) hash alike; a uint64 above math.MaxInt64 hashes as the int64 with the
// same bits). Decimals hash by their exact value, whatever their width, precision and scale
// (decimal32(9, 1) 1.5 and decimal256(76, 4) 1.5000 hash alike; a decimal of scale 0 hashes as the
// integer it holds), except that one of negative scale (5 at scale -1, which is 50) hashes apart from
// the same value at a scale of 0 or more. Floating-point keys hash by value: -0 as +0, and all NaNs
// alike. Nulls hash alike, in any
// column. Supported key types: null, boolean, all integers, float16/32/64, decimal32/64/128/256, dates,
// times, timestamps, durations, intervals, string, binary and their large and view forms, fixed-size
// binary, dictionaries, lists (list, large_list, fixed_size_list, map), structs and extension types
// (hashed as their storage). Other types (unions, run-end encoded, list views) return an error.
//
// HashRows allocates only for nested and dictionary columns (scratch space for their children).
func HashRows(cols []arrow.Array, out []uint64) (err error) {
	defer recoverInvalid(&err, "hash rows")
	if c, err := hashRows(cols, out); err != nil {
		if c >= 0 {
			return fmt.Errorf("arrowio: hash rows: key column %d: %w", c, err)
		}
		return fmt.Errorf("arrowio: hash rows: %w", err)
	}
	return nil
}

// hashRows is HashRows; on a failure to hash a column's values it returns that column's index too
// (-1 for other failures), for callers that know the column by name.
func hashRows(cols []arrow.Array, out []uint64) (int, error) {
	for i := range out {
		out[i] = rowSeed
	}
	for c, col := range cols {
		if col == nil {
			return -1, fmt.Errorf("key column %d is nil", c)
		}
		if col.Len() != len(out) {
			return -1, fmt.Errorf("key column %d has %d rows, want %d", c, col.Len(), len(out))
		}
		if err := hashValues(col, out, true); err != nil {
			return c, err
		}
	}
	return -1, nil
}

// PartitionOf maps a row hash to one of p partitions (0 <= result < p), by the high bits of the hash
// (Lemire's multiply-shift), so the low bits stay free for the buckets of a hash table built on one
// partition. p must be positive.
func PartitionOf(hash uint64, p int) int {
	hi, _ := bits.Mul64(hash, uint64(p))
	return int(hi)
}

// hashValues folds the value hash of every element of arr into dst (combine) or stores it there.
func hashValues(arr arrow.Array, dst []uint64, fold bool) error {
	if arr.Len() == 0 {
		return nil
	}
	data := arr.Data()
	switch a := arr.(type) {
	case *array.Null:
		for i := range dst {
			put(dst, i, nullHash, fold)
		}
		return nil
	case *array.Boolean:
		for i := range dst {
			if a.IsValid(i) {
				v := uint64(0)
				if a.Value(i) {
					v = 1
				}
				put(dst, i, v, fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
		return nil
	case *array.Dictionary:
		return hashDictionary(a, dst, fold)
	case *array.Struct:
		return hashStruct(a, dst, fold)
	case *array.FixedSizeList:
		return hashFixedSizeList(a, dst, fold)
	case array.ExtensionArray:
		return hashValues(a.Storage(), dst, fold)
	case *array.String:
		hashVarBinary(data, arrow.GetOffsets[int32](data, 1), dst, fold)
		return nil
	case *array.Binary:
		hashVarBinary(data, arrow.GetOffsets[int32](data, 1), dst, fold)
		return nil
	case *array.LargeString:
		hashVarBinary(data, arrow.GetOffsets[int64](data, 1), dst, fold)
		return nil
	case *array.LargeBinary:
		hashVarBinary(data, arrow.GetOffsets[int64](data, 1), dst, fold)
		return nil
	case *array.StringView:
		for i := range dst {
			if a.IsValid(i) {
				put(dst, i, xxh3.HashString(a.Value(i)), fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
		return nil
	case *array.BinaryView:
		for i := range dst {
			if a.IsValid(i) {
				put(dst, i, xxh3.Hash(a.Value(i)), fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
		return nil
	case *array.FixedSizeBinary:
		w := a.DataType().(*arrow.FixedSizeBinaryType).ByteWidth
		raw := fixedBytes(data)
		for i := range dst {
			if a.IsValid(i) {
				put(dst, i, xxh3.Hash(raw[i*w:(i+1)*w]), fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
		return nil
	case *array.List:
		return hashList(a, arrow.GetOffsets[int32](data, 1), dst, fold)
	case *array.LargeList:
		return hashList(a, arrow.GetOffsets[int64](data, 1), dst, fold)
	case *array.Map:
		return hashList(a, arrow.GetOffsets[int32](data, 1), dst, fold)
	}

	switch arr.DataType().ID() {
	case arrow.INT8:
		hashSigned(data, arrow.GetValues[int8](data, 1), dst, fold)
	case arrow.INT16:
		hashSigned(data, arrow.GetValues[int16](data, 1), dst, fold)
	case arrow.INT32, arrow.DATE32, arrow.TIME32, arrow.INTERVAL_MONTHS:
		hashSigned(data, arrow.GetValues[int32](data, 1), dst, fold)
	case arrow.INT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION:
		hashSigned(data, arrow.GetValues[int64](data, 1), dst, fold)
	case arrow.UINT8:
		hashUnsigned(data, arrow.GetValues[uint8](data, 1), dst, fold)
	case arrow.UINT16:
		hashUnsigned(data, arrow.GetValues[uint16](data, 1), dst, fold)
	case arrow.UINT32:
		hashUnsigned(data, arrow.GetValues[uint32](data, 1), dst, fold)
	case arrow.UINT64, arrow.INTERVAL_DAY_TIME:
		hashUnsigned(data, arrow.GetValues[uint64](data, 1), dst, fold)
	case arrow.FLOAT16:
		vals := arrow.GetData[float16.Num](fixedBytes(data))
		for i := range dst {
			if data.NullN() == 0 || isValid(data, i) {
				put(dst, i, floatBits(float64(vals[i].Float32())), fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
	case arrow.FLOAT32:
		vals := arrow.GetValues[float32](data, 1)
		for i := range dst {
			if data.NullN() == 0 || isValid(data, i) {
				put(dst, i, floatBits(float64(vals[i])), fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
	case arrow.FLOAT64:
		vals := arrow.GetValues[float64](data, 1)
		for i := range dst {
			if data.NullN() == 0 || isValid(data, i) {
				put(dst, i, floatBits(vals[i]), fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
	case arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		hashDecimals(data, dst, fold)
	case arrow.INTERVAL_MONTH_DAY_NANO:
		words := arrow.GetData[uint64](fixedBytes(data))
		for i := range dst {
			if data.NullN() == 0 || isValid(data, i) {
				put(dst, i, combine(combine(wideSeed, words[2*i]), words[2*i+1]), fold)
			} else {
				put(dst, i, nullHash, fold)
			}
		}
	default:
		return fmt.Errorf("cannot hash values of type %s", arr.DataType())
	}
	return nil
}

func put(dst []uint64, i int, v uint64, fold bool) {
	if fold {
		dst[i] = combine(dst[i], v)
	} else {
		dst[i] = v
	}
}

func isValid(data arrow.ArrayData, i int) bool {
	b := data.Buffers()[0]
	return b == nil || bitutil.BitIsSet(b.Bytes(), data.Offset()+i)
}

// fixedBytes returns the value buffer of a fixed-width array from its first element on.
func fixedBytes(data arrow.ArrayData) []byte {
	buf := data.Buffers()[1]
	if buf == nil {
		return nil
	}
	w := data.DataType().(arrow.FixedWidthDataType).Bytes()
	return buf.Bytes()[data.Offset()*w:]
}

func floatBits(f float64) uint64 {
	switch {
	case f == 0:
		return 0 // -0 hashes as +0
	case f != f:
		return canonNaN
	}
	return math.Float64bits(f)
}

func hashSigned[T int8 | int16 | int32 | int64](data arrow.ArrayData, vals []T, dst []uint64, fold bool) {
	if data.NullN() == 0 {
		if fold {
			for i, v := range vals[:len(dst)] {
				dst[i] = combine(dst[i], uint64(int64(v)))
			}
		} else {
			for i, v := range vals[:len(dst)] {
				dst[i] = uint64(int64(v))
			}
		}
		return
	}
	for i, v := range vals[:len(dst)] {
		if isValid(data, i) {
			put(dst, i, uint64(int64(v)), fold)
		} else {
			put(dst, i, nullHash, fold)
		}
	}
}

func hashUnsigned[T uint8 | uint16 | uint32 | uint64](data arrow.ArrayData, vals []T, dst []uint64, fold bool) {
	if data.NullN() == 0 {
		if fold {
			for i, v := range vals[:len(dst)] {
				dst[i] = combine(dst[i], uint64(v))
			}
		} else {
			for i, v := range vals[:len(dst)] {
				dst[i] = uint64(v)
			}
		}
		return
	}
	for i, v := range vals[:len(dst)] {
		if isValid(data, i) {
			put(dst, i, uint64(v), fold)
		} else {
			put(dst, i, nullHash, fold)
		}
	}
}

func hashVarBinary[O int32 | int64](data arrow.ArrayData, offs []O, dst []uint64, fold bool) {
	var raw []byte
	if b := data.Buffers()[2]; b != nil {
		raw = b.Bytes()
	}
	for i := range dst {
		if data.NullN() == 0 || isValid(data, i) {
			put(dst, i, xxh3.Hash(raw[offs[i]:offs[i+1]]), fold)
		} else {
			put(dst, i, nullHash, fold)
		}
	}
}

// hashDictionary hashes a dictionary column as its values: each dictionary entry is hashed once, then
// looked up by index, so two ranks with different dictionaries agree.
func hashDictionary(a *array.Dictionary, dst []uint64, fold bool) error {
	dict := a.Dictionary()
	dh := make([]uint64, dict.Len())
	if err := hashValues(dict, dh, false); err != nil {
		return fmt.Errorf("dictionary: %w", err)
	}
	idx := a.Indices()
	data := idx.Data()
	var bad int
	switch idx.DataType().ID() {
	case arrow.INT8:
		bad = lookup(data, arrow.GetValues[int8](data, 1), dh, dst, fold)
	case arrow.INT16:
		bad = lookup(data, arrow.GetValues[int16](data, 1), dh, dst, fold)
	case arrow.INT32:
		bad = lookup(data, arrow.GetValues[int32](data, 1), dh, dst, fold)
	case arrow.INT64:
		bad = lookup(data, arrow.GetValues[int64](data, 1), dh, dst, fold)
	case arrow.UINT8:
		bad = lookup(data, arrow.GetValues[uint8](data, 1), dh, dst, fold)
	case arrow.UINT16:
		bad = lookup(data, arrow.GetValues[uint16](data, 1), dh, dst, fold)
	case arrow.UINT32:
		bad = lookup(data, arrow.GetValues[uint32](data, 1), dh, dst, fold)
	case arrow.UINT64:
		bad = lookup(data, arrow.GetValues[uint64](data, 1), dh, dst, fold)
	default:
		return fmt.Errorf("dictionary index type %s", idx.DataType())
	}
	if bad >= 0 {
		return fmt.Errorf("dictionary index at row %d is out of range (dictionary has %d values)", bad, len(dh))
	}
	return nil
}

// lookup puts dh[idx[i]] for every row; it returns the first row whose index is out of range, or -1.
func lookup[T indexInt](data arrow.ArrayData, idx []T, dh, dst []uint64, fold bool) int {
	n := uint64(len(dh))
	for i := range dst {
		if data.NullN() != 0 && !isValid(data, i) {
			put(dst, i, nullHash, fold)
			continue
		}
		k := uint64(idx[i]) // a negative index becomes huge: out of range
		if k >= n {
			return i
		}
		put(dst, i, dh[k], fold)
	}
	return -1
}

// hashList hashes each list as the fold of its elements' value hashes and its length.
func hashList[O int32 | int64](a array.ListLike, offs []O, dst []uint64, fold bool) error {
	// Hash only the child values this (possibly sliced) array spans.
	base, end := int64(offs[0]), int64(offs[len(dst)])
	child := a.ListValues()
	if base < 0 || end < base || end > int64(child.Len()) {
		return fmt.Errorf("list offsets span [%d, %d) of %d values", base, end, child.Len())
	}
	child = array.NewSlice(child, base, end)
	defer child.Release()
	ch := make([]uint64, child.Len())
	if err := hashValues(child, ch, false); err != nil {
		return fmt.Errorf("list values: %w", err)
	}
	for i := range dst {
		if a.IsNull(i) {
			put(dst, i, nullHash, fold)
			continue
		}
		lo, hi := int64(offs[i])-base, int64(offs[i+1])-base
		if lo < 0 || hi < lo || hi > int64(len(ch)) {
			return fmt.Errorf("list offsets [%d, %d) at row %d are out of range", lo, hi, i)
		}
		h := listSeed
		for _, v := range ch[lo:hi] {
			h = combine(h, v)
		}
		put(dst, i, combine(h, uint64(hi-lo)), fold)
	}
	return nil
}

func hashFixedSizeList(a *array.FixedSizeList, dst []uint64, fold bool) error {
	n := int64(a.DataType().(*arrow.FixedSizeListType).Len())
	base := int64(a.Data().Offset()) * n
	child := a.ListValues()
	if base+int64(len(dst))*n > int64(child.Len()) {
		return fmt.Errorf("fixed-size list values are shorter than %d lists of %d", len(dst), n)
	}
	child = array.NewSlice(child, base, base+int64(len(dst))*n)
	defer child.Release()
	ch := make([]uint64, child.Len())
	if err := hashValues(child, ch, false); err != nil {
		return fmt.Errorf("list values: %w", err)
	}
	for i := range dst {
		if a.IsNull(i) {
			put(dst, i, nullHash, fold)
			continue
		}
		lo, hi := int64(i)*n, int64(i+1)*n
		if lo < 0 || hi < lo || hi > int64(len(ch)) {
			return fmt.Errorf("list values [%d, %d) at row %d are out of range", lo, hi, i)
		}
		h := listSeed
		for _, v := range ch[lo:hi] {
			h = combine(h, v)
		}
		put(dst, i, combine(h, uint64(hi-lo)), fold)
	}
	return nil
}

// hashStruct hashes each struct as the fold of its fields' value hashes.
func hashStruct(a *array.Struct, dst []uint64, fold bool) error {
	sh := make([]uint64, a.Len())
	for i := range sh {
		sh[i] = structSeed
	}
	for f := 0; f < a.NumField(); f++ {
		if err := hashValues(a.Field(f), sh, true); err != nil {
			return fmt.Errorf("field %d: %w", f, err)
		}
	}
	for i := range dst {
		if a.IsNull(i) {
			put(dst, i, nullHash, fold)
		} else {
			put(dst, i, sh[i], fold)
		}
	}
	return nil
}

// hashDecimals hashes decimals by their exact value, whatever their width, precision and scale: the
// unscaled integer is cut down to the fewest digits after the point (1.50 at scale 2 hashes as 1.5 at
// scale 1), then hashed as an integer (decimal(p, 0) 5 hashes as int64 5) or, with digits after the
// point left, folded with their number.
func hashDecimals(data arrow.ArrayData, dst []uint64, fold bool) {
	scale := data.DataType().(arrow.DecimalType).GetScale()
	var value func(i int) uint64
	switch data.DataType().ID() {
	case arrow.DECIMAL32:
		vals := arrow.GetValues[int32](data, 1)
		value = func(i int) uint64 { return decimalHash64(int64(vals[i]), scale) }
	case arrow.DECIMAL64:
		vals := arrow.GetValues[int64](data, 1)
		value = func(i int) uint64 { return decimalHash64(vals[i], scale) }
	case arrow.DECIMAL128:
		words := arrow.GetData[uint64](fixedBytes(data))
		value = func(i int) uint64 {
			lo, hi := words[2*i], words[2*i+1]
			sign := uint64(int64(hi) >> 63)
			if hi == uint64(int64(lo)>>63) {
				return decimalHash64(int64(lo), scale) // fits in 64 bits
			}
			return decimalHashWide([4]uint64{lo, hi, sign, sign}, scale)
		}
	default: // DECIMAL256
		words := arrow.GetData[uint64](fixedBytes(data))
		value = func(i int) uint64 {
			w := [4]uint64(words[4*i : 4*i+4])
			if sign := uint64(int64(w[0]) >> 63); w[1] == sign && w[2] == sign && w[3] == sign {
				return decimalHash64(int64(w[0]), scale)
			}
			return decimalHashWide(w, scale)
		}
	}
	for i := range dst {
		if data.NullN() != 0 && !isValid(data, i) {
			put(dst, i, nullHash, fold)
		} else {
			put(dst, i, value(i), fold)
		}
	}
}

// decimalHash64 is the value hash of the decimal v / 10^scale.
func decimalHash64(v int64, scale int32) uint64 {
	if v == 0 {
		return 0
	}
	for scale > 0 && v%10 == 0 {
		v /= 10
		scale--
	}
	if scale == 0 {
		return uint64(v)
	}
	return combine(combine(scaleSeed, uint64(int64(scale))), uint64(v))
}

// decimalHashWide is the value hash of the decimal w / 10^scale, w a 256-bit two's-complement integer
// (little-endian words) that does not fit in 64 bits.
func decimalHashWide(w [4]uint64, scale int32) uint64 {
	neg := int64(w[3]) < 0
	if neg {
		w = negate256(w)
	}
	for scale > 0 {
		q, r := divmod10(w)
		if r != 0 {
			break
		}
		w, scale = q, scale-1
	}
	if neg {
		w = negate256(w)
	}
	if sign := uint64(int64(w[0]) >> 63); w[1] == sign && w[2] == sign && w[3] == sign {
		return decimalHash64(int64(w[0]), scale) // fewer digits now fit in 64 bits
	}
	h := wideSeed
	for _, x := range w {
		h = combine(h, x)
	}
	if scale != 0 {
		h = combine(combine(h, scaleSeed), uint64(int64(scale)))
	}
	return h
}

func negate256(w [4]uint64) [4]uint64 {
	carry := uint64(1)
	for i := range w {
		w[i], carry = bits.Add64(^w[i], 0, carry)
	}
	return w
}

// divmod10 divides the unsigned 256-bit w by 10.
func divmod10(w [4]uint64) (q [4]uint64, r uint64) {
	for i := 3; i >= 0; i-- {
		q[i], r = bits.Div64(r, w[i], 10)
	}
	return q, r
}
