package frame

import (
	"context"
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// The typed hash join for one integer-like key column: a radix-partitioned
// hash join. Both sides are first scattered, by the low bits of their row
// hash, into partitions small enough that the hash table of one partition
// stays in the L2 cache; each partition is then joined on its own. Building
// one big table instead costs a cache miss per build row and per probe row,
// and is several times slower at millions of rows.

// radixRows is how many build rows one partition aims at: its bucket array
// and entries (~24 bytes a row all told) stay well inside L2.
const radixRows = 8 << 10

// radixEntry is one row scattered into its partition: its key, its row in the
// input, and bits of its hash above the partition bits, for the bucket.
type radixEntry[T uint8 | uint16 | uint32 | uint64] struct {
	key T
	row int32
	h   uint32
}

// radixSide is one side of the join scattered into partitions: the entries of
// partition q are ents[start[q]:start[q+1]]; rows with a null key are apart.
type radixSide[T uint8 | uint16 | uint32 | uint64] struct {
	ents  []radixEntry[T]
	start []int32
	nulls []int32
}

// radixPartition scatters col into parts partitions by hash (see
// radixSide), looking at ctx every pollRows rows.
func radixPartition[T uint8 | uint16 | uint32 | uint64](ctx context.Context, col arrow.Array, parts int) (radixSide[T], error) {
	n := col.Len()
	shift := uint(bits.TrailingZeros(uint(parts)))
	mask := uint64(parts - 1)
	vals := rawValues[T](col)
	valid := validityOf(col)
	hashes := make([]uint64, n)
	s := radixSide[T]{start: make([]int32, parts+1)}
	if err := forBlocks(ctx, n, func(lo, hi int) error {
		hs := hashes[lo:hi]
		if err := hashSlice([]arrow.Array{col}, lo, hi, hs); err != nil {
			return err
		}
		for i, h := range hs {
			if valid.bits != nil && !valid.valid(lo+i) {
				s.nulls = append(s.nulls, int32(lo+i))
				continue
			}
			s.start[(h&mask)+1]++
		}
		return nil
	}); err != nil {
		return radixSide[T]{}, err
	}
	for q := range parts {
		s.start[q+1] += s.start[q]
	}
	pos := make([]int32, parts)
	copy(pos, s.start[:parts])
	s.ents = make([]radixEntry[T], n-len(s.nulls))
	for lo := 0; lo < n; lo += pollRows {
		if err := ctx.Err(); err != nil {
			return radixSide[T]{}, err
		}
		hi := min(lo+pollRows, n)
		for i, h := range hashes[lo:hi] {
			i += lo
			if valid.bits != nil && !valid.valid(i) {
				continue
			}
			q := h & mask
			s.ents[pos[q]] = radixEntry[T]{key: vals[i], row: int32(i), h: uint32(h >> shift)}
			pos[q]++
		}
	}
	return s, nil
}

// radixJoin is hashJoin for one integer-like key column. With par > 1 the
// two sides are scattered at once and the partitions are joined by par
// goroutines, each over its own range of partitions.
func radixJoin[T uint8 | uint16 | uint32 | uint64](ctx context.Context, build, probe arrow.Array, buildOuter, probeOuter bool, par int) (pairs, error) {
	nb := build.Len()
	parts := 1
	for parts < 1024 && parts*radixRows < nb {
		parts <<= 1
	}
	var (
		bs, ps     radixSide[T]
		berr, perr error
		wg         sync.WaitGroup
	)
	if par > 1 {
		wg.Go(func() { bs, berr = radixPartition[T](ctx, build, parts) })
	} else {
		bs, berr = radixPartition[T](ctx, build, parts)
	}
	ps, perr = radixPartition[T](ctx, probe, parts)
	wg.Wait()
	if berr != nil {
		return pairs{}, berr
	}
	if perr != nil {
		return pairs{}, perr
	}
	var matched []bool // by build entry; partitions are disjoint, so workers never share an element
	if buildOuter {
		matched = make([]bool, len(bs.ents))
	}
	workers := max(min(par, parts), 1)
	outs := make([]pairs, workers)
	errs := make([]error, workers)
	for w := range workers {
		lo, hi := w*parts/workers, (w+1)*parts/workers
		work := func() { outs[w], errs[w] = joinPartitions(ctx, &bs, &ps, lo, hi, probeOuter, matched) }
		if w == workers-1 {
			work()
		} else {
			wg.Go(work)
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return pairs{}, err
		}
	}
	out := outs[0]
	if workers > 1 {
		n := 0
		for _, o := range outs {
			n += len(o.b)
		}
		out = pairs{b: make([]int32, 0, n+len(ps.nulls)), p: make([]int32, 0, n+len(ps.nulls))}
		for _, o := range outs {
			out.b = append(out.b, o.b...)
			out.p = append(out.p, o.p...)
		}
	}
	if probeOuter {
		for _, r := range ps.nulls {
			out.add(-1, r)
		}
	}
	if buildOuter {
		for i, m := range matched {
			if !m {
				out.add(bs.ents[i].row, -1)
			}
		}
		for _, r := range bs.nulls {
			out.add(r, -1)
		}
	}
	return out, nil
}

// joinPartitions joins the partitions [lo, hi) of the two scattered sides,
// looking at ctx before each partition and every pollRows pairs it emits.
func joinPartitions[T uint8 | uint16 | uint32 | uint64](ctx context.Context, bs, ps *radixSide[T], lo, hi int, probeOuter bool, matched []bool) (pairs, error) {
	maxPart := int32(0)
	for q := lo; q < hi; q++ {
		maxPart = max(maxPart, bs.start[q+1]-bs.start[q])
	}
	buckets := make([]int32, tableSize(int(maxPart))) // entry index + 1; 0 = empty
	next := make([]int32, maxPart)                    // the next entry with the same key, or -1
	probes := int(ps.start[hi] - ps.start[lo])
	out := pairs{b: make([]int32, 0, probes+probes/4), p: make([]int32, 0, probes+probes/4)}
	pollAt := pollRows // the output length at which to look at ctx again
	for q := lo; q < hi; q++ {
		if err := ctx.Err(); err != nil {
			return pairs{}, err
		}
		be := bs.ents[bs.start[q]:bs.start[q+1]]
		pe := ps.ents[ps.start[q]:ps.start[q+1]]
		if len(be) == 0 {
			if probeOuter {
				for _, e := range pe {
					out.add(-1, e.row)
				}
			}
			continue
		}
		size := tableSize(len(be))
		tab := buckets[:size]
		clear(tab)
		tmask := uint32(size - 1)
		// Build: the bucket holds the first entry of each key; later entries
		// with that key chain behind it.
		for i := range be {
			if i > 0 && i%pollRows == 0 { // a partition of many rows: a key repeats
				if err := ctx.Err(); err != nil {
					return pairs{}, err
				}
			}
			e := &be[i]
			s := e.h & tmask
			for {
				f := tab[s]
				if f == 0 {
					tab[s] = int32(i) + 1
					next[i] = -1
					break
				}
				if be[f-1].key == e.key {
					next[i] = next[f-1]
					next[f-1] = int32(i)
					break
				}
				s = (s + 1) & tmask
			}
		}
		base := bs.start[q]
		for k, e := range pe {
			if k > 0 && k%pollRows == 0 {
				if err := ctx.Err(); err != nil {
					return pairs{}, err
				}
			}
			s := e.h & tmask
			hit := int32(-1)
			for {
				f := tab[s]
				if f == 0 {
					break
				}
				if be[f-1].key == e.key {
					hit = f - 1
					break
				}
				s = (s + 1) & tmask
			}
			if hit < 0 {
				if probeOuter {
					out.add(-1, e.row)
				}
				continue
			}
			for x := hit; x >= 0; x = next[x] {
				out.add(be[x].row, e.row)
				if matched != nil {
					matched[base+x] = true
				}
			}
			if len(out.b) >= pollAt { // many matches in one partition: a key repeats
				if err := ctx.Err(); err != nil {
					return pairs{}, err
				}
				pollAt = len(out.b) + pollRows
			}
		}
	}
	return out, nil
}

// radixGroup is groupRows for one integer-like key column and many rows: the
// rows are scattered into cache-sized partitions by hash, as for the join,
// and each partition numbers its distinct keys with a small table. Groups
// come out partition by partition (in order of first appearance within
// each), then the group of null keys, if any.
func radixGroup[T uint8 | uint16 | uint32 | uint64](ctx context.Context, col arrow.Array) (gids, firsts []int32, err error) {
	n := col.Len()
	parts := 1
	for parts < 1024 && parts*radixRows < n {
		parts <<= 1
	}
	s, err := radixPartition[T](ctx, col, parts)
	if err != nil {
		return nil, nil, err
	}
	maxPart := int32(0)
	for q := range parts {
		maxPart = max(maxPart, s.start[q+1]-s.start[q])
	}
	buckets := make([]int32, tableSize(int(maxPart))) // local group id + 1; 0 = empty
	gids = make([]int32, n)
	firsts = make([]int32, 0, n/2)
	keys := make([]T, 0, n/2) // of each group, beside firsts
	for q := range parts {
		ents := s.ents[s.start[q]:s.start[q+1]]
		if len(ents) == 0 {
			continue
		}
		size := tableSize(len(ents))
		tab := buckets[:size]
		clear(tab)
		tmask := uint32(size - 1)
		base := int32(len(firsts))
		for lo := 0; lo < len(ents); lo += pollRows {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			for _, e := range ents[lo:min(lo+pollRows, len(ents))] {
				b := e.h & tmask
				for {
					g := tab[b]
					if g == 0 {
						firsts = append(firsts, e.row)
						keys = append(keys, e.key)
						g = int32(len(firsts)) - base
						tab[b] = g
						gids[e.row] = base + g - 1
						break
					}
					if keys[base+g-1] == e.key {
						gids[e.row] = base + g - 1
						break
					}
					b = (b + 1) & tmask
				}
			}
		}
	}
	if len(s.nulls) > 0 {
		g := int32(len(firsts))
		firsts = append(firsts, s.nulls[0])
		for _, r := range s.nulls {
			gids[r] = g
		}
	}
	return gids, firsts, nil
}
