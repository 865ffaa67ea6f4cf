package frame

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chunkedSchema is genSchema with a dictionary column d (int16 indices,
// string values) whose chunks each carry a dictionary of their own.
var chunkedSchema = arrow.NewSchema(append(genSchema.Fields(), arrow.Field{
	Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}, Nullable: true,
}), nil)

// chunkedTable builds a table of chunkedSchema with one chunk per batch of
// rows random rows (seeded by seed), as ReadParquet or a shuffle makes.
func chunkedTable(t testing.TB, mem memory.Allocator, seed uint64, batches, rows int) arrow.Table {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	recs := make([]arrow.RecordBatch, batches)
	for i := range recs {
		rec := genRecord(t, mem, rng, genSpec{rows: rows, keys: 40, nullFrac: 0.1})
		db := array.NewDictionaryBuilder(mem, chunkedSchema.Field(4).Type.(*arrow.DictionaryType)).(*array.BinaryDictionaryBuilder)
		for range rows {
			if rng.IntN(10) == 0 {
				db.AppendNull()
				continue
			}
			require.NoError(t, db.AppendString(fmt.Sprintf("d%d", rng.IntN(5)+i))) // dictionaries differ between chunks
		}
		d := db.NewArray()
		db.Release()
		recs[i] = array.NewRecordBatch(chunkedSchema, append(rec.Columns(), d), int64(rows))
		d.Release()
		rec.Release()
	}
	tbl := array.NewTableFromRecords(chunkedSchema, recs)
	for _, r := range recs {
		r.Release()
	}
	return tbl
}

// partChunked reports whether f's partition has a column of several chunks.
func partChunked(f *Frame) bool {
	t := f.table()
	defer t.Release()
	for i := range int(t.NumCols()) {
		if len(t.Column(i).Data().Chunks()) > 1 {
			return true
		}
	}
	return false
}

// wholeFrame returns a frame over a copy of tbl whose columns are whole
// (one chunk each): the reference the chunked frame's results are checked
// against.
func wholeFrame(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (*Frame, error) {
	cols, err := columns(ctx, mem, tbl)
	if err != nil {
		return nil, err
	}
	whole := tableFromColumns(tbl.Schema(), cols, tbl.NumRows())
	releaseAll(cols)
	defer whole.Release()
	return New(c, whole, WithAllocator(mem))
}

// wholeOps are the operators run on a multi-chunk frame. concats says
// whether the operator needs the frame's own columns whole at p ranks (and
// so leaves the frame's partition whole). Each returns the rows of its
// result gathered at rank 0 (nil elsewhere).
var wholeOps = []struct {
	name    string
	concats func(p int) bool
	run     func(ctx context.Context, f, other *Frame) ([]row, error)
}{
	{"shuffle", never, func(ctx context.Context, f, _ *Frame) ([]row, error) { return gathered(ctx)(f.Shuffle(ctx, "k")) }},
	{"rebalance", never, func(ctx context.Context, f, _ *Frame) ([]row, error) { return gathered(ctx)(f.Rebalance(ctx)) }},
	{"head", never, func(ctx context.Context, f, _ *Frame) ([]row, error) { return gathered(ctx)(f.Head(ctx, 150)) }},
	{"select", never, func(ctx context.Context, f, _ *Frame) ([]row, error) { return gathered(ctx)(f.Select("d", "k")) }},
	{"count", never, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		n, err := f.Count(ctx)
		return []row{{n}}, err
	}},
	{"collect", never, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		t, err := f.Collect(ctx)
		if err != nil {
			return nil, err
		}
		defer t.Release()
		return rowsOf(t), nil
	}},
	{"join", func(p int) bool { return p == 1 }, func(ctx context.Context, f, other *Frame) ([]row, error) {
		return gathered(ctx)(f.Join(ctx, other, LeftOuter, On("s")))
	}},
	{"self join", func(p int) bool { return p == 1 }, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		return gathered(ctx)(f.Join(ctx, f, Inner, On("s")))
	}},
	{"groupby", always, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		return gathered(ctx)(f.GroupBy("k").Agg(ctx, Sum("v"), Count("w"), CountRows(), Min("s")))
	}},
	{"groupby dictionary", always, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		return gathered(ctx)(f.GroupBy("d").Agg(ctx, Sum("w"), Max("k")))
	}},
	{"distinct", always, func(ctx context.Context, f, _ *Frame) ([]row, error) { return gathered(ctx)(f.Distinct(ctx, "s", "d")) }},
	{"sort", always, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		return gathered(ctx)(f.Sort(ctx, Asc("k"), Desc("d"), Asc("w")))
	}},
	{"filter", always, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		return gathered(ctx)(f.Filter(ctx, Col("w").Gt(0)))
	}},
	{"project", always, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		return gathered(ctx)(f.Project(ctx, Col("v").Mul(2).As("v2"), Col("d"), Col("s")))
	}},
	{"with column", always, func(ctx context.Context, f, _ *Frame) ([]row, error) {
		return gathered(ctx)(f.WithColumn(ctx, "w", Col("w").Add(1)))
	}},
}

func never(int) bool  { return false }
func always(int) bool { return true }

// gathered returns the rows of an operator's result frame gathered at rank
// 0, releasing the frame.
func gathered(ctx context.Context) func(*Frame, error) ([]row, error) {
	return func(f *Frame, err error) ([]row, error) {
		if err != nil {
			return nil, err
		}
		defer f.Release()
		rows, _, err := gatherRows(ctx, f)
		return rows, err
	}
}

// TestOperatorsTwiceOnChunkedFrame runs every operator twice on one frame
// whose partition has many chunks (a dictionary column among them, with a
// dictionary per chunk), over checked allocators: both runs give exactly
// the rows the operator gives on a frame whose columns were whole from the
// start; the first operator that needs whole columns leaves the frame's
// partition whole (and the others leave it chunked); the schema, row count
// and PartitionedBy never change; a frame sharing the chunked columns
// (Select) and a partition lent by Table stay intact; nothing leaks.
func TestOperatorsTwiceOnChunkedFrame(t *testing.T) {
	for _, p := range []int{1, 3} {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				batches := 4
				if p > 1 && c.Rank() == 1 {
					batches = 0 // an empty partition
				}
				tbl := chunkedTable(t, mem, uint64(c.Rank()), batches, 90)
				defer tbl.Release()
				otherTbl := chunkedTable(t, mem, 100+uint64(c.Rank()), 2, 30)
				defer otherTbl.Release()

				f, err := New(c, tbl, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer f.Release()
				ref, err := wholeFrame(ctx, c, mem, tbl)
				if err != nil {
					return err
				}
				defer ref.Release()
				other, err := New(c, otherTbl, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer other.Release()
				sel, err := f.Select("s", "d") // shares f's chunked columns
				if err != nil {
					return err
				}
				defer sel.Release()
				want, _, err := gatherRows(ctx, sel)
				if err != nil {
					return err
				}
				schema, rows := f.Schema(), f.NumRows()

				whole := false
				for _, op := range wholeOps {
					exp, err := op.run(ctx, ref, other)
					if err != nil {
						return fmt.Errorf("%s on whole columns: %w", op.name, err)
					}
					for run := range 2 {
						got, err := op.run(ctx, f, other)
						if err != nil {
							return fmt.Errorf("%s, run %d: %w", op.name, run, err)
						}
						assert.Equal(t, exp, got, "%s, run %d, rank %d", op.name, run, c.Rank())
						whole = whole || op.concats(p)
						if batches > 1 {
							assert.Equal(t, !whole, partChunked(f), "%s, run %d: the partition is chunked", op.name, run)
						}
						assert.Same(t, schema, f.Schema(), op.name)
						assert.Equal(t, rows, f.NumRows(), op.name)
						assert.Nil(t, f.PartitionedBy(), op.name)
					}
				}
				require.True(t, whole)
				if batches > 1 {
					assert.True(t, partChunked(sel), "the frame sharing the chunked columns keeps them")
				}
				got, _, err := gatherRows(ctx, sel)
				if err != nil {
					return err
				}
				assert.Equal(t, want, got, "select made before the operators")

				// A partition lent out by Table stays the frame's partition.
				lent, err := New(c, tbl, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer lent.Release()
				lt := lent.Table()
				g, err := lent.GroupBy("k").Agg(ctx, Sum("v"))
				if err != nil {
					return err
				}
				g.Release()
				assert.Same(t, lt, lent.Table())
				return nil
			})
		})
	}
}

// TestFrameReadsDuringOperators reads a multi-chunk frame (Schema, NumRows,
// PartitionedBy, Select, Filter, WriteParquet) from several goroutines
// while GroupBy and Sort run on it at once, each concatenating its columns
// and one of them replacing the frame's partition: run with -race. Every
// result is the one a frame with whole columns gives, and nothing leaks.
func TestFrameReadsDuringOperators(t *testing.T) {
	runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tbl := chunkedTable(t, mem, 3, 16, 500)
		defer tbl.Release()
		ref, err := wholeFrame(ctx, c, mem, tbl)
		if err != nil {
			return err
		}
		defer ref.Release()
		ops := []func(f *Frame) (*Frame, error){
			func(f *Frame) (*Frame, error) { return f.GroupBy("k", "d").Agg(ctx, Sum("v"), CountRows()) },
			func(f *Frame) (*Frame, error) { return f.Sort(ctx, Desc("s"), Asc("k"), Asc("d")) },
			func(f *Frame) (*Frame, error) { return f.Filter(ctx, Col("v").Lt(0)) },
		}
		want := make([][]row, len(ops))
		for i, op := range ops {
			if want[i], err = gathered(ctx)(op(ref)); err != nil {
				return err
			}
		}
		wantSel, err := gathered(ctx)(ref.Select("d", "w"))
		if err != nil {
			return err
		}

		dir := t.TempDir()
		for round := range 3 {
			f, err := New(c, tbl, WithAllocator(mem))
			if err != nil {
				return err
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for range 2 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						assert.Equal(t, chunkedSchema, f.Schema())
						assert.Equal(t, tbl.NumRows(), f.NumRows())
						assert.Nil(t, f.PartitionedBy())
						s, err := f.Select("d", "w")
						if assert.NoError(t, err) {
							st := s.table()
							assert.Equal(t, wantSel, rowsOf(st))
							st.Release()
							s.Release()
						}
						g, err := f.Filter(ctx, Col("v").Lt(0))
						if assert.NoError(t, err) {
							gt := g.table()
							assert.Equal(t, want[2], rowsOf(gt))
							gt.Release()
							g.Release()
						}
						_, err = f.WriteParquet(ctx, fmt.Sprintf("%s/r%d.parquet", dir, round))
						assert.NoError(t, err)
					}
				})
			}
			got := make([][]row, len(ops))
			errs := make([]error, len(ops))
			var opsWG sync.WaitGroup
			for i, op := range ops {
				opsWG.Go(func() {
					out, err := op(f)
					if err != nil {
						errs[i] = err
						return
					}
					ot := out.table()
					got[i] = rowsOf(ot)
					ot.Release()
					out.Release()
				})
			}
			opsWG.Wait()
			close(stop)
			wg.Wait()
			for i := range ops {
				require.NoError(t, errs[i], "op %d, round %d", i, round)
				assert.Equal(t, want[i], got[i], "op %d, round %d", i, round)
			}
			assert.False(t, partChunked(f), "round %d: the partition was left chunked", round)
			f.Release()
		}
		return nil
	})
}

// TestDictionaryChunkSharedByGoroutines runs an operator and a writer (or
// two operators) at once on a frame whose dictionary column is one sliced
// chunk that no one has decoded yet: arrow-go makes a dictionary's array
// and a slice's null count on first use, unguarded, so both goroutines
// used to make them (data races under -race, and a leak of the dictionary
// array one of them made). Run with -race. The frame's allocator has no
// lock, which would order the two decodes for the race detector.
func TestDictionaryChunkSharedByGoroutines(t *testing.T) {
	ops := []struct {
		name string
		run  func(ctx context.Context, f *Frame, dir string) (any, error)
	}{
		{"sort", func(ctx context.Context, f *Frame, _ string) (any, error) {
			return gathered(ctx)(f.Sort(ctx, Asc("d"), Asc("n")))
		}},
		{"select then sort", func(ctx context.Context, f *Frame, _ string) (any, error) {
			s, err := f.Select("d", "n")
			if err != nil {
				return nil, err
			}
			defer s.Release()
			return gathered(ctx)(s.Sort(ctx, Asc("d"), Asc("n")))
		}},
		{"write csv", func(ctx context.Context, f *Frame, dir string) (any, error) {
			path, err := f.WriteCSV(ctx, dir+"/out.csv")
			if err != nil {
				return nil, err
			}
			b, err := os.ReadFile(path)
			return string(b), err
		}},
	}
	for i, a := range ops {
		for _, b := range ops[i:] {
			t.Run(a.name+"/"+b.name, func(t *testing.T) {
				runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
					tbl := chunkedTable(t, mem, 5, 1, 20000)
					defer tbl.Release()
					nb := array.NewInt64Builder(mem)
					for i := range tbl.NumRows() {
						nb.Append(i)
					}
					n := nb.NewArray()
					nb.Release()
					defer n.Release()
					withN := tableFromColumns(arrow.NewSchema([]arrow.Field{chunkedSchema.Field(4), {Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil),
						[]arrow.Array{tbl.Column(4).Data().Chunk(0), n}, tbl.NumRows())
					defer withN.Release()
					nolock := memory.NewGoAllocator()
					want := func(op func(context.Context, *Frame, string) (any, error)) any {
						part := sliceTable(withN, 1, withN.NumRows()-1)
						defer part.Release()
						f, err := New(c, part, WithAllocator(nolock))
						require.NoError(t, err)
						defer f.Release()
						out, err := op(ctx, f, t.TempDir())
						require.NoError(t, err)
						return out
					}
					wantA, wantB := want(a.run), want(b.run)
					for round := range 10 {
						part := sliceTable(withN, 1, withN.NumRows()-1) // arrays no one has decoded
						f, err := New(c, part, WithAllocator(nolock))
						part.Release()
						require.NoError(t, err)
						var gotA, gotB any
						var errA, errB error
						start := make(chan struct{})
						var wg sync.WaitGroup
						wg.Go(func() { <-start; gotA, errA = a.run(ctx, f, t.TempDir()) })
						wg.Go(func() { <-start; gotB, errB = b.run(ctx, f, t.TempDir()) })
						close(start)
						wg.Wait()
						f.Release()
						require.NoError(t, errA, "round %d", round)
						require.NoError(t, errB, "round %d", round)
						assert.Equal(t, wantA, gotA, "round %d", round)
						assert.Equal(t, wantB, gotB, "round %d", round)
					}
					return nil
				})
			})
		}
	}
}
