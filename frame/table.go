package frame

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/compute/exec"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// emptyTable returns a table of schema with no rows (and no chunks).
func emptyTable(schema *arrow.Schema) arrow.Table {
	return tableFromColumns(schema, make([]arrow.Array, schema.NumFields()), 0)
}

// tableFromColumns builds a one-chunk table from whole columns (nil entries
// make empty columns). The table takes its own references.
func tableFromColumns(schema *arrow.Schema, arrs []arrow.Array, rows int64) arrow.Table {
	cols := make([]arrow.Column, schema.NumFields())
	for i := range cols {
		f := schema.Field(i)
		var chunks []arrow.Array
		if arrs[i] != nil {
			chunks = []arrow.Array{arrs[i]}
		}
		ch := arrow.NewChunked(f.Type, chunks)
		cols[i] = *arrow.NewColumn(f, ch)
		ch.Release()
	}
	t := array.NewTable(schema, cols, rows)
	for i := range cols {
		cols[i].Release()
	}
	return t
}

// sliceTable returns a zero-copy view of rows [lo, hi) of t.
func sliceTable(t arrow.Table, lo, hi int64) arrow.Table {
	cols := make([]arrow.Column, t.NumCols())
	for i := range cols {
		cols[i] = *array.NewColumnSlice(t.Column(i), lo, hi)
	}
	out := array.NewTable(t.Schema(), cols, hi-lo)
	for i := range cols {
		cols[i].Release()
	}
	return out
}

// columns returns every column of t as one contiguous array, concatenating
// chunks where there are several (the local kernels index rows directly),
// looking at ctx before each concatenation. The caller releases the arrays.
func columns(ctx context.Context, mem memory.Allocator, t arrow.Table) ([]arrow.Array, error) {
	if err := checkRows(t.NumRows(), "partition"); err != nil {
		return nil, err
	}
	out := make([]arrow.Array, t.NumCols())
	for i := range out {
		if len(t.Column(i).Data().Chunks()) > 1 {
			if err := ctxErr(ctx, "concatenate chunks"); err != nil {
				releaseAll(out)
				return nil, err
			}
		}
		a, err := wholeColumn(mem, t.Column(i).Data())
		if err != nil {
			releaseAll(out)
			return nil, fmt.Errorf("column %q: %w", t.Schema().Field(i).Name, err)
		}
		out[i] = a
	}
	return out, nil
}

// wholeColumn returns a chunked column as one array (retained when it is a
// single chunk already).
func wholeColumn(mem memory.Allocator, c *arrow.Chunked) (arrow.Array, error) {
	chunks := c.Chunks()
	switch len(chunks) {
	case 0:
		return array.MakeArrayOfNull(mem, c.DataType(), 0), nil
	case 1:
		chunks[0].Retain()
		return chunks[0], nil
	}
	if dt, ok := c.DataType().(*arrow.DictionaryType); ok {
		return concatDictionaries(mem, dt, chunks)
	}
	return array.Concatenate(chunks, mem)
}

// concatDictionaries concatenates dictionary arrays (of type dt) into one
// whose dictionary is the union of theirs. arrow-go's array.Concatenate
// does this too, but for chunks with different dictionaries and nulls it
// zeroes the null slots at a byte offset counted in elements
// (concatDictIndices in arrow-go v18.6.0), which overwrites valid indices
// of any index type wider than a byte: values silently change. Received
// chunks carry each sender's dictionary, so after every exchange of a
// dictionary column the chunks differ.
func concatDictionaries(mem memory.Allocator, dt *arrow.DictionaryType, chunks []arrow.Array) (_ arrow.Array, err error) {
	defer recoverPanic(&err, "concatenate dictionaries")
	uni, err := array.NewDictionaryUnifier(mem, dt.ValueType)
	if err != nil { // a value type the unifier cannot hash: arrow-go's own path
		return array.Concatenate(chunks, mem)
	}
	defer uni.Release()
	maps := make([][]int32, len(chunks))
	n := 0
	for i, c := range chunks {
		d, ok := c.(*array.Dictionary)
		if !ok {
			return nil, fmt.Errorf("chunk %d is a %T, not a dictionary array", i, c)
		}
		buf, err := uni.UnifyAndTranspose(d.Dictionary())
		if err != nil {
			return nil, fmt.Errorf("unify dictionaries: %w", err)
		}
		maps[i] = slices.Clone(arrow.Int32Traits.CastFromBytes(buf.Bytes())[:d.Dictionary().Len()])
		buf.Release()
		n += c.Len()
	}
	dict, err := uni.GetResultWithIndexType(dt.IndexType)
	if err != nil {
		return nil, fmt.Errorf("unify dictionaries: %w", err)
	}
	defer dict.Release()
	width := dt.IndexType.(arrow.FixedWidthDataType).Bytes()
	idx := memory.NewResizableBuffer(mem)
	defer idx.Release()
	idx.Resize(n * width)
	out := idx.Bytes()
	clear(out)
	var valid *memory.Buffer
	nulls := 0
	for _, c := range chunks {
		nulls += c.NullN()
	}
	if nulls > 0 {
		valid = memory.NewResizableBuffer(mem)
		defer valid.Release()
		valid.Resize(int(bitutil.BytesForBits(int64(n))))
		clear(valid.Bytes())
	}
	pos := 0
	for i, c := range chunks {
		d := c.(*array.Dictionary)
		if err := transposeIndices(d, maps[i], out, pos); err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i, err)
		}
		if valid != nil {
			if c.NullN() == 0 {
				bitutil.SetBitsTo(valid.Bytes(), int64(pos), int64(c.Len()), true)
			} else {
				bitutil.CopyBitmap(c.NullBitmapBytes(), c.Data().Offset(), c.Len(), valid.Bytes(), pos)
			}
		}
		pos += c.Len()
	}
	data := array.NewDataWithDictionary(dt, n, []*memory.Buffer{valid, idx}, nulls, 0, dict.Data().(*array.Data))
	defer data.Release()
	return array.MakeFromData(data), nil
}

// transposeIndices writes the indices of d's valid rows, mapped through m,
// into out (an index buffer of d's index type) from row pos on; null rows
// are left as they are (zero).
func transposeIndices(d *array.Dictionary, m []int32, out []byte, pos int) error {
	switch d.Indices().DataType().ID() {
	case arrow.INT8:
		return transposeTyped[int8](d, m, out, pos)
	case arrow.UINT8:
		return transposeTyped[uint8](d, m, out, pos)
	case arrow.INT16:
		return transposeTyped[int16](d, m, out, pos)
	case arrow.UINT16:
		return transposeTyped[uint16](d, m, out, pos)
	case arrow.INT32:
		return transposeTyped[int32](d, m, out, pos)
	case arrow.UINT32:
		return transposeTyped[uint32](d, m, out, pos)
	case arrow.INT64:
		return transposeTyped[int64](d, m, out, pos)
	case arrow.UINT64:
		return transposeTyped[uint64](d, m, out, pos)
	}
	return fmt.Errorf("dictionary index type %s", d.Indices().DataType())
}

func transposeTyped[T int8 | uint8 | int16 | uint16 | int32 | uint32 | int64 | uint64](d *array.Dictionary, m []int32, out []byte, pos int) error {
	src := rawValues[T](d.Indices())
	dst := arrow.GetData[T](out)[pos : pos+len(src)]
	for r, v := range src {
		if d.IsNull(r) {
			continue
		}
		if uint64(v) >= uint64(len(m)) { // a negative index wraps to a huge one
			return fmt.Errorf("index %d at row %d is outside the dictionary of %d values", v, r, len(m))
		}
		dst[r] = T(m[v])
	}
	return nil
}

// decoded returns a with dictionary encoding removed (retained as is
// otherwise): the key kernels compare values, not dictionary indices.
// Dictionaries of fixed-width, string or binary values are decoded by
// take's typed gathers, which look at ctx every pollRows rows (as does the
// check of the indices before them: each valid one must fall inside the
// dictionary); other value types go through one call of arrow-go's take
// kernel, which never looks at ctx.
func decoded(ctx context.Context, mem memory.Allocator, a arrow.Array) (_ arrow.Array, err error) {
	defer recoverPanic(&err, "decode dictionary")
	d, ok := a.(*array.Dictionary)
	if !ok {
		a.Retain()
		return a, nil
	}
	if err := ctxErr(ctx, "decode dictionary"); err != nil {
		return nil, err
	}
	values := d.Dictionary()
	if !typedTake(values.DataType()) || values.Len() > math.MaxInt32 {
		out, err := compute.TakeArray(exec.WithAllocator(ctx, mem), values, d.Indices())
		if err != nil {
			return nil, fmt.Errorf("decode dictionary: %w", err)
		}
		return out, nil
	}
	idx, err := dictIndices(ctx, d.Indices(), values.Len())
	if err != nil {
		return nil, fmt.Errorf("decode dictionary: %w", err)
	}
	out, err := take(ctx, mem, values, idx)
	if err != nil {
		return nil, fmt.Errorf("decode dictionary: %w", err)
	}
	return out, nil
}

// typedTake reports whether take gathers values of dt itself (looking at
// its context), rather than through arrow-go's take kernel.
func typedTake(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return true
	}
	_, ok := fixedWidth(dt)
	return ok
}

// dictIndices returns the dictionary indices ind as take's row indices:
// -1 for a null, and an error for a valid index outside a dictionary of
// size values. It looks at ctx every pollRows rows. Indices that are int32
// already and have no nulls are returned as they are (pointing into ind's
// buffer), once checked.
func dictIndices(ctx context.Context, ind arrow.Array, size int) ([]int32, error) {
	switch ind.DataType().ID() {
	case arrow.INT8:
		return indicesAs[int8](ctx, ind, size)
	case arrow.UINT8:
		return indicesAs[uint8](ctx, ind, size)
	case arrow.INT16:
		return indicesAs[int16](ctx, ind, size)
	case arrow.UINT16:
		return indicesAs[uint16](ctx, ind, size)
	case arrow.INT32:
		return indicesAs[int32](ctx, ind, size)
	case arrow.UINT32:
		return indicesAs[uint32](ctx, ind, size)
	case arrow.INT64:
		return indicesAs[int64](ctx, ind, size)
	case arrow.UINT64:
		return indicesAs[uint64](ctx, ind, size)
	}
	return nil, fmt.Errorf("dictionary index type %s", ind.DataType())
}

func indicesAs[T int8 | uint8 | int16 | uint16 | int32 | uint32 | int64 | uint64](ctx context.Context, ind arrow.Array, size int) ([]int32, error) {
	src := rawValues[T](ind)
	valid := validityOf(ind)
	same, _ := any(src).([]int32)
	var out []int32
	if same == nil || valid.bits != nil {
		out = make([]int32, len(src))
	}
	for lo := 0; lo < len(src); lo += pollRows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for r := lo; r < min(lo+pollRows, len(src)); r++ {
			if !valid.valid(r) {
				out[r] = -1
				continue
			}
			v := src[r]
			if uint64(v) >= uint64(size) { // a negative index wraps to a huge one
				return nil, fmt.Errorf("index %d at row %d is out of range of the dictionary of %d values", v, r, size)
			}
			if out != nil {
				out[r] = int32(v)
			}
		}
	}
	if out == nil {
		return same, nil
	}
	return out, nil
}

// withoutDictionaries returns t with its dictionary columns decoded to their
// value type (t itself, retained, when it has none). The caller releases it.
func withoutDictionaries(ctx context.Context, mem memory.Allocator, t arrow.Table) (arrow.Table, error) {
	s := t.Schema()
	if !slices.ContainsFunc(s.Fields(), func(f arrow.Field) bool { return f.Type.ID() == arrow.DICTIONARY }) {
		t.Retain()
		return t, nil
	}
	fields := s.Fields()
	cols := make([]arrow.Column, 0, len(fields))
	defer func() {
		for i := range cols {
			cols[i].Release()
		}
	}()
	for i := range fields {
		c := t.Column(i)
		if fields[i].Type.ID() != arrow.DICTIONARY {
			c.Retain()
			cols = append(cols, *c)
			continue
		}
		fields[i].Type = valueType(fields[i].Type)
		chunks := make([]arrow.Array, 0, len(c.Data().Chunks()))
		for _, a := range c.Data().Chunks() {
			d, err := decoded(ctx, mem, a)
			if err != nil {
				releaseAll(chunks)
				return nil, err
			}
			chunks = append(chunks, d)
		}
		ch := arrow.NewChunked(fields[i].Type, chunks)
		releaseAll(chunks)
		cols = append(cols, *arrow.NewColumn(fields[i], ch))
		ch.Release()
	}
	md := s.Metadata()
	return array.NewTable(arrow.NewSchema(fields, &md), cols, t.NumRows()), nil
}

// tableBytes is the size of the Arrow buffers of a table.
func tableBytes(t arrow.Table) int64 {
	var n int64
	for i := 0; i < int(t.NumCols()); i++ {
		for _, a := range t.Column(i).Data().Chunks() {
			n += int64(a.Data().SizeInBytes())
		}
	}
	return n
}

// fieldIndex returns the index of the column called name in schema.
func fieldIndex(schema *arrow.Schema, name string) (int, error) {
	idx := schema.FieldIndices(name)
	switch len(idx) {
	case 0:
		return 0, fmt.Errorf("no column %q (columns: %v)", name, fieldNames(schema))
	case 1:
		return idx[0], nil
	}
	return 0, fmt.Errorf("column name %q is ambiguous: %d columns have it", name, len(idx))
}

func fieldIndices(schema *arrow.Schema, names []string) ([]int, error) {
	out := make([]int, len(names))
	for i, n := range names {
		k, err := fieldIndex(schema, n)
		if err != nil {
			return nil, err
		}
		out[i] = k
	}
	return out, nil
}

// keyIndices is fieldIndices for columns that key a shuffle or a group-by:
// each must be of a type whose values hash and compare (isKeyType;
// dictionaries by their values), so that a bad key is an error found before
// any data moves.
func keyIndices(schema *arrow.Schema, names []string) ([]int, error) {
	idx, err := fieldIndices(schema, names)
	if err != nil {
		return nil, err
	}
	for i, k := range idx {
		if dt := schema.Field(k).Type; !isKeyType(valueType(dt)) {
			return nil, fmt.Errorf("column %q of type %s cannot be a key", names[i], dt)
		}
	}
	return idx, nil
}

func fieldNames(s *arrow.Schema) []string {
	names := make([]string, s.NumFields())
	for i := range names {
		names[i] = s.Field(i).Name
	}
	return names
}
