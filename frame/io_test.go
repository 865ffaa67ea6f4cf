package frame

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.parquet", "a.parquet", "c.parquet", "own-0.csv", "own-1.csv"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	glob := filepath.Join(dir, "*.parquet")
	own := filepath.Join(dir, "own-{rank}.csv")
	cases := []struct {
		rank, size int
		paths      []string
		want       []string
	}{
		{0, 2, []string{glob}, []string{"a.parquet", "c.parquet"}},
		{1, 2, []string{glob}, []string{"b.parquet"}},
		{3, 4, []string{glob}, nil},
		{1, 2, []string{own}, []string{"own-1.csv"}},
		{2, 3, []string{own}, []string{"own-2.csv"}}, // named explicitly: reading it will fail
		{0, 1, []string{own, glob}, []string{"own-0.csv", "a.parquet", "b.parquet", "c.parquet"}},
		{1, 3, []string{filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")}, []string{"b.parquet"}},
	}
	for _, c := range cases {
		got, err := Files(c.paths, c.rank, c.size)
		require.NoError(t, err, "rank %d of %d, %v", c.rank, c.size, c.paths)
		var names []string
		for _, g := range got {
			names = append(names, filepath.Base(g))
		}
		require.Equal(t, c.want, names, "rank %d of %d, %v", c.rank, c.size, c.paths)
	}
	// A rank outside 0..size-1 or a size below 1 is an error (a size of 0
	// used to divide by zero; a rank out of range silently got no file).
	bad := []struct {
		rank, size int
		want       string
	}{
		{0, 0, "0 ranks"},
		{0, -1, "-1 ranks"},
		{-1, 2, "rank -1 is not one of the 2 ranks"},
		{2, 2, "rank 2 is not one of the 2 ranks"},
		{5, 1, "rank 5 is not one of the 1 ranks"},
	}
	for _, b := range bad {
		for _, paths := range [][]string{{glob}, {own}, nil} {
			got, err := Files(paths, b.rank, b.size)
			require.ErrorContains(t, err, b.want, "rank %d of %d, %v", b.rank, b.size, paths)
			require.Nil(t, got)
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	formats := []struct {
		name  string
		write func(*Frame, context.Context, string) (string, error)
		read  func(context.Context, *collective.Comm, []string, memory.Allocator) (*Frame, error)
	}{
		{"parquet", (*Frame).WriteParquet, func(ctx context.Context, c *collective.Comm, p []string, mem memory.Allocator) (*Frame, error) {
			return ReadParquet(ctx, c, p, WithAllocator(mem))
		}},
		{"arrow", (*Frame).WriteIPC, func(ctx context.Context, c *collective.Comm, p []string, mem memory.Allocator) (*Frame, error) {
			return ReadIPC(ctx, c, p, WithAllocator(mem))
		}},
		{"csv", (*Frame).WriteCSV, func(ctx context.Context, c *collective.Comm, p []string, mem memory.Allocator) (*Frame, error) {
			return ReadCSV(ctx, c, p, genSchema, WithAllocator(mem))
		}},
	}
	for _, fm := range formats {
		for _, p := range []int{1, 3, 4} {
			parts := partitions(t, p, 500+uint64(p), genSpec{rows: 50, keys: 10, nullFrac: 0.2})
			dir := t.TempDir()
			pattern := filepath.Join(dir, "part-{rank}."+fm.name)
			// Write from p ranks; read back (1) each rank its own file and (2) as
			// a shared set dealt out over p-1 ranks.
			runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				f, err := newFrame(t, c, mem, parts[c.Rank()])
				if err != nil {
					return err
				}
				defer f.Release()
				name, err := fm.write(f, ctx, pattern)
				if err != nil {
					return err
				}
				if want := filepath.Join(dir, fmt.Sprintf("part-%d.%s", c.Rank(), fm.name)); name != want {
					return fmt.Errorf("wrote %s, want %s", name, want)
				}
				back, err := fm.read(ctx, c, []string{pattern}, mem)
				if err != nil {
					return err
				}
				defer back.Release()
				if got, want := rowsOf(back.Table()), parts[c.Rank()]; len(got) != len(want) || (len(want) > 0 && fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want))) {
					return fmt.Errorf("rank %d read back %d rows, want %d", c.Rank(), len(got), len(want))
				}
				if !back.Schema().Equal(genSchema) && fm.name != "csv" {
					return fmt.Errorf("schema %v, want %v", back.Schema(), genSchema)
				}
				return nil
			})
			q := max(p-1, 1)
			var got []row
			runRanks(t, q, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				f, err := fm.read(ctx, c, []string{filepath.Join(dir, "part-*."+fm.name)}, mem)
				if err != nil {
					return err
				}
				defer f.Release()
				rows, _, err := gatherRows(ctx, f)
				if c.Rank() == 0 {
					got = rows
				}
				return err
			})
			requireSameRows(t, concatRows(parts), got, "%s p=%d", fm.name, p)
		}
	}
}

func TestReadErrorsReachEveryRank(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad-1.parquet"), []byte("not parquet"), 0o644))
	mem := memory.NewGoAllocator()
	tbl := buildTable(mem, genSchema, nil)
	defer tbl.Release()
	errs := make([]error, 3)
	runRanks(t, 3, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		f, err := New(c, tbl, WithAllocator(mem))
		if err != nil {
			return err
		}
		if c.Rank() != 1 {
			_, err = f.WriteParquet(ctx, filepath.Join(dir, "bad-{rank}.parquet"))
		}
		f.Release()
		if err != nil {
			return err
		}
		if err := c.Barrier(ctx); err != nil {
			return err
		}
		_, errs[c.Rank()] = ReadParquet(ctx, c, []string{filepath.Join(dir, "bad-{rank}.parquet")}, WithAllocator(mem))
		return nil
	})
	for r, err := range errs {
		require.ErrorContains(t, err, "rank 1", "rank %d", r)
	}
	// A path without the placeholder would make the ranks overwrite each other.
	runRanks(t, 2, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		f, err := New(c, tbl, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer f.Release()
		if _, err := f.WriteIPC(ctx, filepath.Join(dir, "x.arrow")); err == nil {
			return fmt.Errorf("no error for a shared output path")
		}
		return nil
	})
	_ = arrow.PrimitiveTypes.Int64
}

// dictTable has a dictionary column whose two chunks carry different
// dictionaries, as a partition has after an exchange, a time32 column and
// an int64 id: values a b a c a.
func dictTable(mem memory.Allocator, withTime bool) arrow.Table {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	chunk := func(dict []string, idx []int32) arrow.Array {
		db := array.NewStringBuilder(mem)
		defer db.Release()
		db.AppendValues(dict, nil)
		d := db.NewArray()
		defer d.Release()
		ib := array.NewInt32Builder(mem)
		defer ib.Release()
		ib.AppendValues(idx, nil)
		ia := ib.NewArray()
		defer ia.Release()
		return array.NewDictionaryArray(dt, ia, d)
	}
	c1, c2 := chunk([]string{"a", "b"}, []int32{0, 1, 0}), chunk([]string{"c", "a"}, []int32{0, 1})
	defer c1.Release()
	defer c2.Release()
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	ib.AppendValues([]int64{1, 2, 3}, nil)
	i1 := ib.NewArray()
	defer i1.Release()
	ib.AppendValues([]int64{4, 5}, nil)
	i2 := ib.NewArray()
	defer i2.Release()
	fields := []arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "cat", Type: dt}}
	cols := [][]arrow.Array{{i1, i2}, {c1, c2}}
	if withTime {
		tb := array.NewTime32Builder(mem, &arrow.Time32Type{Unit: arrow.Second})
		defer tb.Release()
		tb.AppendValues([]arrow.Time32{1, 2, 3}, nil)
		t1 := tb.NewArray()
		defer t1.Release()
		tb.AppendValues([]arrow.Time32{4, 5}, nil)
		t2 := tb.NewArray()
		defer t2.Release()
		fields = append(fields, arrow.Field{Name: "at", Type: arrow.FixedWidthTypes.Time32s})
		cols = append(cols, []arrow.Array{t1, t2})
	}
	schema := arrow.NewSchema(fields, nil)
	columns := make([]arrow.Column, len(fields))
	for i := range fields {
		ch := arrow.NewChunked(fields[i].Type, cols[i])
		columns[i] = *arrow.NewColumn(fields[i], ch)
		ch.Release()
	}
	defer func() {
		for i := range columns {
			columns[i].Release()
		}
	}()
	return array.NewTable(schema, columns, 5)
}

// Dictionary columns whose chunks have different dictionaries are written:
// to CSV as their values, to Arrow IPC with one unified dictionary; and a
// column type the CSV writer cannot print is an error, not a crash.
func TestWriteDictionaryColumns(t *testing.T) {
	runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		dir := t.TempDir()
		tbl := dictTable(mem, false)
		f, err := New(c, tbl, WithAllocator(mem))
		tbl.Release()
		if err != nil {
			return err
		}
		defer f.Release()

		name, err := f.WriteCSV(ctx, filepath.Join(dir, "d.csv"))
		if err != nil {
			return err
		}
		text, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		if want := "id,cat\n1,a\n2,b\n3,a\n4,c\n5,a\n"; string(text) != want {
			return fmt.Errorf("csv %q, want %q", text, want)
		}

		// arrow-go v18.6.0's IPC file writer keeps a reference to each
		// dictionary it wrote; WriteIPC hands it copies on a Go allocator,
		// so this part runs on the checked allocator too.
		goMem := mem
		tbl = dictTable(goMem, false)
		fi, err := New(c, tbl, WithAllocator(goMem))
		tbl.Release()
		if err != nil {
			return err
		}
		defer fi.Release()
		name, err = fi.WriteIPC(ctx, filepath.Join(dir, "d.arrow"))
		if err != nil {
			return err
		}
		back, err := ReadIPC(ctx, c, []string{name}, WithAllocator(goMem))
		if err != nil {
			return err
		}
		defer back.Release()
		var got []string
		for _, a := range back.Table().Column(1).Data().Chunks() {
			for i := range a.Len() {
				got = append(got, a.ValueStr(i))
			}
		}
		if want := []string{"a", "b", "a", "c", "a"}; !slices.Equal(got, want) {
			return fmt.Errorf("ipc read back %q, want %q", got, want)
		}

		tbl = dictTable(mem, true)
		g, err := New(c, tbl, WithAllocator(mem))
		tbl.Release()
		if err != nil {
			return err
		}
		defer g.Release()
		if _, err := g.WriteCSV(ctx, filepath.Join(dir, "t.csv")); err == nil || !strings.Contains(err.Error(), "write csv") {
			return fmt.Errorf("time32 to csv: error %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "t.csv")); !os.IsNotExist(err) {
			return fmt.Errorf("a failed write left a file: %v", err)
		}
		return nil
	})
}
