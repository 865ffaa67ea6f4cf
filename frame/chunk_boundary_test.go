package frame

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// The tests in this file check the chunked local kernels (see cancel.go) at
// the sizes where their blocks, runs and merges begin and end, against
// oracles written over Go slices and maps.

// boundarySizes are lengths around sortStable's runs (sortRun), merge
// widths, hashBlock and pollRows; 1207 is not a whole number of runs, and
// its 5 runs are not a power of two.
var boundarySizes = []int{0, 1, 2, 255, 256, 257, 511, 512, 513, 1207,
	pollRows - 1, pollRows, pollRows + 1, 2*pollRows + 3}

type keyPos struct{ k, pos int }

func TestSortStableBoundaries(t *testing.T) {
	patterns := map[string]func(rng *rand.Rand, i, n int) int{
		"random":     func(rng *rand.Rand, _, _ int) int { return rng.IntN(1 << 30) },
		"few keys":   func(rng *rand.Rand, _, _ int) int { return rng.IntN(7) },
		"all equal":  func(*rand.Rand, int, int) int { return 42 },
		"ascending":  func(_ *rand.Rand, i, _ int) int { return i },
		"descending": func(_ *rand.Rand, i, n int) int { return n - i },
		"sawtooth":   func(_ *rand.Rand, i, _ int) int { return i % 300 },
		"dup runs":   func(_ *rand.Rand, i, n int) int { return (n - i) / 100 },
	}
	for name, gen := range patterns {
		for _, n := range boundarySizes {
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			s := make([]keyPos, n)
			for i := range s {
				s[i] = keyPos{gen(rng, i, n), i}
			}
			// Oracle: the stable order is the order by (key, position).
			want := slices.Clone(s)
			sort.Slice(want, func(a, b int) bool {
				if want[a].k != want[b].k {
					return want[a].k < want[b].k
				}
				return want[a].pos < want[b].pos
			})
			require.NoError(t, sortStable(context.Background(), s, func(a, b keyPos) int { return cmp.Compare(a.k, b.k) }))
			require.Equal(t, want, s, "%s n=%d", name, n)
		}
	}
}

func TestMergeIntoBoundaries(t *testing.T) {
	lens := [][2]int{{0, 0}, {0, 5}, {5, 0}, {1, 1}, {pollRows, 1}, {1, pollRows}, {pollRows - 1, pollRows + 1},
		{pollRows, pollRows}, {2*pollRows + 3, 7}, {3, 2*pollRows + 3}}
	for _, l := range lens {
		for _, keys := range []int{1, 3, 1 << 20} {
			rng := rand.New(rand.NewPCG(uint64(l[0]), uint64(l[1]+keys)))
			mk := func(n, base int) []keyPos {
				s := make([]keyPos, n)
				for i := range s {
					s[i] = keyPos{rng.IntN(keys), base + i}
				}
				slices.SortStableFunc(s, func(a, b keyPos) int { return cmp.Compare(a.k, b.k) })
				return s
			}
			a, b := mk(l[0], 0), mk(l[1], l[0])
			// Oracle: a plain two-finger merge, a's first among equal keys.
			want := make([]keyPos, 0, len(a)+len(b))
			i, j := 0, 0
			for i < len(a) || j < len(b) {
				if j == len(b) || (i < len(a) && a[i].k <= b[j].k) {
					want = append(want, a[i])
					i++
				} else {
					want = append(want, b[j])
					j++
				}
			}
			got := make([]keyPos, len(a)+len(b))
			require.NoError(t, mergeInto(context.Background(), got, a, b, func(x, y keyPos) int { return cmp.Compare(x.k, y.k) }))
			require.Equal(t, want, got, "lens %v keys %d", l, keys)
		}
	}
}

// oracleFloatCmp orders float64 values as the sort documents: NaN after
// every number, -0 equal to +0.
func oracleFloatCmp(x, y float64) int {
	xn, yn := math.IsNaN(x), math.IsNaN(y)
	switch {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func TestSortRowsBoundaries(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	specials := []float64{math.NaN(), math.Copysign(0, -1), 0, math.Inf(1), math.Inf(-1), 1.5, -1.5}
	type key struct {
		col              int // 0: float64, 1: int64
		desc, nullsFirst bool
	}
	keySets := [][]key{
		{{0, false, false}}, {{0, true, false}}, {{0, false, true}}, {{0, true, true}},
		{{1, true, true}},
		{{0, true, false}, {1, false, true}}, {{1, false, false}, {0, true, true}},
	}
	for _, n := range boundarySizes {
		rng := rand.New(rand.NewPCG(uint64(n), 11))
		fb := array.NewFloat64Builder(mem)
		ib := array.NewInt64Builder(mem)
		fs := make([]any, n)
		is := make([]any, n)
		for i := range n {
			switch r := rng.IntN(10); {
			case r == 0:
				fb.AppendNull()
			case r < 5:
				v := specials[rng.IntN(len(specials))]
				fb.Append(v)
				fs[i] = v
			default:
				v := float64(rng.IntN(20))
				fb.Append(v)
				fs[i] = v
			}
			if rng.IntN(8) == 0 {
				ib.AppendNull()
			} else {
				v := int64(rng.IntN(5))
				ib.Append(v)
				is[i] = v
			}
		}
		cols := []arrow.Array{fb.NewArray(), ib.NewArray()}
		fb.Release()
		ib.Release()
		vals := [][]any{fs, is}
		for _, keys := range keySets {
			ks := make([]sortKeyCols, len(keys))
			for i, k := range keys {
				ks[i] = sortKeyCols{col: cols[k.col], desc: k.desc, nullsFirst: k.nullsFirst}
			}
			idx := make([]int32, n)
			for i := range idx {
				idx[i] = int32(i)
			}
			require.NoError(t, sortRows(context.Background(), idx, ks))
			want := make([]int32, n)
			for i := range want {
				want[i] = int32(i)
			}
			sort.SliceStable(want, func(a, b int) bool {
				for _, k := range keys {
					x, y := vals[k.col][want[a]], vals[k.col][want[b]]
					var c int
					switch {
					case x == nil && y == nil:
					case x == nil:
						c = 1
						if k.nullsFirst {
							c = -1
						}
					case y == nil:
						c = -1
						if k.nullsFirst {
							c = 1
						}
					default:
						switch x := x.(type) {
						case float64:
							c = oracleFloatCmp(x, y.(float64))
						case int64:
							c = cmp.Compare(x, y.(int64))
						}
						if k.desc {
							c = -c
						}
					}
					if c != 0 {
						return c < 0
					}
				}
				return false
			})
			require.Equal(t, want, idx, "n=%d keys=%v", n, keys)
		}
		releaseAll(cols)
	}
}

// boundaryRows builds n rows of genSchema whose key k takes about n/dup
// values spread so that each value repeats across hashBlock boundaries, with
// a null k every 37th row, s derived from k (null every 53rd), small w and v
// values whose sums are exact in any order.
func boundaryRows(n, dup int, seed uint64) []row {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	distinct := max(n/max(dup, 1), 1)
	rows := make([]row, n)
	for i := range rows {
		var k, s, w, v any
		kv := int64(rng.IntN(distinct))
		if i%37 != 5 {
			k = kv
		}
		if i%53 != 7 {
			s = fmt.Sprintf("s%d", kv%int64(max(distinct/2, 1)))
		}
		if i%11 != 3 {
			w = int64(rng.IntN(100) - 50)
		}
		if i%13 != 4 {
			v = float64(rng.IntN(64)) / 4
		}
		rows[i] = row{k, s, w, v}
	}
	return rows
}

// hotRows is n rows whose k is key (s "hot") except every 10th, which is
// a distinct key of its own.
func hotRows(n int, key int64, seed uint64) []row {
	rows := boundaryRows(n, 1, seed)
	for i, r := range rows {
		if i%10 != 0 {
			r[cK], r[cS] = key, "hot"
		} else if r[cK] != nil {
			r[cK] = r[cK].(int64) + 1_000_000
		}
	}
	return rows
}

// oraclePairs joins left and right by row number with a Go map (rows match
// when every key is non-null and equal; -1 for the missing side of an outer
// row), encoded and sorted as pairSet does.
func oraclePairs(left, right []row, keys []int, lOuter, rOuter bool) []int64 {
	byKey := map[string][]int{}
	for j, r := range right {
		if k, ok := joinKey(r, keys); ok {
			byKey[k] = append(byKey[k], j)
		}
	}
	enc := func(i, j int) int64 { return int64(i)<<32 | int64(uint32(int32(j))) }
	var out []int64
	rMatched := make([]bool, len(right))
	for i, l := range left {
		k, ok := joinKey(l, keys)
		js := byKey[k]
		if !ok || len(js) == 0 {
			if lOuter {
				out = append(out, enc(i, -1))
			}
			continue
		}
		for _, j := range js {
			rMatched[j] = true
			out = append(out, enc(i, j))
		}
	}
	if rOuter {
		for j, m := range rMatched {
			if !m {
				out = append(out, enc(-1, j))
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestJoinKernelsBoundaries(t *testing.T) {
	cases := []struct {
		name        string
		left, right []row
	}{
		{"blocks-1", boundaryRows(hashBlock-1, 2, 1), boundaryRows(hashBlock+1, 3, 2)},
		{"blocks", boundaryRows(hashBlock, 2, 3), boundaryRows(hashBlock, 2, 4)},
		{"2 blocks+1", boundaryRows(2*hashBlock+1, 4, 5), boundaryRows(pollRows-1, 2, 6)},
		{"small vs 2 blocks", boundaryRows(100, 1, 7), boundaryRows(2*pollRows+3, 300, 8)},
		// One key matches 270*180 > 3*pollRows times: the join's pollAt path.
		{"hot key", hotRows(300, 5, 9), hotRows(200, 5, 10)},
		// Sort-merge: a run of equal keys longer than pollRows on one side,
		// matching two rows.
		{"long run", hotRows(pollRows+20, 1, 11), hotRows(3, 1, 12)},
	}
	keySets := map[string][]int{"k": {cK}, "s": {cS}, "k,s": {cK, cS}}
	outers := []struct {
		name   string
		lo, ro bool
	}{{"inner", false, false}, {"left", true, false}, {"right", false, true}, {"full", true, true}}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := context.Background()
	for _, c := range cases {
		lt := buildTable(mem, genSchema, c.left)
		rt := buildTable(mem, genSchema, c.right)
		lcols, err := columns(ctx, mem, lt)
		require.NoError(t, err)
		rcols, err := columns(ctx, mem, rt)
		require.NoError(t, err)
		for kname, kidx := range keySets {
			lk := make([]arrow.Array, len(kidx))
			rk := make([]arrow.Array, len(kidx))
			for i, k := range kidx {
				lk[i], rk[i] = lcols[k], rcols[k]
			}
			for _, o := range outers {
				name := fmt.Sprintf("%s/%s/%s", c.name, kname, o.name)
				want := oraclePairs(c.left, c.right, kidx, o.lo, o.ro)
				for _, par := range []int{1, 3} {
					ps, err := hashJoin(ctx, lk, rk, o.lo, o.ro, par)
					require.NoError(t, err, name)
					require.Equal(t, want, pairSet(ps), "%s hash par %d", name, par)
				}
				ps, err := hashJoin(ctx, rk, lk, o.ro, o.lo, 2)
				require.NoError(t, err, name)
				ps.b, ps.p = ps.p, ps.b
				require.Equal(t, want, pairSet(ps), "%s hash build right", name)
				ps, err = sortMergeJoin(ctx, lk, rk, o.lo, o.ro)
				require.NoError(t, err, name)
				require.Equal(t, want, pairSet(ps), "%s sort-merge", name)
			}
		}
		releaseAll(lcols)
		releaseAll(rcols)
		lt.Release()
		rt.Release()
	}
}

// TestOperatorsBoundaries runs group-by, distinct, filter and sort through
// the public API at partition lengths around pollRows, hashBlock and the
// radix group-by threshold, on one and two ranks, against Go oracles.
func TestOperatorsBoundaries(t *testing.T) {
	sizes := []int{pollRows - 1, pollRows + 1, 4*radixRows - 1, 4 * radixRows, 2*pollRows + 3}
	for _, p := range []int{1, 2} {
		for _, n := range sizes {
			parts := make([][]row, p)
			parts[0] = boundaryRows(n, 3, uint64(n))
			if p == 2 {
				parts[1] = boundaryRows(n/7, 3, uint64(n+1))
			}
			all := concatRows(parts)
			type result struct {
				agg                map[string][]row
				distinct, filtered []row
				sorted             []row
			}
			var res result
			res.agg = map[string][]row{}
			runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				f, err := newFrame(t, c, mem, parts[c.Rank()])
				if err != nil {
					return err
				}
				defer f.Release()
				if err := groupByAll(ctx, c, f, res.agg); err != nil {
					return err
				}
				// Partitioned by the keys already: the group-by is local only.
				sh, err := f.Shuffle(ctx, "k", "s")
				if err != nil {
					return err
				}
				g, err := sh.GroupBy("k", "s").Agg(ctx, testAggs...)
				sh.Release()
				if err != nil {
					return err
				}
				got, _, err := gatherRows(ctx, g)
				g.Release()
				if err != nil {
					return err
				}
				if c.Rank() == 0 {
					res.agg["local"] = got
				}
				d, err := f.Distinct(ctx, "k", "s")
				if err != nil {
					return err
				}
				got, _, err = gatherRows(ctx, d)
				d.Release()
				if err != nil {
					return err
				}
				if c.Rank() == 0 {
					res.distinct = got
				}
				fl, err := f.Filter(ctx, Col("v").Gt(7.0))
				if err != nil {
					return err
				}
				got, _, err = gatherRows(ctx, fl)
				fl.Release()
				if err != nil {
					return err
				}
				if c.Rank() == 0 {
					res.filtered = got
				}
				s, err := f.Sort(ctx, Desc("k").WithNullsFirst(), Asc("v"))
				if err != nil {
					return err
				}
				got, _, err = gatherRows(ctx, s)
				s.Release()
				if c.Rank() == 0 {
					res.sorted = got
				}
				return err
			})
			requireSameRows(t, oracleGroupBy(all, []int{cK, cS}), res.agg["local"], "p=%d n=%d local group by", p, n)
			for _, ks := range groupByKeySets {
				requireSameRows(t, oracleGroupBy(all, ks.cols), res.agg[fmt.Sprint(ks.names)], "p=%d n=%d group by %v", p, n, ks.names)
			}
			seen := map[string]bool{}
			var wantDistinct []row
			var wantFiltered []row
			for _, r := range all {
				kr := row{r[cK], r[cS]}
				if id := rowKey(kr); !seen[id] {
					seen[id] = true
					wantDistinct = append(wantDistinct, kr)
				}
				if r[cV] != nil && r[cV].(float64) > 7 {
					wantFiltered = append(wantFiltered, r)
				}
			}
			requireSameRows(t, wantDistinct, res.distinct, "p=%d n=%d distinct", p, n)
			requireSameRows(t, wantFiltered, res.filtered, "p=%d n=%d filter", p, n)
			// Sort: k descending with nulls first, then v ascending (nulls
			// last); rows equal on both keys may come in any order between
			// ranks, so compare the key columns position by position and the
			// rows as a multiset.
			require.Len(t, res.sorted, len(all))
			wantSorted := slices.Clone(all)
			sort.SliceStable(wantSorted, func(a, b int) bool {
				x, y := wantSorted[a], wantSorted[b]
				if c := oracleCompare(x[cK], y[cK], true, true); c != 0 {
					return c < 0
				}
				return oracleCompare(x[cV], y[cV], false, false) < 0
			})
			for i := range wantSorted {
				require.Equal(t, rowKey(row{wantSorted[i][cK], wantSorted[i][cV]}), rowKey(row{res.sorted[i][cK], res.sorted[i][cV]}), "p=%d n=%d sort position %d", p, n, i)
			}
			requireSameRows(t, wantSorted, res.sorted, "p=%d n=%d sort", p, n)
		}
	}
}

// TestCancelAtPhaseEdges cancels operators at their first and last looks at
// ctx and at a spread between: wherever it ends (between two phases as well
// as inside a kernel), the operator fails with context.Canceled, returns no frame and
// leaks nothing.
func TestCancelAtPhaseEdges(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rows := boundaryRows(3*pollRows+5, 3, 99)
	ops := map[string]func(ctx context.Context, f *Frame) (*Frame, error){
		"sort":      func(ctx context.Context, f *Frame) (*Frame, error) { return f.Sort(ctx, Asc("s"), Desc("v")) },
		"hash join": func(ctx context.Context, f *Frame) (*Frame, error) { return f.Join(ctx, f, FullOuter, On("k")) },
		"merge join": func(ctx context.Context, f *Frame) (*Frame, error) {
			return f.Join(ctx, f, LeftOuter, On("s"), SortMerge())
		},
		"groupby": func(ctx context.Context, f *Frame) (*Frame, error) {
			return f.GroupBy("k", "s").Agg(ctx, testAggs...)
		},
		"distinct": func(ctx context.Context, f *Frame) (*Frame, error) { return f.Distinct(ctx, "s") },
		"filter":   func(ctx context.Context, f *Frame) (*Frame, error) { return f.Filter(ctx, Col("v").Gt(3.0)) },
	}
	for name, op := range ops {
		frameOn := func() (*Frame, func()) {
			comms, err := collective.Local(context.Background(), 1)
			require.NoError(t, err)
			f, err := newFrame(t, comms[0], mem, rows)
			require.NoError(t, err)
			return f, func() { f.Release(); comms[0].Close() }
		}
		f, done := frameOn()
		never := newPollCtx(math.MaxInt64)
		g, err := op(never, f)
		require.NoError(t, err, name)
		g.Release()
		done()
		held := mem.CurrentAlloc()
		total := never.polls.Load()
		// The first and last looks (the phases' edges) and a spread between.
		lives := []int64{0, 1, 2, 3, total - 3, total - 2, total - 1}
		for l := int64(4); l < total-3; l += max(total/8, 1) {
			lives = append(lives, l)
		}
		for _, live := range lives {
			if live < 0 {
				continue
			}
			f, done := frameOn()
			g, err := op(newPollCtx(live), f)
			require.ErrorIs(t, err, context.Canceled, "%s cancelled after %d of %d looks", name, live, total)
			require.Nil(t, g, "%s cancelled after %d of %d looks", name, live, total)
			done()
			require.Equal(t, held, mem.CurrentAlloc(), "%s cancelled after %d of %d looks leaked", name, live, total)
		}
	}
}
