package arrowio

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// scatter splits arr into len(counts) arrays in one sequential pass over its buffers: element i goes,
// in order, to array part[i], which gets counts[part[i]] elements in all (nil where the count is 0).
// This is radix partitioning: the input is read once, and each part is written as a stream, where a
// take per part would read the input once per part. ok is false for types without a scatter kernel
// (nested types), which the caller then takes part by part.
func scatter(mem memory.Allocator, arr arrow.Array, part []uint32, counts []int) (out []arrow.Array, ok bool, err error) {
	data := arr.Data()
	dt := arr.DataType()
	p := len(counts)
	bufs := make([][]*memory.Buffer, p) // per part: the buffers after validity
	var dict *array.Data

	switch dt.ID() {
	case arrow.BOOL:
		vals := scatterBits(mem, data, 1, part, counts, false)
		for k := range bufs {
			bufs[k] = []*memory.Buffer{vals[k]}
		}
	case arrow.STRING, arrow.BINARY:
		if err := scatterVarBinary[int32](mem, data, part, counts, bufs); err != nil {
			return nil, true, err
		}
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		if err := scatterVarBinary[int64](mem, data, part, counts, bufs); err != nil {
			return nil, true, err
		}
	case arrow.DICTIONARY:
		w := dt.(*arrow.DictionaryType).IndexType.(arrow.FixedWidthDataType).Bytes()
		vals := scatterFixed(mem, data, w, part, counts)
		for k := range bufs {
			bufs[k] = []*memory.Buffer{vals[k]}
		}
		dict = data.Dictionary().(*array.Data)
	default:
		fw, isFixed := dt.(arrow.FixedWidthDataType)
		if !isFixed || dt.ID() == arrow.NULL || fw.BitWidth() <= 0 || fw.BitWidth()%8 != 0 || dt.ID() == arrow.EXTENSION {
			return nil, false, nil
		}
		vals := scatterFixed(mem, data, fw.BitWidth()/8, part, counts)
		for k := range bufs {
			bufs[k] = []*memory.Buffer{vals[k]}
		}
	}

	valid := scatterBits(mem, data, 0, part, counts, true)
	out = make([]arrow.Array, p)
	for k := range p {
		if counts[k] == 0 {
			release(bufs[k]...)
			release(valid[k])
			continue
		}
		nulls := 0
		if valid[k] != nil {
			nulls = counts[k] - bitutil.CountSetBits(valid[k].Bytes(), 0, counts[k])
			if nulls == 0 {
				valid[k].Release()
				valid[k] = nil
			}
		}
		d := array.NewDataWithDictionary(dt, counts[k], append([]*memory.Buffer{valid[k]}, bufs[k]...), nulls, 0, dict)
		release(valid[k])
		release(bufs[k]...)
		out[k] = array.MakeFromData(d)
		d.Release()
	}
	return out, true, nil
}

// scatterFixed scatters the w-byte elements of buffer 1.
func scatterFixed(mem memory.Allocator, data arrow.ArrayData, w int, part []uint32, counts []int) []*memory.Buffer {
	out := make([]*memory.Buffer, len(counts))
	dsts := make([][]byte, len(counts))
	for k, c := range counts {
		if c > 0 {
			out[k] = memory.NewResizableBuffer(mem)
			out[k].Resize(c * w)
			dsts[k] = out[k].Bytes()
		}
	}
	n := data.Len()
	if n == 0 {
		return out
	}
	src := data.Buffers()[1].Bytes()[data.Offset()*w : (data.Offset()+n)*w]
	switch w {
	case 1:
		scatterTyped(src, part, dsts)
	case 2:
		scatterTyped(view[uint16](src), part, views[uint16](dsts))
	case 4:
		scatterTyped(view[uint32](src), part, views[uint32](dsts))
	case 8:
		scatterTyped(view[uint64](src), part, views[uint64](dsts))
	case 16:
		scatterTyped(view[[2]uint64](src), part, views[[2]uint64](dsts))
	case 32:
		scatterTyped(view[[4]uint64](src), part, views[[4]uint64](dsts))
	default:
		cur := make([]int, len(dsts))
		for i, k := range part[:n] {
			copy(dsts[k][cur[k]:cur[k]+w], src[i*w:(i+1)*w])
			cur[k] += w
		}
	}
	return out
}

func views[T any](bs [][]byte) [][]T {
	out := make([][]T, len(bs))
	for k, b := range bs {
		out[k] = view[T](b)
	}
	return out
}

func scatterTyped[T any](src []T, part []uint32, dsts [][]T) {
	cur := make([]int, len(dsts))
	part = part[:len(src)]
	for i, v := range src {
		k := part[i]
		dsts[k][cur[k]] = v
		cur[k]++
	}
}

// scatterBits scatters the bitmap in buffer b (the validity bitmap when validity is set: nil results
// when the array has no nulls).
func scatterBits(mem memory.Allocator, data arrow.ArrayData, b int, part []uint32, counts []int, validity bool) []*memory.Buffer {
	out := make([]*memory.Buffer, len(counts))
	if validity && (data.NullN() == 0 || data.Buffers()[0] == nil) {
		return out
	}
	dsts := make([][]byte, len(counts))
	for k, c := range counts {
		if c > 0 {
			out[k] = newBuffer(mem, int(bitutil.BytesForBits(int64(c))))
			dsts[k] = out[k].Bytes()
		}
	}
	n := data.Len()
	if n == 0 {
		return out
	}
	src, off := data.Buffers()[b].Bytes(), data.Offset()
	cur := make([]int, len(counts))
	for i, k := range part[:n] {
		if bitutil.BitIsSet(src, off+i) {
			bitutil.SetBit(dsts[k], cur[k])
		}
		cur[k]++
	}
	return out
}

// scatterVarBinary scatters offsets and data: a pass to size each part's data, a pass to copy.
func scatterVarBinary[O int32 | int64](mem memory.Allocator, data arrow.ArrayData, part []uint32, counts []int, bufs [][]*memory.Buffer) error {
	n := data.Len()
	p := len(counts)
	var offs []O
	if n > 0 {
		offs = arrow.GetOffsets[O](data, 1)
	}
	var raw []byte
	if b := data.Buffers()[2]; b != nil {
		raw = b.Bytes()
	}
	sizes := make([]int64, p)
	for i, k := range part[:n] {
		sizes[k] += int64(offs[i+1] - offs[i])
	}
	width := int(unsafe.Sizeof(O(0)))
	offDst := make([][]O, p)
	dataDst := make([][]byte, p)
	for k, c := range counts {
		if c == 0 {
			continue
		}
		if width == 4 && sizes[k] > math.MaxInt32 {
			for _, bs := range bufs {
				release(bs...)
			}
			return fmt.Errorf("part %d gets %d bytes of %s, more than 32-bit offsets address", k, sizes[k], data.DataType())
		}
		ob := memory.NewResizableBuffer(mem)
		ob.Resize((c + 1) * width)
		db := memory.NewResizableBuffer(mem)
		db.Resize(int(sizes[k]))
		bufs[k] = []*memory.Buffer{ob, db}
		offDst[k], dataDst[k] = view[O](ob.Bytes()), db.Bytes()
		offDst[k][0] = 0
	}
	cur := make([]int, p)
	pos := make([]O, p)
	for i, k := range part[:n] {
		lo, hi := offs[i], offs[i+1]
		copy(dataDst[k][pos[k]:], raw[lo:hi])
		pos[k] += hi - lo
		cur[k]++
		offDst[k][cur[k]] = pos[k]
	}
	return nil
}
