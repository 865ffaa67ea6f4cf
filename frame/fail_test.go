package frame

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// failDeadline is the deadline of every rank in the failure tests: a rank
// that reaches it waited for a failed one instead of failing promptly.
const failDeadline = 10 * time.Second

// runFailing runs fn on every rank of a p-rank in-process communicator, or
// of one split from it (color 0, ranks reversed) when split is set, with a
// deadline of failDeadline and no cancelling of the others when a rank
// fails. It asserts that no rank reached the deadline and nothing leaked,
// and returns every rank's error, by its rank in the communicator fn got.
func runFailing(t *testing.T, p int, split bool, fn func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failDeadline)
	defer cancel()
	world, err := collective.Local(ctx, p)
	require.NoError(t, err)
	mems := make([]*memory.CheckedAllocator, p)
	errs := make([]error, p)
	var wg sync.WaitGroup
	for r := range p {
		mems[r] = memory.NewCheckedAllocator(memory.NewGoAllocator())
		wg.Go(func() {
			c := world[r]
			if split {
				sub, err := c.Split(ctx, 0, p-r)
				if err != nil {
					errs[r] = err
					return
				}
				defer sub.Close()
				c = sub
			}
			errs[c.Rank()] = fn(ctx, c, mems[r])
		})
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "a rank waited for its deadline instead of failing promptly")
	for _, c := range world {
		require.NoError(t, c.Close())
	}
	for r, m := range mems {
		require.Zero(t, m.CurrentAlloc(), "rank %d of %d leaked", r, p)
	}
	return errs
}

// badDictTable has one row per value of d, a dictionary<int32, string>
// column, and an int64 column v. On bad, d's indices are {0, 1, 7} over
// the dictionary ["a", "b"]: index 7 is out of range. Otherwise they are
// {0, 1, 0}.
func badDictTable(mem memory.Allocator, bad bool) arrow.Table {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	sb := array.NewStringBuilder(mem)
	defer sb.Release()
	sb.AppendValues([]string{"a", "b"}, nil)
	dict := sb.NewArray()
	defer dict.Release()
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	last := int32(0)
	if bad {
		last = 7
	}
	ib.AppendValues([]int32{0, 1, last}, nil)
	idx := ib.NewArray()
	defer idx.Release()
	d := array.NewDictionaryArray(dt, idx, dict)
	defer d.Release()
	vb := array.NewInt64Builder(mem)
	defer vb.Release()
	vb.AppendValues([]int64{1, 2, 3}, nil)
	v := vb.NewArray()
	defer v.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt, Nullable: true}, {Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{d, v}, 3)
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// A rank whose partition holds a dictionary column with an out-of-range
// index fails every distributed operator that reads the column, and every
// other rank fails too, promptly, on the world communicator and on one
// split from it, with an error that names the failing rank.
func TestOneBadRankFailsEveryRankPromptly(t *testing.T) {
	ops := []struct {
		name string
		run  func(ctx context.Context, f *Frame) (*Frame, error)
		// usable: the ranks agree that the operator failed before any data
		// moved, so the communicator stays usable.
		usable bool
	}{
		{"groupby", func(ctx context.Context, f *Frame) (*Frame, error) {
			return f.GroupBy("d").Agg(ctx, CountRows())
		}, true},
		{"distinct", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Distinct(ctx, "d") }, true},
		{"sort", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Sort(ctx, Asc("d")) }, false},
		{"shuffle", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Shuffle(ctx, "d") }, false},
		{"join", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Join(ctx, f, Inner, On("d")) }, false},
	}
	for _, op := range ops {
		for _, p := range []int{2, 3} {
			for _, split := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/p=%d/split=%v", op.name, p, split), func(t *testing.T) {
					// The ranks check that the communicator is still usable only
					// once all of them are past the operator: a rank that called
					// Barrier early would end the wait of one stuck in the
					// operator.
					var done sync.WaitGroup
					done.Add(p)
					errs := runFailing(t, p, split, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
						tbl := badDictTable(mem, c.Rank() == 0)
						f, err := New(c, tbl, WithAllocator(mem))
						tbl.Release()
						if err != nil {
							return err
						}
						defer f.Release()
						g, err := op.run(ctx, f)
						done.Done()
						if err == nil {
							g.Release()
							return nil
						}
						if op.usable {
							done.Wait()
							if berr := c.Barrier(ctx); berr != nil {
								return fmt.Errorf("%w; then the communicator was not usable: %v", err, berr)
							}
						}
						return err
					})
					for r, err := range errs {
						require.Error(t, err, "rank %d", r)
						require.NoError(t, checkWhere(err, r, op.name), "rank %d", r)
						if op.usable {
							require.NotContains(t, err.Error(), "not usable", "rank %d", r)
						}
					}
					require.Regexp(t, "out of (range|bounds)", errs[0].Error(), "rank 0 says what is wrong")
					if op.usable {
						for r := 1; r < p; r++ {
							require.ErrorContains(t, errs[r], "rank 0 failed", "rank %d names the failing rank", r)
						}
					}
				})
			}
		}
	}
}

// unencodable is a data type arrow-go's IPC writer cannot write (it panics
// on types it does not know).
type unencodable struct{ arrow.NullType }

func (*unencodable) Name() string   { return "unencodable" }
func (*unencodable) String() string { return "unencodable" }

// oneColumnTable is a table of one column: n nulls of type unencodable
// when odd, else of type null.
func oneColumnTable(odd bool) arrow.Table {
	var dt arrow.DataType = arrow.Null
	if odd {
		dt = &unencodable{}
	}
	col := array.MakeFromData(array.NewData(dt, 2, []*memory.Buffer{nil}, nil, 2, 0))
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: dt, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 2)
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// A rank that cannot encode its schema to compare it with the others' (as
// every distributed operator does first, and the readers do after reading)
// still takes part in the comparison: every rank fails, promptly, the
// others naming it, and the communicator stays usable.
func TestUnencodableSchemaFailsEveryRank(t *testing.T) {
	cases := []struct {
		name string
		run  func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error
	}{
		{"sort", func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			tbl := oneColumnTable(c.Rank() == 0)
			defer tbl.Release()
			f, err := New(c, tbl, WithAllocator(mem))
			if err != nil {
				return err
			}
			defer f.Release()
			g, err := f.Sort(ctx, Asc("n"))
			if err == nil {
				g.Release()
			}
			return err
		}},
		{"read", func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			read := func(context.Context, memory.Allocator, string) (arrow.Table, error) {
				return oneColumnTable(c.Rank() == 0), nil
			}
			f, err := readFiles(ctx, c, "read", []string{"file-{rank}"}, []Option{WithAllocator(mem)}, read)
			if err == nil {
				f.Release()
			}
			return err
		}},
	}
	for _, tc := range cases {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/split=%v", tc.name, split), func(t *testing.T) {
				const p = 3
				var done sync.WaitGroup
				done.Add(p)
				errs := runFailing(t, p, split, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
					err := tc.run(ctx, c, mem)
					done.Done()
					done.Wait()
					if berr := c.Barrier(ctx); berr != nil {
						return fmt.Errorf("%w; then the communicator was not usable: %v", err, berr)
					}
					return err
				})
				for r, err := range errs {
					require.Error(t, err, "rank %d", r)
					require.NoError(t, checkWhere(err, r, tc.name), "rank %d", r)
					require.NotContains(t, err.Error(), "not usable", "rank %d", r)
					require.ErrorContains(t, err, "unencodable", "rank %d", r)
				}
				require.ErrorContains(t, errs[0], "encode schema")
				for r := 1; r < p; r++ {
					require.ErrorContains(t, errs[r], "rank 0 failed", "rank %d names the failing rank", r)
				}
			})
		}
	}
}
