package arrowio

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// dictRowsPerEntry is the compaction rule's gate: a part's chunks that share a dictionary of D
// entries are looked at only when they hold fewer than dictRowsPerEntry*D rows. With more rows than
// that, the dictionary is small next to the indices that are sent with it, and a low-cardinality
// column (the usual case: a key column of a few hundred values) costs nothing to partition.
const dictRowsPerEntry = 8

// compactDictionaries gives every part the dictionary entries its rows use, for each top-level
// dictionary column: HashPartition's scatter and take share the whole input dictionary with every
// part, and the IPC writer sends a dictionary whole, so p parts of a high-cardinality column (string
// ids, a dictionary nearly as long as the table) would carry p copies of it.
//
// The rule, per part and per dictionary its chunks share: when they have fewer than
// dictRowsPerEntry rows an entry, their used entries are counted (among valid rows; counting stops
// once more than half are used), and if at most half of the entries are used, those entries are
// taken into a new dictionary, in their original order (an ordered dictionary stays ordered, and the
// remap is a rank in a bitmap), which all of those chunks then share, so that it goes on the wire
// once; their indices are rewritten to it (same index type, offset 0). A null slot keeps its
// validity bit and gets index 0, which is always inside the new dictionary: a part whose rows are all
// null keeps the first entry. Chunks with other dictionaries, and dictionaries nested in other types
// (struct fields, list values, extension storage), are left as they are.
//
// chunks[k][c] holds the chunks of column c of part k; compacted chunks replace their originals,
// which are released.
func compactDictionaries(mem memory.Allocator, schema *arrow.Schema, chunks [][][]arrow.Array) error {
	var sc dictScratch
	for c, f := range schema.Fields() {
		if f.Type.ID() != arrow.DICTIONARY {
			continue
		}
		for k := range chunks {
			if err := compactColumn(mem, chunks[k][c], &sc); err != nil {
				return fmt.Errorf("column %q: part %d: %w", f.Name, k, err)
			}
		}
	}
	return nil
}

// dictScratch is the reused bitmap of used dictionary entries and its per-word ranks.
type dictScratch struct {
	used []uint64
	rank []int32 // used entries before each word of used
}

// compactColumn compacts, in place, the chunks of one dictionary column of one part, group by group
// of chunks that share a dictionary.
func compactColumn(mem memory.Allocator, col []arrow.Array, sc *dictScratch) error {
	done := make([]bool, len(col))
	var group []int
	for first := range col {
		if done[first] {
			continue
		}
		dict := col[first].Data().Dictionary()
		group = group[:0]
		rows := 0
		for j := first; j < len(col); j++ {
			if !done[j] && col[j].Data().Dictionary() == dict {
				done[j] = true
				group = append(group, j)
				rows += col[j].Len()
			}
		}
		if dd, _ := dict.(*array.Data); dd == nil || dd.Len() == 0 || rows/dictRowsPerEntry >= dict.Len() || dict.Len() > math.MaxInt32 {
			continue
		}
		if err := compactGroup(mem, col, group, dict, sc); err != nil {
			return err
		}
	}
	return nil
}

// compactGroup counts the entries of dict that the chunks col[group] use and, when at most half are,
// replaces those chunks with chunks of a compacted dictionary.
func compactGroup(mem memory.Allocator, col []arrow.Array, group []int, dict arrow.ArrayData, sc *dictScratch) error {
	d := dict.Len()
	words := (d + 63) / 64
	if cap(sc.used) < words {
		sc.used, sc.rank = make([]uint64, words), make([]int32, words)
	}
	used := sc.used[:words]
	clear(used)
	n, limit := 0, d/2
	for _, j := range group {
		var err error
		if n, err = markUsed(col[j].Data(), used, d, n, limit); err != nil {
			return err
		}
		if n > limit {
			return nil
		}
	}
	if n == 0 {
		used[0], n = 1, 1
	}
	keep := make([]int, 0, n)
	rank := sc.rank[:words]
	for w, word := range used {
		rank[w] = int32(len(keep))
		for word != 0 {
			keep = append(keep, w*64+bits.TrailingZeros64(word))
			word &= word - 1
		}
	}
	values := array.MakeFromData(dict)
	nd, err := takeData(mem, values, keep)
	values.Release()
	if err != nil {
		return fmt.Errorf("compacting the dictionary: %w", err)
	}
	defer nd.Release()
	newDict, ok := nd.(*array.Data)
	if !ok {
		return fmt.Errorf("compacting the dictionary: values of %T", nd)
	}
	for _, j := range group {
		a, err := remapIndices(mem, col[j].Data(), newDict, used, rank)
		if err != nil {
			return err
		}
		col[j].Release()
		col[j] = a
	}
	return nil
}

// markUsed sets in used the entries that the valid rows of the dictionary array d index, counting
// them on from n, and returns the count; it stops once the count passes limit. An index outside the
// dictionary of dictLen entries is an error.
func markUsed(d arrow.ArrayData, used []uint64, dictLen, n, limit int) (int, error) {
	switch d.DataType().(*arrow.DictionaryType).IndexType.ID() {
	case arrow.INT8:
		return markUsedOf(d, arrow.GetValues[int8](d, 1), used, dictLen, n, limit)
	case arrow.INT16:
		return markUsedOf(d, arrow.GetValues[int16](d, 1), used, dictLen, n, limit)
	case arrow.INT32:
		return markUsedOf(d, arrow.GetValues[int32](d, 1), used, dictLen, n, limit)
	case arrow.INT64:
		return markUsedOf(d, arrow.GetValues[int64](d, 1), used, dictLen, n, limit)
	case arrow.UINT8:
		return markUsedOf(d, arrow.GetValues[uint8](d, 1), used, dictLen, n, limit)
	case arrow.UINT16:
		return markUsedOf(d, arrow.GetValues[uint16](d, 1), used, dictLen, n, limit)
	case arrow.UINT32:
		return markUsedOf(d, arrow.GetValues[uint32](d, 1), used, dictLen, n, limit)
	case arrow.UINT64:
		return markUsedOf(d, arrow.GetValues[uint64](d, 1), used, dictLen, n, limit)
	}
	return 0, fmt.Errorf("%s: index type %s", d.DataType(), d.DataType().(*arrow.DictionaryType).IndexType)
}

// indexInt is the integer types a dictionary's indices may have (hash.go, validate.go and the
// compaction here are generic over it).
type indexInt interface {
	int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
}

func markUsedOf[T indexInt](d arrow.ArrayData, idx []T, used []uint64, dictLen, n, limit int) (int, error) {
	bitmap, off := validityOf(d)
	for i, v := range idx {
		if bitmap != nil && !bitutil.BitIsSet(bitmap, off+i) {
			continue
		}
		if uint64(v) >= uint64(dictLen) { // a negative index wraps to a huge one
			return 0, fmt.Errorf("%s: index %d at row %d outside the dictionary of %d values", d.DataType(), int64(v), i, dictLen)
		}
		w, b := int(v)/64, uint64(1)<<(uint(v)%64)
		if used[w]&b == 0 {
			used[w] |= b
			if n++; n > limit {
				return n, nil
			}
		}
	}
	return n, nil
}

// validityOf returns d's validity bitmap (nil when no row is null) and the bit of its row 0.
func validityOf(d arrow.ArrayData) ([]byte, int) {
	if d.NullN() == 0 || d.Buffers()[0] == nil {
		return nil, 0
	}
	return d.Buffers()[0].Bytes(), d.Offset()
}

// remapIndices returns the dictionary array d with its dictionary replaced by dict, the entries of
// d's dictionary that used marks, in order (rank: how many are marked before each word of used): each
// valid index becomes its entry's rank, each null one 0. The result is at offset 0.
func remapIndices(mem memory.Allocator, d arrow.ArrayData, dict *array.Data, used []uint64, rank []int32) (arrow.Array, error) {
	dt := d.DataType().(*arrow.DictionaryType)
	n := d.Len()
	w := dt.IndexType.(arrow.FixedWidthDataType).Bytes()
	buf := allocBuffer(mem, n*w)
	switch dt.IndexType.ID() {
	case arrow.INT8:
		remapOf(d, arrow.GetValues[int8](d, 1), view[int8](buf.Bytes()), used, rank)
	case arrow.INT16:
		remapOf(d, arrow.GetValues[int16](d, 1), view[int16](buf.Bytes()), used, rank)
	case arrow.INT32:
		remapOf(d, arrow.GetValues[int32](d, 1), view[int32](buf.Bytes()), used, rank)
	case arrow.INT64:
		remapOf(d, arrow.GetValues[int64](d, 1), view[int64](buf.Bytes()), used, rank)
	case arrow.UINT8:
		remapOf(d, arrow.GetValues[uint8](d, 1), view[uint8](buf.Bytes()), used, rank)
	case arrow.UINT16:
		remapOf(d, arrow.GetValues[uint16](d, 1), view[uint16](buf.Bytes()), used, rank)
	case arrow.UINT32:
		remapOf(d, arrow.GetValues[uint32](d, 1), view[uint32](buf.Bytes()), used, rank)
	case arrow.UINT64:
		remapOf(d, arrow.GetValues[uint64](d, 1), view[uint64](buf.Bytes()), used, rank)
	default:
		buf.Release()
		return nil, fmt.Errorf("%s: index type %s", dt, dt.IndexType)
	}
	var valid *memory.Buffer
	if bitmap, off := validityOf(d); bitmap != nil {
		if off == 0 {
			valid = d.Buffers()[0]
			valid.Retain()
		} else {
			valid = newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
			bitutil.CopyBitmap(bitmap, off, n, valid.Bytes(), 0)
		}
	}
	out := array.NewDataWithDictionary(dt, n, []*memory.Buffer{valid, buf}, d.NullN(), 0, dict)
	release(valid, buf)
	defer out.Release()
	return array.MakeFromData(out), nil
}

func remapOf[T indexInt](d arrow.ArrayData, src, dst []T, used []uint64, rank []int32) {
	bitmap, off := validityOf(d)
	dst = dst[:len(src)]
	for i, v := range src {
		if bitmap != nil && !bitutil.BitIsSet(bitmap, off+i) {
			dst[i] = 0
			continue
		}
		w, b := int(v)/64, uint(v)%64
		dst[i] = T(int(rank[w]) + bits.OnesCount64(used[w]&(1<<b-1)))
	}
}
