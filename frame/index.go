package frame

import (
	"context"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/fnmesh/fnmesh/arrowio"
)

// hashBlock is how many rows are hashed at a time: the hashes of one block
// stay in L2 while the block is inserted or probed.
const hashBlock = 16 << 10

// keyIndex maps the distinct key rows of a build table to dense group ids
// (0, 1, ... in order of first appearance) and looks up probe rows. It is
// the core of the local hash join, group-by and distinct. Hashes come from
// arrowio.HashRows, the hash the shuffle partitions by, so the rows a rank
// receives are exactly those whose keys its index can hold. The low bits of
// the hash pick the bucket: the shuffle uses the high bits (PartitionOf), so
// the low ones are spread evenly on every rank.
type keyIndex interface {
	// insert assigns a group to each of the rows [lo, lo+len(gids)) of the
	// build columns, whose hashes are given. With dropNulls a row with a null
	// key gets -1; otherwise nulls form groups like values.
	insert(hashes []uint64, lo int, gids []int32)
	// lookup finds the group of each of the rows [lo, lo+len(gids)) of the
	// probe columns (-1 when absent or when the key has a null).
	lookup(hashes []uint64, lo int, gids []int32)
	// groups is the number of groups.
	groups() int
	// firsts returns, for each group, its first build row.
	firsts() []int32
}

// newKeyIndex returns an index over the key columns build, probed by the key
// columns probe (nil when it is only built, as in group-by). sizeHint is the
// expected number of distinct keys (0 if unknown).
func newKeyIndex(build, probe []arrow.Array, dropNulls bool, sizeHint int) (keyIndex, error) {
	if probe != nil && len(probe) != len(build) {
		return nil, fmt.Errorf("%d build keys but %d probe keys", len(build), len(probe))
	}
	for k, b := range build {
		if !isKeyType(b.DataType()) {
			return nil, fmt.Errorf("key %d: type %s cannot be a key", k, b.DataType())
		}
		if probe != nil && !arrow.TypeEqual(b.DataType(), probe[k].DataType()) {
			return nil, fmt.Errorf("key %d: types differ: %s and %s", k, b.DataType(), probe[k].DataType())
		}
	}
	if len(build) == 1 {
		var p arrow.Array
		if probe != nil {
			p = probe[0]
		}
		switch w, ok := fixedIntWidth(build[0].DataType()); {
		case ok && w == 8:
			return newFixedIndex[uint64](build[0], p, dropNulls, sizeHint), nil
		case ok && w == 4:
			return newFixedIndex[uint32](build[0], p, dropNulls, sizeHint), nil
		case ok && w == 2:
			return newFixedIndex[uint16](build[0], p, dropNulls, sizeHint), nil
		case ok && w == 1:
			return newFixedIndex[uint8](build[0], p, dropNulls, sizeHint), nil
		}
	}
	return newGenericIndex(build, probe, dropNulls, sizeHint)
}

// fixedIntWidth is the width of the integer-like types whose values are equal
// exactly when their bits are: the types the fixed-width index handles.
// Floats are excluded (-0 equals +0, NaN equals NaN).
func fixedIntWidth(dt arrow.DataType) (int, bool) {
	switch dt.ID() {
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return 0, false
	}
	w, ok := fixedWidth(dt)
	return w, ok && w <= 8
}

// tableSize returns the bucket count for n groups at a load of at most 1/2.
func tableSize(n int) int {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	return size
}

// hashBlocks hashes the rows [0, n) of cols a block at a time (see
// forBlocks) and hands each block's hashes to fn.
func hashBlocks(ctx context.Context, cols []arrow.Array, n int, scratch []uint64, fn func(hashes []uint64, lo int)) error {
	return forBlocks(ctx, n, func(lo, hi int) error {
		h := scratch[:hi-lo]
		if err := hashSlice(cols, lo, hi, h); err != nil {
			return err
		}
		fn(h, lo)
		return nil
	})
}

// forBlocks calls fn over [0, n) in blocks of hashBlock rows, and returns
// ctx's error, without calling fn again, once ctx has ended.
func forBlocks(ctx context.Context, n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += hashBlock {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(lo, min(lo+hashBlock, n)); err != nil {
			return err
		}
	}
	return nil
}

// hashSlice computes arrowio.HashRows of the rows [lo, hi) of cols into out.
func hashSlice(cols []arrow.Array, lo, hi int, out []uint64) error {
	if lo == 0 && hi == colsLen(cols) {
		return arrowio.HashRows(cols, out)
	}
	sl := make([]arrow.Array, len(cols))
	for i, c := range cols {
		sl[i] = sliceArray(c, lo, hi)
	}
	defer releaseAll(sl)
	return arrowio.HashRows(sl, out)
}

func colsLen(cols []arrow.Array) int {
	if len(cols) == 0 {
		return 0
	}
	return cols[0].Len()
}

// fixedSlot is a bucket of the fixed-width index: the key inline, so a probe
// touches one cache line; gid is the group id plus one (0 = empty).
type fixedSlot[T uint8 | uint16 | uint32 | uint64] struct {
	key T
	gid int32
}

// fixedIndex is the typed fast path for one integer-like key column: open
// addressing with linear probing over slots that hold the key itself.
type fixedIndex[T uint8 | uint16 | uint32 | uint64] struct {
	bvals, pvals []T
	bvalid       bitmap
	pvalid       bitmap
	dropNulls    bool
	slots        []fixedSlot[T]
	mask         uint64
	hashes       []uint64 // per group, for growing
	first        []int32
	nullGid      int32
}

func newFixedIndex[T uint8 | uint16 | uint32 | uint64](build, probe arrow.Array, dropNulls bool, hint int) *fixedIndex[T] {
	size := tableSize(hint)
	ix := &fixedIndex[T]{
		bvals:     rawValues[T](build),
		bvalid:    validityOf(build),
		dropNulls: dropNulls,
		slots:     make([]fixedSlot[T], size),
		mask:      uint64(size - 1),
		hashes:    make([]uint64, 0, hint),
		first:     make([]int32, 0, hint),
		nullGid:   -1,
	}
	if probe != nil {
		ix.pvals, ix.pvalid = rawValues[T](probe), validityOf(probe)
	}
	return ix
}

func (ix *fixedIndex[T]) groups() int     { return len(ix.first) }
func (ix *fixedIndex[T]) firsts() []int32 { return ix.first }

func (ix *fixedIndex[T]) insert(hashes []uint64, lo int, gids []int32) {
	vals := ix.bvals[lo : lo+len(gids)]
	for i, h := range hashes {
		row := lo + i
		if ix.bvalid.bits != nil && !ix.bvalid.valid(row) {
			gids[i] = ix.nullGroup(h, row)
			continue
		}
		key := vals[i]
		s := h & ix.mask
		for {
			sl := &ix.slots[s]
			if sl.gid == 0 {
				g := int32(len(ix.first))
				sl.key, sl.gid = key, g+1
				ix.first = append(ix.first, int32(row))
				ix.hashes = append(ix.hashes, h)
				gids[i] = g
				if 2*len(ix.first) > len(ix.slots) {
					ix.grow()
				}
				break
			}
			if sl.key == key {
				gids[i] = sl.gid - 1
				break
			}
			s = (s + 1) & ix.mask
		}
	}
}

// nullGroup returns the group of the null key: -1 when nulls are dropped,
// else one group that holds every row with a null key (it has no slot).
func (ix *fixedIndex[T]) nullGroup(h uint64, row int) int32 {
	if ix.dropNulls {
		return -1
	}
	if ix.nullGid < 0 {
		ix.nullGid = int32(len(ix.first))
		ix.first = append(ix.first, int32(row))
		ix.hashes = append(ix.hashes, h)
	}
	return ix.nullGid
}

func (ix *fixedIndex[T]) grow() {
	size := 2 * len(ix.slots)
	slots := make([]fixedSlot[T], size)
	mask := uint64(size - 1)
	for g, h := range ix.hashes {
		if int32(g) == ix.nullGid {
			continue
		}
		s := h & mask
		for slots[s].gid != 0 {
			s = (s + 1) & mask
		}
		slots[s] = fixedSlot[T]{key: ix.bvals[ix.first[g]], gid: int32(g) + 1}
	}
	ix.slots, ix.mask = slots, mask
}

func (ix *fixedIndex[T]) lookup(hashes []uint64, lo int, gids []int32) {
	vals := ix.pvals[lo : lo+len(gids)]
	slots, mask := ix.slots, ix.mask
	for i, h := range hashes {
		if ix.pvalid.bits != nil && !ix.pvalid.valid(lo+i) {
			gids[i] = -1
			continue
		}
		key := vals[i]
		s := h & mask
		for {
			sl := slots[s]
			if sl.gid == 0 {
				gids[i] = -1
				break
			}
			if sl.key == key {
				gids[i] = sl.gid - 1
				break
			}
			s = (s + 1) & mask
		}
	}
}

// genericSlot is a bucket of the generic index: the full hash, so most
// mismatches are rejected without touching the key columns.
type genericSlot struct {
	hash uint64
	gid  int32 // group id plus one; 0 = empty
}

// genericIndex handles any number of key columns of any key type: buckets hold
// hashes, and a hash match is confirmed by comparing the rows' keys.
type genericIndex struct {
	build      []arrow.Array
	selfEq     rowsEq // build row against build row
	probeEq    rowsEq // build row against probe row
	bnull      []bitmap
	pnull      []bitmap
	dropNulls  bool
	slots      []genericSlot
	mask       uint64
	first      []int32
	groupHash  []uint64
	buildNulls bool
	probeNulls bool
}

func newGenericIndex(build, probe []arrow.Array, dropNulls bool, hint int) (*genericIndex, error) {
	selfEq, err := newRowsEq(build, build)
	if err != nil {
		return nil, err
	}
	size := tableSize(hint)
	ix := &genericIndex{
		build:     build,
		selfEq:    selfEq,
		dropNulls: dropNulls,
		slots:     make([]genericSlot, size),
		mask:      uint64(size - 1),
		first:     make([]int32, 0, hint),
		groupHash: make([]uint64, 0, hint),
	}
	for _, b := range build {
		v := validityOf(b)
		ix.bnull = append(ix.bnull, v)
		ix.buildNulls = ix.buildNulls || v.bits != nil
	}
	if probe != nil {
		if ix.probeEq, err = newRowsEq(build, probe); err != nil {
			return nil, err
		}
		for _, p := range probe {
			v := validityOf(p)
			ix.pnull = append(ix.pnull, v)
			ix.probeNulls = ix.probeNulls || v.bits != nil
		}
	}
	return ix, nil
}

func (ix *genericIndex) groups() int     { return len(ix.first) }
func (ix *genericIndex) firsts() []int32 { return ix.first }

func anyNull(bms []bitmap, row int) bool {
	for _, b := range bms {
		if !b.valid(row) {
			return true
		}
	}
	return false
}

func (ix *genericIndex) insert(hashes []uint64, lo int, gids []int32) {
	for i, h := range hashes {
		row := lo + i
		if ix.dropNulls && ix.buildNulls && anyNull(ix.bnull, row) {
			gids[i] = -1
			continue
		}
		s := h & ix.mask
		for {
			sl := &ix.slots[s]
			if sl.gid == 0 {
				g := int32(len(ix.first))
				*sl = genericSlot{hash: h, gid: g + 1}
				ix.first = append(ix.first, int32(row))
				ix.groupHash = append(ix.groupHash, h)
				gids[i] = g
				if 2*len(ix.first) > len(ix.slots) {
					ix.grow()
				}
				break
			}
			if sl.hash == h && ix.selfEq.equal(int(ix.first[sl.gid-1]), row) {
				gids[i] = sl.gid - 1
				break
			}
			s = (s + 1) & ix.mask
		}
	}
}

func (ix *genericIndex) grow() {
	size := 2 * len(ix.slots)
	slots := make([]genericSlot, size)
	mask := uint64(size - 1)
	for g, h := range ix.groupHash {
		s := h & mask
		for slots[s].gid != 0 {
			s = (s + 1) & mask
		}
		slots[s] = genericSlot{hash: h, gid: int32(g) + 1}
	}
	ix.slots, ix.mask = slots, mask
}

func (ix *genericIndex) lookup(hashes []uint64, lo int, gids []int32) {
	for i, h := range hashes {
		row := lo + i
		gids[i] = -1
		if ix.probeNulls && anyNull(ix.pnull, row) {
			continue
		}
		s := h & ix.mask
		for {
			sl := ix.slots[s]
			if sl.gid == 0 {
				break
			}
			if sl.hash == h && ix.probeEq.equal(int(ix.first[sl.gid-1]), row) {
				gids[i] = sl.gid - 1
				break
			}
			s = (s + 1) & ix.mask
		}
	}
}

// checkRows returns an error when a table is too long for the int32 row
// indices the kernels use.
func checkRows(n int64, what string) error {
	if n > math.MaxInt32 {
		return fmt.Errorf("%s has %d rows; a partition holds at most %d", what, n, math.MaxInt32)
	}
	return nil
}
