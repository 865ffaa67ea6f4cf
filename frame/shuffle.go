package frame

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/fnmesh/fnmesh/arrowio"
)

// Shuffle redistributes the rows by the hash of the key columns so that all
// rows with equal keys are on one rank: rank r gets the rows whose
// arrowio.HashRows hash maps to r (arrowio.PartitionOf). It is the first step
// of every distributed join and group-by; a frame that is already
// partitioned by keys is returned as is (retained) (collective).
func (f *Frame) Shuffle(ctx context.Context, keys ...string) (*Frame, error) {
	if len(keys) == 0 {
		return nil, f.errorf("shuffle", fmt.Errorf("no key columns"))
	}
	if slices.Equal(f.partitionedBy, keys) {
		if err := ctx.Err(); err != nil { // nothing to exchange, but the caller gave up
			return nil, f.errorf("shuffle", err)
		}
		return f.derive(f.table(), f.partitionedBy), nil
	}
	if err := f.agree(ctx); err != nil {
		return nil, f.errorf("shuffle", err)
	}
	if _, err := keyIndices(f.Schema(), keys); err != nil {
		return nil, f.errorf("shuffle", err)
	}
	part := f.table()
	defer part.Release()
	out, err := f.shuffle(ctx, "shuffle", part, keys)
	if err != nil {
		return nil, f.errorf("shuffle", err)
	}
	return f.derive(out, slices.Clone(keys)), nil
}

// shuffle hash-partitions t by keys and exchanges the parts all-to-all,
// recording the two phases for op. It returns the rows this rank received,
// in rank order (the caller releases them).
func (f *Frame) shuffle(ctx context.Context, op string, t arrow.Table, keys []string) (arrow.Table, error) {
	pp, err := f.partition(ctx, op, t, keys)
	if err != nil {
		return nil, err
	}
	return f.exchange(ctx, op, pp)
}

// partitioned is a table split into one part per rank, ready to exchange.
type partitioned struct {
	parts       []arrow.Table
	sent, bytes int64 // rows and Arrow bytes bound for other ranks
}

func (pp *partitioned) release() { releaseTables(pp.parts) }

// partition splits t by the hash of keys (arrowio.HashPartition). A failure
// fails the communicator (failComm): the other ranks are about to wait for
// this one's parts.
func (f *Frame) partition(ctx context.Context, op string, t arrow.Table, keys []string) (*partitioned, error) {
	tm := f.cfg.timer(op)
	p, me := f.comm.Size(), f.comm.Rank()
	// HashPartition looks at ctx itself (every 64 Ki rows it hashes, before
	// every column it scatters).
	parts, err := arrowio.HashPartition(ctx, t, keys, p, f.cfg.arrowio()...)
	if err != nil {
		return nil, failComm(f.comm, err)
	}
	pp := &partitioned{parts: parts}
	for r, part := range parts {
		if r != me {
			pp.sent += part.NumRows()
			pp.bytes += tableBytes(part)
		}
	}
	tm.done(ctx, "partition", t.NumRows(), 0)
	return pp, nil
}

// exchange sends the parts all-to-all (releasing them) and returns what this
// rank received, in rank order.
func (f *Frame) exchange(ctx context.Context, op string, pp *partitioned) (arrow.Table, error) {
	defer pp.release()
	tm := f.cfg.timer(op)
	recv, err := arrowio.AlltoallTables(ctx, f.comm, pp.parts, f.cfg.arrowio()...)
	if err != nil {
		return nil, err
	}
	defer releaseTables(recv)
	out, err := arrowio.ConcatTables(recv)
	if err != nil {
		return nil, err
	}
	tm.done(ctx, "exchange", pp.sent, pp.bytes)
	return out, nil
}

// toRoot sends every rank's t to rank 0, which returns them concatenated in
// rank order; the other ranks return an empty table.
func (f *Frame) toRoot(ctx context.Context, op string, t arrow.Table) (arrow.Table, error) {
	tm := f.cfg.timer(op)
	parts := make([]arrow.Table, f.comm.Size())
	parts[0] = t
	var bytes int64
	if f.comm.Rank() != 0 {
		bytes = tableBytes(t)
	}
	recv, err := arrowio.AlltoallTables(ctx, f.comm, parts, f.cfg.arrowio()...)
	if err != nil {
		return nil, err
	}
	defer releaseTables(recv)
	out, err := arrowio.ConcatTables(recv)
	if err != nil {
		return nil, err
	}
	tm.done(ctx, "exchange", t.NumRows(), bytes)
	return out, nil
}

// arrowTables is a list of tables released together.
type arrowTables []arrow.Table

func (ts arrowTables) release() { releaseTables(ts) }

func releaseTables(ts []arrow.Table) {
	for _, t := range ts {
		if t != nil {
			t.Release()
		}
	}
}
