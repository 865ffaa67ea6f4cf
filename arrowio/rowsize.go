package arrowio

import (
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Cutting a batch by the sizes of its rows. splitBatch cuts a batch of evenly sized rows (every
// column of fixed width) into equal numbers of rows; a batch with variable-width columns (strings,
// binaries, lists, views) is cut where the sizes of its rows say, found from prefix sums over its
// offsets: the bytes rows [0, i) of a string column occupy are 4i and o[i]-o[0], of a list column 4i
// and what values [o[0], o[i]) of its child occupy, and so on down, so that a message of skewed rows
// (one row of 8 MiB among small ones) holds no more than its share.

// rowBits gives the bits that rows [0, i) of an array occupy in an IPC body, for 0 <= i <= its length:
// per bits a row, and what var adds (nil: nothing).
type rowBits struct {
	per int64
	vr  func(i int64) int64
}

func (r rowBits) at(i int64) int64 {
	b := r.per * i
	if r.vr != nil {
		b += r.vr(i)
	}
	return b
}

// unevenRows reports whether rows of dt can differ in size: it holds strings, binaries, lists or
// views, other than in a dictionary (sent once, not with its rows).
func unevenRows(dt arrow.DataType, depth int) bool {
	if depth > 64 {
		return false
	}
	switch t := dt.(type) {
	case *arrow.StringType, *arrow.BinaryType, *arrow.LargeStringType, *arrow.LargeBinaryType,
		*arrow.StringViewType, *arrow.BinaryViewType, *arrow.ListType, *arrow.LargeListType,
		*arrow.MapType, *arrow.ListViewType, *arrow.LargeListViewType:
		return true
	case *arrow.DictionaryType:
		return false
	case arrow.ExtensionType:
		return unevenRows(t.StorageType(), depth+1)
	case *arrow.StructType, *arrow.FixedSizeListType, *arrow.SparseUnionType:
		for _, f := range t.(arrow.NestedType).Fields() {
			if unevenRows(f.Type, depth+1) {
				return true
			}
		}
	}
	return false
}

// sizeRows returns the rowBits of d. Types whose rows it does not follow (run-end encoded, dense
// unions, deeper than 64) count their bytes spread evenly over their rows, as an even cut does.
func sizeRows(d arrow.ArrayData, depth int) rowBits {
	n := int64(d.Len())
	if n == 0 || d.DataType().ID() == arrow.NULL { // a null array is sent without buffers
		return rowBits{}
	}
	r := rowBits{}
	if d.NullN() > 0 {
		r.per = 1 // validity
	}
	dt := d.DataType()
	if ext, ok := dt.(arrow.ExtensionType); ok {
		dt = ext.StorageType() // the buffers and children are the storage's
	}
	off := int64(d.Offset())
	switch dt := dt.(type) {
	case *arrow.StringType, *arrow.BinaryType:
		o := arrow.GetOffsets[int32](d, 1)
		r.per += 32
		r.vr = func(i int64) int64 { return 8 * int64(o[i]-o[0]) }
		return r
	case *arrow.LargeStringType, *arrow.LargeBinaryType:
		o := arrow.GetOffsets[int64](d, 1)
		r.per += 64
		r.vr = func(i int64) int64 { return 8 * (o[i] - o[0]) }
		return r
	case *arrow.ListType, *arrow.MapType:
		o := arrow.GetOffsets[int32](d, 1)
		r.per += 32
		if c := childRows(d.Children()[0], int64(o[0]), int64(o[n]), depth); c.per != 0 || c.vr != nil {
			r.vr = func(i int64) int64 { return c.at(int64(o[i] - o[0])) }
		}
		return r
	case *arrow.LargeListType:
		o := arrow.GetOffsets[int64](d, 1)
		r.per += 64
		if c := childRows(d.Children()[0], o[0], o[n], depth); c.per != 0 || c.vr != nil {
			r.vr = func(i int64) int64 { return c.at(o[i] - o[0]) }
		}
		return r
	case *arrow.FixedSizeListType:
		k := int64(dt.Len())
		c := childRows(d.Children()[0], off*k, (off+n)*k, depth)
		r.per += k * c.per
		if c.vr != nil {
			r.vr = func(i int64) int64 { return c.vr(i * k) }
		}
		return r
	case *arrow.StructType, *arrow.SparseUnionType:
		if _, ok := dt.(*arrow.SparseUnionType); ok {
			r.per = 8 // type ids, no validity
		}
		var vrs []func(int64) int64
		for _, c := range d.Children() {
			cr := childRows(c, off, off+n, depth)
			r.per += cr.per
			if cr.vr != nil {
				vrs = append(vrs, cr.vr)
			}
		}
		if len(vrs) > 0 {
			r.vr = func(i int64) int64 {
				b := int64(0)
				for _, v := range vrs {
					b += v(i)
				}
				return b
			}
		}
		return r
	case *arrow.StringViewType, *arrow.BinaryViewType:
		// A view's characters lie in the data buffers unless it is inline (12 bytes or fewer);
		// ipcSafe compacts a slice that uses few of them, so a slice sends about its own.
		r.per += 128
		hs := arrow.GetData[arrow.ViewHeader](d.Buffers()[1].Bytes())[off : off+n]
		sum := make([]int64, n+1)
		for i := range hs {
			sum[i+1] = sum[i]
			if !hs[i].IsInline() {
				sum[i+1] += 8 * int64(hs[i].Len())
			}
		}
		r.vr = func(i int64) int64 { return sum[i] }
		return r
	case *arrow.ListViewType, *arrow.LargeListViewType:
		// ipcSafe compacts list views: each row sends the values it spans.
		var offs, sizes []int64
		if _, ok := dt.(*arrow.ListViewType); ok {
			r.per += 64
			for _, v := range arrow.GetData[int32](d.Buffers()[1].Bytes())[off : off+n] {
				offs = append(offs, int64(v))
			}
			for _, v := range arrow.GetData[int32](d.Buffers()[2].Bytes())[off : off+n] {
				sizes = append(sizes, int64(v))
			}
		} else {
			r.per += 128
			offs = arrow.GetData[int64](d.Buffers()[1].Bytes())[off : off+n]
			sizes = arrow.GetData[int64](d.Buffers()[2].Bytes())[off : off+n]
		}
		c := sizeRows(d.Children()[0], depth+1)
		sum := make([]int64, n+1)
		for i := range offs {
			sum[i+1] = sum[i]
			if sizes[i] > 0 {
				sum[i+1] += c.at(offs[i]+sizes[i]) - c.at(offs[i])
			}
		}
		r.vr = func(i int64) int64 { return sum[i] }
		return r
	case *arrow.DictionaryType:
		r.per += int64(dt.IndexType.(arrow.FixedWidthDataType).BitWidth())
		return r
	case arrow.FixedWidthDataType:
		r.per += int64(dt.BitWidth())
		return r
	}
	// Spread evenly.
	total := 8 * sizeOf(d, false)
	r.per = 0
	r.vr = func(i int64) int64 { return int64(float64(total) * float64(i) / float64(n)) }
	return r
}

// childRows is the rowBits of child's values [lo, hi), counted from lo.
func childRows(child arrow.ArrayData, lo, hi int64, depth int) rowBits {
	if hi <= lo || depth >= 64 {
		return rowBits{}
	}
	s := array.NewSliceData(child, lo, hi)
	r := sizeRows(s, depth+1)
	// The functions read s's buffers, which child keeps alive; s itself may go.
	s.Release()
	return r
}

// cutBySize returns where to cut rec (its row bounds, from 0 to its rows) so that each piece's rows
// occupy at most target bytes, or are one row.
func cutBySize(rec arrow.RecordBatch, target int64) []int64 {
	n := rec.NumRows()
	cols := make([]rowBits, 0, rec.NumCols())
	for _, col := range rec.Columns() {
		cols = append(cols, sizeRows(col.Data(), 0))
	}
	bits := func(i int64) int64 {
		b := int64(0)
		for _, c := range cols {
			b += c.at(i)
		}
		return b
	}
	limit := 8 * target
	bounds := []int64{0}
	for lo, at := int64(0), int64(0); lo < n; {
		// The first row past lo whose end is over the target: the piece ends before it.
		k := sort.Search(int(n-lo), func(k int) bool { return bits(lo+int64(k)+1)-at > limit })
		hi := max(lo+int64(k), lo+1)
		bounds = append(bounds, hi)
		lo, at = hi, bits(hi)
	}
	return bounds
}
