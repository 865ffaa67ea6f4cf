package arrowio

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fnmesh/fnmesh/collective"
)

// TestZeroColumnTables: a table of no columns still has rows (what a projection onto no columns
// leaves, which a count needs), and every operation must carry their number. Rank r has 3r rows
// (rank 0 none).
func TestZeroColumnTables(t *testing.T) {
	schema := arrow.NewSchema(nil, func() *arrow.Metadata { m := arrow.NewMetadata([]string{"k"}, []string{"v"}); return &m }())
	rowsOf := func(r int) int64 { return int64(3 * r) }
	table := func(r int) arrow.Table { return array.NewTable(schema, nil, rowsOf(r)) }
	total := func(p int) (n int64) {
		for r := range p {
			n += rowsOf(r)
		}
		return n
	}
	ops := []struct {
		name string
		run  func(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (arrow.Table, error)
		want func(me, p int) int64
	}{
		{"send/recv", func(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (arrow.Table, error) {
			p := c.Size()
			sent := make(chan error, 1)
			go func() { sent <- SendTable(ctx, c, (c.Rank()+1)%p, 3, tbl, WithAllocator(mem)) }()
			got, err := RecvTable(ctx, c, (c.Rank()+p-1)%p, 3, WithAllocator(mem))
			if serr := <-sent; serr != nil && err == nil {
				got.Release()
				return nil, serr
			}
			return got, err
		}, func(me, p int) int64 { return rowsOf((me + p - 1) % p) }},
		{"bcast", func(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (arrow.Table, error) {
			return BcastTable(ctx, c, c.Size()-1, tbl, WithAllocator(mem))
		}, func(me, p int) int64 { return rowsOf(p - 1) }},
		{"gather", func(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (arrow.Table, error) {
			got, err := GatherTable(ctx, c, 0, tbl, WithAllocator(mem))
			if got == nil && err == nil {
				return array.NewTable(schema, nil, 0), nil
			}
			return got, err
		}, func(me, p int) int64 {
			if me == 0 {
				return total(p)
			}
			return 0
		}},
		{"allgather", func(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (arrow.Table, error) {
			return AllgatherTable(ctx, c, tbl, WithAllocator(mem))
		}, func(me, p int) int64 { return total(p) }},
		{"alltoall", func(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (arrow.Table, error) {
			parts := make([]arrow.Table, c.Size())
			for j := range parts {
				parts[j] = array.NewTable(schema, nil, int64(c.Rank()+j))
			}
			defer releaseTables(parts)
			res, err := AlltoallTables(ctx, c, parts, WithAllocator(mem))
			if err != nil {
				return nil, err
			}
			defer releaseTables(res)
			return ConcatTables(res)
		}, func(me, p int) int64 { return int64(p*me + p*(p-1)/2) }},
		{"concat", func(ctx context.Context, c *collective.Comm, mem memory.Allocator, tbl arrow.Table) (arrow.Table, error) {
			return ConcatTables([]arrow.Table{tbl, nil, tbl})
		}, func(me, p int) int64 { return 2 * rowsOf(me) }},
	}
	for _, op := range ops {
		for _, p := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/p=%d", op.name, p), func(t *testing.T) {
				comms := newWorld(t, tcpLinks, p)
				errs := runRanks(t, comms, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
					tbl := table(c.Rank())
					defer tbl.Release()
					got, err := op.run(ctx, c, mem, tbl)
					if err != nil {
						return err
					}
					defer got.Release()
					if got.NumCols() != 0 {
						return fmt.Errorf("rank %d: %d columns", c.Rank(), got.NumCols())
					}
					if want := op.want(c.Rank(), p); got.NumRows() != want {
						return fmt.Errorf("rank %d: %d rows, want %d", c.Rank(), got.NumRows(), want)
					}
					return nil
				})
				requireNoErrors(t, errs)
			})
		}
	}
}
