package frame

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
)

// pairs is the result of a local join: row k of the output is row b[k] of the
// build (or left) side next to row p[k] of the probe (or right) side; -1 marks
// the missing side of an outer row.
type pairs struct {
	b, p []int32
}

func (ps *pairs) add(b, p int32) {
	ps.b = append(ps.b, b)
	ps.p = append(ps.p, p)
}

// hashJoin matches the rows of the build key columns with those of the probe
// key columns: an index of the build side's distinct keys (the smaller side,
// chosen by the caller), then one pass over the probe side in blocks (a
// radix-partitioned join for one integer-like key, see radixJoin). Rows whose
// key has a null never match. With buildOuter (probeOuter) the unmatched
// rows of the build (probe) side are kept with -1 on the other side. The
// order of the pairs is unspecified. par bounds the goroutines it uses. It
// looks at ctx every pollRows rows.
func hashJoin(ctx context.Context, build, probe []arrow.Array, buildOuter, probeOuter bool, par int) (pairs, error) {
	if len(build) == 1 && len(probe) == 1 && arrow.TypeEqual(build[0].DataType(), probe[0].DataType()) {
		switch w, ok := fixedIntWidth(build[0].DataType()); {
		case ok && w == 8:
			return radixJoin[uint64](ctx, build[0], probe[0], buildOuter, probeOuter, par)
		case ok && w == 4:
			return radixJoin[uint32](ctx, build[0], probe[0], buildOuter, probeOuter, par)
		case ok && w == 2:
			return radixJoin[uint16](ctx, build[0], probe[0], buildOuter, probeOuter, par)
		case ok && w == 1:
			return radixJoin[uint8](ctx, build[0], probe[0], buildOuter, probeOuter, par)
		}
	}
	return indexJoin(ctx, build, probe, buildOuter, probeOuter)
}

// indexJoin is hashJoin over a keyIndex: any number of key columns of any key
// type.
func indexJoin(ctx context.Context, build, probe []arrow.Array, buildOuter, probeOuter bool) (pairs, error) {
	nb, np := colsLen(build), colsLen(probe)
	ix, err := newKeyIndex(build, probe, true, nb/2)
	if err != nil {
		return pairs{}, err
	}
	scratch := make([]uint64, min(hashBlock, max(nb, np)))

	// Group the build rows by key (a CSR layout): the rows of group g are
	// rows[start[g]:start[g+1]], in build order.
	bgid := make([]int32, nb)
	if err := hashBlocks(ctx, build, nb, scratch, func(h []uint64, lo int) {
		ix.insert(h, lo, bgid[lo:lo+len(h)])
	}); err != nil {
		return pairs{}, fmt.Errorf("hash build keys: %w", err)
	}
	ng := ix.groups()
	start := make([]int32, ng+1)
	for _, g := range bgid {
		if g >= 0 {
			start[g+1]++
		}
	}
	for g := 0; g < ng; g++ {
		start[g+1] += start[g]
	}
	rows := make([]int32, start[ng])
	fill := slices.Clone(start[:ng])
	for r, g := range bgid {
		if g >= 0 {
			rows[fill[g]] = int32(r)
			fill[g]++
		}
	}
	fill = nil
	if err := ctx.Err(); err != nil {
		return pairs{}, err
	}

	var matched []bool
	if buildOuter {
		matched = make([]bool, ng)
	}
	out := pairs{b: make([]int32, 0, np), p: make([]int32, 0, np)}
	pgid := make([]int32, min(hashBlock, np))
	pollAt := pollRows // the output length at which to look at ctx again
	err = hashBlocks(ctx, probe, np, scratch, func(h []uint64, lo int) {
		gids := pgid[:len(h)]
		ix.lookup(h, lo, gids)
		for i, g := range gids {
			if len(out.b) >= pollAt { // a block of many matches: keys repeat
				if ctx.Err() != nil {
					return // hashBlocks returns the error before the next block
				}
				pollAt = len(out.b) + pollRows
			}
			p := int32(lo + i)
			if g < 0 {
				if probeOuter {
					out.add(-1, p)
				}
				continue
			}
			if matched != nil {
				matched[g] = true
			}
			if s, e := start[g], start[g+1]; e-s == 1 {
				out.add(rows[s], p)
			} else {
				for _, r := range rows[s:e] {
					out.add(r, p)
				}
			}
		}
	})
	if err != nil {
		return pairs{}, fmt.Errorf("hash probe keys: %w", err)
	}
	if err := ctx.Err(); err != nil { // the last block may have stopped early
		return pairs{}, fmt.Errorf("hash probe keys: %w", err)
	}
	if buildOuter {
		for r, g := range bgid {
			if g < 0 || !matched[g] {
				out.add(int32(r), -1)
			}
		}
	}
	return out, nil
}

// sortMergeJoin matches rows by sorting both sides on the keys (ascending)
// and merging them. Rows whose key has a null never match; with leftOuter
// (rightOuter) the unmatched rows of that side are kept. Matches come out in
// key order, unmatched rows with null keys last. It looks at ctx every
// pollRows rows.
func sortMergeJoin(ctx context.Context, left, right []arrow.Array, leftOuter, rightOuter bool) (pairs, error) {
	lord, lnull, err := sortedNonNull(ctx, left)
	if err != nil {
		return pairs{}, err
	}
	rord, rnull, err := sortedNonNull(ctx, right)
	if err != nil {
		return pairs{}, err
	}
	lr := make(rowsCmp, len(left))
	ll := make(rowsCmp, len(left))
	rr := make(rowsCmp, len(left))
	for k := range left {
		if lr[k], err = newCmp(left[k], right[k], false, false); err != nil {
			return pairs{}, fmt.Errorf("key %d: %w", k, err)
		}
		if ll[k], err = newCmp(left[k], left[k], false, false); err != nil {
			return pairs{}, err
		}
		if rr[k], err = newCmp(right[k], right[k], false, false); err != nil {
			return pairs{}, err
		}
	}
	var out pairs
	i, j := 0, 0
	work := 0 // rows passed and pairs made since ctx was last looked at
	for i < len(lord) && j < len(rord) {
		if work++; work >= pollRows {
			if err := ctx.Err(); err != nil {
				return pairs{}, err
			}
			work = 0
		}
		c := lr.compare(int(lord[i]), int(rord[j]))
		switch {
		case c < 0:
			if leftOuter {
				out.add(lord[i], -1)
			}
			i++
		case c > 0:
			if rightOuter {
				out.add(-1, rord[j])
			}
			j++
		default:
			ie := i + 1
			for ie < len(lord) && ll.compare(int(lord[i]), int(lord[ie])) == 0 {
				ie++
			}
			je := j + 1
			for je < len(rord) && rr.compare(int(rord[j]), int(rord[je])) == 0 {
				je++
			}
			for _, l := range lord[i:ie] {
				for _, r := range rord[j:je] {
					out.add(l, r)
				}
				if work += je - j; work >= pollRows { // a key that repeats on both sides
					if err := ctx.Err(); err != nil {
						return pairs{}, err
					}
					work = 0
				}
			}
			i, j = ie, je
		}
	}
	if leftOuter {
		for _, l := range lord[i:] {
			out.add(l, -1)
		}
		for _, l := range lnull {
			out.add(l, -1)
		}
	}
	if rightOuter {
		for _, r := range rord[j:] {
			out.add(-1, r)
		}
		for _, r := range rnull {
			out.add(-1, r)
		}
	}
	return out, nil
}

// sortedNonNull returns the rows whose keys have no null, in ascending key
// order (stable), and the rows that have a null key.
func sortedNonNull(ctx context.Context, keys []arrow.Array) (sorted, nulls []int32, err error) {
	n := colsLen(keys)
	bms := make([]bitmap, len(keys))
	anyNl := false
	for k, c := range keys {
		bms[k] = validityOf(c)
		anyNl = anyNl || bms[k].bits != nil
	}
	sorted = make([]int32, 0, n)
	for r := 0; r < n; r++ {
		if anyNl && anyNull(bms, r) {
			nulls = append(nulls, int32(r))
		} else {
			sorted = append(sorted, int32(r))
		}
	}
	cmps := make([]sortKeyCols, len(keys))
	for k, c := range keys {
		cmps[k] = sortKeyCols{col: c}
	}
	if err := sortRows(ctx, sorted, cmps); err != nil {
		return nil, nil, err
	}
	return sorted, nulls, nil
}
