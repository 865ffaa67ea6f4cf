package frame

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// oracleJoin joins full rows with a Go map: rows match when every key is
// non-null and equal.
func oracleJoin(left, right []row, nl, nr int, lk, rk []int, lOuter, rOuter bool) []row {
	byKey := map[string][]int{}
	for j, r := range right {
		if k, ok := joinKey(r, rk); ok {
			byKey[k] = append(byKey[k], j)
		}
	}
	var out []row
	rMatched := make([]bool, len(right))
	for _, l := range left {
		k, ok := joinKey(l, lk)
		js := byKey[k]
		if !ok || len(js) == 0 {
			if lOuter {
				out = append(out, append(append(row{}, l...), make(row, nr)...))
			}
			continue
		}
		for _, j := range js {
			rMatched[j] = true
			out = append(out, append(append(row{}, l...), right[j]...))
		}
	}
	if rOuter {
		for j, r := range right {
			if !rMatched[j] {
				out = append(out, append(make(row, nl), r...))
			}
		}
	}
	return out
}

func pairRows(left, right []row, nl, nr int, ps pairs) []row {
	out := make([]row, len(ps.b))
	for k := range ps.b {
		r := make(row, 0, nl+nr)
		if i := ps.b[k]; i >= 0 {
			r = append(r, left[i]...)
		} else {
			r = append(r, make(row, nl)...)
		}
		if j := ps.p[k]; j >= 0 {
			r = append(r, right[j]...)
		} else {
			r = append(r, make(row, nr)...)
		}
		out[k] = r
	}
	return out
}

func TestLocalJoinKernels(t *testing.T) {
	specs := []struct {
		name        string
		left, right genSpec
	}{
		{"small", genSpec{rows: 40, keys: 10, nullFrac: 0.1}, genSpec{rows: 30, keys: 10, nullFrac: 0.1}},
		{"skewed", genSpec{rows: 300, keys: 50, skew: 0.7, nullFrac: 0.05}, genSpec{rows: 200, keys: 50, skew: 0.5, nullFrac: 0.05}},
		{"empty left", genSpec{rows: 0, keys: 5}, genSpec{rows: 20, keys: 5, nullFrac: 0.2}},
		{"empty right", genSpec{rows: 20, keys: 5, nullFrac: 0.2}, genSpec{rows: 0, keys: 5}},
		{"no nulls", genSpec{rows: 500, keys: 400}, genSpec{rows: 500, keys: 400}},
		{"all null", genSpec{rows: 10, nullFrac: 1}, genSpec{rows: 10, nullFrac: 1}},
	}
	keySets := map[string][]int{"k": {0}, "s": {1}, "k,s": {0, 1}, "w": {2}, "v": {3}}
	outers := []struct {
		name   string
		lo, ro bool
	}{{"inner", false, false}, {"left", true, false}, {"right", false, true}, {"full", true, true}}
	for _, sp := range specs {
		rng := rand.New(rand.NewPCG(1, uint64(len(sp.name))))
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		lrec := genRecord(t, mem, rng, sp.left)
		rrec := genRecord(t, mem, rng, sp.right)
		lrows, rrows := recordRows(lrec), recordRows(rrec)
		for kname, kidx := range keySets {
			lk := make([]arrow.Array, len(kidx))
			rk := make([]arrow.Array, len(kidx))
			for i, c := range kidx {
				lk[i], rk[i] = lrec.Column(c), rrec.Column(c)
			}
			for _, o := range outers {
				name := fmt.Sprintf("%s/%s/%s", sp.name, kname, o.name)
				want := oracleJoin(lrows, rrows, 4, 4, kidx, kidx, o.lo, o.ro)

				ps, err := hashJoin(context.Background(), lk, rk, o.lo, o.ro, 2) // build left, probe right
				require.NoError(t, err, name)
				requireSameRows(t, want, pairRows(lrows, rrows, 4, 4, ps), name+" build left")

				ps, err = hashJoin(context.Background(), rk, lk, o.ro, o.lo, 2) // build right, probe left
				require.NoError(t, err, name)
				ps.b, ps.p = ps.p, ps.b
				requireSameRows(t, want, pairRows(lrows, rrows, 4, 4, ps), name+" build right")

				ps, err = sortMergeJoin(context.Background(), lk, rk, o.lo, o.ro)
				require.NoError(t, err, name)
				requireSameRows(t, want, pairRows(lrows, rrows, 4, 4, ps), name+" sort-merge")
			}
		}
		lrec.Release()
		rrec.Release()
		mem.AssertSize(t, 0)
	}
}

func TestLocalGroupAndAggregate(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(7, 7))
	rec := genRecord(t, mem, rng, genSpec{rows: 2000, keys: 30, skew: 0.4, nullFrac: 0.1})
	defer rec.Release()
	rows := recordRows(rec)
	for _, keys := range [][]int{{0}, {1}, {0, 1}, {2}, {3}, {}} {
		specs := []kernelSpec{{kSum, 2}, {kSum, 3}, {kCount, 3}, {kCountAll, -1}, {kMin, 2}, {kMax, 3}, {kMin, 1}, {kMax, 1}, {kSumF64, 2}}
		out, err := aggregateLocal(ctx, mem, rec.Columns(), int(rec.NumRows()), keys, specs)
		require.NoError(t, err)
		got := make([]row, out[0].Len())
		for i := range got {
			r := make(row, len(out))
			for c := range out {
				r[c] = cell(out[c], i)
			}
			got[i] = r
		}
		releaseAll(out)

		// Oracle: a map from formatted key to the rows of the group.
		groups := map[string][]row{}
		var order []string
		for _, r := range rows {
			kr := make(row, len(keys))
			for i, k := range keys {
				kr[i] = r[k]
			}
			id := rowKey(kr)
			if _, ok := groups[id]; !ok {
				order = append(order, id)
			}
			groups[id] = append(groups[id], r)
		}
		if len(keys) == 0 && len(order) == 0 {
			order = append(order, rowKey(row{}))
		}
		var want []row
		for _, id := range order {
			g := groups[id]
			r := row{}
			for _, k := range keys {
				r = append(r, g[0][k])
			}
			var sumW, cntV, sumF int64
			var sumV float64
			var minW, maxV, minS, maxS any
			for _, x := range g {
				if w := x[2]; w != nil {
					sumW += w.(int64)
					if minW == nil || w.(int64) < minW.(int64) {
						minW = w
					}
				}
				if v := x[3]; v != nil {
					sumV += v.(float64)
					cntV++
					if maxV == nil || v.(float64) > maxV.(float64) {
						maxV = v
					}
				}
				if s := x[1]; s != nil {
					if minS == nil || s.(string) < minS.(string) {
						minS = s
					}
					if maxS == nil || s.(string) > maxS.(string) {
						maxS = s
					}
				}
			}
			sumF = sumW
			nz := func(ok bool, v any) any {
				if ok {
					return v
				}
				return nil
			}
			r = append(r, nz(minW != nil, sumW), nz(cntV > 0, sumV), cntV, int64(len(g)), minW, maxV, minS, maxS, nz(minW != nil, float64(sumF)))
			want = append(want, r)
		}
		requireSameRows(t, want, got, fmt.Sprint("keys ", keys))
	}
}

func TestSortRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(3, 3))
	rec := genRecord(t, mem, rng, genSpec{rows: 1000, keys: 20, skew: 0.3, nullFrac: 0.15})
	defer rec.Release()
	rows := recordRows(rec)
	type key struct {
		col              int
		desc, nullsFirst bool
	}
	cases := [][]key{
		{{0, false, false}}, {{0, true, true}}, {{3, false, true}}, {{3, true, false}}, {{1, false, false}},
		{{1, true, false}, {0, false, true}}, {{2, false, false}, {3, true, true}, {0, false, false}},
	}
	for _, keys := range cases {
		ks := make([]sortKeyCols, len(keys))
		for i, k := range keys {
			ks[i] = sortKeyCols{col: rec.Column(k.col), desc: k.desc, nullsFirst: k.nullsFirst}
		}
		idx := make([]int32, len(rows))
		for i := range idx {
			idx[i] = int32(i)
		}
		require.NoError(t, sortRows(context.Background(), idx, ks))

		// Oracle: sort.SliceStable over Go values.
		want := make([]int, len(rows))
		for i := range want {
			want[i] = i
		}
		sort.SliceStable(want, func(a, b int) bool {
			for _, k := range keys {
				x, y := rows[want[a]][k.col], rows[want[b]][k.col]
				if c := oracleCompare(x, y, k.desc, k.nullsFirst); c != 0 {
					return c < 0
				}
			}
			return false
		})
		for i := range want {
			require.Equal(t, want[i], int(idx[i]), "keys %v position %d", keys, i)
		}
	}
}

// oracleCompare orders two Go values for a sort key: nulls first or last,
// otherwise by value, reversed when descending.
func oracleCompare(x, y any, desc, nullsFirst bool) int {
	switch {
	case x == nil && y == nil:
		return 0
	case x == nil:
		if nullsFirst {
			return -1
		}
		return 1
	case y == nil:
		if nullsFirst {
			return 1
		}
		return -1
	}
	c := 0
	switch x := x.(type) {
	case int64:
		c = cmpInt(x, y.(int64))
	case float64:
		c = cmpInt(x, y.(float64))
	case string:
		c = cmpInt(x, y.(string))
	}
	if desc {
		c = -c
	}
	return c
}

func cmpInt[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestIndexJoinMatchesRadixJoin(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	// Large enough for many radix partitions.
	lk, lv := cylonColumns(mem, 100_000, 0.9, 11)
	rk, rv := cylonColumns(mem, 60_000, 0.9, 12)
	defer releaseAll([]arrow.Array{lk, lv, rk, rv})
	for _, o := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		a, err := radixJoin[uint64](context.Background(), lk, rk, o[0], o[1], 3)
		require.NoError(t, err)
		b, err := indexJoin(context.Background(), []arrow.Array{lk}, []arrow.Array{rk}, o[0], o[1])
		require.NoError(t, err)
		require.Equal(t, pairSet(b), pairSet(a), "outer %v", o)
	}
}

func pairSet(ps pairs) []int64 {
	out := make([]int64, len(ps.b))
	for i := range out {
		out[i] = int64(ps.b[i])<<32 | int64(uint32(ps.p[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func TestRadixGroupMatchesIndex(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	k, v := cylonColumns(mem, 200_000, 0.3, 21)
	defer releaseAll([]arrow.Array{k, v})
	// With nulls: every 7th key.
	kn := withNulls(t, mem, k, 7)
	defer kn.Release()
	for _, col := range []arrow.Array{k, kn} {
		g1, f1, err := radixGroup[uint64](context.Background(), col)
		require.NoError(t, err)
		ix, err := newKeyIndex([]arrow.Array{col}, nil, false, 0)
		require.NoError(t, err)
		g2 := make([]int32, col.Len())
		require.NoError(t, hashBlocks(context.Background(), []arrow.Array{col}, col.Len(), make([]uint64, hashBlock), func(h []uint64, lo int) {
			ix.insert(h, lo, g2[lo:lo+len(h)])
		}))
		f2 := ix.firsts()
		require.Equal(t, len(f2), len(f1))
		// Same partition of the rows: map radix groups to index groups.
		m := map[int32]int32{}
		for r := range g1 {
			if want, ok := m[g1[r]]; ok {
				require.Equal(t, want, g2[r], "row %d", r)
			} else {
				m[g1[r]] = g2[r]
			}
		}
		firsts := map[int32]bool{}
		for _, f := range f1 {
			firsts[f] = true
		}
		for _, f := range f2 {
			require.True(t, firsts[f], "first row %d", f)
		}
	}
}

func withNulls(t *testing.T, mem memory.Allocator, a arrow.Array, every int) arrow.Array {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	ia := a.(*array.Int64)
	for i := range a.Len() {
		if i%every == 0 {
			b.AppendNull()
		} else {
			b.Append(ia.Value(i))
		}
	}
	return b.NewArray()
}

func TestEstimateDistinct(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, c := range []struct {
		rows       int
		uniqueness float64
	}{{1000, 0.01}, {50_000, 0.05}, {200_000, 1}, {200_000, 0.3}, {0, 1}} {
		k, v := cylonColumns(mem, c.rows, c.uniqueness, 31)
		exact := map[int64]bool{}
		for _, x := range k.(*array.Int64).Int64Values() {
			exact[x] = true
		}
		est, err := estimateDistinct(context.Background(), []arrow.Array{k}, c.rows)
		require.NoError(t, err)
		want := float64(len(exact))
		require.InDelta(t, want, est, 0.06*want+2, "rows %d uniqueness %v", c.rows, c.uniqueness)
		releaseAll([]arrow.Array{k, v})
	}
}
