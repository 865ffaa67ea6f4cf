package arrowio

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// Test data: tables of every type arrow-go's IPC supports, with nulls, built from a seed.

// allTypes is one field of every type the tests round-trip; every field is nullable.
func allTypes() []arrow.Field {
	dictStr := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	dictInt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint8, ValueType: arrow.PrimitiveTypes.Int64}
	types := []arrow.DataType{
		arrow.Null,
		arrow.FixedWidthTypes.Boolean,
		arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
		arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64,
		arrow.FixedWidthTypes.Float16, arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64,
		arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString, arrow.BinaryTypes.StringView,
		arrow.BinaryTypes.Binary, arrow.BinaryTypes.LargeBinary, arrow.BinaryTypes.BinaryView,
		&arrow.FixedSizeBinaryType{ByteWidth: 5},
		arrow.FixedWidthTypes.Date32, arrow.FixedWidthTypes.Date64,
		arrow.FixedWidthTypes.Time32ms, arrow.FixedWidthTypes.Time64ns,
		&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, arrow.FixedWidthTypes.Timestamp_s,
		arrow.FixedWidthTypes.Duration_ms,
		arrow.FixedWidthTypes.MonthInterval, arrow.FixedWidthTypes.DayTimeInterval, arrow.FixedWidthTypes.MonthDayNanoInterval,
		&arrow.Decimal128Type{Precision: 38, Scale: 5}, &arrow.Decimal256Type{Precision: 76, Scale: 10},
		dictStr, dictInt,
		arrow.ListOf(arrow.PrimitiveTypes.Int32),
		arrow.LargeListOf(arrow.BinaryTypes.String),
		arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float64),
		arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32),
		arrow.StructOf(
			arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
			arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "c", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
			arrow.Field{Name: "d", Type: dictStr, Nullable: true},
		),
		// Types that cannot be hash keys (HashRows rejects them) but must travel.
		arrow.SparseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, []arrow.UnionTypeCode{0, 1}),
		arrow.DenseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, []arrow.UnionTypeCode{5, 9}),
		arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String),
		arrow.ListViewOf(arrow.PrimitiveTypes.Int32),
		arrow.LargeListViewOf(arrow.PrimitiveTypes.Int16),
		// More key types.
		extensions.NewUUIDType(),
		&arrow.Decimal32Type{Precision: 9, Scale: 2}, &arrow.Decimal64Type{Precision: 18, Scale: 4},
	}
	fields := make([]arrow.Field, len(types))
	for i, dt := range types {
		name := strings.NewReplacer("<", "_", ">", "", "[", "_", "]", "", ",", "_", " ", "", ":", "_", "=", "_").Replace(dt.String())
		fields[i] = arrow.Field{Name: fmt.Sprintf("c%02d_%s", i, name), Type: dt, Nullable: true}
	}
	return fields
}

// genSpec describes a generated table.
type genSpec struct {
	rows   int     // total rows
	chunks int     // record batches (at least 1 when rows > 0)
	card   int     // values are drawn from a domain of this many distinct values (>= 1)
	nulls  float64 // probability of a null
	seed   uint64
}

// genTable builds a table of schema per spec; the caller releases it.
func genTable(t testing.TB, mem memory.Allocator, schema *arrow.Schema, spec genSpec) arrow.Table {
	t.Helper()
	r := rand.New(rand.NewPCG(spec.seed, 0x5eed))
	chunks := max(spec.chunks, 1)
	var recs []arrow.RecordBatch
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for c := range chunks {
		n := spec.rows / chunks
		if c < spec.rows%chunks {
			n++
		}
		for range n {
			for f, fb := range b.Fields() {
				appendValue(t, fb, schema.Field(f).Type, r, spec)
			}
		}
		recs = append(recs, b.NewRecordBatch())
	}
	tbl := array.NewTableFromRecords(schema, recs)
	for _, rec := range recs {
		rec.Release()
	}
	return tbl
}

func appendValue(t testing.TB, b array.Builder, dt arrow.DataType, r *rand.Rand, spec genSpec) {
	if dt.ID() != arrow.NULL && r.Float64() < spec.nulls {
		b.AppendNull()
		return
	}
	v := r.IntN(max(spec.card, 1))
	s := fmt.Sprintf("v%d", v)
	if v%7 == 3 {
		s += strings.Repeat("x", v%23) // some longer values: view types store these out of line
	}
	switch b := b.(type) {
	case *array.NullBuilder:
		b.AppendNull()
	case *array.BooleanBuilder:
		b.Append(v%2 == 1)
	case *array.Int8Builder:
		b.Append(int8(v - 64))
	case *array.Int16Builder:
		b.Append(int16(v * 3))
	case *array.Int32Builder:
		b.Append(int32(v) - 1000)
	case *array.Int64Builder:
		b.Append(int64(v) * -1_000_003)
	case *array.Uint8Builder:
		b.Append(uint8(v))
	case *array.Uint16Builder:
		b.Append(uint16(v))
	case *array.Uint32Builder:
		b.Append(uint32(v) * 7)
	case *array.Uint64Builder:
		b.Append(uint64(v) << 40)
	case *array.Float16Builder:
		b.Append(float16.New(float32(v) / 4))
	case *array.Float32Builder:
		b.Append(float32(v) / 8)
	case *array.Float64Builder:
		b.Append(float64(v)/3 - 10)
	case *array.StringBuilder:
		b.Append(s)
	case *array.LargeStringBuilder:
		b.Append(s)
	case *array.StringViewBuilder:
		b.Append(s)
	case *array.BinaryBuilder: // binary and large binary
		b.Append([]byte(s))
	case *array.BinaryViewBuilder:
		b.Append([]byte(s))
	case *array.FixedSizeBinaryBuilder:
		b.Append([]byte(fmt.Sprintf("%05d", v%100000)))
	case *array.Date32Builder:
		b.Append(arrow.Date32(19000 + v))
	case *array.Date64Builder:
		b.Append(arrow.Date64(int64(19000+v) * 86_400_000))
	case *array.Time32Builder:
		b.Append(arrow.Time32(v * 1000))
	case *array.Time64Builder:
		b.Append(arrow.Time64(int64(v) * 1_000_000_007))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(1_700_000_000_000_000 + int64(v)*1_000_003))
	case *array.DurationBuilder:
		b.Append(arrow.Duration(v * 250))
	case *array.MonthIntervalBuilder:
		b.Append(arrow.MonthInterval(v))
	case *array.DayTimeIntervalBuilder:
		b.Append(arrow.DayTimeInterval{Days: int32(v), Milliseconds: int32(v * 10)})
	case *array.MonthDayNanoIntervalBuilder:
		b.Append(arrow.MonthDayNanoInterval{Months: int32(v % 12), Days: int32(v), Nanoseconds: int64(v) * 999})
	case *array.Decimal128Builder:
		b.Append(decimal128.FromI64(int64(v)*1_000_003 - 77))
	case *array.Decimal256Builder:
		b.Append(decimal256.New(uint64(v), 0, uint64(v)*3, uint64(v)<<7))
	case *array.BinaryDictionaryBuilder:
		require.NoError(t, b.AppendString(s))
	case *array.Int64DictionaryBuilder:
		require.NoError(t, b.Append(int64(v)*11))
	case *array.ListBuilder:
		b.Append(true)
		for k := range v % 4 {
			appendValue(t, b.ValueBuilder(), dt.(*arrow.ListType).Elem(), r, genSpec{card: spec.card + k, nulls: spec.nulls})
		}
	case *array.LargeListBuilder:
		b.Append(true)
		for k := range v % 3 {
			appendValue(t, b.ValueBuilder(), dt.(*arrow.LargeListType).Elem(), r, genSpec{card: spec.card + k, nulls: spec.nulls})
		}
	case *array.FixedSizeListBuilder:
		b.Append(true)
		for range 3 {
			appendValue(t, b.ValueBuilder(), dt.(*arrow.FixedSizeListType).Elem(), r, spec)
		}
	case *array.MapBuilder:
		b.Append(true)
		mt := dt.(*arrow.MapType)
		for k := range v % 3 {
			b.KeyBuilder().(*array.StringBuilder).Append(fmt.Sprintf("k%d", k))
			appendValue(t, b.ItemBuilder(), mt.ItemType(), r, spec)
		}
	case *array.SparseUnionBuilder:
		ut := dt.(*arrow.SparseUnionType)
		pick := v % 2
		b.Append(ut.TypeCodes()[pick])
		for c := range 2 {
			if c == pick {
				appendValue(t, b.Child(c), ut.Fields()[c].Type, r, spec)
			} else {
				b.Child(c).AppendEmptyValue()
			}
		}
	case *array.DenseUnionBuilder:
		ut := dt.(*arrow.DenseUnionType)
		pick := v % 2
		b.Append(ut.TypeCodes()[pick])
		appendValue(t, b.Child(pick), ut.Fields()[pick].Type, r, spec)
	case *array.RunEndEncodedBuilder:
		if v%3 == 0 && b.Len() > 0 {
			b.ContinueRun(1)
		} else {
			b.Append(1)
			appendValue(t, b.ValueBuilder(), dt.(*arrow.RunEndEncodedType).Encoded(), r, genSpec{card: spec.card})
		}
	case *array.ListViewBuilder:
		b.AppendWithSize(true, v%3)
		for range v % 3 {
			appendValue(t, b.ValueBuilder(), dt.(*arrow.ListViewType).Elem(), r, spec)
		}
	case *array.LargeListViewBuilder:
		b.AppendWithSize(true, v%4)
		for range v % 4 {
			appendValue(t, b.ValueBuilder(), dt.(*arrow.LargeListViewType).Elem(), r, spec)
		}
	case *extensions.UUIDBuilder:
		var id [16]byte
		binary.LittleEndian.PutUint64(id[:], uint64(v)*0x9e3779b97f4a7c15)
		id[15] = byte(v)
		b.AppendBytes(id)
	case *array.Decimal32Builder:
		b.Append(decimal.Decimal32(v*101 - 50))
	case *array.Decimal64Builder:
		b.Append(decimal.Decimal64(int64(v) * -1_000_007))
	case *array.StructBuilder:
		b.Append(true)
		st := dt.(*arrow.StructType)
		for f := range st.NumFields() {
			appendValue(t, b.FieldBuilder(f), st.Field(f).Type, r, spec)
		}
	default:
		t.Fatalf("test generator: no value for builder %T (%s)", b, dt)
	}
}

// rowStrings renders every row of t canonically (one string per row), in row order.
func rowStrings(t arrow.Table, cols ...int) []string {
	if len(cols) == 0 {
		for c := range int(t.NumCols()) {
			cols = append(cols, c)
		}
	}
	var out []string
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := range int(rec.NumRows()) {
			var sb strings.Builder
			for _, c := range cols {
				col := rec.Column(c)
				if col.IsNull(i) {
					sb.WriteString("∅")
				} else {
					sb.WriteString(col.ValueStr(i))
				}
				sb.WriteByte('|')
			}
			out = append(out, sb.String())
		}
	}
	return out
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// checkedMem returns an allocator that fails the test if anything allocated is not released.
func checkedMem(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}
