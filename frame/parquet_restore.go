package frame

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// restoreType converts a column that pqarrow read to dt, the type the Arrow
// schema stored in the file gives it, at any depth (a struct's fields, a
// list's, a fixed-size list's or a map's values), exactly or not at all:
//
//   - a type equal to the stored one, metadata included, is kept as it is
//     (the same arrays);
//   - one that differs only in the names and metadata of nested fields (a
//     list's element read as "element", a PARQUET:field_id) is retyped:
//     the same buffers;
//   - a struct, list, large list, fixed-size list or map keeps its own
//     buffers (validity, offsets) and has its children converted;
//   - a timestamp of another unit (timestamp[s] is read as [ms]) is
//     converted, an error for a value that is not a whole number of the
//     stored unit or does not fit it, and one with a time zone (read as
//     UTC) is given the stored zone, the same instants; date32 becomes
//     date64 (exact); a time of another unit or width (time32[s] is read
//     as time32[ms]) is converted like a timestamp;
//   - a dictionary, or plain values where the stored type is a dictionary,
//     is encoded anew with the stored index and value types (values of a
//     dictionary of large strings or large binaries built as strings or
//     binaries, then copied); a chunk with more distinct values than the
//     index type can address is split (restoreChunk);
//   - strings and binaries of the other offset width are copied (an error
//     for values past 2 GiB).
//
// Anything else is an error that says what was read and what is stored:
// a column never comes back silently of another type. It looks at ctx
// before each chunk and each nested array. The caller releases the column.
func restoreType(ctx context.Context, mem memory.Allocator, ch *arrow.Chunked, dt arrow.DataType) (_ *arrow.Chunked, err error) {
	defer recoverPanic(&err, "restore the stored type")
	chunks := make([]arrow.Array, 0, len(ch.Chunks()))
	defer func() { releaseAll(chunks) }()
	for _, a := range ch.Chunks() {
		// One conversion a chunk (a Parquet batch): look at ctx before each.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := restoreChunk(ctx, mem, a, dt)
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, out...)
	}
	return arrow.NewChunked(dt, chunks), nil
}

// errDictionaryOverflow: more distinct values than a dictionary's index
// type can address.
var errDictionaryOverflow = errors.New("too many distinct values for the dictionary's index type")

// restoreChunk converts a to dt, as one array, or as several when a holds
// more distinct values for a dictionary than its index type can address (a
// Parquet batch spans the chunks that were written, each with its own
// dictionary): halves, each copied to offset 0 (so that only its own
// values are converted), until each fits. A single row that does not fit
// is an error.
func restoreChunk(ctx context.Context, mem memory.Allocator, a arrow.Array, dt arrow.DataType) ([]arrow.Array, error) {
	d, err := restoreData(ctx, mem, a.Data(), dt)
	if err == nil {
		out := array.MakeFromData(d)
		d.Release()
		return []arrow.Array{out}, nil
	}
	if !errors.Is(err, errDictionaryOverflow) || a.Len() < 2 {
		return nil, err
	}
	var out []arrow.Array
	half := int64(a.Len() / 2)
	for _, r := range [][2]int64{{0, half}, {half, int64(a.Len())}} {
		s := array.NewSlice(a, r[0], r[1])
		cp, err := array.Concatenate([]arrow.Array{s}, mem)
		s.Release()
		if err != nil {
			releaseAll(out)
			return nil, err
		}
		parts, err := restoreChunk(ctx, mem, cp, dt)
		cp.Release()
		if err != nil {
			releaseAll(out)
			return nil, err
		}
		out = append(out, parts...)
	}
	return out, nil
}

// restoreData converts d to dt as restoreType says. The caller releases
// the result.
func restoreData(ctx context.Context, mem memory.Allocator, d arrow.ArrayData, dt arrow.DataType) (arrow.ArrayData, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	got := d.DataType()
	if arrow.TypeEqual(got, dt, arrow.CheckMetadata()) {
		d.Retain()
		return d, nil
	}
	if sameLayout(got, dt) {
		return retypeData(d, dt), nil
	}
	unlike := func() error {
		return fmt.Errorf("read back as %s where the file's schema has %s, which frame cannot restore", got, dt)
	}
	switch want := dt.(type) {
	case *arrow.DictionaryType:
		return restoreDictionary(ctx, mem, d, want)
	case *arrow.StructType, *arrow.ListType, *arrow.LargeListType, *arrow.FixedSizeListType, *arrow.MapType:
		if got.ID() != dt.ID() {
			return nil, unlike()
		}
		if fl, ok := dt.(*arrow.FixedSizeListType); ok && fl.Len() != got.(*arrow.FixedSizeListType).Len() {
			return nil, unlike()
		}
		if m, ok := dt.(*arrow.MapType); ok && m.KeysSorted != got.(*arrow.MapType).KeysSorted {
			return nil, unlike()
		}
		fields := dt.(arrow.NestedType).Fields()
		if len(fields) != len(d.Children()) || len(fields) != len(got.(arrow.NestedType).Fields()) {
			return nil, unlike()
		}
		kids := make([]arrow.ArrayData, 0, len(fields))
		defer func() {
			for _, k := range kids {
				k.Release()
			}
		}()
		for i, c := range d.Children() {
			if fields[i].Nullable != got.(arrow.NestedType).Fields()[i].Nullable {
				return nil, fmt.Errorf("field %q: %w", fields[i].Name, unlike())
			}
			// The whole child, not the part the parent's offset and length
			// show: the parent keeps its buffers and offset, and a converted
			// child its length and positions.
			k, err := restoreData(ctx, mem, c, fields[i].Type)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", fields[i].Name, err)
			}
			kids = append(kids, k)
		}
		return array.NewData(dt, d.Len(), d.Buffers(), kids, d.NullN(), d.Offset()), nil
	case *arrow.TimestampType:
		from, ok := got.(*arrow.TimestampType)
		// Values of a timestamp with a time zone are UTC (Parquet stores
		// them adjusted to UTC, pqarrow reads them as tz=UTC): any other
		// zone names the same instants. One without a zone is not one.
		if !ok || (from.TimeZone == "") != (want.TimeZone == "") {
			return nil, unlike()
		}
		return convertUnits(mem, d, from.Unit, want.Unit, want)
	case *arrow.Time32Type, *arrow.Time64Type:
		from, ok := got.(arrow.TemporalWithUnit)
		if !ok || (got.ID() != arrow.TIME32 && got.ID() != arrow.TIME64) {
			return nil, unlike()
		}
		return convertUnits(mem, d, from.TimeUnit(), want.(arrow.TemporalWithUnit).TimeUnit(), want)
	case *arrow.Date64Type:
		if got.ID() != arrow.DATE32 {
			return nil, unlike()
		}
		a := array.NewDate32Data(d)
		defer a.Release()
		b := array.NewDate64Builder(mem)
		defer b.Release()
		b.Reserve(a.Len())
		for i := 0; i < a.Len(); i++ {
			if a.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(arrow.Date64(int64(a.Value(i)) * 86400000)) // an int32 of days fits
			}
		}
		return dataOf(b.NewArray()), nil
	case *arrow.StringType, *arrow.LargeStringType, *arrow.BinaryType, *arrow.LargeBinaryType:
		if !binaryLike(got) || isStringType(got) != isStringType(dt) {
			return nil, unlike()
		}
		a := array.MakeFromData(d)
		defer a.Release()
		out, err := copyBinary(mem, a, dt)
		if err != nil {
			return nil, err
		}
		return dataOf(out), nil
	}
	return nil, unlike()
}

// dataOf returns a's data, retained, and releases a.
func dataOf(a arrow.Array) arrow.ArrayData {
	d := a.Data()
	d.Retain()
	a.Release()
	return d
}

func binaryLike(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		return true
	}
	return false
}

// copyBinary copies a (strings or binaries of either offset width) as an
// array of dt, a type of the same kind.
func copyBinary(mem memory.Allocator, a arrow.Array, dt arrow.DataType) (arrow.Array, error) {
	value := func(i int) []byte {
		switch a := a.(type) {
		case *array.String:
			return []byte(a.Value(i))
		case *array.LargeString:
			return []byte(a.Value(i))
		case *array.Binary:
			return a.Value(i)
		case *array.LargeBinary:
			return a.Value(i)
		}
		return nil
	}
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	b.Reserve(a.Len())
	total := 0
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) {
			b.AppendNull()
			continue
		}
		v := value(i)
		if total += len(v); total > math.MaxInt32 && (dt.ID() == arrow.STRING || dt.ID() == arrow.BINARY) {
			return nil, fmt.Errorf("%d bytes of values do not fit %s", total, dt)
		}
		switch b := b.(type) {
		case *array.StringBuilder:
			b.Append(string(v))
		case *array.LargeStringBuilder:
			b.Append(string(v))
		case *array.BinaryBuilder:
			b.Append(v)
		}
	}
	return b.NewArray(), nil
}

// convertUnits converts d, timestamps or times of unit from, to want, of
// the same kind (timestamps, or times of either width) and unit to: an
// error for a value that is no whole number of the coarser unit or that
// does not fit the finer or want's width.
func convertUnits(mem memory.Allocator, d arrow.ArrayData, from, to arrow.TimeUnit, want arrow.DataType) (arrow.ArrayData, error) {
	a := array.MakeFromData(d)
	defer a.Release()
	b := array.NewBuilder(mem, want)
	defer b.Release()
	b.Reserve(a.Len())
	factor := int64(1)
	for u := min(from, to); u < max(from, to); u++ {
		factor *= 1000
	}
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) {
			b.AppendNull()
			continue
		}
		var v int64
		switch a := a.(type) {
		case *array.Timestamp:
			v = int64(a.Value(i))
		case *array.Time32:
			v = int64(a.Value(i))
		case *array.Time64:
			v = int64(a.Value(i))
		default:
			return nil, fmt.Errorf("read back as %s where the file's schema has %s, which frame cannot restore", a.DataType(), want)
		}
		switch {
		case to < from:
			if v%factor != 0 {
				return nil, fmt.Errorf("%s value %d is not a whole %s", a.DataType(), v, want)
			}
			v /= factor
		case to > from:
			if v > math.MaxInt64/factor || v < math.MinInt64/factor {
				return nil, fmt.Errorf("%s value %d does not fit %s", a.DataType(), v, want)
			}
			v *= factor
		}
		switch b := b.(type) {
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(v))
		case *array.Time32Builder:
			if v > math.MaxInt32 || v < math.MinInt32 {
				return nil, fmt.Errorf("%s value %d does not fit %s", a.DataType(), v, want)
			}
			b.Append(arrow.Time32(v))
		case *array.Time64Builder:
			b.Append(arrow.Time64(v))
		}
	}
	return dataOf(b.NewArray()), nil
}

// restoreDictionary encodes d (a dictionary or plain values) as a
// dictionary of type want.
func restoreDictionary(ctx context.Context, mem memory.Allocator, d arrow.ArrayData, want *arrow.DictionaryType) (arrow.ArrayData, error) {
	a := array.MakeFromData(d)
	defer a.Release()
	values, err := decoded(ctx, mem, a)
	if err != nil {
		return nil, err
	}
	defer values.Release()
	// arrow-go builds no dictionary of large strings or large binaries:
	// build one of strings or binaries and copy its values.
	build := want
	switch want.ValueType.ID() {
	case arrow.LARGE_STRING:
		build = &arrow.DictionaryType{IndexType: want.IndexType, ValueType: arrow.BinaryTypes.String, Ordered: want.Ordered}
	case arrow.LARGE_BINARY:
		build = &arrow.DictionaryType{IndexType: want.IndexType, ValueType: arrow.BinaryTypes.Binary, Ordered: want.Ordered}
	}
	vd, err := restoreData(ctx, mem, values.Data(), build.ValueType)
	if err != nil {
		return nil, fmt.Errorf("dictionary values: %w", err)
	}
	vals := array.MakeFromData(vd)
	vd.Release()
	defer vals.Release()
	b := array.NewDictionaryBuilder(mem, build)
	defer b.Release()
	if err := b.AppendArray(vals); err != nil {
		return nil, err
	}
	dict := b.NewArray().(*array.Dictionary)
	defer dict.Release()
	if n, limit := dict.Dictionary().Len(), maxDictionaryLen(want.IndexType); n > limit {
		// arrow-go's builder wraps the indices past the index type's range.
		return nil, fmt.Errorf("%d distinct values do not fit a dictionary of %s indices: %w", n, want.IndexType, errDictionaryOverflow)
	}
	if build == want {
		d := dict.Data()
		d.Retain()
		return d, nil
	}
	large, err := copyBinary(mem, dict.Dictionary(), want.ValueType)
	if err != nil {
		return nil, err
	}
	defer large.Release()
	out := array.NewDictionaryArray(want, dict.Indices(), large)
	return dataOf(out), nil
}

// maxDictionaryLen is how many values indices of type idx can address.
func maxDictionaryLen(idx arrow.DataType) int {
	switch idx.ID() {
	case arrow.INT8:
		return math.MaxInt8 + 1
	case arrow.UINT8:
		return math.MaxUint8 + 1
	case arrow.INT16:
		return math.MaxInt16 + 1
	case arrow.UINT16:
		return math.MaxUint16 + 1
	case arrow.INT32, arrow.UINT32:
		return math.MaxInt32 + 1
	}
	return math.MaxInt
}
