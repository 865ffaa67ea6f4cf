package arrowio

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fnmesh/fnmesh/collective"
)

// Gather, allgather and all-to-all stream their tables point to point (exchange, in exchange.go):
// every stream is a sequence of messages of about WithBatchBytes that ends with the end-of-stream
// marker, so the ranks need no agreement on how many messages move, and a message goes out straight
// from the Arrow buffers. Broadcast moves the root's stream in rounds of the communicator's Bcast
// (a tree or scatter-allgather: the root does not send the table once per rank); the receivers stop
// at the end-of-stream marker. A rank that cannot send what it was given (a nil table, mismatched
// parts, an encoding failure) sends an abort batch instead and keeps taking part, so every rank
// returns an error that names it, and the communicator stays usable. A failure of the communicator
// itself (a dead peer, a cancelled context) ends the call on every rank.

// BcastTable broadcasts the root's table t to every rank; t is read on the root only (others may pass
// nil). The root gets t back (retained); the others a table of the batches received. Every rank
// releases its result.
func BcastTable(ctx context.Context, c *collective.Comm, root int, t arrow.Table, opts ...Option) (arrow.Table, error) {
	if c == nil {
		return nil, errors.New("arrowio: bcast: nil communicator")
	}
	if root < 0 || root >= c.Size() {
		return nil, fmt.Errorf("arrowio: bcast: root %d out of range 0..%d", root, c.Size()-1)
	}
	cfg := newConfig(opts)
	if c.Rank() == root && c.Size() == 1 {
		if t == nil {
			return nil, &rankError{who: fmt.Sprintf("rank %d (root)", root), op: "bcast", err: errNilTable}
		}
		t.Retain()
		return t, nil
	}
	if c.Rank() == root {
		out := newOutStream(t, nil, &cfg, cfg.batchBytes, nil)
		defer out.close()
		for !out.done {
			if _, err := c.Bcast(ctx, root, out.nextChunk()); err != nil {
				return nil, fmt.Errorf("arrowio: bcast: %w", err)
			}
		}
		if out.localErr != nil {
			return nil, &rankError{who: fmt.Sprintf("rank %d (root)", root), op: "bcast", err: out.localErr}
		}
		t.Retain()
		return t, nil
	}
	in := newInStream(root, &cfg)
	defer closeIn([]*inStream{in})
	for !in.dec.eos {
		chunk, err := c.Bcast(ctx, root, nil)
		if err != nil {
			return nil, fmt.Errorf("arrowio: bcast: %w", err)
		}
		if len(chunk) == 0 {
			return nil, fmt.Errorf("arrowio: bcast: rank %d (root) sent an empty message mid-stream", root)
		}
		in.feed(memory.NewBufferBytes(chunk))
	}
	res, err := in.result()
	if err != nil {
		return nil, fmt.Errorf("arrowio: bcast: %w", err)
	}
	return res, nil
}

// GatherTable collects every rank's table at root and returns there their rows in rank order, as one
// table (zero copy: the root's own chunks, then every received batch); other ranks get nil. Every
// table must have the root's schema: a difference is an error (ErrSchemaMismatch) on the root, naming
// the rank.
func GatherTable(ctx context.Context, c *collective.Comm, root int, t arrow.Table, opts ...Option) (arrow.Table, error) {
	if c == nil {
		return nil, errors.New("arrowio: gather: nil communicator")
	}
	if root < 0 || root >= c.Size() {
		return nil, fmt.Errorf("arrowio: gather: root %d out of range 0..%d", root, c.Size()-1)
	}
	cfg := newConfig(opts)
	me, p := c.Rank(), c.Size()
	outs := make([]*outStream, p)
	ins := make([]*inStream, p)
	defer closeOut(outs)
	defer closeIn(ins)
	if me != root {
		outs[root] = newOutStream(t, nil, &cfg, cfg.batchBytes, nil)
	} else {
		for j := range ins {
			if j != root {
				ins[j] = newInStream(j, &cfg)
			}
		}
	}
	if p > 1 {
		if err := exchange(ctx, c, outs, ins); err != nil {
			return nil, fmt.Errorf("arrowio: gather: %w", err)
		}
	}
	if me != root {
		if err := outs[root].localErr; err != nil {
			return nil, &rankError{who: fmt.Sprintf("rank %d", me), op: "gather", err: err}
		}
		return nil, nil
	}
	if t == nil {
		return nil, &rankError{who: fmt.Sprintf("rank %d (root)", root), op: "gather", err: errNilTable}
	}
	tables, err := collect(ins, t, t.Schema(), root)
	if err != nil {
		return nil, fmt.Errorf("arrowio: gather: %w", err)
	}
	defer releaseTables(tables)
	return concat("gather", tables)
}

// AllgatherTable gives every rank the rows of every rank's table, in rank order, as one table (zero
// copy: each rank's own chunks stay as they are). Every table must have rank 0's schema: a difference
// is an error (ErrSchemaMismatch) on every rank, naming the first rank that differs.
func AllgatherTable(ctx context.Context, c *collective.Comm, t arrow.Table, opts ...Option) (arrow.Table, error) {
	if c == nil {
		return nil, errors.New("arrowio: allgather: nil communicator")
	}
	cfg := newConfig(opts)
	me, p := c.Rank(), c.Size()
	outs := make([]*outStream, p)
	ins := make([]*inStream, p)
	defer closeOut(outs)
	defer closeIn(ins)
	for j := range p {
		if j != me {
			outs[j] = newOutStream(t, nil, &cfg, cfg.batchBytes, nil) // the batches are encoded, not copied, per peer
			ins[j] = newInStream(j, &cfg)
		}
	}
	if p > 1 {
		if err := exchange(ctx, c, outs, ins); err != nil {
			return nil, fmt.Errorf("arrowio: allgather: %w", err)
		}
	}
	for _, out := range outs {
		if out != nil && out.localErr != nil {
			return nil, &rankError{who: fmt.Sprintf("rank %d", me), op: "allgather", err: out.localErr}
		}
	}
	if t == nil {
		return nil, &rankError{who: fmt.Sprintf("rank %d", me), op: "allgather", err: errNilTable}
	}
	ref, err := rank0Schema(ins, me, t.Schema())
	if err != nil {
		return nil, fmt.Errorf("arrowio: allgather: %w", err)
	}
	tables, err := collect(ins, t, ref, 0)
	if err != nil {
		return nil, fmt.Errorf("arrowio: allgather: %w", err)
	}
	defer releaseTables(tables)
	return concat("allgather", tables)
}

// AlltoallTables sends parts[i] to rank i and returns what every rank sent this one: result[j] came
// from rank j (result[Rank()] is parts[Rank()] itself, retained). parts must have Size() entries with
// one schema; a nil entry sends no rows. Every rank's parts must have rank 0's schema: a difference is
// an error (ErrSchemaMismatch) on every rank that receives from the rank that differs. The caller
// releases every result table (and still owns parts).
func AlltoallTables(ctx context.Context, c *collective.Comm, parts []arrow.Table, opts ...Option) ([]arrow.Table, error) {
	if c == nil {
		return nil, errors.New("arrowio: alltoall: nil communicator")
	}
	cfg := newConfig(opts)
	res, err := alltoall(ctx, c, "alltoall", parts, nil, &cfg)
	if err != nil {
		return nil, wrapOp("alltoall", err)
	}
	return res, nil
}

// alltoall is AlltoallTables; with cause set, this rank has nothing to send but that error.
func alltoall(ctx context.Context, c *collective.Comm, op string, parts []arrow.Table, cause error, cfg *config) ([]arrow.Table, error) {
	me, p := c.Rank(), c.Size()
	var schema *arrow.Schema
	if cause == nil {
		schema, cause = partsSchema(parts, p)
	}
	outs := make([]*outStream, p)
	ins := make([]*inStream, p)
	defer closeOut(outs)
	defer closeIn(ins)
	for j := range outs {
		if j == me {
			continue
		}
		var part arrow.Table
		if cause == nil {
			part = parts[j]
			if part == nil {
				part = emptyTable(schema)
				defer part.Release()
			}
		}
		outs[j] = newOutStream(part, schema, cfg, cfg.batchBytes, cause)
		ins[j] = newInStream(j, cfg)
	}
	if cause == nil {
		// A part this rank cannot send (a row over the receivers' limit) fails the call on every
		// rank, as a cause given does: every stream of this rank carries the error.
		for _, out := range outs {
			if out != nil && out.abortErr != nil {
				cause = out.abortErr
				break
			}
		}
		for _, out := range outs {
			if cause != nil && out != nil && out.abortErr == nil {
				out.abortErr = cause
			}
		}
	}
	if p > 1 {
		if err := exchange(ctx, c, outs, ins); err != nil {
			return nil, err
		}
	}
	if cause != nil {
		return nil, &rankError{who: fmt.Sprintf("rank %d", me), op: op, err: cause}
	}
	for _, out := range outs {
		if out != nil && out.localErr != nil {
			return nil, &rankError{who: fmt.Sprintf("rank %d", me), op: op, err: out.localErr}
		}
	}
	ref, err := rank0Schema(ins, me, schema)
	if err != nil {
		return nil, err
	}
	own := parts[me]
	if own == nil {
		own = emptyTable(schema)
		defer own.Release()
	}
	return collect(ins, own, ref, 0)
}

// rank0Schema returns rank 0's schema: this rank's own, or the one rank 0's stream carried.
func rank0Schema(ins []*inStream, me int, own *arrow.Schema) (*arrow.Schema, error) {
	if me == 0 {
		return own, nil
	}
	if ref := ins[0].dec.schema(); ref != nil {
		return ref, nil
	}
	_, err := ins[0].result()
	return nil, err
}

// collect returns every rank's table in rank order: own (retained) for this rank, the streams' for
// the others. Every table must have schema ref, rank refRank's; the first failure in rank order is
// the error, so that every rank that sees the same streams reports the same one.
func collect(ins []*inStream, own arrow.Table, ref *arrow.Schema, refRank int) ([]arrow.Table, error) {
	tables := make([]arrow.Table, len(ins))
	for j, in := range ins {
		if in == nil {
			if !own.Schema().Equal(ref) {
				releaseTables(tables)
				return nil, fmt.Errorf("%w: rank %d's schema differs from rank %d's: %s", ErrSchemaMismatch, j, refRank, schemaDiff(own.Schema(), ref))
			}
			own.Retain()
			tables[j] = own
			continue
		}
		in.check(ref, refRank)
		t, err := in.result()
		if err != nil {
			releaseTables(tables)
			return nil, err
		}
		tables[j] = t
	}
	return tables, nil
}

// partsSchema checks an all-to-all's parts and returns their common schema.
func partsSchema(parts []arrow.Table, p int) (*arrow.Schema, error) {
	if len(parts) != p {
		return nil, fmt.Errorf("%d parts for %d ranks", len(parts), p)
	}
	var schema *arrow.Schema
	first := -1
	for i, t := range parts {
		if t == nil {
			continue
		}
		if schema == nil {
			schema, first = t.Schema(), i
			continue
		}
		if !t.Schema().Equal(schema) {
			return nil, fmt.Errorf("%w: part %d's schema differs from part %d's: %s", ErrSchemaMismatch, i, first, schemaDiff(t.Schema(), schema))
		}
	}
	if schema == nil {
		return nil, errors.New("every part is nil: no schema to send")
	}
	return schema, nil
}

// Shuffle redistributes the rows of every rank's table t by the hash of its key columns: it
// hash-partitions t into Size() parts (HashPartition), exchanges them all-to-all and returns the rows
// this rank received, as one table (zero copy: the received batches one after another, in rank order).
// Afterwards every row whose keys hash to part r is on rank r, so rows with equal keys share a rank.
// Every rank must pass tables of one schema.
func Shuffle(ctx context.Context, c *collective.Comm, t arrow.Table, keys []string, opts ...Option) (arrow.Table, error) {
	if c == nil {
		return nil, errors.New("arrowio: shuffle: nil communicator")
	}
	cfg := newConfig(opts)
	var parts []arrow.Table
	perr := error(nil)
	if c.Size() > 1 {
		// A row that cannot be sent is refused whichever rank its keys send it to, named by its
		// row in t.
		perr = sendableRows(t, cfg.limits.datalessRows)
	}
	if perr == nil {
		parts, perr = HashPartition(ctx, t, keys, c.Size(), opts...)
	}
	defer releaseTables(parts)
	res, err := alltoall(ctx, c, "shuffle", parts, perr, &cfg)
	if err != nil {
		return nil, wrapOp("shuffle", err)
	}
	defer releaseTables(res)
	return concat("shuffle", res)
}

func concat(op string, tables []arrow.Table) (arrow.Table, error) {
	t, err := ConcatTables(tables)
	if err != nil {
		return nil, fmt.Errorf("arrowio: %s: %w", op, err)
	}
	return t, nil
}

func emptyTable(schema *arrow.Schema) arrow.Table {
	return newTable(schema, nil)
}

// errNilTable is the cause a rank reports when it was given a nil table to send.
var errNilTable = errors.New("nil table")

// rankError is a failure of this rank's own part of a call (a nil table, a table or parts it cannot
// send), worded who, then what, then the cause: "arrowio: rank 1: allgather: nil table",
// "arrowio: rank 1 (root): bcast: ...". Its NamesRank method tells collective.NamesRank that the
// text names the rank, so a layer that wraps it (frame) does not name the rank again.
type rankError struct {
	who string // "rank 1", "rank 1 (root)"
	op  string
	err error
}

func (e *rankError) Error() string   { return fmt.Sprintf("arrowio: %s: %s: %v", e.who, e.op, e.err) }
func (e *rankError) Unwrap() error   { return e.err }
func (e *rankError) NamesRank() bool { return true }

// wrapOp words err, a failure of call op: "arrowio: op: ...", unless it is this rank's own failure,
// a *rankError that names the call already.
func wrapOp(op string, err error) error {
	if _, ok := err.(*rankError); ok {
		return err
	}
	return fmt.Errorf("arrowio: %s: %w", op, err)
}
