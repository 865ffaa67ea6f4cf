package frame

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
)

// SortKey is one column to sort by.
type SortKey struct {
	Column     string
	Descending bool
	NullsFirst bool // nulls before all values (default: after), whatever the direction
}

// Asc sorts by col, smallest first, nulls last.
func Asc(col string) SortKey { return SortKey{Column: col} }

// Desc sorts by col, largest first, nulls last.
func Desc(col string) SortKey { return SortKey{Column: col, Descending: true} }

// WithNullsFirst returns the key with nulls placed before all values.
func (k SortKey) WithNullsFirst() SortKey {
	k.NullsFirst = true
	return k
}

// samplesPerRank is how many rows each rank offers as candidate splitters.
// More samples balance the output partitions better (each holds at most
// about n/p + n/samplesPerRank rows) at the cost of a larger allgather.
const samplesPerRank = 64

// Sort sorts the frame by the keys (lexicographically) across ranks: after
// it, rank 0 holds the smallest rows, each rank's partition is sorted, and
// every row of rank r sorts before every row of rank r+1 (collective). The
// sort is stable: rows with equal keys keep their order (by rank, then by
// position in the partition). Floating-point NaN sorts after every number.
//
// Distribution (parallel sorting by regular sampling): every rank sorts its
// partition and contributes evenly spaced sample rows; the samples are
// all-gathered and every rank picks the same Size()-1 splitters from them;
// each rank cuts its sorted partition at the splitters (ties broken by rank
// and position, so a key that repeats across many rows is spread over
// several ranks instead of landing on one); the pieces go all-to-all; and
// each rank merges the sorted runs it received.
func (f *Frame) Sort(ctx context.Context, keys ...SortKey) (*Frame, error) {
	const op = "sort"
	if len(keys) == 0 {
		return nil, f.errorf(op, errors.New("no sort keys"))
	}
	if err := f.agree(ctx); err != nil {
		return nil, f.errorf(op, err)
	}
	s := f.Schema()
	idx := make([]int, len(keys))
	for i, k := range keys {
		c, err := fieldIndex(s, k.Column)
		if err != nil {
			return nil, f.errorf(op, err)
		}
		if !orderable(valueType(s.Field(c).Type)) {
			return nil, f.errorf(op, fmt.Errorf("cannot sort by %q of type %s", k.Column, s.Field(c).Type))
		}
		idx[i] = c
	}
	tm := f.cfg.timer(op)
	if err := ctx.Err(); err != nil { // as sortLocal says it, before any concatenation
		return nil, f.abort(op, fmt.Errorf("local sort: %w", err))
	}
	part, err := f.wholePart(ctx)
	if err != nil {
		return nil, f.abort(op, fmt.Errorf("local sort: %w", err))
	}
	sorted, err := sortLocal(ctx, f.cfg.mem, part, idx, keys)
	part.Release()
	if err != nil {
		return nil, f.abort(op, fmt.Errorf("local sort: %w", err))
	}
	tm.done(ctx, "local sort", sorted.NumRows(), 0)
	if f.Size() == 1 {
		return f.derive(sorted, nil), nil
	}
	defer sorted.Release()
	out, err := f.sortExchange(ctx, sorted, idx, keys)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	return f.derive(out, nil), nil
}

// sortLocal returns t sorted by the key columns idx (one chunk per column).
// It looks at ctx every pollRows rows.
func sortLocal(ctx context.Context, mem memory.Allocator, t arrow.Table, idx []int, keys []SortKey) (arrow.Table, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cols, err := columns(ctx, mem, t)
	if err != nil {
		return nil, err
	}
	defer releaseAll(cols)
	kc, err := sortKeyColumns(ctx, mem, cols, idx, keys)
	if err != nil {
		return nil, err
	}
	defer releaseKeys(kc)
	order := make([]int32, t.NumRows())
	for i := range order {
		order[i] = int32(i)
	}
	if err := sortRows(ctx, order, kc); err != nil {
		return nil, err
	}
	out, err := takeColumns(ctx, mem, cols, order)
	if err != nil {
		return nil, err
	}
	res := tableFromColumns(t.Schema(), out, t.NumRows())
	releaseAll(out)
	return res, nil
}

// sortKeyColumns resolves the sort keys to value columns (dictionaries
// decoded); release them with releaseKeys.
func sortKeyColumns(ctx context.Context, mem memory.Allocator, cols []arrow.Array, idx []int, keys []SortKey) ([]sortKeyCols, error) {
	kc := make([]sortKeyCols, len(idx))
	for i, c := range idx {
		a, err := decoded(ctx, mem, cols[c])
		if err != nil {
			releaseKeys(kc)
			return nil, err
		}
		kc[i] = sortKeyCols{col: a, desc: keys[i].Descending, nullsFirst: keys[i].NullsFirst}
	}
	return kc, nil
}

func releaseKeys(kc []sortKeyCols) {
	for _, k := range kc {
		if k.col != nil {
			k.col.Release()
		}
	}
}

// sortExchange range-partitions a locally sorted partition by splitters
// drawn from every rank's samples, exchanges the ranges and merges them.
func (f *Frame) sortExchange(ctx context.Context, sorted arrow.Table, idx []int, keys []SortKey) (arrow.Table, error) {
	const op = "sort"
	tm := f.cfg.timer(op)
	mem, p, me := f.cfg.mem, f.Size(), f.Rank()
	// A failure of this rank's own before or between the exchanges fails
	// the communicator (failComm): the other ranks wait for this one.
	cols, err := columns(ctx, mem, sorted)
	if err != nil {
		return nil, failComm(f.comm, err)
	}
	defer releaseAll(cols)
	kc, err := sortKeyColumns(ctx, mem, cols, idx, keys)
	if err != nil {
		return nil, failComm(f.comm, err)
	}
	defer releaseKeys(kc)
	n := int(sorted.NumRows())

	// Samples: evenly spaced rows of the sorted partition, tagged with their
	// rank and position, which break ties between equal keys.
	ns := min(n, samplesPerRank)
	pos := make([]int32, ns)
	for i := range pos {
		pos[i] = int32((2*i + 1) * n / (2 * ns))
	}
	sample, err := sampleTable(ctx, mem, kc, pos, me, n)
	if err != nil {
		return nil, failComm(f.comm, err)
	}
	all, err := arrowio.AllgatherTable(ctx, f.comm, sample, f.cfg.arrowio()...)
	sample.Release()
	if err != nil {
		return nil, fmt.Errorf("allgather samples: %w", err)
	}
	if all.NumRows() == 0 { // no rank has rows
		all.Release()
		sorted.Retain()
		return sorted, nil
	}
	splitters, err := pickSplitters(ctx, mem, all, keys, p)
	all.Release()
	if err != nil {
		return nil, failComm(f.comm, err)
	}
	defer splitters.release()
	tm.done(ctx, "splitters", int64(splitters.n), 0)

	// Cut the partition: rows [cut[r], cut[r+1]) go to rank r.
	order, err := rowOrder(sortCols(kc), splitters.keys, kc)
	if err != nil {
		return nil, failComm(f.comm, err)
	}
	cut := make([]int, p+1)
	cut[p] = n
	for r := 1; r < p; r++ {
		s := r - 1
		lo, hi := cut[r-1], n
		for lo < hi { // first row that sorts after splitter s
			mid := int(uint(lo+hi) >> 1)
			c := order.compare(mid, s)
			if c == 0 {
				c = cmp.Or(cmp.Compare(me, splitters.rank[s]), cmp.Compare(int64(mid), splitters.row[s]))
			}
			if c <= 0 {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		cut[r] = lo
	}
	parts := make([]arrow.Table, p)
	var sent, bytes int64
	for r := range parts {
		parts[r] = sliceTable(sorted, int64(cut[r]), int64(cut[r+1]))
		if r != me {
			sent += parts[r].NumRows()
			bytes += tableBytes(parts[r])
		}
	}
	tm.done(ctx, "partition", int64(n), 0)
	recv, err := arrowio.AlltoallTables(ctx, f.comm, parts, f.cfg.arrowio()...)
	releaseTables(parts)
	if err != nil {
		return nil, fmt.Errorf("exchange ranges: %w", err)
	}
	tm.done(ctx, "exchange", sent, bytes)
	defer releaseTables(recv)
	out, err := mergeRuns(ctx, mem, recv, idx, keys)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	tm.done(ctx, "merge", out.NumRows(), 0)
	return out, nil
}

func sortCols(kc []sortKeyCols) []arrow.Array {
	out := make([]arrow.Array, len(kc))
	for i, k := range kc {
		out[i] = k.col
	}
	return out
}

// sampleTable holds the key values of the sample rows pos, then the rank
// and the position of each (the tie breakers), then how many rows of the
// partition (of n rows) each stands for.
func sampleTable(ctx context.Context, mem memory.Allocator, kc []sortKeyCols, pos []int32, rank, n int) (arrow.Table, error) {
	fields := make([]arrow.Field, 0, len(kc)+2)
	arrs := make([]arrow.Array, 0, len(kc)+2)
	for i, k := range kc {
		a, err := take(ctx, mem, k.col, pos)
		if err != nil {
			releaseAll(arrs)
			return nil, err
		}
		arrs = append(arrs, a)
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("k%d", i), Type: k.col.DataType(), Nullable: true})
	}
	ns := len(pos)
	ranks := make([]int32, ns)
	rows := make([]int64, ns)
	weights := make([]int64, ns)
	for i, p := range pos {
		ranks[i], rows[i] = int32(rank), int64(p)
		weights[i] = int64((i+1)*n/ns - i*n/ns) // sample i stands for the rows [i*n/ns, (i+1)*n/ns)
	}
	arrs = append(arrs, fromSlice(mem, arrow.PrimitiveTypes.Int32, ranks, nil), fromSlice(mem, arrow.PrimitiveTypes.Int64, rows, nil),
		fromSlice(mem, arrow.PrimitiveTypes.Int64, weights, nil))
	fields = append(fields, arrow.Field{Name: "rank", Type: arrow.PrimitiveTypes.Int32}, arrow.Field{Name: "row", Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: "weight", Type: arrow.PrimitiveTypes.Int64})
	t := tableFromColumns(arrow.NewSchema(fields, nil), arrs, int64(len(pos)))
	releaseAll(arrs)
	return t, nil
}

// splitterSet is the p-1 splitters: their key values, rank and position.
type splitterSet struct {
	keys []arrow.Array
	rank []int
	row  []int64
	n    int
}

func (s *splitterSet) release() { releaseAll(s.keys) }

// pickSplitters sorts all samples (by key, then rank and position) and takes
// p-1 at evenly spaced weighted quantiles. Every rank computes the same set. There is at least
// one sample.
func pickSplitters(ctx context.Context, mem memory.Allocator, all arrow.Table, keys []SortKey, p int) (*splitterSet, error) {
	cols, err := columns(ctx, mem, all)
	if err != nil {
		return nil, err
	}
	defer releaseAll(cols)
	nk := len(keys)
	kc := make([]sortKeyCols, nk)
	for i := range kc {
		kc[i] = sortKeyCols{col: cols[i], desc: keys[i].Descending, nullsFirst: keys[i].NullsFirst}
	}
	m := int(all.NumRows())
	ranks, rows, weights := rawValues[int32](cols[nk]), rawValues[int64](cols[nk+1]), rawValues[int64](cols[nk+2])
	order := make([]int32, m)
	for i := range order {
		order[i] = int32(i)
	}
	byKey, err := rowOrder(cols[:nk], cols[:nk], kc)
	if err != nil {
		return nil, err
	}
	if err := sortStable(ctx, order, func(a, b int32) int {
		return cmp.Or(byKey.compare(int(a), int(b)), cmp.Compare(ranks[a], ranks[b]), cmp.Compare(rows[a], rows[b]))
	}); err != nil {
		return nil, err
	}
	s := &splitterSet{n: p - 1}
	// Weighted quantiles: a sample stands for its block of rows, so ranks
	// with more rows weigh more. Splitter k is the first sample whose block
	// reaches past k/p of all rows.
	var total int64
	for _, w := range weights {
		total += w
	}
	pick := make([]int32, p-1)
	var cum int64
	j := 0
	for k := range pick {
		target := int64(k+1) * total / int64(p)
		for j < m-1 && 2*(cum+weights[order[j]]) <= 2*target+weights[order[j]] {
			cum += weights[order[j]]
			j++
		}
		pick[k] = order[j]
	}
	for i := range nk {
		a, err := take(ctx, mem, cols[i], pick)
		if err != nil {
			s.release()
			return nil, err
		}
		s.keys = append(s.keys, a)
	}
	for _, j := range pick {
		s.rank = append(s.rank, int(ranks[j]))
		s.row = append(s.row, rows[j])
	}
	return s, nil
}

// mergeRuns merges the sorted runs received from every rank (in rank order,
// which is also the tie order) into one sorted table, looking at ctx every
// pollRows rows.
func mergeRuns(ctx context.Context, mem memory.Allocator, runs []arrow.Table, idx []int, keys []SortKey) (arrow.Table, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all, err := arrowio.ConcatTables(runs)
	if err != nil {
		return nil, err
	}
	defer all.Release()
	nonEmpty := 0
	for _, r := range runs {
		if r.NumRows() > 0 {
			nonEmpty++
		}
	}
	cols, err := columns(ctx, mem, all)
	if err != nil {
		return nil, err
	}
	defer releaseAll(cols)
	if nonEmpty <= 1 {
		return tableFromColumns(all.Schema(), cols, all.NumRows()), nil
	}
	kc, err := sortKeyColumns(ctx, mem, cols, idx, keys)
	if err != nil {
		return nil, err
	}
	defer releaseKeys(kc)
	order, err := rowOrder(sortCols(kc), sortCols(kc), kc)
	if err != nil {
		return nil, err
	}
	// heads[i] is the next row of run i; a binary heap of run indices by
	// head row (ties: lower run first) yields the merged order.
	starts := make([]int, len(runs)+1)
	for i, r := range runs {
		starts[i+1] = starts[i] + int(r.NumRows())
	}
	heads := make([]int, len(runs))
	var heap []int
	less := func(a, b int) bool {
		c := order.compare(heads[a], heads[b])
		return c < 0 || (c == 0 && a < b)
	}
	for i := range runs {
		heads[i] = starts[i]
		if starts[i] < starts[i+1] {
			heap = append(heap, i)
		}
	}
	for i := len(heap)/2 - 1; i >= 0; i-- {
		siftDown(heap, i, less)
	}
	merged := make([]int32, 0, all.NumRows())
	for len(heap) > 0 {
		if len(merged)%pollRows == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		r := heap[0]
		merged = append(merged, int32(heads[r]))
		heads[r]++
		if heads[r] == starts[r+1] {
			heap[0] = heap[len(heap)-1]
			heap = heap[:len(heap)-1]
		}
		siftDown(heap, 0, less)
	}
	out, err := takeColumns(ctx, mem, cols, merged)
	if err != nil {
		return nil, err
	}
	res := tableFromColumns(all.Schema(), out, all.NumRows())
	releaseAll(out)
	return res, nil
}

func siftDown(h []int, i int, less func(a, b int) bool) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
