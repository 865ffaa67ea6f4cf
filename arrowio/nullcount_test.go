package arrowio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/stretchr/testify/require"
)

// withNullCount returns a copy of stream, an IPC stream whose second message is a record batch, with
// the null count of that batch's field node `node` (in the format's depth-first order) set to nulls.
func withNullCount(t *testing.T, stream []byte, node int, nulls int64) []byte {
	stream = bytes.Clone(stream)
	meta, rb := firstBatch(t, stream)
	nodes := fbFieldAt(t, meta, rb, 1) // RecordBatch.nodes: FieldNode{length, null_count}
	vec := nodes + int(binary.LittleEndian.Uint32(meta[nodes:]))
	require.Less(t, node, int(binary.LittleEndian.Uint32(meta[vec:])))
	binary.LittleEndian.PutUint64(meta[vec+4+16*node+8:], uint64(nulls))
	return stream
}

// A received array's null count must be the number of nulls its validity bitmap holds: arrow-go takes
// the count from the message as it is, and code that trusts it (Len() - NullN() valid values, a
// NullN() == Len() shortcut, frame's dictionary unification adding counts up) then disagrees with
// IsNull about the same array. A batch whose count says otherwise is refused, as Arrow's own full
// validation refuses it.
func TestNullCountChecked(t *testing.T) {
	mem := checkedMem(t)
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{1, 0, 3, 0, 5, 6, 0, 8}, []bool{true, false, true, false, true, true, false, true})
	ints := ib.NewArray()
	ib.Release()
	defer ints.Release()
	// A list of those ints (a null list among them): node 0 the list, node 1 its values.
	lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int32)
	vb := lb.ValueBuilder().(*array.Int32Builder)
	lb.Append(true)
	vb.AppendValues([]int32{1, 0, 3}, []bool{true, false, true})
	lb.AppendNull()
	lb.Append(true)
	vb.AppendValues([]int32{0, 5, 6, 0, 8}, []bool{false, true, true, false, true})
	list := lb.NewArray()
	lb.Release()
	defer list.Release()

	for _, c := range []struct {
		name  string
		col   arrow.Array
		node  int
		nulls int64
		want  string // "" when the stream must decode to the rows sent
	}{
		{"int32 as sent", ints, 0, 3, ""},
		{"int32 undercounted", ints, 0, 1, `column 0 ("c"): int32: null count 1, but the validity bitmap has 3 nulls`},
		{"int32 overcounted", ints, 0, 8, "null count 8, but the validity bitmap has 3 nulls"},
		{"int32 beyond its length", ints, 0, 1000, "null count 1000"},
		{"list as sent", list, 0, 1, ""},
		{"list undercounted", list, 0, 2, "list<item: int32, nullable>: null count 2, but the validity bitmap has 1 null"},
		{"list values undercounted", list, 1, 1, "child 0: int32: null count 1, but the validity bitmap has 3 nulls"},
	} {
		schema := arrow.NewSchema([]arrow.Field{{Name: "c", Type: c.col.DataType(), Nullable: true}}, nil)
		rec := array.NewRecordBatch(schema, []arrow.Array{c.col}, int64(c.col.Len()))
		tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
		rec.Release()
		data := withNullCount(t, ipcBytes(t, tbl, false), c.node, c.nulls)
		got, err := DecodeIPC(data, WithAllocator(mem))
		if got = requireDecoded(t, got, err, c.want, c.name); got != nil {
			require.Equal(t, rowStrings(tbl), rowStrings(got), c.name)
			require.Equal(t, c.col.NullN(), got.Column(0).Data().Chunk(0).NullN(), c.name)
			got.Release()
		}
		tbl.Release()
	}
}

// A negative null count (arrow-go's "unknown", which NullN then computes from the validity bitmap) on
// an array sent without a bitmap, or with one too short, made the batch pass validation and reading
// NullN panic in arrow-go (CountSetBits over an empty bitmap; DecodeIPC itself panicked building the
// table). A count other than zero needs a bitmap that covers the array, except on a null array, whose
// values are all null whatever its count (and unions, whose count arrow-go sets to 0); on a type that
// has no bitmap (run-end encoded) it is refused.
func TestNegativeNullCountRefused(t *testing.T) {
	mem := checkedMem(t)
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{1, 2, 3, 4, 5, 6, 7, 8}, nil)
	ints := ib.NewArray()
	ib.Release()
	defer ints.Release()
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"a", "b", "c"}, nil)
	strs := sb.NewArray()
	sb.Release()
	defer strs.Release()
	reb := array.NewRunEndEncodedBuilder(mem, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64)
	reb.Append(2)
	reb.ValueBuilder().(*array.Int64Builder).Append(7)
	reb.Append(1)
	reb.ValueBuilder().(*array.Int64Builder).Append(9)
	ree := reb.NewArray()
	reb.Release()
	defer ree.Release()

	for _, c := range []struct {
		name  string
		col   arrow.Array
		nulls int64
		want  string
	}{
		{"int32 unknown", ints, -1, `column 0 ("c"): int32: validity bitmap of 0 bytes for 7 values`},
		{"int32 negative", ints, -5, "int32: validity bitmap of 0 bytes for 7 values"},
		{"utf8 unknown", strs, -1, "utf8: validity bitmap of 0 bytes for 3 values"},
		{"run-end encoded unknown", ree, -1, "null count -1 without a validity bitmap"},
		{"run-end encoded counted", ree, 2, "null count 2 without a validity bitmap"},
	} {
		t.Run(c.name, func(t *testing.T) {
			schema := arrow.NewSchema([]arrow.Field{{Name: "c", Type: c.col.DataType(), Nullable: true}}, nil)
			rec := array.NewRecordBatch(schema, []arrow.Array{c.col}, int64(c.col.Len()))
			tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
			rec.Release()
			defer tbl.Release()
			data := withNullCount(t, ipcBytes(t, tbl, false), 0, c.nulls)
			var got arrow.Table
			var err error
			require.NotPanics(t, func() { got, err = DecodeIPC(data, WithAllocator(mem)) })
			if got != nil {
				got.Release()
			}
			require.ErrorContains(t, err, c.want)
		})
	}
}
