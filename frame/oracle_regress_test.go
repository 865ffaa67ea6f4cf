package frame

import (
	"context"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// Regressions the randomized differential tests (oracle_prop_test.go) found,
// each minimised to a small table.

// jsonTable is a one-chunk table of the columns (name, type, JSON values).
func jsonTable(t *testing.T, cols ...any) arrow.Table {
	t.Helper()
	mem := memory.NewGoAllocator()
	var fields []arrow.Field
	var arrs []arrow.Array
	for i := 0; i < len(cols); i += 3 {
		dt := cols[i+1].(arrow.DataType)
		fields = append(fields, arrow.Field{Name: cols[i].(string), Type: dt, Nullable: true})
		arrs = append(arrs, fromJSON(t, mem, dt, cols[i+2].(string)))
	}
	defer releaseAll(arrs)
	s := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(s, arrs, int64(arrs[0].Len()))
	defer rec.Release()
	return array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
}

// The joined key of two unsigned integer columns of different widths keeps
// its value (array.FromJSON reads uint64 through float64: the values here are
// exact in it): a uint64 key above MaxInt64 that finds no match comes out of an
// outer join as that value, not as the negative int64 of the same bits.
func TestJoinUnsignedKeysOfDifferentWidths(t *testing.T) {
	u64 := arrow.PrimitiveTypes.Uint64
	cases := []struct {
		name      string
		how       JoinType
		lt, rt    arrow.DataType
		lk, rk    string
		want      []string
		wantType  arrow.DataType
		sortMerge bool
	}{
		{"right outer", RightOuter, arrow.PrimitiveTypes.Uint32, u64, `[1, 7]`, `[1, 9223372036854775808]`,
			[]string{`u1|u10|u20`, `u9223372036854775808|<null>|u21`}, u64, false},
		{"full outer", FullOuter, arrow.PrimitiveTypes.Uint8, u64, `[1, 7]`, `[9223372036854775808, 1]`,
			[]string{`u1|u10|u21`, `u9223372036854775808|<null>|u20`, `u7|u11|<null>`}, u64, false},
		{"full outer sort-merge", FullOuter, u64, arrow.PrimitiveTypes.Uint16, `[9223372036854775808, 3]`, `[3, 4]`,
			[]string{`u3|u11|u20`, `u4|<null>|u21`, `u9223372036854775808|u10|<null>`}, u64, true},
		{"signed with unsigned", FullOuter, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint32, `[-1, 3]`, `[3, 4294967295]`,
			[]string{`i-1|u10|<null>`, `i3|u11|u20`, `i4294967295|<null>|u21`}, arrow.PrimitiveTypes.Int64, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lt := jsonTable(t, "k", tc.lt, tc.lk, "a", u64, `[10, 11]`)
			defer lt.Release()
			rt := jsonTable(t, "k", tc.rt, tc.rk, "b", u64, `[20, 21]`)
			defer rt.Release()
			for _, p := range []int{1, 2} {
				lts, rts := splitTable(lt, p), splitTable(rt, p)
				opts := []JoinOption{On("k")}
				if tc.sortMerge {
					opts = append(opts, SortMerge())
				}
				got, schema := runOp(t, p, [][]arrow.Table{lts, rts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
					return fs[0].Join(ctx, fs[1], tc.how, opts...)
				})
				releaseTablesAll(lts)
				releaseTablesAll(rts)
				require.Equal(t, slices.Sorted(slices.Values(tc.want)), sortedKeys(got), "%d ranks", p)
				require.True(t, arrow.TypeEqual(tc.wantType, schema.Field(0).Type), "key type %s", schema.Field(0).Type)
			}
		})
	}
}

// splitTable deals t's rows out to p tables (slices, rank order kept).
func splitTable(t arrow.Table, p int) []arrow.Table {
	out := make([]arrow.Table, p)
	n := t.NumRows()
	for r := range p {
		lo, hi := n*int64(r)/int64(p), n*int64(r+1)/int64(p)
		out[r] = sliceTable(t, lo, hi)
	}
	return out
}

// Not and IsValid give the right answer on a column that is a slice of a
// larger array (a table the caller sliced, or what Rebalance kept of a
// rank's own rows): arrow-go's "invert" and "is_not_null" kernels read the
// input's validity bitmap from its start, ignoring the slice's offset, so
// Filter(Col("b").Not()) kept rows whose b is null and dropped others.
func TestExprOnSlicedColumns(t *testing.T) {
	b := arrow.FixedWidthTypes.Boolean
	i32 := arrow.PrimitiveTypes.Int32
	full := jsonTable(t, "b", b, `[true, null, false, null, true, false, null, null, true, false, null, true]`,
		"x", i32, `[1, null, 2, null, 3, 4, null, null, 5, 6, null, 7]`)
	defer full.Release()
	cases := []struct {
		name string
		pred Expr
		want []string // x of the rows kept, from the slice [1, 12)
	}{
		{"not", Col("b").Not(), []string{"i2", "i4", "i6"}},
		{"is_valid", Col("x").IsValid(), []string{"i2", "i3", "i4", "i5", "i6", "i7"}},
		{"not is_valid", Col("b").IsValid().Not(), []string{"<null>", "<null>", "<null>", "<null>", "<null>"}},
		{"and not", Col("x").Gt(2).And(Col("b").Not()), []string{"i4", "i6"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			part := sliceTable(full, 1, 12)
			defer part.Release()
			got, _ := runOp(t, 1, [][]arrow.Table{{part}}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].Filter(ctx, tc.pred)
			})
			var xs []string
			for _, r := range got {
				xs = append(xs, rowKey(r[1:]))
			}
			require.Equal(t, tc.want, xs)
		})
	}
	// Rebalance over two ranks keeps a slice of rank 1's own rows.
	t.Run("after rebalance", func(t *testing.T) {
		parts := []arrow.Table{sliceTable(full, 0, 0), sliceTable(full, 0, 12)}
		defer releaseTablesAll(parts)
		got, _ := runOp(t, 2, [][]arrow.Table{parts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
			r, err := fs[0].Rebalance(ctx)
			if err != nil {
				return nil, err
			}
			defer r.Release()
			return r.Filter(ctx, Col("b").Not())
		})
		require.Equal(t, []string{"i2", "i4", "i6"}, sortedKeys(rowsCol(got, 1)))
	})
}

func rowsCol(rs []row, c int) []row {
	out := make([]row, len(rs))
	for i, r := range rs {
		out[i] = row{r[c]}
	}
	return out
}

// Two columns sliced at one offset that is a multiple of 8: arrow-go's binary
// kernels (comparisons, arithmetic) left every later row of the result null,
// so Filter(Col("x").Eq(Col("y"))) dropped matching rows and Project's sums
// came out null.
func TestExprOnTwoColumnsSlicedAtAByte(t *testing.T) {
	i32 := arrow.PrimitiveTypes.Int32
	// 48 rows: the rows from 32 on came out wrong.
	x := `[0, 0, 0, 0, 0, 0, 0, 0, 1, null, 2, 3, null, 4, 5, 6, 7, 8, null, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, ` +
		`1, null, 2, 3, null, 4, 5, 6, 7, 8, null, 9, 1, 2, 3, 4]`
	y := `[null, 0, 0, 0, 0, 0, 0, 0, 1, 2, null, 3, null, 4, 0, 6, 7, 0, 1, 9, 1, 0, 3, 4, 0, 6, 7, 8, 0, 1, 2, 3, ` +
		`1, 2, null, 3, null, 4, 0, 6, 7, 0, 1, 9, 1, 0, 3, 4]`
	full := jsonTable(t, "x", i32, x, "y", i32, y)
	defer full.Release()
	for _, off := range []int64{8, 16} {
		part := sliceTable(full, off, full.NumRows())
		got, _ := runOp(t, 1, [][]arrow.Table{{part}}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
			return fs[0].Filter(ctx, Col("x").Eq(Col("y")))
		})
		var want []row
		for _, r := range orows(part) {
			if r[0] != nil && r[1] != nil && r[0] == r[1] {
				want = append(want, r)
			}
		}
		require.Equal(t, okeys(want), okeys(got), "offset %d", off)
		require.NotEmpty(t, want)

		got, _ = runOp(t, 1, [][]arrow.Table{{part}}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
			return fs[0].Project(ctx, Col("x").Add(Col("y")).As("s"))
		})
		want = nil
		for _, r := range orows(part) {
			if r[0] == nil || r[1] == nil {
				want = append(want, row{nil})
			} else {
				want = append(want, row{r[0].(int64) + r[1].(int64)})
			}
		}
		require.Equal(t, okeys(want), okeys(got), "offset %d", off)
		part.Release()
	}
}

// A Parquet file is read back with the schema it was written with, nested
// fields included: arrow-go's reader names a list's element "element" (the
// Parquet name) and gives every nested field a "PARQUET:field_id", which
// frame took off the top-level fields only.
func TestParquetNestedSchemaRoundTrip(t *testing.T) {
	st := arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		arrow.Field{Name: "b", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true})
	cases := []struct {
		name string
		dt   arrow.DataType
		js   string
	}{
		{"list", arrow.ListOf(arrow.PrimitiveTypes.Int32), `[[1, null], null, []]`},
		{"fixed-size list", arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64), `[[1, 2], [null, 3]]`},
		{"struct", st, `[{"a": 1, "b": ["p"]}, null, {"a": null, "b": null}]`},
		{"list of structs", arrow.ListOf(st), `[[{"a": 1, "b": []}], null, []]`},
		{"struct with a dictionary", arrow.StructOf(arrow.Field{Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true}),
			`[{"d": "x"}, null, {"d": null}]`},
		{"map", arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64), `[[{"key": "k", "value": 1}], null, []]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := jsonTable(t, "c", tc.dt, tc.js)
			defer tbl.Release()
			path := t.TempDir() + "/x.parquet"
			var gotSchema *arrow.Schema
			got, _ := runOp(t, 1, [][]arrow.Table{{tbl}}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				if _, err := fs[0].WriteParquet(ctx, path); err != nil {
					return nil, err
				}
				g, err := ReadParquet(ctx, fs[0].Comm(), []string{path}, WithAllocator(fs[0].cfg.mem))
				if err == nil {
					gotSchema = g.Schema()
				}
				return g, err
			})
			require.True(t, tbl.Schema().Equal(gotSchema), "want %s\ngot %s", tbl.Schema(), gotSchema)
			require.Equal(t, okeys(orows(tbl)), okeys(got))
		})
	}
}

// Operators that fail on their input release everything they allocated.
func TestFailuresReleaseMemory(t *testing.T) {
	i64 := arrow.PrimitiveTypes.Int64
	full := jsonTable(t, "x", i64, `[1, 2, null, 9223372036854775807, 0, 5, 6, 7, 8, 9, 10]`,
		"s", arrow.BinaryTypes.String, `["a", "b", null, "c", "", "d", "e", "f", "g", "h", "i"]`,
		"l", arrow.ListOf(i64), `[[1], null, [], [2, 3], [4], [5], [6], [7], [8], [9], [10]]`)
	defer full.Release()
	cases := []struct {
		name string
		op   func(ctx context.Context, f *Frame) (*Frame, error)
		want string
	}{
		{"divide by zero", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Project(ctx, Col("x").Div(0)) }, "divide by zero"},
		{"overflow", func(ctx context.Context, f *Frame) (*Frame, error) {
			return f.Project(ctx, Col("x"), Col("x").Mul(Col("x")))
		}, "overflow"},
		{"not boolean", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Filter(ctx, Col("x").Add(1)) }, "not boolean"},
		{"sum of strings", func(ctx context.Context, f *Frame) (*Frame, error) { return f.GroupBy("x").Agg(ctx, Sum("s")) }, "cannot sum"},
		{"sort by a list", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Sort(ctx, Asc("l")) }, "list"},
		{"join on a list", func(ctx context.Context, f *Frame) (*Frame, error) { return f.Join(ctx, f, Inner, On("l")) }, "list"},
		{"no column", func(ctx context.Context, f *Frame) (*Frame, error) { return f.WithColumn(ctx, "y", Col("nope").Add(1)) }, "nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, off := range []int64{0, 1} {
				part := sliceTable(full, off, full.NumRows())
				comms, err := collectiveLocal(1)
				require.NoError(t, err)
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				f, err := New(comms[0], part, WithAllocator(mem))
				require.NoError(t, err)
				g, err := tc.op(context.Background(), f)
				require.ErrorContains(t, err, tc.want)
				require.Nil(t, g)
				f.Release()
				part.Release()
				comms[0].Close()
				require.Zero(t, mem.CurrentAlloc(), "leaked (offset %d)", off)
			}
		})
	}
}

func collectiveLocal(n int) ([]*collective.Comm, error) {
	return collective.Local(context.Background(), n)
}

// Integer overflow is an error, as Add and Sub say, also below the smallest
// value: arrow-go's checked add and subtract kernels catch only overflow
// past the largest (MinInt64 + -1 wrapped to MaxInt64 with no error), and
// its divide none (MinInt64 / -1 wrapped to MinInt64; docs/frame.md: integer
// overflow is an error for Add, Sub, Mul and Div).
// (array.FromJSON reads integers through float64: the values here are exact
// in it.)
func TestExprIntegerOverflowBelow(t *testing.T) {
	cases := []struct {
		name string
		dt   arrow.DataType
		x, y string
		expr Expr
		ok   bool
	}{
		{"int64 add below", arrow.PrimitiveTypes.Int64, `[-9223372036854775808, null]`, `[-1, 1]`, Col("x").Add(Col("y")), false},
		{"int64 add literal below", arrow.PrimitiveTypes.Int64, `[-9223372036854775808, 0]`, `[0, 0]`, Col("x").Add(int64(-1)), false},
		{"int64 sub below", arrow.PrimitiveTypes.Int64, `[-9223372036854775808, 5]`, `[1, 1]`, Col("x").Sub(Col("y")), false},
		{"int64 sub above", arrow.PrimitiveTypes.Int64, `[1, 5]`, `[-9223372036854775808, 1]`, Col("x").Sub(Col("y")), false},
		{"int64 add above", arrow.PrimitiveTypes.Int64, `[9223372036854774784, 5]`, `[2000, 1]`, Col("x").Add(Col("y")), false},
		{"int32 add below", arrow.PrimitiveTypes.Int32, `[-2147483647, 5]`, `[-2, 1]`, Col("x").Add(Col("y")), false},
		{"int8 sub below", arrow.PrimitiveTypes.Int8, `[-127, 5]`, `[2, 1]`, Col("x").Sub(Col("y")), false},
		{"uint8 sub below", arrow.PrimitiveTypes.Uint8, `[1, 5]`, `[2, 1]`, Col("x").Sub(Col("y")), false},
		{"int64 divide", arrow.PrimitiveTypes.Int64, `[-9223372036854775808, 5]`, `[-1, 1]`, Col("x").Div(Col("y")), false},
		{"int8 divide", arrow.PrimitiveTypes.Int8, `[-128, 5]`, `[-1, 1]`, Col("x").Div(Col("y")), false},
		{"divide in range", arrow.PrimitiveTypes.Int64, `[-9223372036854775808, -9223372036854775808]`, `[1, 2]`, Col("x").Div(Col("y")), true},
		{"in range", arrow.PrimitiveTypes.Int64, `[-9223372036854774784, null, 3]`, `[-1000, -9223372036854775808, -4]`, Col("x").Add(Col("y")), true},
		{"null hides an overflow", arrow.PrimitiveTypes.Int64, `[-9223372036854775808, null]`, `[null, -9223372036854775808]`, Col("x").Add(Col("y")), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := jsonTable(t, "x", tc.dt, tc.x, "y", tc.dt, tc.y)
			defer tbl.Release()
			comms, err := collectiveLocal(1)
			require.NoError(t, err)
			defer comms[0].Close()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			f, err := New(comms[0], tbl, WithAllocator(mem))
			require.NoError(t, err)
			g, err := f.Project(context.Background(), tc.expr.As("r"))
			if tc.ok {
				require.NoError(t, err)
				g.Release()
			} else {
				require.ErrorContains(t, err, "overflow")
			}
			f.Release()
			require.Zero(t, mem.CurrentAlloc())
		})
	}
}
