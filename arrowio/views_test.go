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
