package frame

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/compute/exec"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Expr is a column expression, evaluated row by row over a partition by
// arrow's compute kernels: a column (Col), a constant (Lit), or a function of
// expressions (comparisons, boolean logic, arithmetic, null tests). Methods
// that take an `any` accept an Expr or a Go value (a constant).
//
//	frame.Col("price").Mul(frame.Col("qty")).As("total")
//	frame.Col("qty").Gt(10).And(frame.Col("region").Eq("eu"))
type Expr struct {
	col   string // a column, when fn == "" and !lit
	lit   bool
	value any
	fn    string // compute function name
	args  []Expr
	alias string
}

// Col is the column called name.
func Col(name string) Expr { return Expr{col: name} }

// Lit is a constant: a Go bool, integer, float, string or []byte, an arrow
// scalar.Scalar, or nil (a null).
// A Go integer that is not negative, beside an operand of type uint64, is
// taken as a uint64, and a negative one compared with a uint64 gives the
// comparison's answer (u > -1 is true); an arrow scalar keeps its type.
func Lit(v any) Expr { return Expr{lit: true, value: v} }

func toExpr(v any) Expr {
	if e, ok := v.(Expr); ok {
		return e
	}
	return Lit(v)
}

func (e Expr) call(fn string, others ...any) Expr {
	args := []Expr{e}
	for _, o := range others {
		args = append(args, toExpr(o))
	}
	return Expr{fn: fn, args: args}
}

// As names the expression's result column (for Project and WithColumn).
func (e Expr) As(name string) Expr {
	e.alias = name
	return e
}

// Eq is e == v (null if either is null).
func (e Expr) Eq(v any) Expr { return e.call("equal", v) }

// Ne is e != v.
func (e Expr) Ne(v any) Expr { return e.call("not_equal", v) }

// Lt is e < v.
func (e Expr) Lt(v any) Expr { return e.call("less", v) }

// Le is e <= v.
func (e Expr) Le(v any) Expr { return e.call("less_equal", v) }

// Gt is e > v.
func (e Expr) Gt(v any) Expr { return e.call("greater", v) }

// Ge is e >= v.
func (e Expr) Ge(v any) Expr { return e.call("greater_equal", v) }

// And is the Kleene (SQL) conjunction: false and null is false.
func (e Expr) And(v any) Expr { return e.call("and_kleene", v) }

// Or is the Kleene (SQL) disjunction: true or null is true.
func (e Expr) Or(v any) Expr { return e.call("or_kleene", v) }

// Not negates a boolean expression.
func (e Expr) Not() Expr { return e.call("not") }

// IsNull is true where e is null.
func (e Expr) IsNull() Expr { return e.call("is_null") }

// IsValid is true where e is not null.
func (e Expr) IsValid() Expr { return e.call("is_not_null") }

// Add is e + v; integer overflow is an error.
func (e Expr) Add(v any) Expr { return e.call("add", v) }

// Sub is e - v; integer overflow is an error.
func (e Expr) Sub(v any) Expr { return e.call("subtract", v) }

// Mul is e * v; integer overflow is an error.
func (e Expr) Mul(v any) Expr { return e.call("multiply", v) }

// Div is e / v; integer division by zero is an error.
func (e Expr) Div(v any) Expr { return e.call("divide", v) }

// String renders the expression, as "(qty > 10)".
func (e Expr) String() string {
	switch {
	case e.lit:
		if s, ok := e.value.(string); ok {
			return fmt.Sprintf("%q", s)
		}
		return fmt.Sprint(e.value)
	case e.fn == "":
		return e.col
	}
	op := map[string]string{
		"equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">",
		"greater_equal": ">=", "and_kleene": "and", "or_kleene": "or", "add": "+",
		"subtract": "-", "multiply": "*", "divide": "/",
	}[e.fn]
	if op != "" && len(e.args) == 2 {
		return fmt.Sprintf("(%s %s %s)", e.args[0], op, e.args[1])
	}
	parts := make([]string, len(e.args))
	for i, a := range e.args {
		parts[i] = a.String()
	}
	return fmt.Sprintf("%s(%s)", e.fn, strings.Join(parts, ", "))
}

// Name is the name of the expression's result column: its alias, the column
// name for a plain column, else its String.
func (e Expr) Name() string {
	switch {
	case e.alias != "":
		return e.alias
	case !e.lit && e.fn == "":
		return e.col
	}
	return e.String()
}

// eval evaluates e over the columns cols of schema s (n rows) into an array
// of n values. The caller releases it.
func (e Expr) eval(ctx context.Context, mem memory.Allocator, s *arrow.Schema, cols []arrow.Array, n int) (_ arrow.Array, err error) {
	defer recoverPanic(&err, e.String())
	ctx = exec.WithAllocator(ctx, mem)
	d, err := e.datum(ctx, s, cols)
	if err != nil {
		return nil, err
	}
	defer d.Release()
	switch d := d.(type) {
	case *compute.ArrayDatum:
		return d.MakeArray(), nil
	case *compute.ScalarDatum:
		a, err := scalar.MakeArrayFromScalar(d.Value, n, mem)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("%s: unexpected result %s", e, d)
}

func (e Expr) datum(ctx context.Context, s *arrow.Schema, cols []arrow.Array) (compute.Datum, error) {
	switch {
	case e.lit:
		if sc, ok := e.value.(scalar.Scalar); ok {
			return compute.NewDatum(sc), nil
		}
		sc := scalar.MakeScalar(e.value)
		if sc == nil {
			return nil, fmt.Errorf("literal %v of type %T is not supported", e.value, e.value)
		}
		return compute.NewDatum(sc), nil
	case e.fn == "":
		i, err := fieldIndex(s, e.col)
		if err != nil {
			return nil, err
		}
		return compute.NewDatum(cols[i]), nil
	}
	args := make([]compute.Datum, 0, len(e.args))
	defer func() {
		for _, a := range args {
			a.Release()
		}
	}()
	for _, a := range e.args {
		d, err := a.datum(ctx, s, cols)
		if err != nil {
			return nil, err
		}
		if d, err = unsliced(ctx, d); err != nil {
			return nil, fmt.Errorf("%s: copy a sliced column: %w", e, err)
		}
		args = append(args, d)
	}
	fn := e.fn
	if len(args) == 2 {
		for i, o := range [2]int{1, 0} {
			u, neg, ok := uintConstantFor(e.args[i], args[o])
			if !ok {
				continue
			}
			if neg { // a comparison with a known answer: with 0 instead, the same one
				to, ok := negativeComparisons[fn]
				if !ok {
					continue
				}
				fn, u = to[i], 0
			}
			args[i].Release()
			args[i] = compute.NewDatum(scalar.NewUint64Scalar(u))
		}
	}
	// arrow-go's kernels never look at ctx: look before each call, so an
	// expression stops between its functions.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", e, err)
	}
	out, err := compute.CallFunction(ctx, fn, nil, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e, err)
	}
	if e.fn == "add" || e.fn == "subtract" || e.fn == "divide" {
		if err := checkOverflow(ctx, e.fn, args, out); err != nil {
			out.Release()
			return nil, fmt.Errorf("%s: %w", e, err)
		}
	}
	return out, nil
}

// uintConstantFor reports whether lit is a Go integer constant beside an
// operand (other) of type uint64, and if so its value as a uint64, or neg
// when it is negative. One that is not negative is then taken as a uint64,
// as Polars and DuckDB type an integer literal by the column it meets, and a
// negative one compared with the column gives the comparison's known answer
// (negativeComparisons). arrow-go would promote uint64 with the int64 of a Go
// int to int64 and fail on every value above MaxInt64, so that
// Col("id").Gt(10) could not filter hashes or large ids.
func uintConstantFor(lit Expr, other compute.Datum) (u uint64, neg, ok bool) {
	if !lit.lit {
		return 0, false, false
	}
	if d, ok := other.(compute.ArrayLikeDatum); !ok || d.Type().ID() != arrow.UINT64 {
		return 0, false, false
	}
	var v int64
	switch x := lit.value.(type) {
	case int:
		v = int64(x)
	case int8:
		v = int64(x)
	case int16:
		v = int64(x)
	case int32:
		v = int64(x)
	case int64:
		v = x
	case uint:
		return uint64(x), false, true
	case uint8:
		return uint64(x), false, true
	case uint16:
		return uint64(x), false, true
	case uint32:
		return uint64(x), false, true
	default:
		return 0, false, false
	}
	return uint64(v), v < 0, true
}

// negativeComparisons turns a comparison of a uint64 with a negative
// constant, the constant as argument i, into one with 0 of the same answer
// on every row (true or false on every valid row, null on a null one): u >
// -1 is u >= 0 (true), u == -1 is u < 0 (false), -1 < u is 0 <= u (true).
var negativeComparisons = map[string][2]string{
	"greater":       {"greater", "greater_equal"},
	"greater_equal": {"greater", "greater_equal"},
	"not_equal":     {"less_equal", "greater_equal"},
	"less":          {"less_equal", "less"},
	"less_equal":    {"less_equal", "less"},
	"equal":         {"greater", "less"},
}

// checkOverflow fails when an integer sum, difference or quotient out = x
// op y overflowed. arrow-go's add and subtract kernels (the checked ones)
// catch only a result past the type's largest value: MinInt64 + -1 wraps to
// MaxInt64 with no error; its divide lets MinInt64 / -1 wrap. The operands are cast to out's type (as the
// kernel promoted them) and every row whose operands are both valid is
// checked: a signed sum overflowed when both operands' signs differ from the
// result's, a difference when the operands' signs differ and the result's
// differs from x's, a quotient when x is the smallest value and y is -1; an
// unsigned sum when it is below x, a difference when y is above x.
func checkOverflow(ctx context.Context, fn string, args []compute.Datum, out compute.Datum) (err error) {
	defer recoverPanic(&err, "check for overflow")
	if len(args) != 2 {
		return nil
	}
	var res arrow.Array
	switch o := out.(type) {
	case *compute.ArrayDatum:
		res = o.MakeArray()
	case *compute.ScalarDatum:
		if !o.Value.IsValid() {
			return nil
		}
		if res, err = scalar.MakeArrayFromScalar(o.Value, 1, exec.GetAllocator(ctx)); err != nil {
			return err
		}
	default:
		return nil
	}
	defer res.Release()
	dt := res.DataType()
	if !arrow.IsInteger(dt.ID()) {
		return nil
	}
	n := res.Len()
	ops := make([]arrow.Array, 2)
	defer releaseAll(ops)
	for i, a := range args {
		var arr arrow.Array
		switch a := a.(type) {
		case *compute.ArrayDatum:
			arr = a.MakeArray()
		case *compute.ScalarDatum:
			if !a.Value.IsValid() {
				return nil // a null operand: every row is null
			}
			if arr, err = scalar.MakeArrayFromScalar(a.Value, n, exec.GetAllocator(ctx)); err != nil {
				return err
			}
		default:
			return nil
		}
		if !arrow.TypeEqual(arr.DataType(), dt) {
			c, err := compute.CastArray(ctx, arr, compute.UnsafeCastOptions(dt))
			arr.Release()
			if err != nil {
				return err
			}
			arr = c
		}
		ops[i] = arr
	}
	if fn == "divide" && !arrow.IsSignedInteger(dt.ID()) {
		return nil
	}
	var row int
	switch dt.ID() {
	case arrow.INT8:
		row = overflowSigned[int8](ops[0], ops[1], res, fn)
	case arrow.INT16:
		row = overflowSigned[int16](ops[0], ops[1], res, fn)
	case arrow.INT32:
		row = overflowSigned[int32](ops[0], ops[1], res, fn)
	case arrow.INT64:
		row = overflowSigned[int64](ops[0], ops[1], res, fn)
	case arrow.UINT8:
		row = overflowUnsigned[uint8](ops[0], ops[1], res, fn)
	case arrow.UINT16:
		row = overflowUnsigned[uint16](ops[0], ops[1], res, fn)
	case arrow.UINT32:
		row = overflowUnsigned[uint32](ops[0], ops[1], res, fn)
	case arrow.UINT64:
		row = overflowUnsigned[uint64](ops[0], ops[1], res, fn)
	default:
		return nil
	}
	if row >= 0 {
		return fmt.Errorf("row %d: %w: overflow", row, arrow.ErrInvalid) // as arrow-go says it: "invalid: overflow"
	}
	return nil
}

// overflowSigned returns the first row whose result overflowed, or -1.
func overflowSigned[T int8 | int16 | int32 | int64](x, y, r arrow.Array, fn string) int {
	xv, yv, rv := rawValues[T](x), rawValues[T](y), rawValues[T](r)
	xb, yb := validityOf(x), validityOf(y)
	var minusOne T = -1
	smallest := minusOne
	for smallest<<1 != 0 { // -1 shifted left until only the sign bit is left
		smallest <<= 1
	}
	for i := range rv {
		if !xb.valid(i) || !yb.valid(i) {
			continue
		}
		a, b, c := xv[i], yv[i], rv[i]
		var over bool
		switch fn {
		case "add":
			over = (a^c)&(b^c) < 0
		case "subtract":
			over = (a^b)&(a^c) < 0
		case "divide":
			over = a == smallest && b == minusOne
		}
		if over {
			return i
		}
	}
	return -1
}

func overflowUnsigned[T uint8 | uint16 | uint32 | uint64](x, y, r arrow.Array, fn string) int {
	sub := fn == "subtract"
	xv, yv, rv := rawValues[T](x), rawValues[T](y), rawValues[T](r)
	xb, yb := validityOf(x), validityOf(y)
	for i := range rv {
		if !xb.valid(i) || !yb.valid(i) {
			continue
		}
		if (!sub && rv[i] < xv[i]) || (sub && yv[i] > xv[i]) {
			return i
		}
	}
	return -1
}

// unsliced returns d, or when d is an array that is a slice (a column of a
// caller's sliced table, what Rebalance or a one-rank operator keeps of a
// partition) a copy of it at offset 0 (d is then released). arrow-go's
// kernels get slices wrong: "not" and "is_not_null" read the input's
// validity bitmap from the start of the buffer, ignoring the offset, and
// the binary kernels (comparisons, arithmetic) given two arrays at one
// offset that is a multiple of 8 leave the validity of the result's later
// rows null. Compute outputs are at offset 0 already, so only columns are
// copied.
func unsliced(ctx context.Context, d compute.Datum) (compute.Datum, error) {
	ad, ok := d.(*compute.ArrayDatum)
	if !ok || ad.Value.Offset() == 0 {
		return d, nil
	}
	defer d.Release()
	a := ad.MakeArray()
	defer a.Release()
	whole, err := array.Concatenate([]arrow.Array{a}, exec.GetAllocator(ctx))
	if err != nil {
		return nil, err
	}
	defer whole.Release()
	return compute.NewDatum(whole), nil
}
