package frame

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// Column positions of genSchema.
const (
	cK = 0
	cS = 1
	cW = 2
	cV = 3
)

// joinKey is the key of row r over columns keys, as the join oracles match
// it; ok is false when a key is null (such a row never matches).
func joinKey(r row, keys []int) (key string, ok bool) {
	kr := make(row, len(keys))
	for i, k := range keys {
		if r[k] == nil {
			return "", false
		}
		kr[i] = r[k]
	}
	return rowKey(kr), true
}

// oracleJoinOn joins rows of genSchema on the same-named keys with Go maps,
// in the layout of Join with On: the keys once (from whichever side has the
// row), the left non-key columns, the right non-key columns.
func oracleJoinOn(left, right []row, keys []int, how JoinType) []row {
	var rest []int
	for c := range 4 {
		if !slices.Contains(keys, c) {
			rest = append(rest, c)
		}
	}
	emit := func(l, r row) row {
		out := row{}
		for _, k := range keys {
			if l != nil {
				out = append(out, l[k])
			} else {
				out = append(out, r[k])
			}
		}
		for _, side := range []row{l, r} {
			for _, c := range rest {
				if side == nil {
					out = append(out, nil)
				} else {
					out = append(out, side[c])
				}
			}
		}
		return out
	}
	byKey := map[string][]int{}
	for j, r := range right {
		if k, ok := joinKey(r, keys); ok {
			byKey[k] = append(byKey[k], j)
		}
	}
	matched := make([]bool, len(right))
	var out []row
	for _, l := range left {
		k, ok := joinKey(l, keys)
		js := byKey[k]
		if !ok || len(js) == 0 {
			if how == LeftOuter || how == FullOuter {
				out = append(out, emit(l, nil))
			}
			continue
		}
		for _, j := range js {
			matched[j] = true
			out = append(out, emit(l, right[j]))
		}
	}
	if how == RightOuter || how == FullOuter {
		for j, r := range right {
			if !matched[j] {
				out = append(out, emit(nil, r))
			}
		}
	}
	return out
}

func TestJoinOracle(t *testing.T) {
	keySets := []struct {
		names []string
		cols  []int
	}{{[]string{"k"}, []int{cK}}, {[]string{"s"}, []int{cS}}, {[]string{"k", "s"}, []int{cK, cS}}}
	for _, p := range rankSizes {
		left := partitions(t, p, 100+uint64(p), genSpec{rows: 60, keys: 15, skew: 0.5, nullFrac: 0.1})
		right := partitions(t, p, 200+uint64(p), genSpec{rows: 40, keys: 15, skew: 0.3, nullFrac: 0.1})
		type result struct {
			name string
			want []row
			got  []row
		}
		var results []result
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			lf, err := newFrame(t, c, mem, left[c.Rank()])
			if err != nil {
				return err
			}
			defer lf.Release()
			rf, err := newFrame(t, c, mem, right[c.Rank()])
			if err != nil {
				return err
			}
			defer rf.Release()
			for _, ks := range keySets {
				for _, how := range []JoinType{Inner, LeftOuter, RightOuter, FullOuter} {
					for _, sm := range []bool{false, true} {
						opts := []JoinOption{On(ks.names...)}
						if sm {
							opts = append(opts, SortMerge())
						}
						j, err := lf.Join(ctx, rf, how, opts...)
						if err != nil {
							return err
						}
						got, _, err := gatherRows(ctx, j)
						j.Release()
						if err != nil {
							return err
						}
						if c.Rank() == 0 {
							results = append(results, result{
								name: fmt.Sprintf("p=%d keys=%v %s sortmerge=%v", p, ks.names, how, sm),
								want: oracleJoinOn(concatRows(left), concatRows(right), ks.cols, how),
								got:  got,
							})
						}
					}
				}
			}
			return nil
		})
		require.Len(t, results, len(keySets)*4*2)
		for _, r := range results {
			requireSameRows(t, r.want, r.got, r.name)
		}
	}
}

// oracleGroupBy aggregates rows of genSchema per key with Go maps: the keys,
// then sum(w), count(v), count(*), min(w), max(v), mean(v), min(s), max(s).
func oracleGroupBy(rows []row, keys []int) []row {
	type acc struct {
		key                 row
		sumW                int64
		nW, nV, n           int64
		sumV                float64
		minW, maxV, mnS, mx any
	}
	groups := map[string]*acc{}
	var order []string
	for _, r := range rows {
		kr := make(row, len(keys))
		for i, k := range keys {
			kr[i] = r[k]
		}
		id := rowKey(kr)
		a := groups[id]
		if a == nil {
			a = &acc{key: kr}
			groups[id] = a
			order = append(order, id)
		}
		a.n++
		if w := r[cW]; w != nil {
			a.sumW += w.(int64)
			a.nW++
			if a.minW == nil || w.(int64) < a.minW.(int64) {
				a.minW = w
			}
		}
		if v := r[cV]; v != nil {
			a.sumV += v.(float64)
			a.nV++
			if a.maxV == nil || v.(float64) > a.maxV.(float64) {
				a.maxV = v
			}
		}
		if s := r[cS]; s != nil {
			if a.mnS == nil || s.(string) < a.mnS.(string) {
				a.mnS = s
			}
			if a.mx == nil || s.(string) > a.mx.(string) {
				a.mx = s
			}
		}
	}
	if len(keys) == 0 && len(order) == 0 {
		groups[""] = &acc{}
		order = append(order, "")
	}
	var out []row
	for _, id := range order {
		a := groups[id]
		var sumW, mean any
		if a.nW > 0 {
			sumW = a.sumW
		}
		if a.nV > 0 {
			mean = a.sumV / float64(a.nV)
		}
		out = append(out, append(append(row{}, a.key...), sumW, a.nV, a.n, a.minW, a.maxV, mean, a.mnS, a.mx))
	}
	return out
}

var testAggs = []Agg{Sum("w"), Count("v"), CountRows(), Min("w"), Max("v"), Mean("v"), Min("s").As("min_s"), Max("s").As("max_s")}

// groupByKeySets are the key sets the group-by tests aggregate by: each
// key column, both, and none (a global aggregate); cols index row.
var groupByKeySets = []struct {
	names []string
	cols  []int
}{{[]string{"k"}, []int{cK}}, {[]string{"s"}, []int{cS}}, {[]string{"k", "s"}, []int{cK, cS}}, {nil, nil}}

// groupByAll aggregates f by testAggs over every set of groupByKeySets,
// checks where the result lies (a global aggregate on rank 0 alone, a keyed
// one partitioned by its keys), and gathers each result into results on
// rank 0 under fmt.Sprint of its key names.
func groupByAll(ctx context.Context, c *collective.Comm, f *Frame, results map[string][]row) error {
	for _, ks := range groupByKeySets {
		g, err := f.GroupBy(ks.names...).Agg(ctx, testAggs...)
		if err != nil {
			return err
		}
		if len(ks.names) == 0 && c.Rank() != 0 && g.NumRows() != 0 {
			g.Release()
			return fmt.Errorf("global aggregate has %d rows on rank %d", g.NumRows(), c.Rank())
		}
		if len(ks.names) > 0 && !slices.Equal(g.PartitionedBy(), ks.names) {
			g.Release()
			return fmt.Errorf("group-by result partitioned by %v", g.PartitionedBy())
		}
		got, _, err := gatherRows(ctx, g)
		g.Release()
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			results[fmt.Sprint(ks.names)] = got
		}
	}
	return nil
}

func TestGroupByOracle(t *testing.T) {
	for _, p := range rankSizes {
		parts := partitions(t, p, 300+uint64(p), genSpec{rows: 80, keys: 12, skew: 0.6, nullFrac: 0.1})
		results := map[string][]row{}
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			f, err := newFrame(t, c, mem, parts[c.Rank()])
			if err != nil {
				return err
			}
			defer f.Release()
			return groupByAll(ctx, c, f, results)
		})
		for _, ks := range groupByKeySets {
			requireSameRows(t, oracleGroupBy(concatRows(parts), ks.cols), results[fmt.Sprint(ks.names)], "p=%d keys=%v", p, ks.names)
		}
	}
}

func TestSortOracle(t *testing.T) {
	type key struct {
		col              int
		desc, nullsFirst bool
	}
	cases := [][]key{
		{{cK, false, false}},
		{{cV, true, true}},
		{{cS, false, true}, {cW, true, false}},
		{{cK, true, false}, {cS, false, false}, {cV, false, true}},
	}
	for _, p := range rankSizes {
		parts := partitions(t, p, 400+uint64(p), genSpec{rows: 150, keys: 20, skew: 0.7, nullFrac: 0.1})
		results := make([][]row, len(cases))
		sizes := make([][]int64, len(cases))
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			f, err := newFrame(t, c, mem, parts[c.Rank()])
			if err != nil {
				return err
			}
			defer f.Release()
			for i, ks := range cases {
				keys := make([]SortKey, len(ks))
				for j, k := range ks {
					keys[j] = SortKey{Column: genSchema.Field(k.col).Name, Descending: k.desc, NullsFirst: k.nullsFirst}
				}
				s, err := f.Sort(ctx, keys...)
				if err != nil {
					return err
				}
				counts, err := s.rowCounts(ctx)
				if err != nil {
					s.Release()
					return err
				}
				got, _, err := gatherRows(ctx, s)
				s.Release()
				if err != nil {
					return err
				}
				if c.Rank() == 0 {
					results[i], sizes[i] = got, counts
				}
			}
			return nil
		})
		all := concatRows(parts)
		for i, ks := range cases {
			want := slices.Clone(all)
			sort.SliceStable(want, func(a, b int) bool {
				for _, k := range ks {
					if c := oracleCompare(want[a][k.col], want[b][k.col], k.desc, k.nullsFirst); c != 0 {
						return c < 0
					}
				}
				return false
			})
			require.Equal(t, sortedKeys(want), sortedKeys(results[i]), "p=%d case %d: rows", p, i)
			require.Equal(t, want, results[i], "p=%d case %d: order", p, i)
			// Regular sampling keeps partitions near n/p even with hot keys.
			n := int64(len(all))
			for r, c := range sizes[i] {
				require.LessOrEqual(t, c, n/int64(p)+n/int64(samplesPerRank)+8, "p=%d case %d: rank %d holds %d of %d rows", p, i, r, c, n)
			}
		}
	}
}
