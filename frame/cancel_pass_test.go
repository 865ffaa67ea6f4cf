package frame

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// cancelAlloc is an allocator that cancels a context from inside the pass
// that allocates: once it has handed out more than at bytes in all, it
// calls cancel, and from then on it counts the bytes it hands out (after),
// which is the work done after the context ended. No clock is involved.
type cancelAlloc struct {
	memory.Allocator
	at           int64
	cancel       context.CancelFunc
	total, after atomic.Int64
}

func (a *cancelAlloc) count(n int) {
	t := a.total.Add(int64(n))
	switch {
	case t-int64(n) > a.at:
		a.after.Add(int64(n))
	case t > a.at:
		a.cancel()
	}
}

func (a *cancelAlloc) Allocate(n int) []byte {
	a.count(n)
	return a.Allocator.Allocate(n)
}

func (a *cancelAlloc) Reallocate(n int, b []byte) []byte {
	a.count(max(n-len(b), 0))
	return a.Allocator.Reallocate(n, b)
}

// runCancelledMidPass runs op once to its end on an allocator that counts
// bytes, then again with a context that the allocator cancels once share of
// those bytes have been handed out, in the middle of op's long pass. It
// returns the second run's error, the bytes the whole op allocates, and
// the bytes allocated after the cancellation. mem must be checked for
// leaks by the caller.
func runCancelledMidPass(t *testing.T, mem memory.Allocator, share float64, op func(ctx context.Context, mem memory.Allocator) error) (err error, total, after int64) {
	t.Helper()
	full := &cancelAlloc{Allocator: mem, at: math.MaxInt64, cancel: func() {}}
	require.NoError(t, op(context.Background(), full))
	total = full.total.Load()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &cancelAlloc{Allocator: mem, at: int64(share * float64(total)), cancel: cancel}
	err = op(ctx, a)
	return err, total, a.after.Load()
}

// chunkedInt64Table is a table of one int64 column of n rows in chunks of
// chunk rows.
func chunkedInt64Table(mem memory.Allocator, name string, n, chunk int) arrow.Table {
	s := arrow.NewSchema([]arrow.Field{{Name: name, Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	var recs []arrow.RecordBatch
	for lo := 0; lo < n; lo += chunk {
		b := array.NewInt64Builder(mem)
		for i := lo; i < min(lo+chunk, n); i++ {
			b.Append(int64(i*7919) % 100003)
		}
		a := b.NewArray()
		b.Release()
		recs = append(recs, array.NewRecordBatch(s, []arrow.Array{a}, int64(a.Len())))
		a.Release()
	}
	t := array.NewTableFromRecords(s, recs)
	for _, r := range recs {
		r.Release()
	}
	return t
}

// TestCancelReadParquetMidColumn cancels a Parquet read while it decodes
// one long column: the reader decodes it parquetBatchRows rows at a time
// and looks at its context before each batch, so it stops within a batch
// of the cancellation, where reading the whole column (as it did) runs to
// the column's end first. The error wraps context.Canceled and names the
// operator; nothing leaks.
func TestCancelReadParquetMidColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const batches = 16
	tbl := chunkedInt64Table(mem, "k", batches*parquetBatchRows, batches*parquetBatchRows)
	defer tbl.Release()
	f, done := soloFrame(t, tbl, WithAllocator(mem))
	defer done()
	path := filepath.Join(t.TempDir(), "k.parquet")
	_, err := f.WriteParquet(context.Background(), path)
	require.NoError(t, err)
	held := mem.CurrentAlloc() // the table
	for _, share := range []float64{0.1, 0.2, 0.3, 0.4, 0.6} {
		t.Run(fmt.Sprint(share), func(t *testing.T) {
			err, total, after := runCancelledMidPass(t, mem, share, func(ctx context.Context, a memory.Allocator) error {
				// A communicator of its own: a collective cancelled
				// fails its communicator.
				c, err := collective.Local(context.Background(), 1)
				require.NoError(t, err)
				defer c[0].Close()
				return releaseFrame(ReadParquet(ctx, c[0], []string{path}, WithAllocator(a)))
			})
			require.ErrorIs(t, err, context.Canceled)
			require.NoError(t, checkWhere(err, 0, "read parquet"))
			// A batch or two of work after the end (each batch decodes
			// its share of pages): far less than the rest of the column.
			require.LessOrEqual(t, after, total/4, "read on after ctx ended: %d of %d bytes", after, total)
			require.Equal(t, held, mem.CurrentAlloc(), "leaked")
		})
	}
}

// TestCancelConcatenation cancels an operator while it concatenates a
// partition's chunks into whole columns (the first step of filter, sort,
// join and group-by): it looks at its context before each column, so it
// stops within a column of the cancellation instead of concatenating
// every column (and then evaluating the predicate) first.
func TestCancelConcatenation(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const ncols, rows = 8, 4 * pollRows
	// ncols int64 columns of rows rows each, in chunks of 1000 rows.
	fields := make([]arrow.Field, ncols)
	chunked := make([]arrow.Column, ncols)
	for c := range ncols {
		one := chunkedInt64Table(mem, fmt.Sprintf("c%d", c), rows, 1000)
		fields[c] = one.Schema().Field(0)
		chunked[c] = *one.Column(0)
		chunked[c].Retain()
		one.Release()
	}
	schema := arrow.NewSchema(fields, nil)
	tbl := array.NewTable(schema, chunked, rows)
	for i := range chunked {
		chunked[i].Release()
	}
	defer tbl.Release()
	held := mem.CurrentAlloc()
	// A column is concatenated with one allocation of its values and one
	// of its validity: cancelled during the first column.
	column := int64(rows * 8)
	for _, op := range []struct {
		name string
		run  func(ctx context.Context, f *Frame) error
	}{
		{"filter", func(ctx context.Context, f *Frame) error {
			return releaseFrame(f.Filter(ctx, Col("c0").Gt(int64(50000))))
		}},
		{"sort", func(ctx context.Context, f *Frame) error { return releaseFrame(f.Sort(ctx, Asc("c1"))) }},
		{"groupby", func(ctx context.Context, f *Frame) error { return releaseFrame(f.GroupBy("c2").Agg(ctx, Sum("c3"))) }},
	} {
		t.Run(op.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a := &cancelAlloc{Allocator: mem, at: column / 2, cancel: cancel}
			f, done := soloFrame(t, tbl, WithAllocator(a))
			defer done()
			err := op.run(ctx, f)
			// The rest of the first column at most, never the other seven.
			require.LessOrEqual(t, a.after.Load(), column, "concatenated on after ctx ended: %v", err)
			require.ErrorIs(t, err, context.Canceled)
			require.NoError(t, checkWhere(err, 0, op.name))
			require.Contains(t, err.Error(), "concatenate chunks")
			// The frame keeps the columns it made whole before the end (its
			// partition takes each as it is made): the first one at most.
			require.LessOrEqual(t, int64(mem.CurrentAlloc())-int64(held), column+rows/8, "kept more than the first column")
			f.Release()
			require.Equal(t, held, mem.CurrentAlloc(), "leaked")
		})
	}
}

// TestCancelReadIPCMidFile: the IPC reader reads a file ipcReadBytes at a
// time and looks at its context before each read, where it used to read
// the whole file at once, so a cancelled read stops within ipcReadBytes of
// reading, wherever in the file it is cancelled. The error wraps
// context.Canceled and names the operator; nothing leaks.
func TestCancelReadIPCMidFile(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const rows = 1 << 20 // 8 MiB of values
	tbl := chunkedInt64Table(mem, "k", rows, 64<<10)
	defer tbl.Release()
	f, done := soloFrame(t, tbl, WithAllocator(mem))
	defer done()
	path := filepath.Join(t.TempDir(), "k.arrow")
	_, err := f.WriteIPC(context.Background(), path)
	require.NoError(t, err)
	held := mem.CurrentAlloc()
	read := func(ctx context.Context) error {
		c, err := collective.Local(context.Background(), 1) // a cancelled collective fails its communicator
		require.NoError(t, err)
		defer c[0].Close()
		return releaseFrame(ReadIPC(ctx, c[0], []string{path}, WithAllocator(mem)))
	}
	never := newPollCtx(math.MaxInt64)
	require.NoError(t, read(never))
	total := never.polls.Load()
	require.GreaterOrEqual(t, total, int64(rows*8/ipcReadBytes), "looks at ctx every %d bytes read", ipcReadBytes)
	for live := range total {
		ctx := newPollCtx(live)
		err := read(ctx)
		require.ErrorIs(t, err, context.Canceled, "cancelled after %d of %d looks", live, total)
		require.NoError(t, checkWhere(err, 0, "read ipc"))
		require.LessOrEqual(t, ctx.late(), int64(2), "read on after ctx ended (cancelled after %d of %d looks)", live, total)
		require.Equal(t, held, mem.CurrentAlloc(), "leaked")
	}
}

// TestCancelRestoreType cancels the conversion of a column read from
// Parquet back to the stored schema's type (timestamp[ms] to [s], int32-
// to int16-indexed dictionary, timestamps in a struct's list): one
// conversion per chunk, and a look at ctx before each, so it stops within a
// chunk of the cancellation instead of converting the column to its end.
func TestCancelRestoreType(t *testing.T) {
	const chunks, rows = 16, 1000
	cases := []struct {
		name     string
		from, to arrow.DataType
		values   func(i int) string
	}{
		{"timestamp", arrow.FixedWidthTypes.Timestamp_ms, arrow.FixedWidthTypes.Timestamp_s, func(i int) string { return fmt.Sprint(i * 1000) }},
		{"dictionary", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String},
			&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}, func(i int) string { return fmt.Sprintf("%q", fmt.Sprint(i%10)) }},
		{"nested", arrow.StructOf(arrow.Field{Name: "l", Type: arrow.ListOf(arrow.FixedWidthTypes.Timestamp_ms), Nullable: true}),
			arrow.StructOf(arrow.Field{Name: "l", Type: arrow.ListOf(arrow.FixedWidthTypes.Timestamp_s), Nullable: true}),
			func(i int) string { return fmt.Sprintf(`{"l": [%d, null]}`, i*1000) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			arrs := make([]arrow.Array, chunks)
			for c := range arrs {
				vals := make([]string, rows)
				for i := range vals {
					vals[i] = tc.values(c*rows + i)
				}
				arrs[c] = fromJSON(t, mem, tc.from, "["+strings.Join(vals, ",")+"]")
			}
			ch := arrow.NewChunked(tc.from, arrs)
			releaseAll(arrs)
			defer ch.Release()

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := restoreType(ctx, mem, ch, tc.to)
			require.ErrorIs(t, err, context.Canceled, "a context that had ended")

			err, total, after := runCancelledMidPass(t, mem, 0.1, func(ctx context.Context, a memory.Allocator) error {
				out, err := restoreType(ctx, a, ch, tc.to)
				if err == nil {
					require.True(t, arrow.TypeEqual(tc.to, out.DataType()))
					require.Equal(t, chunks*rows, out.Len())
					out.Release()
				}
				return err
			})
			require.ErrorIs(t, err, context.Canceled)
			require.LessOrEqual(t, after, total/4, "converted on after ctx ended: %d of %d bytes", after, total)
		})
	}
}
