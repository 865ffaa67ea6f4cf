package frame

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
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
		require.NoError(t, err)
		var names []string
		for _, g := range got {
			names = append(names, filepath.Base(g))
		}
		require.Equal(t, c.want, names, "rank %d of %d, %v", c.rank, c.size, c.paths)
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
