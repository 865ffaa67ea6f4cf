package frame

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
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
