package frame

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Edge cases of the operators and readers beyond the randomized tests.

// A CSV file that starts with a UTF-8 byte order mark (as Excel and many
// Windows tools write) reads as if it had none, as in pandas and DuckDB: the
// first column keeps its name, whether the schema is inferred or given, and
// a file with the mark agrees with one without on the schema.
func TestReadCSVByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.csv"), "\ufeffamount,region\n10,eu\n3,us\n")
	writeFile(t, filepath.Join(dir, "b.csv"), "amount,region\n2,ap\n")
	writeFile(t, filepath.Join(dir, "c.csv"), "\ufeff\ufeffamount,region\n5,eu\n") // a second mark is data
	want := arrow.NewSchema([]arrow.Field{
		{Name: "amount", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	for _, p := range []int{1, 2, 3} {
		for _, schema := range []*arrow.Schema{nil, want} {
			got, values, errs := runCSV(t, p, []string{filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")}, schema)
			for r, err := range errs {
				require.NoError(t, err, "%d ranks, rank %d, schema %v", p, r, schema != nil)
			}
			require.True(t, want.Equal(got), "%d ranks: got %v", p, got)
			require.Equal(t, []string{"10", "3", "2"}, values, "%d ranks", p)
		}
	}
	_, _, errs := runCSV(t, 1, []string{filepath.Join(dir, "c.csv")}, want)
	require.ErrorContains(t, errs[0], "the header names the columns")
}

// A key named twice would give the result two columns of one name, which
// Agg refuses for its aggregations ("two result columns are called"), and a
// frame whose every later use of the key is ambiguous: it is an argument
// error on every rank, before anything moves, for GroupBy and Distinct alike,
// and the communicator stays usable.
func TestGroupByKeyNamedTwice(t *testing.T) {
	tb := jsonTable(t, "k", arrow.PrimitiveTypes.Int64, `[1, 2, 1, null]`, "v", arrow.PrimitiveTypes.Int64, `[1, 2, 3, 4]`)
	defer tb.Release()
	for _, p := range []int{1, 2, 3} {
		errs := make([][2]error, p)
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			f, err := New(c, tb, WithAllocator(mem))
			if err != nil {
				return err
			}
			defer f.Release()
			g, err := f.GroupBy("k", "v", "k").Agg(ctx, CountRows())
			if err == nil {
				g.Release()
			}
			errs[c.Rank()][0] = err
			d, err := f.Distinct(ctx, "k", "k")
			if err == nil {
				d.Release()
			}
			errs[c.Rank()][1] = err
			n, err := f.Count(ctx) // still usable
			if err == nil && n != int64(4*p) {
				err = fmt.Errorf("count %d, want %d", n, 4*p)
			}
			return err
		})
		for r, e := range errs {
			require.ErrorContains(t, e[0], `groupby: key column "k" is named twice`, "%d ranks, rank %d", p, r)
			require.ErrorContains(t, e[1], `distinct: key column "k" is named twice`, "%d ranks, rank %d", p, r)
		}
	}
}

// Select and Project refuse a result with two columns of one name, as Join
// and Agg do: such a frame could not name either column again (every
// operator calls the name ambiguous).
func TestSelectProjectDuplicateNames(t *testing.T) {
	tb := jsonTable(t, "k", arrow.PrimitiveTypes.Int64, `[1, 2]`, "v", arrow.PrimitiveTypes.Int64, `[3, 4]`)
	defer tb.Release()
	f, done := soloFrame(t, tb)
	defer done()
	ctx := context.Background()
	_, err := f.Select("k", "v", "k")
	require.ErrorContains(t, err, `select: two result columns are called "k"`)
	_, err = f.Project(ctx, Col("k"), Col("v").As("k"))
	require.ErrorContains(t, err, `project: two result columns are called "k"`)
	_, err = f.Project(ctx, Col("k").Add(1), Col("k").Add(1))
	require.ErrorContains(t, err, `project: two result columns are called "(k + 1)"`)
	// Distinct names still work, including a column renamed over another's.
	g, err := f.Project(ctx, Col("v").As("k"), Col("k").As("v"))
	require.NoError(t, err)
	defer g.Release()
	require.Equal(t, []row{{int64(3), int64(1)}, {int64(4), int64(2)}}, rowsOf(g.Table()))
	require.Equal(t, []string{"k", "v"}, fieldNames(g.Schema()))
}

// A first column whose name starts with a byte order mark keeps it through
// WriteCSV and ReadCSV: ReadCSV drops one mark at the start of a file, so the
// writer puts one before such a header.
func TestCSVRoundTripFirstNameWithByteOrderMark(t *testing.T) {
	tb := jsonTable(t, "\ufeffid", arrow.PrimitiveTypes.Int64, `[1, null, 3]`, "v", arrow.BinaryTypes.String, `["a", "b", null]`)
	defer tb.Release()
	path := filepath.Join(t.TempDir(), "x.csv")
	runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		f, err := New(c, tb, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer f.Release()
		if _, err := f.WriteCSV(ctx, path); err != nil {
			return err
		}
		for _, s := range []*arrow.Schema{nil, tb.Schema()} {
			g, err := ReadCSV(ctx, c, []string{path}, s, WithAllocator(mem))
			if err != nil {
				return err
			}
			require.Equal(t, []string{"\ufeffid", "v"}, fieldNames(g.Schema()))
			require.Equal(t, rowsOf(tb), rowsOf(g.Table()))
			g.Release()
		}
		return nil
	})
}

// Files whose schemas differ only in the nullability of a column or in
// metadata (one written from a frame whose column is declared not null,
// another from a join's output, say) read together, as pyarrow's datasets,
// Polars and DuckDB read them: a column is nullable if it is in any file,
// the metadata are the first file's (in rank order), and every rank's
// partition gets that one schema. Columns of other names or types are still
// an error.
func TestReadFilesNullabilityAndMetadataDiffer(t *testing.T) {
	dir := t.TempDir()
	type variant struct {
		name     string
		nullable bool
		md, fmd  map[string]string
	}
	variants := []variant{{"a", false, map[string]string{"writer": "one"}, nil}, {"b", true, nil, nil},
		{"c", false, nil, map[string]string{"comment": "id"}}, {"d", true, map[string]string{"writer": "two"}, nil}}
	table := func(mem memory.Allocator, v variant, vals ...int64) arrow.Table {
		var md *arrow.Metadata
		if v.md != nil {
			m := arrow.MetadataFrom(v.md)
			md = &m
		}
		fld := arrow.Field{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: v.nullable}
		if v.fmd != nil {
			fld.Metadata = arrow.MetadataFrom(v.fmd)
		}
		s := arrow.NewSchema([]arrow.Field{fld, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, md)
		b := array.NewRecordBuilder(mem, s)
		defer b.Release()
		for _, x := range vals {
			b.Field(0).(*array.Int64Builder).Append(x)
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprint(x))
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		return array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
	}
	runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		for i, v := range variants {
			tb := table(mem, v, int64(2*i), int64(2*i+1))
			f, err := New(c, tb, WithAllocator(mem))
			tb.Release()
			if err != nil {
				return err
			}
			defer f.Release()
			for _, ext := range []string{"parquet", "arrow"} {
				write := f.WriteParquet
				if ext == "arrow" {
					write = f.WriteIPC
				}
				if _, err := write(ctx, filepath.Join(dir, ext, v.name+"."+ext)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	want := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, &arrow.Metadata{})
	for _, ext := range []string{"parquet", "arrow"} {
		read := ReadParquet
		if ext == "arrow" {
			read = ReadIPC
		}
		for _, p := range []int{1, 2, 3, 5} {
			schemas := make([]*arrow.Schema, p)
			var got []row
			runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				f, err := read(ctx, c, []string{filepath.Join(dir, ext, "*")}, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer f.Release()
				schemas[c.Rank()] = f.Schema()
				rows, _, err := gatherRows(ctx, f)
				if c.Rank() == 0 {
					got = rows
				}
				return err
			})
			for r, s := range schemas {
				require.True(t, want.Equal(s), "%s, %d ranks, rank %d: %v", ext, p, r, s)
				require.Equal(t, "one", s.Metadata().Values()[s.Metadata().FindKey("writer")], "%s, %d ranks, rank %d: the first file's metadata", ext, p, r)
				require.False(t, s.Field(0).HasMetadata(), "%s, %d ranks, rank %d", ext, p, r)
			}
			require.ElementsMatch(t, []row{{int64(0), "0"}, {int64(1), "1"}, {int64(2), "2"}, {int64(3), "3"},
				{int64(4), "4"}, {int64(5), "5"}, {int64(6), "6"}, {int64(7), "7"}}, got, "%s, %d ranks", ext, p)
		}
	}
	// Another type is still an error.
	runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tb := jsonTable(t, "k", arrow.PrimitiveTypes.Int32, `[1]`, "s", arrow.BinaryTypes.String, `["x"]`)
		defer tb.Release()
		f, err := New(c, tb, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer f.Release()
		_, err = f.WriteParquet(ctx, filepath.Join(dir, "parquet", "e.parquet"))
		return err
	})
	runRanks(t, 2, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		f, err := ReadParquet(ctx, c, []string{filepath.Join(dir, "parquet", "*")}, WithAllocator(mem))
		if err == nil {
			f.Release()
		}
		require.ErrorContains(t, err, "schema")
		return nil
	})
}

// A Parquet file is read back with the schema it was written with (docs),
// its metadata included, as pyarrow reads it: the reader took the file's
// metadata from a field arrow-go's manifest never sets, so they were lost.
func TestParquetKeepsSchemaMetadata(t *testing.T) {
	md := arrow.NewMetadata([]string{"writer", "pandas"}, []string{"one", `{"index_columns": []}`})
	s := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true,
		Metadata: arrow.NewMetadata([]string{"comment"}, []string{"id"})}}, &md)
	path := filepath.Join(t.TempDir(), "x.parquet")
	runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		b := array.NewRecordBuilder(mem, s)
		b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, []bool{true, false})
		rec := b.NewRecordBatch()
		b.Release()
		f, err := FromRecords(c, s, []arrow.RecordBatch{rec}, WithAllocator(mem))
		rec.Release()
		if err != nil {
			return err
		}
		defer f.Release()
		if _, err := f.WriteParquet(ctx, path); err != nil {
			return err
		}
		g, err := ReadParquet(ctx, c, []string{path}, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer g.Release()
		assert.True(t, s.Equal(g.Schema()), "%v", g.Schema())
		assert.Equal(t, md, g.Schema().Metadata())
		assert.Equal(t, []row{{int64(1)}, {nil}}, rowsOf(g.Table()))
		return nil
	})
}

// Filter counts a null predicate as false (its doc, and SQL's WHERE NULL):
// a predicate of the null type, a null constant or a column of nulls, keeps
// no row, at any number of ranks, where it was an error ("predicate <nil> is
// null, not boolean").
func TestFilterNullPredicateKeepsNoRow(t *testing.T) {
	tb := jsonTable(t, "k", arrow.PrimitiveTypes.Int64, `[1, 2, null, 4]`, "n", arrow.Null, `[null, null, null, null]`)
	defer tb.Release()
	for _, p := range []int{1, 2, 3} {
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			f, err := New(c, tb, WithAllocator(mem))
			if err != nil {
				return err
			}
			defer f.Release()
			for _, pred := range []Expr{Lit(nil), Col("n")} {
				g, err := f.Filter(ctx, pred)
				if err != nil {
					return err
				}
				assert.Zero(t, g.NumRows(), "%s", pred)
				assert.True(t, tb.Schema().Equal(g.Schema()), "%s", pred)
				g.Release()
			}
			return nil
		})
	}
}
