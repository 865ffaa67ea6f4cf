package frame

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// AggFunc is an aggregation function of GroupBy.
type AggFunc int

const (
	AggSum      AggFunc = iota // sum of the non-null values (int64, uint64 or float64); null if none
	AggCount                   // number of non-null values (int64)
	AggCountAll                // number of rows (int64)
	AggMin                     // smallest non-null value; null if none
	AggMax                     // largest non-null value; null if none
	AggMean                    // mean of the non-null values (float64); null if none
)

// String returns "sum", "count", "count_all", "min", "max" or "mean".
func (a AggFunc) String() string {
	switch a {
	case AggSum:
		return "sum"
	case AggCount:
		return "count"
	case AggCountAll:
		return "count_all"
	case AggMin:
		return "min"
	case AggMax:
		return "max"
	case AggMean:
		return "mean"
	}
	return fmt.Sprintf("AggFunc(%d)", int(a))
}

// Agg is one aggregation of a group-by: a function of a column, and the
// name of its result column.
type Agg struct {
	Func   AggFunc
	Column string // the input column ("" for AggCountAll)
	Name   string // the result column; "" for the default, e.g. "sum_v"
}

// Sum adds up the non-null values of col per group. Integer sums are int64
// (uint64 for unsigned integers) and wrap on overflow; float sums are float64.
func Sum(col string) Agg { return Agg{Func: AggSum, Column: col} }

// Count counts the non-null values of col per group.
func Count(col string) Agg { return Agg{Func: AggCount, Column: col} }

// CountRows counts the rows of each group.
func CountRows() Agg { return Agg{Func: AggCountAll} }

// Min is the smallest non-null value of col per group (numbers, strings,
// binary, booleans, decimals, dates and times; NaN is larger than any number).
func Min(col string) Agg { return Agg{Func: AggMin, Column: col} }

// Max is the largest non-null value of col per group.
func Max(col string) Agg { return Agg{Func: AggMax, Column: col} }

// Mean is the mean of the non-null numeric values of col per group, as float64.
func Mean(col string) Agg { return Agg{Func: AggMean, Column: col} }

// As names the result column.
func (a Agg) As(name string) Agg {
	a.Name = name
	return a
}

// OutputName is the name of the result column: Name, or by default the
// function and the column, as "sum_v" ("count" for CountRows).
func (a Agg) OutputName() string {
	switch {
	case a.Name != "":
		return a.Name
	case a.Func == AggCountAll:
		return "count"
	}
	return a.Func.String() + "_" + a.Column
}

// Grouped is a frame grouped by key columns, waiting for its aggregations.
type Grouped struct {
	f    *Frame
	keys []string
}

// GroupBy groups the rows by the key columns (rows with equal keys, nulls
// included, form one group). With no keys, Agg aggregates the whole frame
// into one row, on rank 0. A key named twice is an error of Agg.
func (f *Frame) GroupBy(keys ...string) *Grouped {
	return &Grouped{f: f, keys: slices.Clone(keys)}
}

// Agg computes the aggregations per group and returns one row per group:
// the key columns, then one column per aggregation (collective).
//
// Distribution: each rank first aggregates its own rows (so at most one row
// per group and rank travels), the partial results are hash-shuffled on the
// keys, and each rank combines the partials of the groups it received: sums
// of sums, sums of counts, mins of mins, maxes of maxes, and a mean as the
// sum of partial sums over the sum of partial counts. A frame already
// partitioned by the keys is aggregated in place, with no exchange.
func (g *Grouped) Agg(ctx context.Context, aggs ...Agg) (*Frame, error) {
	return g.agg(ctx, "groupby", aggs)
}

// Distinct returns the distinct rows of the named columns (of all columns
// when none are named), each once, as a frame of those columns (collective).
// Nulls equal nulls. It is a group-by without aggregations: local
// deduplication, a shuffle on the columns, and a final deduplication.
func (f *Frame) Distinct(ctx context.Context, cols ...string) (*Frame, error) {
	if len(cols) == 0 {
		cols = fieldNames(f.Schema())
	}
	return f.GroupBy(cols...).agg(ctx, "distinct", nil)
}

func (g *Grouped) agg(ctx context.Context, op string, aggs []Agg) (*Frame, error) {
	f := g.f
	if err := f.agree(ctx); err != nil {
		return nil, f.errorf(op, err)
	}
	plan, err := planGroupBy(f.Schema(), g.keys, aggs)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	local := f.Size() == 1 || (len(g.keys) > 0 && slices.Equal(f.partitionedBy, g.keys))
	tm := f.cfg.timer(op)
	mem := f.cfg.mem
	cols, rows, err := f.wholeColumns(ctx)
	if err != nil {
		return nil, f.abort(op, err)
	}
	perRow := false
	if !local && len(g.keys) > 0 {
		if perRow, err = g.preAggregationUseless(ctx, cols, plan.keyIdx); err != nil {
			releaseAll(cols)
			return nil, f.errorf(op, err)
		}
		tm.done(ctx, "key estimate", rows, 0) // a sketch and a vote: one round of the network
	}
	partial, err := aggregateRows(ctx, mem, cols, int(rows), plan.keyIdx, plan.partial, perRow)
	releaseAll(cols)
	if err != nil {
		return nil, f.abort(op, fmt.Errorf("local aggregate: %w", err))
	}
	pt := tableFromColumns(plan.partialSchema, partial, int64(partialLen(partial)))
	releaseAll(partial)
	defer pt.Release()
	name := "local aggregate"
	if perRow {
		name = "local rows"
	}
	tm.done(ctx, name, pt.NumRows(), 0)

	var final arrow.Table
	switch {
	case local:
		pt.Retain()
		final = pt
	default:
		moved, err := g.exchange(ctx, op, pt, plan)
		if err != nil {
			return nil, f.errorf(op, err)
		}
		tm = f.cfg.timer(op) // the exchange recorded its own phases
		fcols, err := columns(ctx, mem, moved)
		n := moved.NumRows()
		moved.Release()
		if err != nil {
			return nil, f.errorf(op, err)
		}
		var out []arrow.Array
		if len(g.keys) > 0 || f.Rank() == 0 {
			out, err = aggregateLocal(ctx, mem, fcols, int(n), plan.partialKeys(), plan.final)
		}
		releaseAll(fcols)
		if err != nil {
			return nil, f.errorf(op, fmt.Errorf("final aggregate: %w", err))
		}
		if out == nil {
			final = emptyTable(plan.partialSchema)
		} else {
			final = tableFromColumns(plan.partialSchema, out, int64(partialLen(out)))
			releaseAll(out)
		}
		tm.done(ctx, "final aggregate", final.NumRows(), 0)
	}
	defer final.Release()
	if err := ctx.Err(); err != nil {
		return nil, f.errorf(op, err)
	}
	res, err := plan.finish(ctx, mem, final)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	var by []string
	if len(g.keys) > 0 {
		by = slices.Clone(g.keys)
	}
	return f.derive(res, by), nil
}

// preAggregationUseless decides, alike on every rank, whether to skip the
// local pre-aggregation: when the keys are nearly all distinct, grouping
// them locally costs a hash table and saves almost no rows, so every row is
// sent as its own partial aggregate instead. Each rank estimates the
// distinct keys of its partition (HyperLogLog, one hashing pass) and the
// ranks vote (collective). A rank whose estimate fails (its keys cannot be
// hashed) still votes, saying so, and every rank returns an error: the
// others name it, and the communicator stays usable.
func (g *Grouped) preAggregationUseless(ctx context.Context, cols []arrow.Array, keyIdx []int) (bool, error) {
	n := int(g.f.NumRows())
	vote := []byte{voteNone}
	var mine error
	if n > 0 {
		keys := make([]arrow.Array, len(keyIdx))
		for i, k := range keyIdx {
			keys[i] = cols[k]
		}
		d, err := estimateDistinct(ctx, keys, n)
		switch {
		case err != nil:
			mine = err
			vote = append([]byte{voteFailed}, err.Error()...)
		case d > 0.9*float64(n):
			vote[0] = voteRows
		default:
			vote[0] = votePre
		}
	}
	all, err := g.f.comm.Allgather(ctx, vote)
	if err != nil {
		return false, errors.Join(mine, fmt.Errorf("agree on pre-aggregation: %w", err))
	}
	if mine != nil {
		return false, mine
	}
	var pre, rows int
	for r, v := range all {
		switch {
		case len(v) > 0 && v[0] == voteFailed:
			return false, fmt.Errorf("rank %d failed: %s", r, v[1:])
		case len(v) != 1:
			return false, fmt.Errorf("rank %d sent a pre-aggregation vote of %d bytes", r, len(v))
		case v[0] == votePre:
			pre++
		case v[0] == voteRows:
			rows++
		}
	}
	return rows > pre, nil
}

// The votes of preAggregationUseless.
const (
	voteNone   byte = iota // no rows: no opinion
	votePre                // pre-aggregate
	voteRows               // send rows
	voteFailed             // the estimate failed; the error follows
)

// exchange moves the partial aggregates: shuffled on the keys (by their
// names in the partial table), or all to rank 0 for a global aggregate.
func (g *Grouped) exchange(ctx context.Context, op string, pt arrow.Table, plan *groupPlan) (arrow.Table, error) {
	f := g.f
	if len(g.keys) > 0 {
		return f.shuffle(ctx, op, pt, plan.partialKeyNames())
	}
	return f.toRoot(ctx, op, pt)
}

func partialLen(cols []arrow.Array) int {
	if len(cols) == 0 {
		return 0
	}
	return cols[0].Len()
}

// groupPlan is a group-by resolved against the schema: the kernels of the
// local (partial) step, those that combine partials, and how each result
// column is made from the combined columns.
type groupPlan struct {
	keyIdx        []int
	nkeys         int
	partial       []kernelSpec // over the input columns
	final         []kernelSpec // over the partial table's columns
	partialSchema *arrow.Schema
	outputs       []groupOutput
	schema        *arrow.Schema
}

// groupOutput makes one result column from partial column col (and, for a
// mean, count column cnt).
type groupOutput struct {
	fn       AggFunc
	col, cnt int
}

func planGroupBy(s *arrow.Schema, keys []string, aggs []Agg) (*groupPlan, error) {
	if len(aggs) == 0 && len(keys) == 0 {
		return nil, errors.New("no keys and no aggregations")
	}
	keyIdx, err := keyIndices(s, keys)
	if err != nil {
		return nil, err
	}
	for i, k := range keys { // the result would have two columns of one name
		if slices.Contains(keys[:i], k) {
			return nil, fmt.Errorf("key column %q is named twice", k)
		}
	}
	p := &groupPlan{keyIdx: keyIdx, nkeys: len(keys)}
	// The partial table's columns have names of their own, k<i> for key i
	// and p<i> for the partial aggregate in column i, which cannot collide
	// with each other whatever the input's names are.
	var pfields, ofields []arrow.Field
	for i, k := range keyIdx {
		pf := s.Field(k)
		pf.Name = fmt.Sprintf("k%d", i)
		pfields = append(pfields, pf)
		ofields = append(ofields, s.Field(k))
	}
	names := map[string]bool{}
	for _, f := range ofields {
		names[f.Name] = true
	}
	// addPartial adds a kernel of the partial step and its combining kernel;
	// it returns the kernel's column in the partial table.
	addPartial := func(k kernel, col int, dt arrow.DataType) int {
		pos := len(pfields)
		pfields = append(pfields, arrow.Field{Name: fmt.Sprintf("p%d", pos), Type: dt, Nullable: true})
		p.partial = append(p.partial, kernelSpec{k: k, col: col})
		combine := map[kernel]kernel{kSum: kSum, kSumF64: kSum, kCount: kSum, kCountAll: kSum, kMin: kMin, kMax: kMax}[k]
		p.final = append(p.final, kernelSpec{k: combine, col: pos})
		return pos
	}
	for _, a := range aggs {
		col := -1
		var dt arrow.DataType
		if a.Func != AggCountAll {
			if col, err = fieldIndex(s, a.Column); err != nil {
				return nil, fmt.Errorf("%s: %w", a.Func, err)
			}
			dt = valueType(s.Field(col).Type)
			if _, isDict := s.Field(col).Type.(*arrow.DictionaryType); isDict {
				return nil, fmt.Errorf("%s(%s): dictionary columns cannot be aggregated; decode them first", a.Func, a.Column)
			}
		}
		out := groupOutput{fn: a.Func}
		var odt arrow.DataType
		nullable := true
		switch a.Func {
		case AggSum, AggMin, AggMax:
			k := map[AggFunc]kernel{AggSum: kSum, AggMin: kMin, AggMax: kMax}[a.Func]
			if odt, err = kernelType(k, dt); err != nil {
				return nil, fmt.Errorf("%s(%s): %w", a.Func, a.Column, err)
			}
			out.col = addPartial(k, col, odt)
		case AggCount, AggCountAll:
			k := kCount
			if a.Func == AggCountAll {
				k = kCountAll
			}
			odt, nullable = arrow.PrimitiveTypes.Int64, false
			out.col = addPartial(k, col, odt)
		case AggMean:
			if _, err := sumType(dt); err != nil {
				return nil, fmt.Errorf("mean(%s): %w", a.Column, err)
			}
			odt = arrow.PrimitiveTypes.Float64
			out.col = addPartial(kSumF64, col, odt)
			out.cnt = addPartial(kCount, col, arrow.PrimitiveTypes.Int64)
		default:
			return nil, fmt.Errorf("unknown aggregation %d", a.Func)
		}
		name := a.OutputName()
		if names[name] {
			return nil, fmt.Errorf("two result columns are called %q; name them with As", name)
		}
		names[name] = true
		ofields = append(ofields, arrow.Field{Name: name, Type: odt, Nullable: nullable})
		p.outputs = append(p.outputs, out)
	}
	p.partialSchema = arrow.NewSchema(pfields, nil)
	p.schema = arrow.NewSchema(ofields, nil)
	return p, nil
}

// partialKeys are the key columns of the partial table.
func (p *groupPlan) partialKeys() []int {
	idx := make([]int, p.nkeys)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// partialKeyNames are the names of the key columns of the partial table.
func (p *groupPlan) partialKeyNames() []string {
	names := make([]string, p.nkeys)
	for i := range names {
		names[i] = p.partialSchema.Field(i).Name
	}
	return names
}

// finish makes the result table from the combined partial table.
func (p *groupPlan) finish(ctx context.Context, mem memory.Allocator, t arrow.Table) (arrow.Table, error) {
	cols, err := columns(ctx, mem, t)
	if err != nil {
		return nil, err
	}
	defer releaseAll(cols)
	out := make([]arrow.Array, 0, p.schema.NumFields())
	for _, c := range cols[:p.nkeys] {
		c.Retain()
		out = append(out, c)
	}
	for _, o := range p.outputs {
		if o.fn != AggMean {
			cols[o.col].Retain()
			out = append(out, cols[o.col])
			continue
		}
		out = append(out, meanOf(mem, cols[o.col], cols[o.cnt]))
	}
	res := tableFromColumns(p.schema, out, t.NumRows())
	releaseAll(out)
	return res, nil
}

// meanOf divides float64 sums by int64 counts; null where the count is 0.
func meanOf(mem memory.Allocator, sums, counts arrow.Array) arrow.Array {
	s, c := rawValues[float64](sums), rawValues[int64](counts)
	sv := validityOf(sums)
	out := make([]float64, len(s))
	valid := make([]bool, len(s))
	for i := range s {
		if c[i] > 0 && sv.valid(i) {
			out[i], valid[i] = s[i]/float64(c[i]), true
		}
	}
	return fromSlice(mem, arrow.PrimitiveTypes.Float64, out, valid)
}
