package frame

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Filter keeps the rows where the boolean expression pred is true (null
// counts as false). It is local: each rank filters its own partition, and
// the result stays partitioned as f was.
func (f *Frame) Filter(ctx context.Context, pred Expr) (*Frame, error) {
	const op = "filter"
	if err := ctx.Err(); err != nil {
		return nil, f.errorf(op, err)
	}
	tm := f.cfg.timer(op)
	cols, rows, err := f.wholeColumns(ctx)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	n := int(rows)
	defer releaseAll(cols)
	mask, err := pred.eval(ctx, f.cfg.mem, f.Schema(), cols, n)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	defer mask.Release()
	// A predicate of the null type (a null constant, a column of nulls) is
	// null on every row, which counts as false: it keeps no row.
	if id := mask.DataType().ID(); id != arrow.BOOL && id != arrow.NULL {
		return nil, f.errorf(op, fmt.Errorf("predicate %s is %s, not boolean", pred, mask.DataType()))
	}
	// The rows to keep, then one gather per column.
	keep := make([]int32, 0, n)
	bm, _ := mask.(*array.Boolean)
	for lo := 0; bm != nil && lo < n; lo += pollRows {
		if err := ctx.Err(); err != nil {
			return nil, f.errorf(op, fmt.Errorf("select rows: %w", err))
		}
		for i := lo; i < min(lo+pollRows, n); i++ {
			if bm.IsValid(i) && bm.Value(i) {
				keep = append(keep, int32(i))
			}
		}
	}
	out, err := takeColumns(ctx, f.cfg.mem, cols, keep)
	if err != nil {
		return nil, f.errorf(op, fmt.Errorf("gather: %w", err))
	}
	t := tableFromColumns(f.Schema(), out, int64(len(keep)))
	releaseAll(out)
	tm.done(ctx, "filter", t.NumRows(), 0)
	return f.derive(t, f.partitionedBy), nil
}

// Select keeps the named columns, in that order (zero copy, local); a
// column named twice is an error.
func (f *Frame) Select(cols ...string) (*Frame, error) {
	idx, err := fieldIndices(f.Schema(), cols)
	if err == nil {
		err = distinctNames(cols, "")
	}
	if err != nil {
		return nil, f.errorf("select", err)
	}
	part := f.table()
	defer part.Release()
	fields := make([]arrow.Field, len(idx))
	columns := make([]arrow.Column, len(idx))
	for i, c := range idx {
		fields[i] = part.Schema().Field(c)
		columns[i] = *part.Column(c)
	}
	md := part.Schema().Metadata()
	s := arrow.NewSchema(fields, &md)
	t := newTableOf(s, columns, part.NumRows())
	by := f.partitionedBy
	for _, k := range by {
		if !slices.Contains(cols, k) {
			by = nil
		}
	}
	return f.derive(t, by), nil
}

// Project computes a new frame whose columns are the expressions (named by
// their Name), evaluated row by row on every rank's partition (local). Two
// expressions of one name are an error.
func (f *Frame) Project(ctx context.Context, exprs ...Expr) (*Frame, error) {
	const op = "project"
	if len(exprs) == 0 {
		return nil, f.errorf(op, errors.New("no expressions"))
	}
	names := make([]string, len(exprs))
	for i, e := range exprs {
		names[i] = e.Name()
	}
	if err := distinctNames(names, "; name them with As"); err != nil {
		return nil, f.errorf(op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, f.errorf(op, err)
	}
	tm := f.cfg.timer(op)
	cols, rows, err := f.wholeColumns(ctx)
	if err != nil {
		return nil, f.errorf(op, err)
	}
	n := int(rows)
	defer releaseAll(cols)
	out := make([]arrow.Array, 0, len(exprs))
	fields := make([]arrow.Field, 0, len(exprs))
	for _, e := range exprs {
		if err := ctx.Err(); err != nil {
			releaseAll(out)
			return nil, f.errorf(op, err)
		}
		a, err := e.eval(ctx, f.cfg.mem, f.Schema(), cols, n)
		if err != nil {
			releaseAll(out)
			return nil, f.errorf(op, err)
		}
		out = append(out, a)
		field := arrow.Field{Name: e.Name(), Type: a.DataType(), Nullable: true} // alike on every rank
		if e.fn == "" && !e.lit {                                                // a column passes through with its field
			i, _ := fieldIndex(f.Schema(), e.col)
			field = f.Schema().Field(i)
			field.Name = e.Name()
		}
		fields = append(fields, field)
	}
	t := tableFromColumns(arrow.NewSchema(fields, nil), out, int64(n))
	releaseAll(out)
	tm.done(ctx, "project", t.NumRows(), 0)
	// The partitioning survives where the key columns pass through unchanged.
	var by []string
	if f.partitionedBy != nil {
		by = f.partitionedBy
		for _, k := range by {
			if !slices.ContainsFunc(exprs, func(e Expr) bool { return e.fn == "" && !e.lit && e.col == k && e.Name() == k }) {
				by = nil
				break
			}
		}
	}
	return f.derive(t, by), nil
}

// WithColumn returns the frame with the expression's result as column name:
// replacing the column of that name, or appended after the others (local).
func (f *Frame) WithColumn(ctx context.Context, name string, e Expr) (*Frame, error) {
	exprs := make([]Expr, 0, f.Schema().NumFields()+1)
	replaced := false
	for _, fl := range f.Schema().Fields() {
		if fl.Name == name {
			exprs = append(exprs, e.As(name))
			replaced = true
		} else {
			exprs = append(exprs, Col(fl.Name))
		}
	}
	if !replaced {
		exprs = append(exprs, e.As(name))
	}
	return f.Project(ctx, exprs...)
}

// distinctNames fails when two of a result's column names are equal: the
// frame could not name either column again (every operator would call the
// name ambiguous). Join and Agg refuse such results too. hint ends the
// error.
func distinctNames(names []string, hint string) error {
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("two result columns are called %q%s", n, hint)
		}
	}
	return nil
}

// newTableOf builds a table from existing columns (which it retains).
func newTableOf(s *arrow.Schema, cols []arrow.Column, rows int64) arrow.Table {
	out := make([]arrow.Column, len(cols))
	for i := range cols {
		out[i] = *arrow.NewColumn(s.Field(i), cols[i].Data())
	}
	t := array.NewTable(s, out, rows)
	for i := range out {
		out[i].Release()
	}
	return t
}
