package frame

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// rankSizes are the communicator sizes the distributed tests run at.
var rankSizes = []int{1, 2, 3, 4, 5, 6, 7, 8, 9}

// runRanks runs fn on every rank of an in-process communicator of p ranks
// (loopback TCP links), each rank with its own checked allocator, and fails
// the test on any error or leak.
func runRanks(t *testing.T, p int, fn func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	comms, err := collective.Local(ctx, p)
	require.NoError(t, err)
	mems := make([]*memory.CheckedAllocator, p)
	errs := make([]error, p)
	var wg sync.WaitGroup
	for r := range p {
		mems[r] = memory.NewCheckedAllocator(memory.NewGoAllocator())
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = fn(ctx, comms[r], mems[r])
			if errs[r] != nil {
				cancel() // the other ranks fail instead of waiting forever
			}
		}()
	}
	wg.Wait()
	for _, c := range comms {
		require.NoError(t, c.Close())
	}
	for r, err := range errs { // the root cause first: the others may only say "canceled"
		if err != nil && !errors.Is(err, context.Canceled) {
			require.NoError(t, err, "rank %d of %d", r, p)
		}
	}
	for r, err := range errs {
		require.NoError(t, err, "rank %d of %d", r, p)
	}
	for r, m := range mems {
		require.Zero(t, m.CurrentAlloc(), "rank %d of %d leaked", r, p)
	}
}

// partitions builds one random table per rank. Ranks 1 and p-1 (when p > 2)
// get empty partitions, and the sizes differ between ranks.
func partitions(t testing.TB, p int, seed uint64, g genSpec) [][]row {
	out := make([][]row, p)
	mem := memory.NewGoAllocator()
	for r := range p {
		gs := g
		gs.rows = g.rows * (1 + r%3) / 2
		if p > 2 && (r == 1 || r == p-1) {
			gs.rows = 0
		}
		rec := genRecord(t, mem, rand.New(rand.NewPCG(seed, uint64(r))), gs)
		out[r] = recordRows(rec)
		rec.Release()
	}
	return out
}

// buildTable makes a table of genSchema from rows.
func buildTable(mem memory.Allocator, s *arrow.Schema, rows []row) arrow.Table {
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	for _, r := range rows {
		for c, v := range r {
			fb := b.Field(c)
			if v == nil {
				fb.AppendNull()
				continue
			}
			switch fb := fb.(type) {
			case *array.Int64Builder:
				fb.Append(v.(int64))
			case *array.Int32Builder:
				fb.Append(int32(v.(int64)))
			case *array.Float64Builder:
				fb.Append(v.(float64))
			case *array.StringBuilder:
				fb.Append(v.(string))
			default:
				panic(fmt.Sprintf("buildTable: %T", fb))
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
}

// newFrame wraps this rank's rows in a frame.
func newFrame(t testing.TB, c *collective.Comm, mem memory.Allocator, rows []row, opts ...Option) (*Frame, error) {
	tbl := buildTable(mem, genSchema, rows)
	defer tbl.Release()
	return New(c, tbl, append([]Option{WithAllocator(mem)}, opts...)...)
}

// gatherRows gathers f at rank 0 and returns its rows there (nil elsewhere).
func gatherRows(ctx context.Context, f *Frame) ([]row, *arrow.Schema, error) {
	t, err := f.Gather(ctx, 0)
	if err != nil {
		return nil, nil, err
	}
	if t == nil {
		return nil, nil, nil
	}
	defer t.Release()
	return rowsOf(t), t.Schema(), nil
}

func concatRows(parts [][]row) []row {
	var all []row
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// soloFrame wraps tbl in a frame on a one-rank communicator of its own (a
// collective called with an ended context fails only that communicator).
// done releases the frame and closes the communicator.
func soloFrame(t testing.TB, tbl arrow.Table, opts ...Option) (f *Frame, done func()) {
	t.Helper()
	comms, err := collective.Local(context.Background(), 1)
	require.NoError(t, err)
	f, err = New(comms[0], tbl, opts...)
	if err != nil {
		comms[0].Close()
	}
	require.NoError(t, err)
	return f, func() { f.Release(); comms[0].Close() }
}
