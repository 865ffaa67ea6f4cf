package arrowio

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// countingMem counts the bytes an allocator hands out.
type countingMem struct {
	memory.Allocator
	bytes atomic.Int64
}

func (m *countingMem) Allocate(n int) []byte {
	m.bytes.Add(int64(n))
	return m.Allocator.Allocate(n)
}

func (m *countingMem) Reallocate(n int, b []byte) []byte {
	m.bytes.Add(int64(max(n-len(b), 0)))
	return m.Allocator.Reallocate(n, b)
}

// lookCtx is a context whose first live calls of Err report nil and every
// later one context.Canceled; at the first of those it notes how many
// bytes mem had handed out, so a test can tell how much work was done after
// the context ended without timing anything.
type lookCtx struct {
	context.Context
	live, looks int64
	mem         *countingMem
	atEnd       int64
}

func (c *lookCtx) Err() error {
	c.looks++
	if c.looks > c.live {
		if c.looks == c.live+1 {
			c.atEnd = c.mem.bytes.Load()
		}
		return context.Canceled
	}
	return nil
}

// TestHashPartitionCancel cancels HashPartition at each of its looks at its
// context: it looks before each record batch, every partitionBlockRows rows
// while it hashes and before it scatters each column, so a table of one
// large batch is cancelled part-way; it then fails with an error that wraps
// context.Canceled, allocates at most what the column it was scattering
// needs after the context ended, returns no parts and leaks nothing.
func TestHashPartitionCancel(t *testing.T) {
	const rows = 4*partitionBlockRows + 7
	for _, batches := range []int{1, 3} {
		t.Run(fmt.Sprint(batches, " batches"), func(t *testing.T) {
			checked := checkedMem(t)
			mem := &countingMem{Allocator: checked}
			s := arrow.NewSchema([]arrow.Field{
				{Name: "k", Type: arrow.PrimitiveTypes.Int64},
				{Name: "s", Type: arrow.BinaryTypes.String},
				{Name: "v", Type: arrow.PrimitiveTypes.Int64},
			}, nil)
			var recs []arrow.RecordBatch
			for b := range batches {
				rb := array.NewRecordBuilder(checked, s)
				for i := range rows {
					x := int64(b*rows + i)
					rb.Field(0).(*array.Int64Builder).Append(x * 7919 % 1000003)
					rb.Field(1).(*array.StringBuilder).Append(fmt.Sprint(x % 977))
					rb.Field(2).(*array.Int64Builder).Append(x)
				}
				recs = append(recs, rb.NewRecordBatch())
				rb.Release()
			}
			tbl := array.NewTableFromRecords(s, recs)
			releaseBatches(recs)
			defer tbl.Release()
			held := checked.CurrentAlloc()
			keys := []string{"k", "s"}

			never := &lookCtx{Context: context.Background(), live: math.MaxInt64, mem: mem}
			parts, err := HashPartition(never, tbl, keys, 3, WithAllocator(mem))
			require.NoError(t, err)
			releaseTables(parts)
			total := never.looks
			blocks := (rows + partitionBlockRows - 1) / partitionBlockRows
			require.GreaterOrEqual(t, total, int64(batches*(blocks+len(s.Fields()))), "looks at ctx per block hashed and per column scattered")
			// The widest column's scatter output, rounded up generously.
			column := int64(rows * 16)
			for live := range total {
				ctx := &lookCtx{Context: context.Background(), live: live, mem: mem}
				parts, err := HashPartition(ctx, tbl, keys, 3, WithAllocator(mem))
				require.Nil(t, parts)
				require.ErrorIs(t, err, context.Canceled, "cancelled after %d of %d looks", live, total)
				require.ErrorContains(t, err, "arrowio: hash partition")
				require.Equal(t, live+1, ctx.looks, "went on looking after the end")
				require.LessOrEqual(t, mem.bytes.Load()-ctx.atEnd, column, "worked on after the end (cancelled after %d of %d looks)", live, total)
				require.Equal(t, held, checked.CurrentAlloc(), "leaked (cancelled after %d of %d looks)", live, total)
			}
		})
	}
}
