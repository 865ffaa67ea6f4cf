package arrowio

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// viewTable is a table of one batch: a string_view column of rows distinct strings (every third null,
// some short enough to be inline, the others of 100 bytes), an int64 column, and a struct holding a
// string_view field of the same strings.
func viewTable(t *testing.T, mem memory.Allocator, rows int) arrow.Table {
	t.Helper()
	sb := array.NewStringViewBuilder(mem)
	ib := array.NewInt64Builder(mem)
	for i := range rows {
		ib.Append(int64(i))
		if i%3 == 2 {
			sb.AppendNull()
			continue
		}
		if i%5 == 0 { // inline: no characters in the buffers
			sb.Append(fmt.Sprintf("s%d", i))
			continue
		}
		sb.Append(fmt.Sprintf("%0100d", i))
	}
	strs, ints := sb.NewArray(), ib.NewArray()
	sb.Release()
	ib.Release()
	defer strs.Release()
	defer ints.Release()
	st, err := array.NewStructArray([]arrow.Array{strs}, []string{"s"})
	require.NoError(t, err)
	defer st.Release()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "v", Type: strs.DataType(), Nullable: true},
		{Name: "k", Type: ints.DataType()},
		{Name: "st", Type: st.DataType(), Nullable: true},
	}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{strs, ints, st}, int64(rows))
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// A slice of a view column references a part of its data buffers, but arrow-go's IPC writer sends
// every data buffer of every slice whole: a 2 MB string_view column cut into messages of 64 KiB went
// out as about 40 messages of all 2 MB each (and HashPartition's parts, which share the buffers, each
// carried all of them), where the bytes sent must stay near the bytes the rows hold. The rows arrive
// as they were.
func TestViewSlicesSendTheirBytes(t *testing.T) {
	mem := checkedMem(t)
	const rows = 20000
	tbl := viewTable(t, mem, rows)
	defer tbl.Release()
	held := int64(0) // what the rows hold: 100 bytes a string (twice), 16 a view header, 8 an int
	held = rows*2*(100*2/3+16) + rows*8

	sent := func(tbl arrow.Table, opts ...Option) int64 {
		cfg := newConfig(append(opts, WithAllocator(mem)))
		out := newOutStream(tbl, nil, &cfg, cfg.batchBytes, nil)
		defer out.close()
		n := int64(0)
		for !out.done {
			n += int64(len(out.nextChunk()))
		}
		require.NoError(t, out.localErr)
		return n
	}
	n := sent(tbl, WithBatchBytes(64<<10))
	require.Less(t, n, 2*held, "bytes sent for %d bytes of rows in 64 KiB messages", held)
	dec := decodeFramed(mem, encodeChunks(t, tbl, WithAllocator(mem), WithBatchBytes(64<<10)))
	require.NoError(t, dec.err)
	got := dec.table()
	require.Equal(t, rowStrings(tbl), rowStrings(got))
	got.Release()
	dec.close()

	parts, err := HashPartition(t.Context(), tbl, []string{"k"}, 8, WithAllocator(mem))
	require.NoError(t, err)
	defer releaseTables(parts)
	total := int64(0)
	var all []string
	for _, p := range parts {
		total += sent(p)
		all = append(all, rowStrings(p)...)
	}
	require.Less(t, total, 2*held, "bytes sent for the 8 parts of %d bytes of rows", held)
	require.Equal(t, sorted(rowStrings(tbl)), sorted(all))
}

// TestViewCompactionKeepsValues: the view columns that take and ipcSafe compact (compactViews) arrive
// with the values they had, bit for bit, compared row by row with the original (array.SliceEqual):
// string views with nulls and inline values, a second column sharing the first one's character
// buffers (headers reversed), views inside lists and fixed-size lists, binary views with any bytes;
// sent in messages of several sizes and as HashPartition's parts.
func TestViewCompactionKeepsValues(t *testing.T) {
	mem := checkedMem(t)
	const rows = 6000
	sb := array.NewStringViewBuilder(mem)
	ib := array.NewInt64Builder(mem)
	lb := array.NewListBuilder(mem, arrow.BinaryTypes.StringView)
	lvb := lb.ValueBuilder().(*array.StringViewBuilder)
	fb := array.NewFixedSizeListBuilder(mem, 2, arrow.BinaryTypes.BinaryView)
	fvb := fb.ValueBuilder().(*array.BinaryViewBuilder)
	for i := range rows {
		ib.Append(int64(i))
		switch {
		case i%3 == 2:
			sb.AppendNull()
		case i%5 == 0:
			sb.Append(fmt.Sprintf("s%d", i))
		default:
			sb.Append(fmt.Sprintf("%0100d", i))
		}
		if i%7 == 3 {
			lb.AppendNull()
		} else {
			lb.Append(true)
			for j := range i % 4 {
				lvb.Append(fmt.Sprintf("list-%d-%d-%080d", i, j, i))
			}
		}
		fb.Append(true)
		fvb.Append([]byte(fmt.Sprintf("\x00\xff%d-%060d", i, i)))
		if i%2 == 0 {
			fvb.AppendNull()
		} else {
			fvb.Append([]byte{byte(i), 0, 1})
		}
	}
	v, k, l, f := sb.NewArray(), ib.NewArray(), lb.NewArray(), fb.NewArray()
	for _, b := range []array.Builder{sb, ib, lb, fb} {
		b.Release()
	}
	for _, a := range []arrow.Array{v, k, l, f} {
		defer a.Release()
	}
	// w shares v's character buffers, headers in reverse order, no validity.
	vh := arrow.GetData[arrow.ViewHeader](v.Data().Buffers()[1].Bytes())
	hb := memory.NewResizableBuffer(mem)
	hb.Resize(rows * arrow.ViewHeaderSizeBytes)
	wh := arrow.GetData[arrow.ViewHeader](hb.Bytes())
	for i := range rows {
		wh[i] = vh[rows-1-i]
		if v.IsNull(rows - 1 - i) {
			wh[i] = arrow.ViewHeader{}
		}
	}
	wd := array.NewData(arrow.BinaryTypes.StringView, rows, append([]*memory.Buffer{nil, hb}, v.Data().Buffers()[2:]...), nil, 0, 0)
	hb.Release()
	w := array.MakeFromData(wd)
	wd.Release()
	defer w.Release()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "v", Type: v.DataType(), Nullable: true}, {Name: "k", Type: k.DataType()},
		{Name: "l", Type: l.DataType(), Nullable: true}, {Name: "f", Type: f.DataType(), Nullable: true},
		{Name: "w", Type: w.DataType()},
	}, nil)
	cols := []arrow.Array{v, k, l, f, w}
	rec := array.NewRecordBatch(schema, cols, rows)
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer tbl.Release()

	check := func(got arrow.Table) int {
		n := 0
		kc := got.Column(1)
		for ci, ch := range kc.Data().Chunks() {
			ks := ch.(*array.Int64)
			for r := range ks.Len() {
				orig := int(ks.Value(r))
				for c := range cols {
					gc := got.Column(c).Data().Chunk(ci)
					require.True(t, array.SliceEqual(cols[c], int64(orig), int64(orig+1), gc, int64(r), int64(r+1)), "row %d col %d", orig, c)
				}
				n++
			}
		}
		return n
	}
	sizes := map[int64]int{}
	for _, bb := range []int64{4 << 10, 64 << 10, 1 << 20} {
		framed := encodeChunks(t, tbl, WithAllocator(mem), WithBatchBytes(bb))
		sizes[bb] = len(framed)
		dec := decodeFramed(mem, framed)
		require.NoError(t, dec.err)
		got := dec.table()
		require.Equal(t, rows, check(got))
		got.Release()
		dec.close()
	}
	// The slices' messages carry the characters their rows use, in the lists too.
	require.Less(t, sizes[4<<10], 2*sizes[1<<20], "bytes sent in 4 KiB messages, against one message")
	parts, err := HashPartition(t.Context(), tbl, []string{"k"}, 5, WithAllocator(mem))
	require.NoError(t, err)
	defer releaseTables(parts)
	total := 0
	for _, p := range parts {
		total += check(p)
		framed := encodeChunks(t, p, WithAllocator(mem), WithBatchBytes(16<<10))
		dec := decodeFramed(mem, framed)
		require.NoError(t, dec.err)
		got := dec.table()
		check(got)
		require.Less(t, len(framed), sizes[1<<20]/2, "bytes sent for a part of %d rows", p.NumRows())
		got.Release()
		dec.close()
	}
	require.Equal(t, rows, total)
}
