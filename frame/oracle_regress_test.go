package frame

import (
	"context"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
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
