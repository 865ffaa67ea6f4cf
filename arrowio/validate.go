package arrowio

import (
	"bytes"
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// validateBatch checks that every array of a decoded batch is consistent: buffers long enough for
// their lengths, offsets that ascend and stay inside the data or child they index, dictionary indices
// inside their dictionary, view headers inside their buffers (and prefixes that match their values),
// null counts that match the validity bitmaps. arrow-go's IPC reader checks none of
// this, and an inconsistent array makes whoever reads it panic later, far from the message that
// carried it. A batch that passes is safe to read with arrow-go's accessors.
func validateBatch(rec arrow.RecordBatch) (err error) {
	defer recoverInvalid(&err, "validating a received batch")
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return fmt.Errorf("column %d (%q) has %d rows in a batch of %d", i, rec.ColumnName(i), col.Len(), rec.NumRows())
		}
		if err := validateData(col.Data(), 0); err != nil {
			return fmt.Errorf("column %d (%q): %w", i, rec.ColumnName(i), err)
		}
	}
	return nil
}

// validateColumn runs validateBatch's checks on one array to be sent.
func validateColumn(col arrow.Array) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed array data: %v", r)
		}
	}()
	if err := validateData(col.Data(), 0); err != nil {
		return fmt.Errorf("malformed array data: %w", err)
	}
	return nil
}

func bufLen(d arrow.ArrayData, i int) int {
	bufs := d.Buffers()
	if i >= len(bufs) || bufs[i] == nil {
		return 0
	}
	return bufs[i].Len()
}

func validateData(d arrow.ArrayData, depth int) error {
	if depth > 64 {
		return fmt.Errorf("nested more than 64 deep")
	}
	n, off := d.Len(), d.Offset()
	if n < 0 || off < 0 || n > math.MaxInt-8-off {
		return fmt.Errorf("length %d at offset %d", n, off)
	}
	end := off + n
	dt := d.DataType()
	if ext, ok := dt.(arrow.ExtensionType); ok {
		dt = ext.StorageType()
	}
	// The count came with the array (arrow-go's IPC reader takes it from the message): code that
	// trusts it must agree with IsNull, which reads the bitmap, and a negative count (arrow-go's
	// "unknown") makes NullN count the bitmap, so it needs one that covers the array. A null array's
	// values are all null whatever its count (arrow-go sets it to the length).
	if nulls := d.NullN(); nulls != 0 && dt.ID() != arrow.NULL {
		if len(d.Buffers()) == 0 || d.Buffers()[0] == nil {
			return fmt.Errorf("%s: null count %d without a validity bitmap", dt, nulls)
		}
		if bufLen(d, 0) < int(bitutil.BytesForBits(int64(end))) {
			return fmt.Errorf("%s: validity bitmap of %d bytes for %d values", dt, bufLen(d, 0), end)
		}
		if nulls > 0 { // an unknown (negative) count claims nothing to compare: no count of the bitmap
			if got := n - bitutil.CountSetBits(d.Buffers()[0].Bytes(), off, n); got != nulls {
				return fmt.Errorf("%s: null count %d, but the validity bitmap has %d %s", dt, nulls, got, plural(got, "null", "nulls"))
			}
		}
	}
	if n == 0 {
		return nil
	}
	switch dt.ID() {
	case arrow.NULL:
		return nil
	case arrow.BOOL:
		if bufLen(d, 1) < int(bitutil.BytesForBits(int64(end))) {
			return fmt.Errorf("bool: %d bytes for %d values", bufLen(d, 1), end)
		}
		return nil
	case arrow.STRING, arrow.BINARY:
		return checkOffsets[int32](d, bufLen(d, 2), "data bytes")
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return checkOffsets[int64](d, bufLen(d, 2), "data bytes")
	case arrow.STRING_VIEW, arrow.BINARY_VIEW:
		return checkViews(d)
	case arrow.LIST, arrow.MAP:
		if err := checkOffsets[int32](d, childLen(d), "child values"); err != nil {
			return err
		}
		return validateChildren(d, depth)
	case arrow.LARGE_LIST:
		if err := checkOffsets[int64](d, childLen(d), "child values"); err != nil {
			return err
		}
		return validateChildren(d, depth)
	case arrow.FIXED_SIZE_LIST:
		size := dt.(*arrow.FixedSizeListType).Len()
		if size < 0 || !fits(end, int(size), childLen(d)) {
			return fmt.Errorf("%s: %d child values for %d lists", dt, childLen(d), end)
		}
		return validateChildren(d, depth)
	case arrow.STRUCT:
		for i, c := range d.Children() {
			if c.Len() < end {
				return fmt.Errorf("%s: field %d has %d values for %d", dt, i, c.Len(), end)
			}
		}
		if len(d.Children()) != dt.(*arrow.StructType).NumFields() {
			return fmt.Errorf("%s: %d children", dt, len(d.Children()))
		}
		return validateChildren(d, depth)
	case arrow.DICTIONARY:
		return checkDictionary(d, dt.(*arrow.DictionaryType), depth)
	case arrow.RUN_END_ENCODED:
		if err := checkRunEnds(d, dt.(*arrow.RunEndEncodedType)); err != nil {
			return err
		}
		return validateChildren(d, depth)
	}
	if fw, ok := dt.(arrow.FixedWidthDataType); ok && fw.BitWidth() > 0 && fw.BitWidth()%8 == 0 {
		if w := fw.BitWidth() / 8; !fits(end, w, bufLen(d, 1)) {
			return fmt.Errorf("%s: %d bytes for %d values", dt, bufLen(d, 1), end)
		}
		return nil
	}
	// Unions, list views, run-end encoded: arrow-go's own full validation where it has one.
	arr := array.MakeFromData(d)
	defer arr.Release()
	if err := array.ValidateFull(arr); err != nil {
		return err
	}
	return validateChildren(d, depth)
}

// fits reports whether count elements of width bytes (or values) fit in have, without computing
// count*width, which lengths a message claims can make overflow (2^33 lists of 2^31-1 values wrapped
// to a negative number of child values, which any child has).
func fits(count, width, have int) bool {
	if count < 0 || width < 0 || have < 0 {
		return false
	}
	return width == 0 || count <= have/width
}

func childLen(d arrow.ArrayData) int {
	if len(d.Children()) != 1 || d.Children()[0] == nil {
		return -1
	}
	return d.Children()[0].Len()
}

func validateChildren(d arrow.ArrayData, depth int) error {
	for i, c := range d.Children() {
		if c == nil {
			return fmt.Errorf("%s: child %d missing", d.DataType(), i)
		}
		if err := validateData(c, depth+1); err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
	}
	return nil
}

// checkOffsets checks the offsets buffer of a binary or list array: long enough, ascending, within
// limit (the data bytes or child values they index).
func checkOffsets[O int32 | int64](d arrow.ArrayData, limit int, what string) error {
	n, off := d.Len(), d.Offset()
	w := int(unsafe.Sizeof(O(0)))
	if limit < 0 {
		return fmt.Errorf("%s: no child", d.DataType())
	}
	if !fits(off+n+1, w, bufLen(d, 1)) {
		return fmt.Errorf("%s: offsets buffer of %d bytes for %d values", d.DataType(), bufLen(d, 1), off+n)
	}
	offs := arrow.GetOffsets[O](d, 1)
	if offs[0] < 0 {
		return fmt.Errorf("%s: first offset %d", d.DataType(), offs[0])
	}
	for i := 1; i <= n; i++ {
		if offs[i] < offs[i-1] {
			return fmt.Errorf("%s: offsets descend at %d (%d after %d)", d.DataType(), i, offs[i], offs[i-1])
		}
	}
	if int64(offs[n]) > int64(limit) {
		return fmt.Errorf("%s: offsets reach %d, past the %d %s", d.DataType(), offs[n], limit, what)
	}
	return nil
}

func checkViews(d arrow.ArrayData) error {
	n, off := d.Len(), d.Offset()
	if !fits(off+n, arrow.ViewHeaderSizeBytes, bufLen(d, 1)) {
		return fmt.Errorf("%s: %d bytes of views for %d values", d.DataType(), bufLen(d, 1), off+n)
	}
	views := arrow.GetData[arrow.ViewHeader](d.Buffers()[1].Bytes())[off : off+n]
	data := d.Buffers()[2:]
	for i := range views {
		v := &views[i]
		if !isValid(d, i) {
			continue
		}
		if v.Len() < 0 {
			return fmt.Errorf("%s: view %d has length %d", d.DataType(), i, v.Len())
		}
		if v.IsInline() {
			continue
		}
		b, o := int(v.BufferIndex()), int(v.BufferOffset())
		if b < 0 || b >= len(data) || data[b] == nil || o < 0 || o > data[b].Len()-v.Len() {
			return fmt.Errorf("%s: view %d points outside its data buffers", d.DataType(), i)
		}
		// arrow-go compares views by size and prefix before their bytes (ViewHeader.Equals).
		prefix, value := v.Prefix(), data[b].Bytes()[o:o+arrow.ViewPrefixLen]
		if !bytes.Equal(prefix[:], value) {
			return fmt.Errorf("%s: view %d has prefix %q but its value starts %q", d.DataType(), i, prefix[:], value)
		}
	}
	return nil
}

func checkDictionary(d arrow.ArrayData, dt *arrow.DictionaryType, depth int) error {
	dict := d.Dictionary()
	if dict == nil || dict.(*array.Data) == nil {
		return fmt.Errorf("%s: no dictionary", dt)
	}
	if err := validateData(dict, depth+1); err != nil {
		return fmt.Errorf("dictionary: %w", err)
	}
	n, off := d.Len(), d.Offset()
	w := dt.IndexType.(arrow.FixedWidthDataType).Bytes()
	if !fits(off+n, w, bufLen(d, 1)) {
		return fmt.Errorf("%s: %d bytes of indices for %d values", dt, bufLen(d, 1), off+n)
	}
	limit := uint64(dict.Len())
	var bad int
	switch dt.IndexType.ID() {
	case arrow.INT8:
		bad = firstBadIndex(d, arrow.GetValues[int8](d, 1), limit)
	case arrow.INT16:
		bad = firstBadIndex(d, arrow.GetValues[int16](d, 1), limit)
	case arrow.INT32:
		bad = firstBadIndex(d, arrow.GetValues[int32](d, 1), limit)
	case arrow.INT64:
		bad = firstBadIndex(d, arrow.GetValues[int64](d, 1), limit)
	case arrow.UINT8:
		bad = firstBadIndex(d, arrow.GetValues[uint8](d, 1), limit)
	case arrow.UINT16:
		bad = firstBadIndex(d, arrow.GetValues[uint16](d, 1), limit)
	case arrow.UINT32:
		bad = firstBadIndex(d, arrow.GetValues[uint32](d, 1), limit)
	case arrow.UINT64:
		bad = firstBadIndex(d, arrow.GetValues[uint64](d, 1), limit)
	default:
		return fmt.Errorf("%s: index type %s", dt, dt.IndexType)
	}
	if bad >= 0 {
		return fmt.Errorf("%s: index at %d outside the dictionary of %d values", dt, bad, limit)
	}
	return nil
}

func firstBadIndex[T indexInt](d arrow.ArrayData, idx []T, limit uint64) int {
	for i, k := range idx {
		if uint64(k) >= limit && (d.NullN() == 0 || isValid(d, i)) {
			return i
		}
	}
	return -1
}

// checkRunEnds checks a run-end encoded array: run ends positive and ascending, the last covering the
// array, a value for every run.
func checkRunEnds(d arrow.ArrayData, dt *arrow.RunEndEncodedType) error {
	if len(d.Children()) != 2 || d.Children()[0] == nil || d.Children()[1] == nil {
		return fmt.Errorf("%s: %d children", dt, len(d.Children()))
	}
	ends, values := d.Children()[0], d.Children()[1]
	if err := validateData(ends, 0); err != nil {
		return fmt.Errorf("%s: run ends: %w", dt, err)
	}
	if ends.NullN() != 0 {
		return fmt.Errorf("%s: null run ends", dt)
	}
	if values.Len() < ends.Len() {
		return fmt.Errorf("%s: %d values for %d runs", dt, values.Len(), ends.Len())
	}
	var at func(k int) int64
	switch dt.RunEnds().ID() {
	case arrow.INT16:
		v := arrow.GetValues[int16](ends, 1)
		at = func(k int) int64 { return int64(v[k]) }
	case arrow.INT32:
		v := arrow.GetValues[int32](ends, 1)
		at = func(k int) int64 { return int64(v[k]) }
	case arrow.INT64:
		v := arrow.GetValues[int64](ends, 1)
		at = func(k int) int64 { return v[k] }
	default:
		return fmt.Errorf("%s: run ends of type %s", dt, dt.RunEnds())
	}
	prev := int64(0)
	for k := range ends.Len() {
		e := at(k)
		if e <= prev {
			return fmt.Errorf("%s: run end %d (%d) does not ascend", dt, k, e)
		}
		prev = e
	}
	if prev < int64(d.Offset()+d.Len()) {
		return fmt.Errorf("%s: runs end at %d, before the array's end %d", dt, prev, d.Offset()+d.Len())
	}
	return nil
}

// validateSchema checks the types of a schema that came from elsewhere for parameters arrow-go cannot
// handle: a decimal's precision must be one its width holds (1..9, 18, 38 or 76) and its scale no
// larger in magnitude than that bound. arrow-go reads values of a decimal of any other scale by
// indexing a table of powers of ten (a panic) or by as many multiplications as the scale says (a
// decimal32 of scale 2^30 takes seconds and a billion-digit string to print).
func validateSchema(schema *arrow.Schema) error {
	for i, f := range schema.Fields() {
		if err := validateType(f.Type, 0); err != nil {
			return fmt.Errorf("column %d (%q): %w", i, f.Name, err)
		}
	}
	return nil
}

func validateType(dt arrow.DataType, depth int) error {
	if depth > 64 {
		return fmt.Errorf("type nested more than 64 deep")
	}
	switch t := dt.(type) {
	case arrow.DecimalType:
		limit := int32(0)
		switch t.ID() {
		case arrow.DECIMAL32:
			limit = 9
		case arrow.DECIMAL64:
			limit = 18
		case arrow.DECIMAL128:
			limit = 38
		case arrow.DECIMAL256:
			limit = 76
		}
		if p := t.GetPrecision(); p < 1 || p > limit {
			return fmt.Errorf("%s: precision %d outside 1..%d", dt, p, limit)
		}
		if s := t.GetScale(); s < -limit || s > limit {
			return fmt.Errorf("%s: scale %d outside %d..%d", dt, s, -limit, limit)
		}
	case *arrow.DictionaryType:
		if err := validateType(t.ValueType, depth+1); err != nil {
			return fmt.Errorf("dictionary values: %w", err)
		}
	case arrow.ExtensionType:
		return validateType(t.StorageType(), depth+1)
	case *arrow.RunEndEncodedType:
		if err := validateType(t.Encoded(), depth+1); err != nil {
			return fmt.Errorf("run-end encoded values: %w", err)
		}
	case arrow.NestedType:
		for i, f := range t.Fields() {
			if err := validateType(f.Type, depth+1); err != nil {
				return fmt.Errorf("child %d (%q): %w", i, f.Name, err)
			}
		}
	}
	return nil
}

// sendableSchema checks that every type of schema can travel in an Arrow IPC stream that arrow-go
// (v18.6.0) reads back. These cannot, and arrow-go's writer writes them without complaint into a
// stream its reader fails on, so the receiver, not the sender, would fail, with no word of the
// cause ("slice bounds out of range [:8589934596]"; TestUnsendableDictionariesRefusedBySender):
//   - a dictionary whose values are themselves dictionary-encoded (dictionary<values=dictionary<...>>):
//     the format gives a field one dictionary encoding, and its type is the dictionary's value type,
//     which would have to be a dictionary too;
//   - a dictionary whose values hold a union or a run-end encoded array at any depth (types without
//     a validity bitmap of their own): arrow-go's reader of dictionary batches misreads their buffers;
//   - a dictionary whose values are of an extension type: arrow-go's reader rebuilds the extension
//     type around the dictionary instead and fails ("invalid storage type").
//
// Dictionaries nested deeper, in a dictionary's list or struct values, are fine, and so are unions
// and run-end encoded arrays outside dictionaries.
func sendableSchema(schema *arrow.Schema) error {
	for i, f := range schema.Fields() {
		if err := sendableType(f.Type, 0); err != nil {
			return fmt.Errorf("column %d (%q): %w", i, f.Name, err)
		}
	}
	return nil
}

func sendableType(dt arrow.DataType, depth int) error {
	if depth > 64 {
		return fmt.Errorf("type nested more than 64 deep")
	}
	switch t := dt.(type) {
	case *arrow.DictionaryType:
		if t.ValueType.ID() == arrow.DICTIONARY {
			return fmt.Errorf("%s: a dictionary whose values are a dictionary cannot travel in an Arrow IPC stream", dt)
		}
		if _, ok := t.ValueType.(arrow.ExtensionType); ok { // whatever its storage type, a dictionary too
			return fmt.Errorf("%s: a dictionary whose values are of an extension type cannot travel in an Arrow IPC stream (arrow-go cannot read it back)", dt)
		}
		if typeHolds(t.ValueType, 0, func(dt arrow.DataType) bool {
			switch dt.(type) {
			case arrow.UnionType, *arrow.RunEndEncodedType:
				return true
			}
			return false
		}) {
			return fmt.Errorf("%s: a dictionary whose values hold a union or a run-end encoded array cannot travel in an Arrow IPC stream (arrow-go cannot read it back)", dt)
		}
		return sendableType(t.ValueType, depth+1)
	case arrow.ExtensionType:
		return sendableType(t.StorageType(), depth+1)
	case *arrow.RunEndEncodedType:
		return sendableType(t.Encoded(), depth+1)
	case arrow.NestedType:
		for i, f := range t.Fields() {
			if err := sendableType(f.Type, depth+1); err != nil {
				return fmt.Errorf("child %d (%q): %w", i, f.Name, err)
			}
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
