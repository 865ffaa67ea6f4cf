package frame

import (
	"context"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// A Go integer constant beside a uint64 column is taken as a uint64 when it
// is not negative (as Polars and DuckDB type an integer literal by the
// column it meets): arrow-go promotes uint64 with int64 to int64 and failed
// on every value above MaxInt64, so Col("id").Gt(10) could not filter hashes
// or ids. Results are checked against Go's uint64 arithmetic.
func TestExprIntegerConstantBesideUint64(t *testing.T) {
	vals := []uint64{math.MaxUint64, 0, 1 << 63, 5, 0, math.MaxUint64 - 7}
	valid := []bool{true, true, true, true, false, true}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := arrow.NewSchema([]arrow.Field{{Name: "u", Type: arrow.PrimitiveTypes.Uint64, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, s)
	b.Field(0).(*array.Uint64Builder).AppendValues(vals, valid)
	rec := b.NewRecordBatch()
	b.Release()
	tbl := array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
	rec.Release()
	defer tbl.Release()
	f, done := soloFrame(t, tbl, WithAllocator(mem))
	defer done()
	cmp := func(op func(a, b uint64) bool, c uint64) []any {
		out := make([]any, len(vals))
		for i, v := range vals {
			if valid[i] {
				out[i] = op(v, c)
			}
		}
		return out
	}
	arith := func(op func(a uint64) uint64) []any {
		out := make([]any, len(vals))
		for i, v := range vals {
			if valid[i] {
				out[i] = op(v)
			}
		}
		return out
	}
	cases := []struct {
		name string
		e    Expr
		want []any
	}{
		{"gt int", Col("u").Gt(0), cmp(func(a, b uint64) bool { return a > b }, 0)},
		{"ge int64", Col("u").Ge(int64(5)), cmp(func(a, b uint64) bool { return a >= b }, 5)},
		{"eq int8", Col("u").Eq(int8(5)), cmp(func(a, b uint64) bool { return a == b }, 5)},
		{"ne uint32", Col("u").Ne(uint32(0)), cmp(func(a, b uint64) bool { return a != b }, 0)},
		{"literal on the left", Lit(7).Lt(Col("u")), cmp(func(a, b uint64) bool { return a > b }, 7)},
		{"sub", Col("u").Sub(0), arith(func(a uint64) uint64 { return a })},
		{"div", Col("u").Div(2), arith(func(a uint64) uint64 { return a / 2 })},
		{"max int64", Col("u").Lt(math.MaxInt64), cmp(func(a, b uint64) bool { return a < b }, math.MaxInt64)},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := f.Project(ctx, tc.e.As("x"))
			require.NoError(t, err)
			defer g.Release()
			got := make([]any, 0, len(vals))
			for _, r := range rowsOf(g.Table()) {
				got = append(got, r[0])
			}
			require.Equal(t, tc.want, got)
		})
	}
	// Past the type: still an overflow error, not a wrapped value.
	_, err := f.Project(ctx, Col("u").Add(8).As("x"))
	require.ErrorContains(t, err, "overflow")
}

// A negative Go integer constant compared with a uint64 column has a known
// answer on every non-null row (every uint64 is above it), as in DuckDB; a
// null row stays null. arrow-go promoted both to int64 and failed on every
// value above MaxInt64.
func TestExprNegativeConstantComparedWithUint64(t *testing.T) {
	vals := []uint64{math.MaxUint64, 0, 1 << 63, 0}
	valid := []bool{true, true, true, false}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := arrow.NewSchema([]arrow.Field{{Name: "u", Type: arrow.PrimitiveTypes.Uint64, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, s)
	b.Field(0).(*array.Uint64Builder).AppendValues(vals, valid)
	rec := b.NewRecordBatch()
	b.Release()
	tbl := array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
	rec.Release()
	defer tbl.Release()
	f, done := soloFrame(t, tbl, WithAllocator(mem))
	defer done()
	// above: whether every uint64 satisfies the comparison with a negative number.
	cases := []struct {
		name  string
		e     Expr
		above bool
	}{
		{"gt", Col("u").Gt(-1), true},
		{"ge", Col("u").Ge(int64(math.MinInt64)), true},
		{"ne", Col("u").Ne(int8(-3)), true},
		{"lt", Col("u").Lt(-1), false},
		{"le", Col("u").Le(-1), false},
		{"eq", Col("u").Eq(-1), false},
		{"left lt", Lit(-1).Lt(Col("u")), true},
		{"left le", Lit(-1).Le(Col("u")), true},
		{"left ne", Lit(-1).Ne(Col("u")), true},
		{"left gt", Lit(-1).Gt(Col("u")), false},
		{"left ge", Lit(-1).Ge(Col("u")), false},
		{"left eq", Lit(-1).Eq(Col("u")), false},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := f.Project(ctx, tc.e.As("x"))
			require.NoError(t, err)
			defer g.Release()
			want := []row{{tc.above}, {tc.above}, {tc.above}, {nil}}
			require.Equal(t, want, rowsOf(g.Table()))
		})
	}
}
