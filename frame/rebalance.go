package frame

import (
	"context"
	"fmt"

	"github.com/fnmesh/fnmesh/arrowio"
)

// Rebalance evens out the partitions: afterwards every rank holds n/p rows
// (the first n mod p ranks one more), and the frame's rows keep their order
// (rank 0's first, each partition in order), so a sorted frame stays sorted
// (collective). Use it after a filter, a skewed join or uneven input files.
//
// Distribution: the partition lengths are all-gathered, each rank cuts its
// partition (zero-copy slices) where the global row numbers cross the new
// boundaries, and the pieces go all-to-all.
func (f *Frame) Rebalance(ctx context.Context) (*Frame, error) {
	const op = "rebalance"
	counts, err := f.rowCounts(ctx)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	if f.Size() == 1 {
		if err := ctx.Err(); err != nil {
			return nil, f.errorf(op, err)
		}
		return f.derive(f.table(), f.partitionedBy), nil
	}
	tm := f.cfg.timer(op)
	p, me := f.Size(), f.Rank()
	var total, first int64 // all rows; the global number of this rank's first row
	for r, c := range counts {
		if r < me {
			first += c
		}
		total += c
	}
	// Rank r gets the global rows [start(r), start(r+1)).
	start := func(r int) int64 { return int64(r)*(total/int64(p)) + min(int64(r), total%int64(p)) }
	part := f.table()
	defer part.Release()
	n := part.NumRows()
	parts := make(arrowTables, p)
	defer parts.release()
	var sent, bytes int64
	for r := range p {
		lo := min(max(start(r)-first, 0), n)
		hi := min(max(start(r+1)-first, 0), n)
		parts[r] = sliceTable(part, lo, hi)
		if r != me {
			sent += hi - lo
			bytes += tableBytes(parts[r])
		}
	}
	tm.done(ctx, "partition", n, 0)
	recv, err := arrowio.AlltoallTables(ctx, f.comm, parts, f.cfg.arrowio()...)
	if err != nil {
		return nil, f.errorf(op, fmt.Errorf("exchange: %w", err))
	}
	defer arrowTables(recv).release()
	out, err := arrowio.ConcatTables(recv)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	tm.done(ctx, "exchange", sent, bytes)
	return f.derive(out, nil), nil
}
