package frame

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/compute/exec"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// JoinType says which unmatched rows a join keeps.
type JoinType int

const (
	// Inner keeps only rows whose keys match on both sides.
	Inner JoinType = iota
	// LeftOuter also keeps the unmatched left rows, with nulls on the right.
	LeftOuter
	// RightOuter also keeps the unmatched right rows, with nulls on the left.
	RightOuter
	// FullOuter keeps the unmatched rows of both sides.
	FullOuter
)

// String returns "inner", "left", "right" or "full".
func (j JoinType) String() string {
	switch j {
	case Inner:
		return "inner"
	case LeftOuter:
		return "left"
	case RightOuter:
		return "right"
	case FullOuter:
		return "full"
	}
	return fmt.Sprintf("JoinType(%d)", int(j))
}

func (j JoinType) outer() (left, right bool) {
	return j == LeftOuter || j == FullOuter, j == RightOuter || j == FullOuter
}

// JoinOption configures a Join.
type JoinOption func(*joinConfig)

type joinConfig struct {
	leftOn, rightOn []string
	sortMerge       bool
	suffixes        [2]string
}

// On joins on key columns that have the same names on both sides. The keys
// then appear once in the result (for outer joins, the value of whichever
// side has the row).
func On(keys ...string) JoinOption {
	return func(c *joinConfig) { c.leftOn, c.rightOn = keys, keys }
}

// LeftOn names the key columns of the left frame (pair it with RightOn).
// Keys with different names both appear in the result.
func LeftOn(keys ...string) JoinOption { return func(c *joinConfig) { c.leftOn = keys } }

// RightOn names the key columns of the right frame, matched in order with
// LeftOn's.
func RightOn(keys ...string) JoinOption { return func(c *joinConfig) { c.rightOn = keys } }

// SortMerge joins each rank's partitions by sorting both on the keys and
// merging them, instead of the default hash join; the rows of each result
// partition then come out in key order.
func SortMerge() JoinOption { return func(c *joinConfig) { c.sortMerge = true } }

// Suffixes sets what is appended to the names of non-key columns that both
// sides have (default "_x" and "_y", as in pandas).
func Suffixes(left, right string) JoinOption {
	return func(c *joinConfig) { c.suffixes = [2]string{left, right} }
}

// Join joins f (the left side) with right on key columns (On, or LeftOn and
// RightOn) and returns the result (collective). Rows match when all their
// keys are equal and none is null (SQL semantics); keys may be of any type
// arrowio.HashRows hashes that can also be compared (integers, floats,
// booleans, strings, binary, decimals, dates and times; dictionaries by
// value), and integer keys of different widths match by value.
//
// Distribution: both sides are hash-shuffled on their keys (a side that is
// already partitioned by them, such as the output of a previous join or
// group-by on the same keys, is not moved), then every rank joins its two
// partitions locally: a hash join built on the smaller side (radix-
// partitioned for one integer key), or a sort-merge join with SortMerge.
//
// Result columns: the keys once (with On), then the left columns, then the
// right ones; names both sides have get Suffixes.
func (f *Frame) Join(ctx context.Context, right *Frame, how JoinType, opts ...JoinOption) (*Frame, error) {
	cfg := joinConfig{suffixes: [2]string{"_x", "_y"}}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	op := "join"
	if right == nil {
		return nil, f.errorf(op, errors.New("nil right frame"))
	}
	if right.comm != f.comm {
		return nil, f.errorf(op, errors.New("the frames are on different communicators"))
	}
	if how < Inner || how > FullOuter {
		return nil, f.errorf(op, fmt.Errorf("unknown join type %d", how))
	}
	if len(cfg.leftOn) == 0 || len(cfg.leftOn) != len(cfg.rightOn) {
		return nil, f.errorf(op, fmt.Errorf("need as many left keys as right keys, at least one (left %v, right %v)", cfg.leftOn, cfg.rightOn))
	}
	if err := f.agree(ctx); err != nil {
		return nil, f.errorf(op, fmt.Errorf("left: %w", err))
	}
	if err := right.agree(ctx); err != nil {
		return nil, f.errorf(op, fmt.Errorf("right: %w", err))
	}
	plan, err := planJoin(f.Schema(), right.Schema(), how, &cfg)
	if err != nil {
		return nil, f.errorf(op, err)
	}

	lt, rt := f.table(), right.table()
	defer func() { lt.Release(); rt.Release() }()
	movedL, movedR := false, false // a side replaced by what the exchange brought
	if f.Size() > 1 {
		// Partition the sides that need it (both at once when the rank may use
		// several cores), then exchange them one after the other.
		needL := !slices.Equal(f.partitionedBy, cfg.leftOn)
		needR := !slices.Equal(right.partitionedBy, cfg.rightOn)
		var lp, rp *partitioned
		var lerr, rerr error
		var wg sync.WaitGroup
		if needL {
			if needR && f.cfg.parallelism > 1 {
				wg.Go(func() { lp, lerr = f.partition(ctx, op, lt, cfg.leftOn) })
			} else {
				lp, lerr = f.partition(ctx, op, lt, cfg.leftOn)
			}
		}
		if needR {
			rp, rerr = f.partition(ctx, op, rt, cfg.rightOn)
		}
		wg.Wait()
		if lerr != nil || rerr != nil {
			if lp != nil {
				lp.release()
			}
			if rp != nil {
				rp.release()
			}
			return nil, f.errorf(op, fmt.Errorf("partition: %w", errors.Join(lerr, rerr)))
		}
		if lp != nil {
			s, err := f.exchange(ctx, op, lp)
			if err != nil {
				if rp != nil {
					rp.release()
				}
				return nil, f.errorf(op, fmt.Errorf("exchange left side: %w", err))
			}
			lt.Release()
			lt, movedL = s, true
		}
		if rp != nil {
			s, err := f.exchange(ctx, op, rp)
			if err != nil {
				return nil, f.errorf(op, fmt.Errorf("exchange right side: %w", err))
			}
			rt.Release()
			rt, movedR = s, true
		}
	}
	// A side that did not move is its frame's partition: the local join
	// needs its columns whole, and the frame keeps them (wholePart).
	if err := ctx.Err(); err != nil { // as joinLocal says it
		return nil, f.errorf(op, fmt.Errorf("local join: %w", err))
	}
	if !movedL {
		w, err := f.wholePart(ctx)
		if err != nil {
			return nil, f.errorf(op, fmt.Errorf("local join: left: %w", err))
		}
		lt.Release()
		lt = w
	}
	if !movedR {
		w, err := right.wholePart(ctx)
		if err != nil {
			return nil, f.errorf(op, fmt.Errorf("local join: right: %w", err))
		}
		rt.Release()
		rt = w
	}
	out, err := joinLocal(ctx, f.cfg, op, lt, rt, plan)
	if err != nil {
		return nil, f.errorf(op, fmt.Errorf("local join: %w", err))
	}
	return f.derive(out, plan.partitionedBy), nil
}

// joinPlan is a join resolved against the two schemas.
type joinPlan struct {
	how           JoinType
	sortMerge     bool
	lkeys, rkeys  []int // key column indices
	coalesce      bool  // keys have the same names and appear once
	keyTypes      []arrow.DataType
	lcols, rcols  []int // non-key columns that appear in the output, in order
	schema        *arrow.Schema
	partitionedBy []string
}

func planJoin(ls, rs *arrow.Schema, how JoinType, cfg *joinConfig) (*joinPlan, error) {
	p := &joinPlan{how: how, sortMerge: cfg.sortMerge}
	var err error
	if p.lkeys, err = fieldIndices(ls, cfg.leftOn); err != nil {
		return nil, fmt.Errorf("left: %w", err)
	}
	if p.rkeys, err = fieldIndices(rs, cfg.rightOn); err != nil {
		return nil, fmt.Errorf("right: %w", err)
	}
	p.coalesce = slices.Equal(cfg.leftOn, cfg.rightOn)
	for k := range p.lkeys {
		lt, rt := ls.Field(p.lkeys[k]).Type, rs.Field(p.rkeys[k]).Type
		ct, err := commonKeyType(lt, rt)
		if err != nil {
			return nil, fmt.Errorf("key %q/%q: %w", cfg.leftOn[k], cfg.rightOn[k], err)
		}
		if p.sortMerge && !orderable(ct) {
			return nil, fmt.Errorf("key %q/%q: values of type %s have no order to sort-merge by: use the hash join", cfg.leftOn[k], cfg.rightOn[k], ct)
		}
		p.keyTypes = append(p.keyTypes, ct)
	}
	lo, ro := how.outer()
	var fields []arrow.Field
	if p.coalesce {
		for k, i := range p.lkeys {
			lf, rf := ls.Field(i), rs.Field(p.rkeys[k])
			fields = append(fields, arrow.Field{Name: lf.Name, Type: p.keyTypes[k], Nullable: lf.Nullable || rf.Nullable})
		}
	}
	for i := range ls.NumFields() {
		if !p.coalesce || !slices.Contains(p.lkeys, i) {
			p.lcols = append(p.lcols, i)
		}
	}
	for i := range rs.NumFields() {
		if !p.coalesce || !slices.Contains(p.rkeys, i) {
			p.rcols = append(p.rcols, i)
		}
	}
	taken := map[string]int{}
	for _, f := range fields {
		taken[f.Name]++
	}
	for _, i := range p.lcols {
		taken[ls.Field(i).Name]++
	}
	rnames := map[string]bool{}
	for _, i := range p.rcols {
		rnames[rs.Field(i).Name] = true
	}
	lname := make(map[int]string, len(p.lcols)) // left column -> its name in the result
	for _, i := range p.lcols {
		f := ls.Field(i)
		if rnames[f.Name] {
			f.Name += cfg.suffixes[0]
		}
		f.Nullable = f.Nullable || ro
		fields = append(fields, f)
		lname[i] = f.Name
	}
	for _, i := range p.rcols {
		f := rs.Field(i)
		if taken[f.Name] > 0 {
			f.Name += cfg.suffixes[1]
		}
		f.Nullable = f.Nullable || lo
		fields = append(fields, f)
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if seen[f.Name] {
			return nil, fmt.Errorf("the result would have two columns named %q (suffixes %q and %q): rename a column or pass other Suffixes", f.Name, cfg.suffixes[0], cfg.suffixes[1])
		}
		seen[f.Name] = true
	}
	p.schema = arrow.NewSchema(fields, nil)
	// Every output row is on the rank its keys hash to (rows of both sides
	// with equal keys, null keys included, were sent to one rank). With
	// coalesced keys that holds for every join type; otherwise for the left
	// keys of inner and left joins (the right join's left keys are null where
	// the right row had no match), under their names in the result: a suffix
	// may have renamed them, and a right column may now have a key's name.
	switch {
	case p.coalesce:
		p.partitionedBy = slices.Clone(cfg.leftOn)
	case how == Inner || how == LeftOuter:
		p.partitionedBy = make([]string, len(p.lkeys))
		for k, i := range p.lkeys {
			p.partitionedBy[k] = lname[i]
		}
	}
	return p, nil
}

// commonKeyType is the type two join keys are compared as: their type when
// equal (dictionaries by their value type), else uint64 for two unsigned
// integer types and int64 for other two integer types (they hash alike),
// float64 for two floating-point types, and the
// large form of string or binary.
func commonKeyType(a, b arrow.DataType) (arrow.DataType, error) {
	a, b = valueType(a), valueType(b)
	if arrow.TypeEqual(a, b) {
		if !isKeyType(a) {
			return nil, fmt.Errorf("type %s cannot be a join key", a)
		}
		return a, nil
	}
	switch {
	case (a.ID() == arrow.UINT64 && arrow.IsSignedInteger(b.ID())) || (b.ID() == arrow.UINT64 && arrow.IsSignedInteger(a.ID())):
		// Compared as int64, uint64 values above MaxInt64 would match
		// negative ones.
		return nil, fmt.Errorf("types %s and %s cannot be compared as one integer type: cast one side", a, b)
	case arrow.IsUnsignedInteger(a.ID()) && arrow.IsUnsignedInteger(b.ID()):
		// As int64, uint64 values above MaxInt64 would come out of an
		// outer join negative.
		return arrow.PrimitiveTypes.Uint64, nil
	case arrow.IsInteger(a.ID()) && arrow.IsInteger(b.ID()):
		return arrow.PrimitiveTypes.Int64, nil
	case arrow.IsFloating(a.ID()) && arrow.IsFloating(b.ID()):
		return arrow.PrimitiveTypes.Float64, nil
	case isStringType(a) && isStringType(b):
		return arrow.BinaryTypes.LargeString, nil
	case isBinaryType(a) && isBinaryType(b):
		return arrow.BinaryTypes.LargeBinary, nil
	}
	return nil, fmt.Errorf("types %s and %s cannot be compared", a, b)
}

func valueType(dt arrow.DataType) arrow.DataType {
	if d, ok := dt.(*arrow.DictionaryType); ok {
		return d.ValueType
	}
	return dt
}

func isStringType(dt arrow.DataType) bool {
	return dt.ID() == arrow.STRING || dt.ID() == arrow.LARGE_STRING
}

func isBinaryType(dt arrow.DataType) bool {
	return dt.ID() == arrow.BINARY || dt.ID() == arrow.LARGE_BINARY
}

// keyColumn returns column a decoded from a dictionary and cast to dt
// (retained as is when it already is).
func keyColumn(ctx context.Context, mem memory.Allocator, a arrow.Array, dt arrow.DataType) (_ arrow.Array, err error) {
	defer recoverPanic(&err, "key column")
	d, err := decoded(ctx, mem, a)
	if err != nil {
		return nil, err
	}
	if arrow.TypeEqual(d.DataType(), dt) {
		return d, nil
	}
	defer d.Release()
	out, err := compute.CastArray(exec.WithAllocator(ctx, mem), d, compute.UnsafeCastOptions(dt))
	if err != nil {
		return nil, fmt.Errorf("cast key from %s to %s: %w", d.DataType(), dt, err)
	}
	return out, nil
}

// joinLocal joins two partitions on this rank.
func joinLocal(ctx context.Context, cfg *config, op string, lt, rt arrow.Table, p *joinPlan) (arrow.Table, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tm := cfg.timer(op)
	mem := cfg.mem
	lcols, err := columns(ctx, mem, lt)
	if err != nil {
		return nil, fmt.Errorf("left: %w", err)
	}
	defer releaseAll(lcols)
	rcols, err := columns(ctx, mem, rt)
	if err != nil {
		return nil, fmt.Errorf("right: %w", err)
	}
	defer releaseAll(rcols)
	lk := make([]arrow.Array, len(p.lkeys))
	rk := make([]arrow.Array, len(p.rkeys))
	defer releaseAll(lk)
	defer releaseAll(rk)
	for k := range p.lkeys {
		if lk[k], err = keyColumn(ctx, mem, lcols[p.lkeys[k]], p.keyTypes[k]); err != nil {
			return nil, fmt.Errorf("left key %d: %w", k, err)
		}
		if rk[k], err = keyColumn(ctx, mem, rcols[p.rkeys[k]], p.keyTypes[k]); err != nil {
			return nil, fmt.Errorf("right key %d: %w", k, err)
		}
	}

	lo, ro := p.how.outer()
	var li, ri []int32
	switch {
	case p.sortMerge:
		ps, err := sortMergeJoin(ctx, lk, rk, lo, ro)
		if err != nil {
			return nil, err
		}
		li, ri = ps.b, ps.p
	case rt.NumRows() <= lt.NumRows():
		ps, err := hashJoin(ctx, rk, lk, ro, lo, cfg.parallelism)
		if err != nil {
			return nil, err
		}
		li, ri = ps.p, ps.b
	default:
		ps, err := hashJoin(ctx, lk, rk, lo, ro, cfg.parallelism)
		if err != nil {
			return nil, err
		}
		li, ri = ps.b, ps.p
	}
	tm.done(ctx, "local join", int64(len(li)), 0)

	// One gather per output column, par at a time.
	var tasks []func() (arrow.Array, error)
	if p.coalesce {
		for k := range lk {
			tasks = append(tasks, func() (arrow.Array, error) { return coalesceTake(ctx, mem, lk[k], rk[k], li, ri, p.how) })
		}
	}
	for _, c := range p.lcols {
		tasks = append(tasks, func() (arrow.Array, error) { return take(ctx, mem, lcols[c], li) })
	}
	for _, c := range p.rcols {
		tasks = append(tasks, func() (arrow.Array, error) { return take(ctx, mem, rcols[c], ri) })
	}
	out, err := runTasks(tasks, cfg.parallelism)
	if err != nil {
		return nil, fmt.Errorf("gather the result: %w", err)
	}
	t := tableFromColumns(p.schema, out, int64(len(li)))
	releaseAll(out)
	tm.done(ctx, "materialize", t.NumRows(), 0)
	return t, nil
}

// coalesceTake gathers a key that appears once: from the left row when there
// is one, else from the right row.
func coalesceTake(ctx context.Context, mem memory.Allocator, lk, rk arrow.Array, li, ri []int32, how JoinType) (arrow.Array, error) {
	switch how {
	case Inner, LeftOuter:
		return take(ctx, mem, lk, li)
	case RightOuter:
		return take(ctx, mem, rk, ri)
	}
	both, err := array.Concatenate([]arrow.Array{lk, rk}, mem)
	if err != nil {
		return nil, err
	}
	defer both.Release()
	idx := make([]int32, len(li))
	nl := int32(lk.Len())
	for k := range idx {
		if li[k] >= 0 {
			idx[k] = li[k]
		} else {
			idx[k] = nl + ri[k]
		}
	}
	return take(ctx, mem, both, idx)
}
