package frame

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// pollCtx is a context that ends after a set number of looks: its first
// live calls of Err report nil, every later one context.Canceled (and Done
// is closed then). It counts the calls, so a test can tell how often a
// kernel looks at its context and how much it does after it ended, without
// timing anything.
type pollCtx struct {
	context.Context // Deadline and Value of context.Background
	live            int64
	polls           atomic.Int64
	once            sync.Once
	done            chan struct{}
}

func newPollCtx(live int64) *pollCtx {
	c := &pollCtx{Context: context.Background(), live: live, done: make(chan struct{})}
	if live <= 0 {
		c.cancel()
	}
	return c
}

func (c *pollCtx) cancel() { c.once.Do(func() { close(c.done) }) }

func (c *pollCtx) Err() error {
	if c.polls.Add(1) > c.live {
		c.cancel()
		return context.Canceled
	}
	return nil
}

func (c *pollCtx) Done() <-chan struct{} { return c.done }

// late is how many looks saw the context ended.
func (c *pollCtx) late() int64 { return max(c.polls.Load()-max(c.live, 0), 0) }

// cancelRows is the partition length of the cancellation tests: a dozen
// blocks of pollRows rows.
const cancelRows = 12*pollRows + 123

// cancelTable builds a partition of cancelRows rows: k int64 with about
// rows/2 distinct values (every 50th null), s a string of about rows/4
// values, v float64.
func cancelTable(mem memory.Allocator) arrow.Table {
	s := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	kb, sb, vb := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.StringBuilder), b.Field(2).(*array.Float64Builder)
	x := uint64(12345)
	for i := range cancelRows {
		x = x*6364136223846793005 + 1442695040888963407
		if i%50 == 0 {
			kb.AppendNull()
		} else {
			kb.Append(int64(x>>33) % (cancelRows / 2))
		}
		sb.Append(fmt.Sprintf("s%06d", (x>>20)%(cancelRows/4)))
		vb.Append(float64(x>>11) / (1 << 53))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
}

// cancelOp is one public operator run on a one-rank frame f of
// cancelTable's rows (dir holds the files the readers read); it releases
// what it returns.
type cancelOp struct {
	name string // the operator's name in its errors
	run  func(ctx context.Context, f *Frame, dir string) error
	// midway: the operator has O(rows) local kernels, which must look at
	// ctx more than once and stop part-way; the others only need to fail
	// at once when ctx has already ended.
	midway bool
	// block is how many rows the operator handles between two looks at
	// ctx, at most (0: pollRows).
	block int
}

func releaseFrame(g *Frame, err error) error {
	if g != nil {
		g.Release()
	}
	return err
}

func releaseTable(t arrow.Table, err error) error {
	if t != nil {
		t.Release()
	}
	return err
}

var cancelOps = []cancelOp{
	{"sort", func(ctx context.Context, f *Frame, _ string) error { return releaseFrame(f.Sort(ctx, Asc("k"))) }, true, 0},
	{"sort", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.Sort(ctx, Asc("s"), Desc("v").WithNullsFirst()))
	}, true, 0},
	{"join", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.Join(ctx, f, Inner, On("k")))
	}, true, 0},
	{"join", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.Join(ctx, f, FullOuter, On("k")))
	}, true, 0},
	{"join", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.Join(ctx, f, LeftOuter, On("s")))
	}, true, 0},
	{"join", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.Join(ctx, f, Inner, On("k"), SortMerge()))
	}, true, 0},
	{"groupby", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.GroupBy("k").Agg(ctx, Sum("v"), Min("s"), Max("v"), CountRows(), Mean("v")))
	}, true, 0},
	{"groupby", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.GroupBy("s", "k").Agg(ctx, Count("v"), Max("s")))
	}, true, 0},
	{"groupby", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.GroupBy().Agg(ctx, Sum("k")))
	}, true, 0},
	{"distinct", func(ctx context.Context, f *Frame, _ string) error { return releaseFrame(f.Distinct(ctx, "s")) }, true, 0},
	{"filter", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.Filter(ctx, Col("v").Gt(0.25)))
	}, true, 0},
	{"read csv", func(ctx context.Context, f *Frame, dir string) error {
		return releaseFrame(ReadCSV(ctx, f.Comm(), []string{filepath.Join(dir, "t.csv")}, f.Schema(), WithAllocator(f.cfg.mem)))
	}, true, csvBatchRows},
	{"project", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.Project(ctx, Col("v").Mul(2).As("v2"), Col("s")))
	}, false, 0},
	{"project", func(ctx context.Context, f *Frame, _ string) error {
		return releaseFrame(f.WithColumn(ctx, "w", Col("k").Add(1)))
	}, false, 0},
	{"shuffle", func(ctx context.Context, f *Frame, _ string) error { return releaseFrame(f.Shuffle(ctx, "k")) }, false, 0},
	{"head", func(ctx context.Context, f *Frame, _ string) error { return releaseFrame(f.Head(ctx, 10)) }, false, 0},
	{"rebalance", func(ctx context.Context, f *Frame, _ string) error { return releaseFrame(f.Rebalance(ctx)) }, false, 0},
	{"count", func(ctx context.Context, f *Frame, _ string) error { _, err := f.Count(ctx); return err }, false, 0},
	{"gather", func(ctx context.Context, f *Frame, _ string) error { return releaseTable(f.Gather(ctx, 0)) }, false, 0},
	{"collect", func(ctx context.Context, f *Frame, _ string) error { return releaseTable(f.Collect(ctx)) }, false, 0},
	{"read parquet", func(ctx context.Context, f *Frame, dir string) error {
		return releaseFrame(ReadParquet(ctx, f.Comm(), []string{filepath.Join(dir, "t.parquet")}, WithAllocator(f.cfg.mem)))
	}, true, parquetBatchRows},
	{"read ipc", func(ctx context.Context, f *Frame, dir string) error {
		return releaseFrame(ReadIPC(ctx, f.Comm(), []string{filepath.Join(dir, "t.arrow")}, WithAllocator(f.cfg.mem)))
	}, false, 0},
	{"write csv", func(ctx context.Context, f *Frame, dir string) error {
		_, err := f.WriteCSV(ctx, filepath.Join(dir, "out.csv"))
		return err
	}, false, 0},
	{"write parquet", func(ctx context.Context, f *Frame, dir string) error {
		_, err := f.WriteParquet(ctx, filepath.Join(dir, "out.parquet"))
		return err
	}, false, 0},
	{"write ipc", func(ctx context.Context, f *Frame, dir string) error {
		_, err := f.WriteIPC(ctx, filepath.Join(dir, "out.arrow"))
		return err
	}, false, 0},
}

// TestCancelLocalKernels proves that every operator stops part-way through
// its local kernels when its context ends: run once on a context that never
// ends, it looks at the context many times (every pollRows rows); cancelled
// after a share of those looks, it fails with an error that wraps
// context.Canceled and names the operator, having looked at most a few
// times after the end (so it did no more than a few blocks of work), and
// leaks nothing. With a context that has already ended, every operator
// fails at once. No clock is involved.
func TestCancelLocalKernels(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) }) // after the frames' cleanups
	tbl := cancelTable(mem)
	t.Cleanup(tbl.Release)
	// frameOn wraps tbl in a frame on a communicator of its own: a
	// collective called with an ended context fails its communicator.
	frameOn := func(t *testing.T) *Frame {
		f, done := soloFrame(t, tbl, WithAllocator(mem), WithParallelism(2))
		t.Cleanup(done)
		return f
	}
	dir := t.TempDir()
	f := frameOn(t)
	for _, name := range []string{"t.csv", "t.parquet", "t.arrow"} {
		var err error
		switch filepath.Ext(name) {
		case ".csv":
			_, err = f.WriteCSV(context.Background(), filepath.Join(dir, name))
		case ".parquet":
			_, err = f.WriteParquet(context.Background(), filepath.Join(dir, name))
		default:
			_, err = f.WriteIPC(context.Background(), filepath.Join(dir, name))
		}
		require.NoError(t, err)
	}

	held := mem.CurrentAlloc() // the table
	for i, op := range cancelOps {
		t.Run(fmt.Sprintf("%d-%s", i, op.name), func(t *testing.T) {
			never := newPollCtx(math.MaxInt64)
			require.NoError(t, op.run(never, frameOn(t), dir))
			total := never.polls.Load()
			if op.midway {
				// Every kernel pass looks at ctx once per block of rows, so
				// there are at least as many looks as blocks.
				block := cmp.Or(op.block, pollRows)
				require.GreaterOrEqual(t, total, int64(cancelRows/block), "%s looks at ctx every %d rows", op.name, block)
				for _, live := range []int64{1, total / 4, total / 2, 3 * total / 4, total - 1} {
					ctx := newPollCtx(live)
					err := op.run(ctx, frameOn(t), dir)
					require.ErrorIs(t, err, context.Canceled, "%s cancelled after %d of %d looks", op.name, live, total)
					require.NoError(t, checkWhere(err, 0, op.name))
					require.LessOrEqual(t, ctx.late(), int64(3), "%s went on after ctx ended (cancelled after %d of %d looks): %v", op.name, live, total, err)
					require.Equal(t, held, mem.CurrentAlloc(), "%s leaked", op.name)
				}
			}
			ctx := newPollCtx(0) // ended before the call
			err := op.run(ctx, frameOn(t), dir)
			require.ErrorIs(t, err, context.Canceled, "%s with an ended context", op.name)
			require.NoError(t, checkWhere(err, 0, op.name))
			require.LessOrEqual(t, ctx.late(), int64(2), "%s went on with an ended context: %v", op.name, err)
		})
	}
}

// TestCancelOneRankMidKernel cancels one rank of two inside its local
// kernels: it fails with context.Canceled, and the other rank, whose context
// never ends, fails too instead of waiting for it (the safety timeout is
// never what ends it).
func TestCancelOneRankMidKernel(t *testing.T) {
	ops := []struct {
		name string
		run  func(ctx context.Context, f *Frame) error
	}{
		{"sort", func(ctx context.Context, f *Frame) error { return releaseFrame(f.Sort(ctx, Asc("s"))) }},
		{"groupby", func(ctx context.Context, f *Frame) error { return releaseFrame(f.GroupBy("k").Agg(ctx, Sum("v"))) }},
		{"join", func(ctx context.Context, f *Frame) error { return releaseFrame(f.Join(ctx, f, Inner, On("s"))) }},
	}
	for _, op := range ops {
		for _, live := range []int64{1, 3} {
			t.Run(fmt.Sprintf("%s-%d", op.name, live), func(t *testing.T) {
				safety, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				comms, err := collective.Local(safety, 2)
				require.NoError(t, err)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for r := range 2 {
					wg.Go(func() {
						mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
						defer mem.AssertSize(t, 0)
						tbl := cancelTable(mem)
						defer tbl.Release()
						f, err := New(comms[r], tbl, WithAllocator(mem))
						require.NoError(t, err)
						defer f.Release()
						var ctx context.Context = safety
						if r == 0 {
							ctx = newPollCtx(live)
						}
						errs[r] = op.run(ctx, f)
					})
				}
				wg.Wait()
				for _, c := range comms {
					c.Close()
				}
				require.ErrorIs(t, errs[0], context.Canceled)
				require.NoError(t, checkWhere(errs[0], 0, op.name))
				require.Error(t, errs[1], "rank 1 must fail too")
				require.NotErrorIs(t, errs[1], context.DeadlineExceeded, "rank 1 waited for rank 0: %v", errs[1])
			})
		}
	}
}
