package arrowio

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/stretchr/testify/require"
)

// fbFieldAt returns where the field in vtable slot `slot` of the flatbuffer table at `table` lies.
func fbFieldAt(t *testing.T, buf []byte, table, slot int) int {
	t.Helper()
	vt := table - int(int32(binary.LittleEndian.Uint32(buf[table:])))
	fo := int(binary.LittleEndian.Uint16(buf[vt+4+2*slot:]))
	require.NotZero(t, fo, "field %d of the table at %d is absent", slot, table)
	return table + fo
}

// firstBatch returns the metadata of the second message of stream, an IPC stream whose second message
// is a record batch (its first: the schema), and where in it the RecordBatch table lies: the bytes to
// patch to test what a message may claim. meta aliases stream.
func firstBatch(t *testing.T, stream []byte) (meta []byte, rb int) {
	t.Helper()
	var metas [][]byte
	_, err := walkMessages(stream, func(metaAt, metaLen, _, _ int) { metas = append(metas, stream[metaAt:metaAt+metaLen]) })
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(metas), 2, "a schema and a record batch")
	meta = metas[1]
	root := int(binary.LittleEndian.Uint32(meta))
	header := fbFieldAt(t, meta, root, 2) // Message.header: the RecordBatch
	return meta, header + int(binary.LittleEndian.Uint32(meta[header:]))
}

// withVariadicCount returns a copy of stream, an IPC stream whose second message is a record batch of
// one view column, with that batch's variadic buffer count set to count.
func withVariadicCount(t *testing.T, stream []byte, count int64) []byte {
	stream = bytes.Clone(stream)
	meta, rb := firstBatch(t, stream)
	counts := fbFieldAt(t, meta, rb, 4) // RecordBatch.variadicBufferCounts
	vec := counts + int(binary.LittleEndian.Uint32(meta[counts:]))
	require.Equal(t, uint32(1), binary.LittleEndian.Uint32(meta[vec:]), "one view column")
	require.Equal(t, uint64(1), binary.LittleEndian.Uint64(meta[vec+4:]), "one data buffer")
	binary.LittleEndian.PutUint64(meta[vec+4:], uint64(count))
	return stream
}

// A record batch's variadic buffer counts (how many data buffers each view column has) are checked
// against the message's buffers before arrow-go reads them: arrow-go makes a slice of as many buffer
// references as a count says before it looks for them, so a count of 2^27 cost 1 GiB and one of 2^40
// ended the process (an allocation Go cannot survive), where both are an error now.
func TestVariadicCountsChecked(t *testing.T) {
	mem := checkedMem(t)
	b := array.NewStringViewBuilder(mem)
	b.AppendValues([]string{"a string longer than twelve bytes", "short"}, nil)
	col := b.NewArray()
	b.Release()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: col.DataType()}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 2)
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer tbl.Release()
	stream := ipcBytes(t, tbl, false)

	for _, c := range []struct {
		count int64
		want  string // "" when the stream must decode to tbl's rows
	}{
		{1, ""},
		{1 << 27, "variadic buffer count 134217728"},
		{-1, "variadic buffer count -1"},
		{4, "variadic buffer count 4 of view column 0, with 3 of the message's 3 buffers left"},
	} {
		data := withVariadicCount(t, stream, c.count)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got, err := DecodeIPC(data, WithAllocator(mem))
		runtime.ReadMemStats(&after)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "count %d: bytes allocated", c.count)
		if got = requireDecoded(t, got, err, c.want, "count %d", c.count); got != nil {
			require.Equal(t, rowStrings(tbl), rowStrings(got))
			got.Release()
		}

		// The same stream as one chunk on the wire.
		framed := binary.LittleEndian.AppendUint32(nil, uint32(len(data)))
		dec := decodeFramed(mem, append(framed, data...))
		if c.want == "" {
			require.NoError(t, dec.err)
		} else {
			require.ErrorContains(t, dec.err, c.want, "count %d on the wire", c.count)
		}
		dec.close()
	}
}
