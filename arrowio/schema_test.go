package arrowio

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// decimalTable is a table of one decimal column of type dt holding 15 and a
// null, written with arrow-go's builders (which take any precision and scale).
func decimalTable(t *testing.T, mem memory.Allocator, dt arrow.DataType, nest bool) arrow.Table {
	t.Helper()
	var col arrow.Array
	switch dt := dt.(type) {
	case *arrow.Decimal32Type:
		b := array.NewDecimal32Builder(mem, dt)
		b.AppendValues([]decimal.Decimal32{15, 0}, []bool{true, false})
		col = b.NewArray()
		b.Release()
	case *arrow.Decimal64Type:
		b := array.NewDecimal64Builder(mem, dt)
		b.AppendValues([]decimal.Decimal64{15, 0}, []bool{true, false})
		col = b.NewArray()
		b.Release()
	case *arrow.Decimal128Type:
		b := array.NewDecimal128Builder(mem, dt)
		b.AppendValues([]decimal128.Num{decimal128.FromI64(15), {}}, []bool{true, false})
		col = b.NewArray()
		b.Release()
	case *arrow.Decimal256Type:
		b := array.NewDecimal256Builder(mem, dt)
		b.AppendValues([]decimal256.Num{decimal256.FromI64(15), {}}, []bool{true, false})
		col = b.NewArray()
		b.Release()
	default:
		t.Fatalf("not a decimal type: %s", dt)
	}
	defer col.Release()
	field := arrow.Field{Name: "d", Type: dt, Nullable: true}
	if nest { // the decimal inside a struct inside a list: the check must look at every depth
		st, err := array.NewStructArray([]arrow.Array{col}, []string{"d"})
		require.NoError(t, err)
		defer st.Release()
		offs := []int32{0, 2}
		ld := array.NewData(arrow.ListOf(st.DataType()), 1,
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs))},
			[]arrow.ArrayData{st.Data()}, 0, 0)
		list := array.NewListData(ld)
		ld.Release()
		defer list.Release()
		col = list
		field = arrow.Field{Name: "d", Type: list.DataType(), Nullable: true}
	}
	schema := arrow.NewSchema([]arrow.Field{field}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// A decimal type whose precision or scale arrow-go cannot handle is refused
// where it enters (the wire, DecodeIPC, ValidateTable), not accepted to make
// the reader of a value panic or spin: arrow-go renders a decimal128 of scale
// 3145728 by indexing a table of 39 powers of ten (index out of range, the
// panic FuzzDecoder found), and a decimal32 or decimal64 of scale 2^30 by a
// billion multiplications and a billion-digit string. Types at the edges of
// what each width holds travel as before.
func TestDecimalTypesChecked(t *testing.T) {
	mem := checkedMem(t)
	for _, c := range []struct {
		dt   arrow.DataType
		want string // "" for a type that must be accepted
	}{
		{&arrow.Decimal32Type{Precision: 9, Scale: 9}, ""},
		{&arrow.Decimal32Type{Precision: 1, Scale: -9}, ""},
		{&arrow.Decimal64Type{Precision: 18, Scale: 18}, ""},
		{&arrow.Decimal128Type{Precision: 38, Scale: -38}, ""},
		{&arrow.Decimal128Type{Precision: 5, Scale: 10}, ""},
		{&arrow.Decimal256Type{Precision: 76, Scale: 76}, ""},
		{&arrow.Decimal128Type{Precision: 38, Scale: 3145728}, "scale 3145728"},
		{&arrow.Decimal128Type{Precision: 38, Scale: 39}, "scale 39"},
		{&arrow.Decimal256Type{Precision: 76, Scale: -77}, "scale -77"},
		{&arrow.Decimal32Type{Precision: 9, Scale: 1 << 30}, "scale 1073741824"},
		{&arrow.Decimal64Type{Precision: 18, Scale: -(1 << 30)}, "scale -1073741824"},
		{&arrow.Decimal128Type{Precision: 39, Scale: 0}, "precision 39"},
		{&arrow.Decimal32Type{Precision: 10, Scale: 0}, "precision 10"},
		{&arrow.Decimal64Type{Precision: 0, Scale: 0}, "precision 0"},
		{&arrow.Decimal256Type{Precision: -1, Scale: 0}, "precision -1"},
	} {
		for _, nest := range []bool{false, true} {
			name := c.dt.String()
			if nest {
				name += " nested"
			}
			tbl := decimalTable(t, mem, c.dt, nest)
			for _, path := range []string{"wire", "DecodeIPC", "ValidateTable"} {
				var (
					got arrow.Table
					err error
				)
				switch path {
				case "wire":
					dec := decodeFramed(mem, encodeChunks(t, tbl))
					if err = dec.err; err == nil {
						require.True(t, dec.eos, name)
						got = dec.table()
					}
					dec.close()
				case "DecodeIPC":
					got, err = DecodeIPC(ipcBytes(t, tbl, false), WithAllocator(mem))
				case "ValidateTable":
					if err = ValidateTable(tbl); err == nil {
						got = tbl
						got.Retain()
					}
				}
				if c.want != "" {
					if got != nil {
						got.Release()
					}
					require.ErrorContains(t, err, c.want, "%s via %s", name, path)
					require.ErrorContains(t, err, `column 0 ("d")`, "%s via %s", name, path)
					continue
				}
				require.NoError(t, err, "%s via %s", name, path)
				require.Equal(t, rowStrings(tbl), rowStrings(got), "%s via %s", name, path)
				got.Release()
			}
			tbl.Release()
		}
	}
}
