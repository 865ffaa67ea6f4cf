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

// take gathers the elements idx of arr (each 0 <= idx[j] < arr.Len()) into a new array whose buffers
// come from mem. It is the kernel the partitioner builds its outputs with: one pass per buffer, no
// per-row allocation, and no dependency on arrow-go's compute package. Dictionaries are shared with
// arr, not copied (HashPartition compacts a part's top-level ones afterwards: compactDictionaries),
// and so are the character buffers of view types unless the rows taken use less
// than half of them (compactViews).
func take(mem memory.Allocator, arr arrow.Array, idx []int) (arrow.Array, error) {
	d, err := takeData(mem, arr, idx)
	if err != nil {
		return nil, err
	}
	defer d.Release()
	return array.MakeFromData(d), nil
}

func takeData(mem memory.Allocator, arr arrow.Array, idx []int) (arrow.ArrayData, error) {
	data := arr.Data()
	dt := arr.DataType()
	n := len(idx)

	if ext, ok := arr.(array.ExtensionArray); ok {
		d, err := takeData(mem, ext.Storage(), idx)
		if err != nil {
			return nil, err
		}
		defer d.Release()
		out := array.NewData(dt, d.Len(), d.Buffers(), d.Children(), d.NullN(), d.Offset())
		if dict := d.Dictionary(); dict != nil {
			out.SetDictionary(dict)
		}
		return out, nil
	}

	switch dt.ID() {
	case arrow.NULL:
		return array.NewData(dt, n, []*memory.Buffer{nil}, nil, n, 0), nil

	case arrow.BOOL:
		valid, nulls := takeValidity(mem, data, idx)
		vals := newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
		if n > 0 {
			src, dst, off := data.Buffers()[1].Bytes(), vals.Bytes(), data.Offset()
			for j, i := range idx {
				if bitutil.BitIsSet(src, off+i) {
					bitutil.SetBit(dst, j)
				}
			}
		}
		return newData(dt, n, []*memory.Buffer{valid, vals}, nil, nulls), nil

	case arrow.DICTIONARY:
		valid, nulls := takeValidity(mem, data, idx)
		w := dt.(*arrow.DictionaryType).IndexType.(arrow.FixedWidthDataType).Bytes()
		vals := takeFixed(mem, data, w, idx)
		out := array.NewDataWithDictionary(dt, n, []*memory.Buffer{valid, vals}, nulls, 0, data.Dictionary().(*array.Data))
		release(valid, vals)
		return out, nil

	case arrow.STRING, arrow.BINARY:
		return takeVarBinary[int32](mem, data, idx)
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return takeVarBinary[int64](mem, data, idx)

	case arrow.STRING_VIEW, arrow.BINARY_VIEW:
		// Gather the 16-byte view headers; the character buffers they point into are shared, unless
		// the rows taken use less than half of them (compactViews).
		valid, nulls := takeValidity(mem, data, idx)
		views := takeFixed(mem, data, arrow.ViewHeaderSizeBytes, idx)
		chars := data.Buffers()[2:]
		if compact := compactViews(mem, views, valid, chars); compact != nil {
			chars = []*memory.Buffer{compact}
			defer compact.Release()
		}
		bufs := append([]*memory.Buffer{valid, views}, chars...)
		out := array.NewData(dt, n, bufs, nil, nulls, 0)
		release(valid, views)
		return out, nil

	case arrow.LIST, arrow.MAP:
		return takeList[int32](mem, arr, idx)
	case arrow.LARGE_LIST:
		return takeList[int64](mem, arr, idx)

	case arrow.FIXED_SIZE_LIST:
		size := dt.(*arrow.FixedSizeListType).Len()
		base := data.Offset() * int(size)
		cidx := make([]int, 0, n*int(size))
		for _, i := range idx {
			for k := range int(size) {
				cidx = append(cidx, base+i*int(size)+k)
			}
		}
		child := array.MakeFromData(data.Children()[0])
		defer child.Release()
		cd, err := takeData(mem, child, cidx)
		if err != nil {
			return nil, err
		}
		defer cd.Release()
		valid, nulls := takeValidity(mem, data, idx)
		return newData(dt, n, []*memory.Buffer{valid}, []arrow.ArrayData{cd}, nulls), nil

	case arrow.SPARSE_UNION, arrow.DENSE_UNION:
		return takeUnion(mem, data, idx)
	case arrow.RUN_END_ENCODED:
		return takeRunEndEncoded(mem, data, idx)
	case arrow.LIST_VIEW:
		return takeListView[int32](mem, data, idx)
	case arrow.LARGE_LIST_VIEW:
		return takeListView[int64](mem, data, idx)

	case arrow.STRUCT:
		st := arr.(*array.Struct)
		children := make([]arrow.ArrayData, st.NumField())
		defer func() {
			for _, c := range children {
				if c != nil {
					c.Release()
				}
			}
		}()
		for f := range children {
			cd, err := takeData(mem, st.Field(f), idx) // Field is already aligned with the struct's offset
			if err != nil {
				return nil, err
			}
			children[f] = cd
		}
		valid, nulls := takeValidity(mem, data, idx)
		return newData(dt, n, []*memory.Buffer{valid}, children, nulls), nil
	}

	if fw, ok := dt.(arrow.FixedWidthDataType); ok && fw.BitWidth() > 0 && fw.BitWidth()%8 == 0 {
		valid, nulls := takeValidity(mem, data, idx)
		vals := takeFixed(mem, data, fw.BitWidth()/8, idx)
		return newData(dt, n, []*memory.Buffer{valid, vals}, nil, nulls), nil
	}
	return takeBySlices(mem, arr, idx)
}

// compactViews copies the characters that views (freshly taken headers, which it rewrites in place)
// point into out of chars into one new buffer, and returns it, when they use less than half of chars;
// otherwise it returns nil and the views keep pointing into chars. Null views become empty inline
// ones. arrow-go's IPC writer sends every character buffer of a view array whole, however few of
// its bytes the array uses: a slice of a large view column, or a part of one HashPartition took,
// would otherwise carry all of them.
func compactViews(mem memory.Allocator, views, valid *memory.Buffer, chars []*memory.Buffer) *memory.Buffer {
	hs := view[arrow.ViewHeader](views.Bytes())
	var bits []byte
	if valid != nil {
		bits = valid.Bytes()
	}
	used, total := viewBytes(hs, bits, 0, chars)
	if total == 0 || 2*used >= total || used > math.MaxInt32 { // one buffer, int32 offsets
		return nil
	}
	buf := allocBuffer(mem, used)
	dst := buf.Bytes()
	pos := 0
	for i := range hs {
		h := &hs[i]
		if bits != nil && !bitutil.BitIsSet(bits, i) {
			*h = arrow.ViewHeader{}
			continue
		}
		if h.IsInline() {
			continue
		}
		src := chars[h.BufferIndex()].Bytes()[h.BufferOffset():]
		copy(dst[pos:pos+h.Len()], src[:h.Len()])
		h.SetIndexOffset(0, int32(pos))
		pos += h.Len()
	}
	return buf
}

// viewBytes returns how many bytes chars, the character buffers of a view array, hold in all, and how
// many of them its views hs use: those of the views neither inline nor null. bits is the validity
// bitmap (nil when no view is null) and bitOff the bit of hs[0] in it.
func viewBytes(hs []arrow.ViewHeader, bits []byte, bitOff int, chars []*memory.Buffer) (used, total int) {
	for _, b := range chars {
		if b != nil {
			total += b.Len()
		}
	}
	for i := range hs {
		if !hs[i].IsInline() && (bits == nil || bitutil.BitIsSet(bits, bitOff+i)) {
			used += hs[i].Len()
		}
	}
	return used, total
}

// newData wraps freshly made buffers and children in a Data and drops this function's references to
// them (NewData retains what it keeps).
func newData(dt arrow.DataType, n int, bufs []*memory.Buffer, children []arrow.ArrayData, nulls int) arrow.ArrayData {
	d := array.NewData(dt, n, bufs, children, nulls, 0)
	release(bufs...)
	return d
}

func release(bufs ...*memory.Buffer) {
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
}

// newBuffer allocates a zeroed buffer of n bytes (for bitmaps, which are set bit by bit).
func newBuffer(mem memory.Allocator, n int) *memory.Buffer {
	b := allocBuffer(mem, n)
	memory.Set(b.Bytes(), 0)
	return b
}

// allocBuffer allocates a buffer of n bytes that the caller overwrites entirely.
func allocBuffer(mem memory.Allocator, n int) *memory.Buffer {
	b := memory.NewResizableBuffer(mem)
	b.Resize(n)
	return b
}

// takeValidity gathers the validity bits; it returns a nil bitmap when no taken element is null.
func takeValidity(mem memory.Allocator, data arrow.ArrayData, idx []int) (*memory.Buffer, int) {
	if data.NullN() == 0 || data.Buffers()[0] == nil {
		return nil, 0
	}
	buf := newBuffer(mem, int(bitutil.BytesForBits(int64(len(idx)))))
	src, dst, off := data.Buffers()[0].Bytes(), buf.Bytes(), data.Offset()
	valid := 0
	for j, i := range idx {
		if bitutil.BitIsSet(src, off+i) {
			bitutil.SetBit(dst, j)
			valid++
		}
	}
	if valid == len(idx) {
		buf.Release()
		return nil, 0
	}
	return buf, len(idx) - valid
}

// takeFixed gathers elements of w bytes from buffer 1 of data.
func takeFixed(mem memory.Allocator, data arrow.ArrayData, w int, idx []int) *memory.Buffer {
	buf := allocBuffer(mem, w*len(idx))
	if len(idx) == 0 {
		return buf
	}
	src := data.Buffers()[1].Bytes()[data.Offset()*w:]
	dst := buf.Bytes()
	if isRange(idx) {
		copy(dst, src[idx[0]*w:(idx[0]+len(idx))*w])
		return buf
	}
	switch w {
	case 1:
		gather(dst, src, idx)
	case 2:
		gather(view[uint16](dst), view[uint16](src), idx)
	case 4:
		gather(view[uint32](dst), view[uint32](src), idx)
	case 8:
		gather(view[uint64](dst), view[uint64](src), idx)
	case 16:
		gather(view[[2]uint64](dst), view[[2]uint64](src), idx)
	case 32:
		gather(view[[4]uint64](dst), view[[4]uint64](src), idx)
	default:
		for j, i := range idx {
			copy(dst[j*w:(j+1)*w], src[i*w:(i+1)*w])
		}
	}
	return buf
}

func gather[T any](dst, src []T, idx []int) {
	dst = dst[:len(idx)]
	for j, i := range idx {
		dst[j] = src[i]
	}
}

// view reinterprets b as a slice of T (arrow buffers are 64-byte aligned).
func view[T any](b []byte) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b) < size {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size)
}

func takeVarBinary[O int32 | int64](mem memory.Allocator, data arrow.ArrayData, idx []int) (arrow.ArrayData, error) {
	n := len(idx)
	var offs []O
	if data.Len() > 0 {
		offs = arrow.GetOffsets[O](data, 1)
	}
	var raw []byte
	if b := data.Buffers()[2]; b != nil {
		raw = b.Bytes()
	}
	var total int64
	for _, i := range idx {
		total += int64(offs[i+1] - offs[i])
	}
	if unsafe.Sizeof(O(0)) == 4 && total > math.MaxInt32 {
		return nil, fmt.Errorf("taking %d values of %s needs %d bytes, more than 32-bit offsets address", n, data.DataType(), total)
	}
	offBuf := allocBuffer(mem, (n+1)*int(unsafe.Sizeof(O(0))))
	dataBuf := allocBuffer(mem, int(total))
	no, dst := view[O](offBuf.Bytes()), dataBuf.Bytes()
	var pos O
	if isRange(idx) { // one copy of the bytes, offsets rebased
		lo := idx[0]
		copy(dst, raw[offs[lo]:offs[lo+n]])
		for j := range n + 1 {
			no[j] = offs[lo+j] - offs[lo]
		}
	} else {
		for j, i := range idx {
			no[j] = pos
			pos += O(copy(dst[pos:], raw[offs[i]:offs[i+1]]))
		}
		no[n] = pos
	}
	valid, nulls := takeValidity(mem, data, idx)
	return newData(data.DataType(), n, []*memory.Buffer{valid, offBuf, dataBuf}, nil, nulls), nil
}

// takeList gathers whole lists: new offsets, and a take of the child values they span.
func takeList[O int32 | int64](mem memory.Allocator, arr arrow.Array, idx []int) (arrow.ArrayData, error) {
	data := arr.Data()
	n := len(idx)
	var offs []O
	if data.Len() > 0 {
		offs = arrow.GetOffsets[O](data, 1)
	}
	var total int
	for _, i := range idx {
		total += int(offs[i+1] - offs[i])
	}
	if unsafe.Sizeof(O(0)) == 4 && total > math.MaxInt32 {
		return nil, fmt.Errorf("taking %d lists of %s needs %d child values, more than 32-bit offsets address", n, data.DataType(), total)
	}
	offBuf := allocBuffer(mem, (n+1)*int(unsafe.Sizeof(O(0))))
	no := view[O](offBuf.Bytes())
	cidx := make([]int, 0, total)
	for j, i := range idx {
		no[j] = O(len(cidx))
		for k := offs[i]; k < offs[i+1]; k++ {
			cidx = append(cidx, int(k))
		}
	}
	no[n] = O(len(cidx))
	child := array.MakeFromData(data.Children()[0])
	defer child.Release()
	cd, err := takeData(mem, child, cidx)
	if err != nil {
		offBuf.Release()
		return nil, err
	}
	defer cd.Release()
	valid, nulls := takeValidity(mem, data, idx)
	return newData(data.DataType(), n, []*memory.Buffer{valid, offBuf}, []arrow.ArrayData{cd}, nulls), nil
}

// takeBySlices handles types without a kernel of their own (none of the types arrow-go has today):
// it concatenates zero-copy slices of the runs of consecutive indices.
func takeBySlices(mem memory.Allocator, arr arrow.Array, idx []int) (arrow.ArrayData, error) {
	var slices []arrow.Array
	defer func() {
		for _, s := range slices {
			s.Release()
		}
	}()
	for j := 0; j < len(idx); {
		k := j + 1
		for k < len(idx) && idx[k] == idx[k-1]+1 {
			k++
		}
		slices = append(slices, array.NewSlice(arr, int64(idx[j]), int64(idx[k-1]+1)))
		j = k
	}
	if len(slices) == 0 {
		slices = append(slices, array.NewSlice(arr, 0, 0))
	}
	out, err := array.Concatenate(slices, mem)
	if err != nil {
		return nil, fmt.Errorf("take %s: %w", arr.DataType(), err)
	}
	defer out.Release()
	d := out.Data()
	d.Retain()
	return d, nil
}

// takeUnion gathers the type ids (and, for a dense union, rebuilds the offsets) and takes from each
// child the values the rows use: all of them at the same positions for a sparse union, the ones the
// offsets point at for a dense union. Unions have no validity bitmap.
func takeUnion(mem memory.Allocator, data arrow.ArrayData, idx []int) (arrow.ArrayData, error) {
	dt := data.DataType().(arrow.UnionType)
	n, off := len(idx), data.Offset()
	typeIDs := takeFixed(mem, data, 1, idx)
	children := make([]arrow.ArrayData, len(data.Children()))
	defer func() {
		for _, c := range children {
			if c != nil {
				c.Release()
			}
		}
	}()
	takeChild := func(c int, cidx []int) error {
		child := array.MakeFromData(data.Children()[c])
		defer child.Release()
		cd, err := takeData(mem, child, cidx)
		children[c] = cd
		return err
	}
	if dt.Mode() == arrow.SparseMode {
		cidx := make([]int, n)
		for j, i := range idx {
			cidx[j] = off + i
		}
		for c := range children {
			if err := takeChild(c, cidx); err != nil {
				typeIDs.Release()
				return nil, err
			}
		}
		return newData(dt, n, []*memory.Buffer{nil, typeIDs}, children, 0), nil
	}
	var codes []arrow.UnionTypeCode
	var offs []int32
	if n > 0 {
		codes = view[arrow.UnionTypeCode](data.Buffers()[1].Bytes())[off:]
		offs = view[int32](data.Buffers()[2].Bytes())[off:]
	}
	ids := dt.ChildIDs()
	cidx := make([][]int, len(children))
	offBuf := allocBuffer(mem, 4*n)
	newOffs := view[int32](offBuf.Bytes())
	for j, i := range idx {
		c := ids[codes[i]]
		newOffs[j] = int32(len(cidx[c]))
		cidx[c] = append(cidx[c], int(offs[i]))
	}
	for c := range children {
		if err := takeChild(c, cidx[c]); err != nil {
			release(typeIDs, offBuf)
			return nil, err
		}
	}
	return newData(dt, n, []*memory.Buffer{nil, typeIDs, offBuf}, children, 0), nil
}

// takeListView gathers list views into a compact list view: the child values of each taken list,
// in order, with fresh offsets and the same sizes.
func takeListView[O int32 | int64](mem memory.Allocator, data arrow.ArrayData, idx []int) (arrow.ArrayData, error) {
	n, off := len(idx), data.Offset()
	var offs, sizes []O
	if data.Len() > 0 {
		offs = view[O](data.Buffers()[1].Bytes())[off:]
		sizes = view[O](data.Buffers()[2].Bytes())[off:]
	}
	w := int(unsafe.Sizeof(O(0)))
	offBuf, sizeBuf := allocBuffer(mem, w*n), allocBuffer(mem, w*n)
	newOffs, newSizes := view[O](offBuf.Bytes()), view[O](sizeBuf.Bytes())
	var cidx []int
	for j, i := range idx {
		size := O(0)
		if data.NullN() == 0 || isValid(data, i) {
			size = sizes[i]
		}
		newOffs[j], newSizes[j] = O(len(cidx)), size
		for k := offs[i]; k < offs[i]+size; k++ {
			cidx = append(cidx, int(k))
		}
	}
	child := array.MakeFromData(data.Children()[0])
	defer child.Release()
	cd, err := takeData(mem, child, cidx)
	if err != nil {
		release(offBuf, sizeBuf)
		return nil, err
	}
	defer cd.Release()
	valid, nulls := takeValidity(mem, data, idx)
	return newData(data.DataType(), n, []*memory.Buffer{valid, offBuf, sizeBuf}, []arrow.ArrayData{cd}, nulls), nil
}

// isRange reports whether idx is a run of consecutive indices (a slice to copy, not rows to gather).
func isRange(idx []int) bool {
	if len(idx) == 0 || idx[len(idx)-1]-idx[0] != len(idx)-1 {
		return false
	}
	for j := 1; j < len(idx); j++ {
		if idx[j] != idx[j-1]+1 {
			return false
		}
	}
	return true
}

// takeRunEndEncoded builds a fresh run-end encoded array at offset 0: each taken row's run is found in
// the run ends (walking forward while the rows ascend, by binary search otherwise), rows of one run
// that end up next to each other share an output run, and the values of the runs used are taken.
func takeRunEndEncoded(mem memory.Allocator, data arrow.ArrayData, idx []int) (arrow.ArrayData, error) {
	dt := data.DataType().(*arrow.RunEndEncodedType)
	if len(data.Children()) != 2 {
		return nil, fmt.Errorf("%s: %d children", dt, len(data.Children()))
	}
	endsData, valuesData := data.Children()[0], data.Children()[1]
	ends := make([]int64, endsData.Len())
	switch dt.RunEnds().ID() {
	case arrow.INT16:
		for k, e := range arrow.GetValues[int16](endsData, 1) {
			ends[k] = int64(e)
		}
	case arrow.INT32:
		for k, e := range arrow.GetValues[int32](endsData, 1) {
			ends[k] = int64(e)
		}
	case arrow.INT64:
		copy(ends, arrow.GetValues[int64](endsData, 1))
	default:
		return nil, fmt.Errorf("%s: run ends of type %s", dt, dt.RunEnds())
	}
	var (
		phys    []int   // the input run of each output run
		outEnds []int64 // output run ends
		k       int
		prev    = int64(-1)
	)
	for j, i := range idx {
		pos := int64(data.Offset() + i)
		if pos < prev {
			k = 0
		}
		for k < len(ends) && ends[k] <= pos {
			k++
		}
		prev = pos
		if k == len(ends) {
			return nil, fmt.Errorf("%s: row %d lies past the last run end", dt, i)
		}
		if n := len(phys); n > 0 && phys[n-1] == k {
			outEnds[n-1] = int64(j + 1)
		} else {
			phys = append(phys, k)
			outEnds = append(outEnds, int64(j+1))
		}
	}
	w := dt.RunEnds().(arrow.FixedWidthDataType).Bytes()
	endBuf := allocBuffer(mem, w*len(outEnds))
	switch w {
	case 2:
		for r, e := range outEnds {
			view[int16](endBuf.Bytes())[r] = int16(e)
		}
	case 4:
		for r, e := range outEnds {
			view[int32](endBuf.Bytes())[r] = int32(e)
		}
	case 8:
		copy(view[int64](endBuf.Bytes()), outEnds)
	}
	if w < 8 && len(outEnds) > 0 && outEnds[len(outEnds)-1] > 1<<(8*w-1)-1 {
		endBuf.Release()
		return nil, fmt.Errorf("%s: %d rows overflow the run ends", dt, len(idx))
	}
	runEnds := newData(dt.RunEnds(), len(outEnds), []*memory.Buffer{nil, endBuf}, nil, 0)
	defer runEnds.Release()
	values := array.MakeFromData(valuesData)
	defer values.Release()
	vd, err := takeData(mem, values, phys)
	if err != nil {
		return nil, err
	}
	defer vd.Release()
	return array.NewData(dt, len(idx), []*memory.Buffer{nil}, []arrow.ArrayData{runEnds, vd}, 0, 0), nil
}
