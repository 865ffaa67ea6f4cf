package arrowio

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// HashPartition splits t into p tables by the hash of its key columns: row i goes to part
// PartitionOf(h, p) (p at most 2^20), where h is its HashRows hash over the columns named by keys, in that order. Every
// part has t's schema; rows keep their relative order; parts that get no rows are empty tables (no
// chunks). Each part holds one chunk per input record batch that sent it rows; a batch whose rows all
// go to one part is passed through without a copy (but for the indices of a dictionary column whose
// dictionary is compacted). The caller releases every part.
//
// A part of a dictionary column shares the input's dictionary, except when the part's rows are fewer
// than 8 times the dictionary's entries and use at most half of them: then the part gets a
// dictionary of just the entries they use, in the dictionary's order, shared by its chunks, with its
// indices rewritten (a null slot gets index 0). The parts of a high-cardinality dictionary (string
// ids) thus carry about one dictionary in all, not p copies. This applies with p > 1 to top-level
// dictionary columns; dictionaries nested in other types are shared whole.
//
// Options: WithAllocator for the new arrays. The key columns may be of any type HashRows supports;
// every other column of any type arrow-go's IPC supports.
//
// HashPartition looks at ctx first, before each later record batch, every partitionBlockRows rows while it hashes
// and before it scatters each column and compacts dictionaries; once ctx has ended it releases what it built and returns an error
// that wraps ctx.Err().
func HashPartition(ctx context.Context, t arrow.Table, keys []string, p int, opts ...Option) (parts []arrow.Table, err error) {
	if t == nil {
		return nil, fmt.Errorf("arrowio: hash partition: nil table")
	}
	if p <= 0 || p > maxParts {
		return nil, fmt.Errorf("arrowio: hash partition: %d partitions, want 1..%d", p, maxParts)
	}
	keyIdx, err := KeyIndices(t.Schema(), keys)
	if err != nil {
		return nil, fmt.Errorf("arrowio: hash partition: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("arrowio: hash partition: %w", err)
	}
	cfg := newConfig(opts)
	ncols := int(t.NumCols())
	// chunks[k][c]: the chunks of column c of part k.
	chunks := make([][][]arrow.Array, p)
	for k := range chunks {
		chunks[k] = make([][]arrow.Array, ncols)
	}
	defer func() {
		for _, part := range chunks {
			for _, col := range part {
				for _, a := range col {
					a.Release()
				}
			}
		}
	}()
	defer recoverInvalid(&err, "hash partition")

	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	var (
		hashes []uint64
		part   []uint32 // each row's part
		order  []int    // row indices grouped by part, for the types scatter does not handle
		counts = make([]int, p)
		keyCol = make([]arrow.Array, len(keyIdx))
	)
	for first := true; tr.Next(); first = false {
		if !first { // the first was looked at before
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("arrowio: hash partition: %w", err)
			}
		}
		rec := tr.RecordBatch()
		n := int(rec.NumRows())
		if n == 0 {
			continue
		}
		if p == 1 {
			appendColumns(chunks[0], rec.Columns())
			continue
		}
		if cap(hashes) < n {
			hashes, part = make([]uint64, n), make([]uint32, n)
		}
		hashes, part, order = hashes[:n], part[:n], order[:0]
		for j, c := range keyIdx {
			keyCol[j] = rec.Column(c)
		}
		if j, err := hashBlocks(ctx, keyCol, hashes); err != nil {
			if j >= 0 {
				f := t.Schema().Field(keyIdx[j])
				return nil, fmt.Errorf("arrowio: hash partition: key column %q (%s): %w", f.Name, f.Type, err)
			}
			return nil, fmt.Errorf("arrowio: hash partition: %w", err)
		}
		clear(counts)
		for i, h := range hashes {
			k := PartitionOf(h, p)
			part[i] = uint32(k)
			counts[k]++
		}
		if whole := wholeBatchPart(counts, n); whole >= 0 {
			appendColumns(chunks[whole], rec.Columns())
			continue
		}
		for c, col := range rec.Columns() {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("arrowio: hash partition: column %q: %w", t.Schema().Field(c).Name, err)
			}
			arrs, ok, err := scatter(cfg.mem, col, part, counts)
			if err == nil && !ok {
				if len(order) == 0 {
					order = groupRows(part, counts, order)
				}
				arrs, err = takeParts(cfg.mem, col, order, counts)
			}
			if err != nil {
				return nil, fmt.Errorf("arrowio: hash partition: column %q: %w", t.Schema().Field(c).Name, err)
			}
			for k, a := range arrs {
				if a != nil {
					chunks[k][c] = append(chunks[k][c], a)
				}
			}
		}
	}
	if err := tr.Err(); err != nil {
		return nil, fmt.Errorf("arrowio: hash partition: reading table: %w", err)
	}
	if p > 1 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("arrowio: hash partition: %w", err)
		}
		if err := compactDictionaries(cfg.mem, t.Schema(), chunks); err != nil {
			return nil, fmt.Errorf("arrowio: hash partition: %w", err)
		}
	}
	parts = make([]arrow.Table, p)
	for k := range parts {
		parts[k] = newTable(t.Schema(), chunks[k])
	}
	return parts, nil
}

// partitionBlockRows is how many rows HashPartition hashes between two looks at its context.
const partitionBlockRows = 64 << 10

// hashBlocks is hashRows over blocks of partitionBlockRows rows (slices of cols), looking at ctx before
// each block; a failure to hash a column's values returns that column's index too, and ctx's error -1.
func hashBlocks(ctx context.Context, cols []arrow.Array, out []uint64) (int, error) {
	n := len(out)
	if n <= partitionBlockRows {
		return hashRows(cols, out)
	}
	for _, c := range cols {
		if c == nil || c.Len() != n {
			return hashRows(cols, out) // its error, said the way it says it
		}
	}
	sl := make([]arrow.Array, len(cols))
	for lo := 0; lo < n; lo += partitionBlockRows {
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		hi := min(lo+partitionBlockRows, n)
		for i, c := range cols {
			sl[i] = array.NewSlice(c, int64(lo), int64(hi))
		}
		j, err := hashRows(sl, out[lo:hi])
		for _, a := range sl {
			a.Release()
		}
		if err != nil {
			return j, err
		}
	}
	return -1, nil
}

// maxParts bounds HashPartition's part count. Every part is a table of its
// own, allocated up front, so a count near the 32 bits part numbers are kept
// in would ask for tens of GiB and end the process instead of returning an
// error. 2^20 is 32 times collective.MaxRanks.
const maxParts = 1 << 20

// KeyIndices returns the index in schema of each named key column. A name that is missing, or that more
// than one field has, is an error; so is an empty list.
func KeyIndices(schema *arrow.Schema, keys []string) ([]int, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key columns")
	}
	idx := make([]int, len(keys))
	for j, name := range keys {
		found := schema.FieldIndices(name)
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("no column %q in schema %v", name, fieldNames(schema))
		case 1:
			idx[j] = found[0]
		default:
			return nil, fmt.Errorf("column name %q is ambiguous: %d columns have it", name, len(found))
		}
	}
	return idx, nil
}

func fieldNames(s *arrow.Schema) []string {
	names := make([]string, s.NumFields())
	for i := range names {
		names[i] = s.Field(i).Name
	}
	return names
}

// wholeBatchPart returns the part that gets all n rows of a batch, or -1.
func wholeBatchPart(counts []int, n int) int {
	for k, c := range counts {
		if c == n {
			return k
		}
		if c != 0 {
			return -1
		}
	}
	return -1
}

// groupRows lists the row indices part by part (a counting sort, stable within a part).
func groupRows(part []uint32, counts []int, order []int) []int {
	if cap(order) < len(part) {
		order = make([]int, len(part))
	}
	order = order[:len(part)]
	next := make([]int, len(counts))
	for k := 1; k < len(counts); k++ {
		next[k] = next[k-1] + counts[k-1]
	}
	for i, k := range part {
		order[next[k]] = i
		next[k]++
	}
	return order
}

// takeParts builds each part's array of col from the grouped row order.
func takeParts(mem memory.Allocator, col arrow.Array, order []int, counts []int) ([]arrow.Array, error) {
	out := make([]arrow.Array, len(counts))
	lo := 0
	for k, c := range counts {
		if c == 0 {
			continue
		}
		a, err := take(mem, col, order[lo:lo+c])
		if err != nil {
			for _, o := range out {
				if o != nil {
					o.Release()
				}
			}
			return nil, err
		}
		out[k] = a
		lo += c
	}
	return out, nil
}

func appendColumns(dst [][]arrow.Array, cols []arrow.Array) {
	for c, col := range cols {
		col.Retain()
		dst[c] = append(dst[c], col)
	}
}

// newTable builds a table of schema from per-column chunk lists; the table takes its own references.
// Its row count is that of its columns (0 without any).
func newTable(schema *arrow.Schema, chunks [][]arrow.Array) arrow.Table {
	return newTableRows(schema, chunks, -1)
}

// newTableRows is newTable with the row count given (-1: the columns'), for a table of no columns.
func newTableRows(schema *arrow.Schema, chunks [][]arrow.Array, rows int64) arrow.Table {
	cols := make([]arrow.Column, schema.NumFields())
	for c := range cols {
		f := schema.Field(c)
		var list []arrow.Array
		if c < len(chunks) {
			list = chunks[c]
		}
		ch := arrow.NewChunked(f.Type, list)
		cols[c] = *arrow.NewColumn(f, ch)
		ch.Release()
	}
	t := array.NewTable(schema, cols, rows)
	for i := range cols {
		cols[i].Release()
	}
	return t
}
