package frame

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// valueColumnTable builds a table of two columns: "i", the row number, and
// "v", which fill appends to (one value per row: the numbers are appended
// after it).
func valueColumnTable(mem memory.Allocator, dt arrow.DataType, fill func(b array.Builder)) arrow.Table {
	s := arrow.NewSchema([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: dt, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	fill(b.Field(1))
	for i := range b.Field(1).Len() {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
}

// columnStrings returns the values of a table's column, "<null>" for a
// null.
func columnStrings(t arrow.Table, col int) []string {
	var out []string
	for _, a := range t.Column(col).Data().Chunks() {
		for i := range a.Len() {
			switch {
			case a.IsNull(i):
				out = append(out, "<null>")
			default:
				out = append(out, a.ValueStr(i))
			}
		}
	}
	return out
}

// Decimals go through CSV value for value (arrow-go's CSV writer printed
// them through a binary float: wide values and large scales came back with
// other digits, with no error).
func TestCSVDecimalsExact(t *testing.T) {
	cases := []struct {
		name   string
		dt     arrow.DataType
		values []string
	}{
		{"decimal128(38,4)", &arrow.Decimal128Type{Precision: 38, Scale: 4}, []string{
			"5578746614205580668452093543632.9986", "-1429045199942312841120060502096.4926", "0.0001", "-0.0001", "0.0000", "9999999999999999999999999999999999.9999"}},
		{"decimal128(38,30)", &arrow.Decimal128Type{Precision: 38, Scale: 30}, []string{
			"-91242325.272421636713103395843990407360", "0.000000000000000000000000000001", "1.000000000000000000000000000000"}},
		{"decimal128(20,10)", &arrow.Decimal128Type{Precision: 20, Scale: 10}, []string{"2617287697.8449098189", "-6302727174.8266045510"}},
		{"decimal128(5,5)", &arrow.Decimal128Type{Precision: 5, Scale: 5}, []string{"0.00001", "-0.99999"}},
		{"decimal256(76,20)", &arrow.Decimal256Type{Precision: 76, Scale: 20}, []string{
			"12345678901234567890123456789012345678901234567890123456.78901234567890123457", "-0.00000000000000000001"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				tbl := valueColumnTable(mem, tc.dt, func(b array.Builder) {
					for _, v := range tc.values {
						switch dt := tc.dt.(type) {
						case *arrow.Decimal128Type:
							n, err := decimal128.FromString(v, dt.Precision, dt.Scale)
							require.NoError(t, err, v)
							b.(*array.Decimal128Builder).Append(n)
						case *arrow.Decimal256Type:
							n, err := decimal256.FromString(v, dt.Precision, dt.Scale)
							require.NoError(t, err, v)
							b.(*array.Decimal256Builder).Append(n)
						}
					}
					b.AppendNull()
				})
				defer tbl.Release()
				want := columnStrings(tbl, 1)
				f, err := New(c, tbl, WithAllocator(mem))
				require.NoError(t, err)
				defer f.Release()
				name, err := f.WriteCSV(ctx, filepath.Join(dir, "d.csv"))
				require.NoError(t, err)
				back, err := ReadCSV(ctx, c, []string{name}, tbl.Schema(), WithAllocator(mem))
				require.NoError(t, err)
				defer back.Release()
				require.Equal(t, want, columnStrings(back.Table(), 1))
				return nil
			})
		})
	}
}

// A table of one column keeps its null rows through CSV (they were written
// as empty lines, which the reader skips: the rows vanished, with no error).
func TestCSVOneColumnNulls(t *testing.T) {
	cases := []struct {
		name string
		dt   arrow.DataType
		fill func(b array.Builder)
		want []string
	}{
		{"int64", arrow.PrimitiveTypes.Int64, func(b array.Builder) {
			b.AppendNull()
			b.(*array.Int64Builder).Append(1)
			b.AppendNull()
			b.AppendNull()
			b.(*array.Int64Builder).Append(-2)
			b.AppendNull()
		}, []string{"<null>", "1", "<null>", "<null>", "-2", "<null>"}},
		{"string", arrow.BinaryTypes.String, func(b array.Builder) {
			sb := b.(*array.StringBuilder)
			sb.AppendNull()
			sb.Append("a\n\nb") // an empty line inside a quoted field stays as it is
			sb.Append("")       // an empty field: read back as a null
			sb.Append(`"`)
			sb.Append("\n")
			sb.AppendNull()
		}, []string{"<null>", "a\n\nb", "<null>", `"`, "\n", "<null>"}},
		{"all null", arrow.PrimitiveTypes.Float64, func(b array.Builder) {
			b.AppendNulls(3)
		}, []string{"<null>", "<null>", "<null>"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				s := arrow.NewSchema([]arrow.Field{{Name: "v", Type: tc.dt, Nullable: true}}, nil)
				b := array.NewRecordBuilder(mem, s)
				defer b.Release()
				tc.fill(b.Field(0))
				rec := b.NewRecordBatch()
				defer rec.Release()
				f, err := FromRecords(c, s, []arrow.RecordBatch{rec}, WithAllocator(mem))
				require.NoError(t, err)
				defer f.Release()
				name, err := f.WriteCSV(ctx, filepath.Join(dir, "one.csv"))
				require.NoError(t, err)
				back, err := ReadCSV(ctx, c, []string{name}, s, WithAllocator(mem))
				require.NoError(t, err)
				defer back.Release()
				require.Equal(t, tc.want, columnStrings(back.Table(), 0), "with the schema")
				inferred, err := ReadCSV(ctx, c, []string{name}, nil, WithAllocator(mem))
				require.NoError(t, err)
				defer inferred.Release()
				require.Equal(t, int64(len(tc.want)), inferred.NumRows(), "with an inferred schema")
				return nil
			})
		})
	}
}

// With a schema, a CSV file's header must name the schema's columns in its
// order (arrow-go's reader takes the columns by position: a file whose
// columns were swapped was read with its values under the wrong names).
func TestCSVHeaderMustMatchSchema(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	cases := []struct {
		name, text string
		err        string // empty: read, as rows a=x b=y
	}{
		{"same order", "a,b\nx,y\n", ""},
		{"swapped", "b,a\ny,x\n", `the header names the columns ["b" "a"], the schema ["a" "b"]`},
		{"other names", "c,d\nx,y\n", `the header names the columns ["c" "d"]`},
		{"header only, swapped", "b,a\n", `the header names the columns ["b" "a"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.csv")
			require.NoError(t, os.WriteFile(path, []byte(tc.text), 0o644))
			runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				f, err := ReadCSV(ctx, c, []string{path}, schema, WithAllocator(mem))
				if tc.err != "" {
					require.ErrorContains(t, err, tc.err)
					return nil
				}
				require.NoError(t, err)
				defer f.Release()
				require.Equal(t, []string{"x"}, columnStrings(f.Table(), 0))
				require.Equal(t, []string{"y"}, columnStrings(f.Table(), 1))
				return nil
			})
		})
	}
}

// Parquet gives back the types it was written with, value for value: pqarrow
// reads timestamp[s] as timestamp[ms], date64 as date32, a dictionary column
// with int32 indices or, of other values than strings, not as a dictionary.
func TestParquetRestoresStoredTypes(t *testing.T) {
	sec := &arrow.TimestampType{Unit: arrow.Second}
	dictOf := func(idx, val arrow.DataType) *arrow.DictionaryType {
		return &arrow.DictionaryType{IndexType: idx, ValueType: val}
	}
	cases := []struct {
		name string
		dt   arrow.DataType
		fill func(b array.Builder)
	}{
		{"timestamp[s]", sec, func(b array.Builder) {
			b.(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{-1, 0, 1700000000, 253402300799}, nil)
		}},
		{"timestamp[s, tz]", &arrow.TimestampType{Unit: arrow.Second, TimeZone: "Europe/Paris"}, func(b array.Builder) {
			b.(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{-62135596800, 1}, nil)
		}},
		{"date64", arrow.FixedWidthTypes.Date64, func(b array.Builder) {
			b.(*array.Date64Builder).AppendValues([]arrow.Date64{-86400000, 0, 1641600000000}, nil)
		}},
		{"dictionary<int8, utf8>", dictOf(arrow.PrimitiveTypes.Int8, arrow.BinaryTypes.String), func(b array.Builder) {
			db := b.(*array.BinaryDictionaryBuilder)
			for _, v := range []string{"x", "y", "", "x"} {
				require.NoError(t, db.AppendString(v))
			}
		}},
		{"dictionary<int64, utf8>", dictOf(arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String), func(b array.Builder) {
			db := b.(*array.BinaryDictionaryBuilder)
			for _, v := range []string{"a,b", "c"} {
				require.NoError(t, db.AppendString(v))
			}
		}},
		{"dictionary<int32, int64>", dictOf(arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64), func(b array.Builder) {
			db := b.(*array.Int64DictionaryBuilder)
			for _, v := range []int64{1000, -1, 1000} {
				require.NoError(t, db.Append(v))
			}
		}},
		{"dictionary<uint16, float64>", dictOf(arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Float64), func(b array.Builder) {
			db := b.(*array.Float64DictionaryBuilder)
			for _, v := range []float64{0.5, -0.5} {
				require.NoError(t, db.Append(v))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			runRanks(t, 2, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				tbl := valueColumnTable(mem, tc.dt, func(b array.Builder) {
					if c.Rank() == 0 {
						tc.fill(b)
					}
					b.AppendNull()
				})
				defer tbl.Release()
				want := columnStrings(tbl, 1)
				f, err := New(c, tbl, WithAllocator(mem))
				require.NoError(t, err)
				defer f.Release()
				_, err = f.WriteParquet(ctx, filepath.Join(dir, "p-{rank}.parquet"))
				require.NoError(t, err)
				back, err := ReadParquet(ctx, c, []string{filepath.Join(dir, "p-{rank}.parquet")}, WithAllocator(mem))
				require.NoError(t, err)
				defer back.Release()
				require.True(t, back.Schema().Equal(tbl.Schema()), "read back %v, wrote %v", back.Schema(), tbl.Schema())
				require.Equal(t, want, columnStrings(back.Table(), 1))
				return nil
			})
		})
	}
}

// A file of the shared set named twice, in spellings that differ only
// lexically, is read once (it was dealt out twice: its rows were read twice).
func TestFilesNamesOneFileOnce(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.csv", "b.csv"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	a, b := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")
	cases := []struct {
		name  string
		paths []string
	}{
		{"glob and ./", []string{filepath.Join(dir, "*.csv"), filepath.Join(dir, ".", "a.csv")}},
		{"double slash", []string{dir + "//a.csv", a, b}},
		{"trailing ./", []string{dir + "/./a.csv", dir + "/./b.csv", dir + "/*.csv"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var all []string
			for r := range 3 {
				got, err := Files(tc.paths, r, 3)
				require.NoError(t, err)
				all = append(all, got...)
			}
			require.ElementsMatch(t, []string{a, b}, all)
		})
	}
}
