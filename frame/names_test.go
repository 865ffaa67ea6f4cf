package frame

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
)

// int64Table is a table of int64 columns named names, cols[i] the values of
// column i.
func int64Table(mem memory.Allocator, names []string, cols ...[]int64) arrow.Table {
	fields := make([]arrow.Field, len(names))
	arrs := make([]arrow.Array, len(names))
	for i, n := range names {
		fields[i] = arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Int64, Nullable: true}
		b := array.NewInt64Builder(mem)
		b.AppendValues(cols[i], nil)
		arrs[i] = b.NewArray()
		b.Release()
	}
	defer releaseAll(arrs)
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, arrs, int64(len(cols[0])))
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// A join's result is known to be partitioned by its left key columns under
// their names in the result, which a suffix may have changed; a column of
// the right side that now has a key's old name is not a key. A group-by on
// the right side's column must shuffle, and gives one row per value.
func TestJoinPartitionedByFollowsRenamedKeys(t *testing.T) {
	cases := []struct {
		name     string
		opts     []JoinOption
		wantCols []string
		wantBy   []string
		rightK   string // the right side's k in the result
	}{
		{"right suffix empty", []JoinOption{LeftOn("k"), RightOn("j"), Suffixes("_l", "")}, []string{"k_l", "j", "k"}, []string{"k_l"}, "k"},
		{"default suffixes", []JoinOption{LeftOn("k"), RightOn("j")}, []string{"k_x", "j", "k_y"}, []string{"k_x"}, "k_y"},
		{"left suffix empty", []JoinOption{LeftOn("k"), RightOn("j"), Suffixes("", "_r")}, []string{"k", "j", "k_r"}, []string{"k"}, "k_r"},
	}
	for _, tc := range cases {
		for _, p := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/p=%d", tc.name, p), func(t *testing.T) {
				runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
					// left k: 4 values per rank, all distinct; right: j the
					// same values, k = 7 everywhere.
					var ks, sevens []int64
					for i := range 4 {
						ks = append(ks, int64(c.Rank()*4+i+1))
						sevens = append(sevens, 7)
					}
					lt := int64Table(mem, []string{"k"}, ks)
					rt := int64Table(mem, []string{"j", "k"}, ks, sevens)
					defer lt.Release()
					defer rt.Release()
					left, err := New(c, lt, WithAllocator(mem))
					if err != nil {
						return err
					}
					defer left.Release()
					right, err := New(c, rt, WithAllocator(mem))
					if err != nil {
						return err
					}
					defer right.Release()
					j, err := left.Join(ctx, right, Inner, tc.opts...)
					if err != nil {
						return err
					}
					defer j.Release()
					if got := fieldNames(j.Schema()); !slices.Equal(got, tc.wantCols) {
						return fmt.Errorf("columns %v, want %v", got, tc.wantCols)
					}
					if got := j.PartitionedBy(); !slices.Equal(got, tc.wantBy) {
						return fmt.Errorf("partitioned by %v, want %v", got, tc.wantBy)
					}
					g, err := j.GroupBy(tc.rightK).Agg(ctx, CountRows())
					if err != nil {
						return err
					}
					defer g.Release()
					got, _, err := gatherRows(ctx, g)
					if err != nil {
						return err
					}
					joined, _, err := gatherRows(ctx, j)
					if err != nil || c.Rank() != 0 {
						return err
					}
					// The oracle: the gathered join's rows counted by the
					// right side's k.
					kcol := slices.Index(tc.wantCols, tc.rightK)
					counts := map[int64]int64{}
					for _, r := range joined {
						counts[r[kcol].(int64)]++
					}
					var want []row
					for k, n := range counts {
						want = append(want, row{k, n})
					}
					if len(joined) != 4*p {
						return fmt.Errorf("the join has %d rows, want %d", len(joined), 4*p)
					}
					if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
						return fmt.Errorf("group by %s: %v, want %v", tc.rightK, got, want)
					}
					return nil
				})
			})
		}
	}
}

// Key columns may have any names, those of GroupBy's internal partial
// columns included: the results match an oracle at every size.
func TestGroupByKeysNamedLikeInternalColumns(t *testing.T) {
	cases := []struct {
		keys []string // the key columns' names; the value column is v
		aggs []Agg
	}{
		{[]string{"_p1"}, []Agg{Sum("v")}},
		{[]string{"_p0"}, []Agg{Sum("v"), Count("v")}},
		{[]string{"_p1", "_p2"}, []Agg{Mean("v"), Max("v"), CountRows()}},
		{[]string{"_p2", "_p1"}, []Agg{Min("v"), Mean("v")}},
	}
	for _, tc := range cases {
		for _, p := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("%v/p=%d", tc.keys, p), func(t *testing.T) {
				names := append(slices.Clone(tc.keys), "v")
				// Rows: key i%3 (and i%2), value i, over 4 rows per rank.
				values := func(rank int) [][]int64 {
					cols := make([][]int64, len(names))
					for i := rank * 4; i < rank*4+4; i++ {
						for k := range tc.keys {
							cols[k] = append(cols[k], int64(i%(3-k)))
						}
						cols[len(tc.keys)] = append(cols[len(tc.keys)], int64(i))
					}
					return cols
				}
				// The oracle: every rank's rows grouped in one place.
				type acc struct{ sum, n, lo, hi int64 }
				groups := map[string]*acc{}
				keyRow := map[string]row{}
				for r := range p {
					cols := values(r)
					for i := range cols[0] {
						var kr row
						for k := range tc.keys {
							kr = append(kr, cols[k][i])
						}
						id := fmt.Sprint(kr)
						v := cols[len(tc.keys)][i]
						a := groups[id]
						if a == nil {
							a = &acc{lo: v, hi: v}
							groups[id], keyRow[id] = a, kr
						}
						a.sum, a.n, a.lo, a.hi = a.sum+v, a.n+1, min(a.lo, v), max(a.hi, v)
					}
				}
				var want []row
				for id, a := range groups {
					r := slices.Clone(keyRow[id])
					for _, ag := range tc.aggs {
						switch ag.Func {
						case AggSum:
							r = append(r, a.sum)
						case AggCount, AggCountAll:
							r = append(r, a.n)
						case AggMin:
							r = append(r, a.lo)
						case AggMax:
							r = append(r, a.hi)
						case AggMean:
							r = append(r, float64(a.sum)/float64(a.n))
						}
					}
					want = append(want, r)
				}
				runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
					tbl := int64Table(mem, names, values(c.Rank())...)
					defer tbl.Release()
					f, err := New(c, tbl, WithAllocator(mem))
					if err != nil {
						return err
					}
					defer f.Release()
					g, err := f.GroupBy(tc.keys...).Agg(ctx, tc.aggs...)
					if err != nil {
						return err
					}
					defer g.Release()
					if got := g.PartitionedBy(); !slices.Equal(got, tc.keys) {
						return fmt.Errorf("partitioned by %v, want %v", got, tc.keys)
					}
					got, schema, err := gatherRows(ctx, g)
					if err != nil || c.Rank() != 0 {
						return err
					}
					if names := fieldNames(schema)[:len(tc.keys)]; !slices.Equal(names, tc.keys) {
						return fmt.Errorf("key columns %v, want %v", names, tc.keys)
					}
					if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
						return fmt.Errorf("got %v, want %v", got, want)
					}
					return nil
				})
			})
		}
	}
}
