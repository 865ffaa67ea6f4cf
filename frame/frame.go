package frame

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
)

// Frame is a distributed data frame: one Arrow table partition per rank of a
// communicator, all with the same schema. Its distributed operators (Shuffle,
// Join, GroupBy, Sort, Distinct, Rebalance, Head, Gather, Collect, Count) and
// the readers are collective: every rank calls the same operators in the same
// order with the same arguments, as with MPI. Local operators (Filter,
// Select, Project, WithColumn) and the writers (WriteParquet, WriteIPC,
// WriteCSV: each rank writes its own file) touch only this rank's partition.
//
// A Frame holds a reference to its partition; call Release when done with
// it. Operators return new frames and never release their inputs. The
// first operator that needs the partition's columns whole (each in one
// chunk) concatenates them and the frame keeps that copy as its partition
// in place of the chunked one, unless Table has lent the partition out.
// The methods that do not communicate (Schema, NumRows, Table,
// PartitionedBy, the local operators and the writers) may run on other
// goroutines while an operator runs on the frame.
type Frame struct {
	comm *collective.Comm
	cfg  *config
	// mu guards part and lent: an operator may replace part with a copy
	// whose columns are whole (wholePart) while other goroutines read it.
	mu   sync.Mutex
	part arrow.Table
	lent bool // Table handed part out: it stays the partition until Release
	// primed: part's lazily computed parts are made (primeLocked);
	// wholePart makes those of the columns it concatenates before swapping
	// them in.
	primed bool
	// keys the rows are hash-partitioned by (arrowio.PartitionOf of the
	// arrowio.HashRows hash of these columns, over comm.Size() parts), or
	// nil when unknown. Join and GroupBy skip the shuffle of a side that is
	// already partitioned by its keys.
	partitionedBy []string
	released      atomic.Bool
	agreed        atomic.Bool // every rank's partition has this schema (see agree)
}

// New returns a frame whose partition on this rank is part (retained; the
// caller keeps its own reference). It is not collective, but every rank must
// build its frame with the same schema.
func New(c *collective.Comm, part arrow.Table, opts ...Option) (*Frame, error) {
	if c == nil {
		return nil, errors.New("frame: new: nil communicator")
	}
	if part == nil {
		return nil, fmt.Errorf("frame: rank %d: new: nil table", c.Rank())
	}
	part.Retain()
	return &Frame{comm: c, part: part, cfg: newConfig(opts)}, nil
}

// FromRecords returns a frame whose partition on this rank holds the record
// batches recs (retained), all of the given schema.
func FromRecords(c *collective.Comm, schema *arrow.Schema, recs []arrow.RecordBatch, opts ...Option) (*Frame, error) {
	if c == nil {
		return nil, errors.New("frame: from records: nil communicator")
	}
	if schema == nil {
		return nil, fmt.Errorf("frame: rank %d: from records: nil schema", c.Rank())
	}
	for i, r := range recs {
		if r == nil {
			return nil, fmt.Errorf("frame: rank %d: from records: batch %d is nil", c.Rank(), i)
		}
		if !r.Schema().Equal(schema) {
			return nil, fmt.Errorf("frame: rank %d: from records: batch %d has schema %v, want %v", c.Rank(), i, r.Schema(), schema)
		}
	}
	t := array.NewTableFromRecords(schema, recs)
	defer t.Release()
	return New(c, t, opts...)
}

// derive wraps a new partition (whose reference it takes over) in a frame
// with f's communicator and options.
func (f *Frame) derive(part arrow.Table, partitionedBy []string) *Frame {
	d := &Frame{comm: f.comm, part: part, cfg: f.cfg, partitionedBy: partitionedBy}
	d.agreed.Store(f.agreed.Load())
	return d
}

// Comm returns the frame's communicator.
func (f *Frame) Comm() *collective.Comm { return f.comm }

// Rank is this rank's number in the frame's communicator.
func (f *Frame) Rank() int { return f.comm.Rank() }

// Size is the number of ranks (and partitions).
func (f *Frame) Size() int { return f.comm.Size() }

// Schema returns the schema of every partition.
func (f *Frame) Schema() *arrow.Schema {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.part.Schema()
}

// Table returns this rank's partition. The frame keeps ownership: Retain
// it to use it after Release.
func (f *Frame) Table() arrow.Table {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lent = true // the borrower may use it until Release: wholePart keeps it
	f.primeLocked()
	return f.part
}

// NumRows returns the number of rows of this rank's partition.
func (f *Frame) NumRows() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.part.NumRows()
}

// table returns this rank's partition, retained: the caller releases it.
// Operators read the partition through it, so that wholePart may replace
// the frame's partition while they run.
func (f *Frame) table() arrow.Table {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.primeLocked()
	f.part.Retain()
	return f.part
}

// dictMu serializes primeLocked: frames that share arrays (Select, Head,
// a one-rank Shuffle) prime them under their own mu, so the first
// computation of each needs a lock of its own.
var dictMu sync.Mutex

// primeLocked makes what arrow-go computes lazily, unguarded, in f's
// partition once (f.mu held), before anything reads it: the array of a
// dictionary ((*array.Dictionary).Dictionary) and the null count of a
// slice (NullN). Otherwise two operators, or an operator and a writer,
// reading the same chunk on two goroutines race on them (and a dictionary
// array one of them made leaks).
func (f *Frame) primeLocked() {
	if f.primed {
		return
	}
	f.primed = true
	dictMu.Lock()
	defer dictMu.Unlock()
	// Priming is ahead of need: an array arrow-go panics on here (a damaged
	// one) is left to the operator that uses it, which says so as an error.
	defer func() { _ = recover() }()
	for i := range int(f.part.NumCols()) {
		for _, c := range f.part.Column(i).Data().Chunks() {
			primeArray(c)
		}
	}
}

// primeArray makes the lazily computed parts of a and the arrays in it
// (dictMu held, or a not yet shared).
func primeArray(a arrow.Array) {
	a.NullN()
	switch a := a.(type) {
	case *array.Dictionary:
		a.Indices().NullN()
		primeArray(a.Dictionary())
	case *array.Struct:
		for i := range a.NumField() {
			primeArray(a.Field(i))
		}
	case array.ListLike: // list, large list, list view, fixed-size list, map
		primeArray(a.ListValues())
	}
}

// wholePart returns this rank's partition with every column in one chunk,
// retained (the caller releases it). The columns of several chunks are
// concatenated one after the other (looking at ctx before each, as columns
// does), and after each the frame takes the table with that column whole
// as its partition, dropping its own reference to the one before: the
// chunks of a column go as soon as it is whole (unless something else,
// another frame or a caller, holds them), so the frame holds one copy of
// its data and one column more at most, and later operators neither
// concatenate again nor hold two copies. The schema and the rows are
// unchanged. The partition stays as it is when Table has lent it out (the
// borrower may still be using it), when the frame has been released, or
// when another goroutine replaced it first.
func (f *Frame) wholePart(ctx context.Context) (arrow.Table, error) {
	cur := f.table()
	if err := checkRows(cur.NumRows(), "partition"); err != nil {
		cur.Release()
		return nil, err
	}
	for i := range int(cur.NumCols()) {
		c := cur.Column(i).Data()
		if len(c.Chunks()) <= 1 {
			continue
		}
		if err := ctxErr(ctx, "concatenate chunks"); err != nil {
			cur.Release()
			return nil, err
		}
		a, err := wholeColumn(f.cfg.mem, c)
		if err != nil {
			cur.Release()
			return nil, fmt.Errorf("column %q: %w", cur.Schema().Field(i).Name, err)
		}
		// arrow-go makes a dictionary's array on first use, unguarded:
		// make them now, before operators on other goroutines share it.
		primeArray(a)
		next := withWholeColumn(cur, i, a)
		a.Release()
		f.mu.Lock()
		swap := f.part == cur && !f.lent && !f.released.Load()
		if swap {
			next.Retain() // the frame's reference
			f.part = next
		}
		f.mu.Unlock()
		if swap {
			cur.Release() // the frame's reference to the table before
		}
		cur.Release()
		cur = next
	}
	return cur, nil
}

// wholeColumns returns this rank's partition as whole columns, retained
// (release them with releaseAll), and its number of rows: wholePart's
// table, taken apart.
func (f *Frame) wholeColumns(ctx context.Context) ([]arrow.Array, int64, error) {
	part, err := f.wholePart(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer part.Release()
	cols, err := columns(ctx, f.cfg.mem, part) // whole already: retained
	return cols, part.NumRows(), err
}

// withWholeColumn returns t with column i replaced by the one chunk a (of
// the same type and length), sharing t's other columns.
func withWholeColumn(t arrow.Table, i int, a arrow.Array) arrow.Table {
	cols := make([]arrow.Column, t.NumCols())
	for j := range cols {
		cols[j] = *t.Column(j)
	}
	ch := arrow.NewChunked(a.DataType(), []arrow.Array{a})
	cols[i] = *arrow.NewColumn(t.Schema().Field(i), ch)
	ch.Release()
	out := array.NewTable(t.Schema(), cols, t.NumRows()) // retains the columns
	cols[i].Release()
	return out
}

// PartitionedBy returns the key columns the rows are known to be
// hash-partitioned by (as arrowio.HashPartition places them), or nil.
func (f *Frame) PartitionedBy() []string { return slices.Clone(f.partitionedBy) }

// Release drops the frame's reference to its partition. Calling it again
// does nothing.
func (f *Frame) Release() {
	if !f.released.Swap(true) {
		f.mu.Lock()
		p := f.part
		f.mu.Unlock()
		p.Release()
	}
}

// errorf wraps an operator error with the rank and operator name (see
// wrapErr).
func (f *Frame) errorf(op string, err error) error {
	return wrapErr(f.comm.Rank(), op, err)
}

// wrapErr words err, a failure of operator op on rank rank, so that it
// names the rank once, first: "frame: rank 3: join: right: no column
// "id" ...". An error that comes from a collective call, directly or
// through arrowio, names the rank already ("collective: rank 3:
// allgather: context canceled"; collective.NamesRank tells): frame then
// says only what it was doing, "frame: join: left: agree on the schema:
// collective: rank 3: allgather: context canceled", rather than naming
// the rank a second time.
func wrapErr(rank int, op string, err error) error {
	if collective.NamesRank(err) {
		return fmt.Errorf("frame: %s: %w", op, err)
	}
	return fmt.Errorf("frame: rank %d: %s: %w", rank, op, err)
}

// abort ends a distributed operator that failed on this rank alone, after
// its arguments were checked and before (or between) its exchanges: the
// other ranks would otherwise wait for this one until their contexts end.
// It fails the communicator (see failComm), which makes their calls fail at
// once, and returns the error.
func (f *Frame) abort(op string, err error) error {
	return f.errorf(op, failComm(f.comm, err))
}

// failComm poisons c, when it has other ranks, so that they fail at once
// instead of waiting for this one, and returns err saying so. A collective
// called with a context that has already ended poisons the communicator
// and closes the links it shares with every communicator split from the
// same world (collective's failure semantics), so the failure reaches every
// rank whatever communicator the frame is on. (Closing c would not: Close
// on a communicator made by Split only makes this rank's later calls fail.)
func failComm(c *collective.Comm, err error) error {
	if c.Size() <= 1 {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.Barrier(ctx)
	return fmt.Errorf("%w (the communicator was failed so that the other ranks fail too)", err)
}

// aloneErr returns ctx's error when f has one rank. A collective operator
// with more ranks leaves it to its first exchange, which fails at once with
// an ended context and fails the communicator so that the other ranks do
// not wait for this one; with one rank arrowio's collectives move nothing
// and do not look.
func (f *Frame) aloneErr(ctx context.Context) error {
	if f.Size() == 1 {
		return ctx.Err()
	}
	return nil
}

// Count returns the total number of rows over all ranks (collective).
func (f *Frame) Count(ctx context.Context) (int64, error) {
	counts, err := f.rowCounts(ctx)
	if err != nil {
		return 0, f.errorf("count", err)
	}
	var n int64
	for _, c := range counts {
		n += c
	}
	return n, nil
}

// rowCounts returns every rank's partition length (collective).
func (f *Frame) rowCounts(ctx context.Context) ([]int64, error) {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(f.NumRows()))
	all, err := f.comm.Allgather(ctx, buf[:])
	if err != nil {
		return nil, fmt.Errorf("exchange row counts: %w", err)
	}
	counts := make([]int64, len(all))
	for r, b := range all {
		if len(b) != 8 {
			return nil, fmt.Errorf("rank %d sent a %d-byte row count", r, len(b))
		}
		counts[r] = int64(binary.LittleEndian.Uint64(b))
	}
	return counts, nil
}

// Gather concatenates every rank's partition, in rank order, into one table
// on rank root; other ranks get nil (collective). The caller releases it.
func (f *Frame) Gather(ctx context.Context, root int) (arrow.Table, error) {
	if err := f.aloneErr(ctx); err != nil {
		return nil, f.errorf("gather", err)
	}
	part := f.table()
	defer part.Release()
	t := f.cfg.timer("gather")
	out, err := arrowio.GatherTable(ctx, f.comm, root, part, f.cfg.arrowio()...)
	if err != nil {
		return nil, f.errorf("gather", err)
	}
	var rows int64
	if out != nil {
		rows = out.NumRows()
	}
	t.done(ctx, "gather", rows, 0)
	return out, nil
}

// Collect concatenates every rank's partition, in rank order, into one table
// on every rank (collective). The caller releases it.
func (f *Frame) Collect(ctx context.Context) (arrow.Table, error) {
	if err := f.aloneErr(ctx); err != nil {
		return nil, f.errorf("collect", err)
	}
	part := f.table()
	defer part.Release()
	t := f.cfg.timer("collect")
	out, err := arrowio.AllgatherTable(ctx, f.comm, part, f.cfg.arrowio()...)
	if err != nil {
		return nil, f.errorf("collect", err)
	}
	t.done(ctx, "allgather", out.NumRows(), 0)
	return out, nil
}

// Head returns the first n rows of the frame in rank order (rank 0's rows
// first) as a frame: each rank keeps the part of its partition that falls
// within the first n rows overall, so nothing but row counts moves
// (collective). Gather it to see it in one place.
func (f *Frame) Head(ctx context.Context, n int64) (*Frame, error) {
	if n < 0 {
		return nil, f.errorf("head", fmt.Errorf("negative row count %d", n))
	}
	counts, err := f.rowCounts(ctx)
	if err != nil {
		return nil, f.errorf("head", err)
	}
	var before int64
	for _, c := range counts[:f.comm.Rank()] {
		before += c
	}
	t := f.table()
	defer t.Release()
	keep := min(max(n-before, 0), t.NumRows())
	return f.derive(sliceTable(t, 0, keep), f.partitionedBy), nil
}
