package arrowio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/stretchr/testify/require"
)

// A received view's 4-byte prefix must be the first bytes of the value it points to: arrow-go compares
// views by size and prefix before their bytes (ViewHeader.Equals, and so array.Equal), so a view whose
// prefix says otherwise made array.Equal call two arrays of the same strings different while Value
// returned the same string. Such a batch is refused, as Arrow's full validation refuses it.
func TestViewPrefixChecked(t *testing.T) {
	mem := checkedMem(t)
	const long = "a string longer than twelve bytes"
	for _, c := range []struct {
		name   string
		prefix string // what the header's prefix is patched to
		want   string
	}{
		{"as sent", long[:4], ""},
		{"wrong prefix", "zzzz", `column 0 ("v"): string_view: view 1 has prefix "zzzz" but its value starts "a st"`},
	} {
		b := array.NewStringViewBuilder(mem)
		b.AppendValues([]string{"short", long}, nil)
		col := b.NewArray()
		b.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: col.DataType()}}, nil)
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, 2)
		tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
		rec.Release()
		stream := ipcBytes(t, tbl, false)
		// The long value's header: its length (4 bytes, little endian), then its prefix.
		header := binary.LittleEndian.AppendUint32(nil, uint32(len(long)))
		header = append(header, long[:4]...)
		at := bytes.Index(stream, header)
		require.Positive(t, at, c.name)
		copy(stream[at+4:], c.prefix)
		got, err := DecodeIPC(stream, WithAllocator(mem))
		if got = requireDecoded(t, got, err, c.want, c.name); got != nil {
			require.True(t, array.Equal(col, got.Column(0).Data().Chunk(0)), c.name)
			got.Release()
		}
		col.Release()
		tbl.Release()
	}
}
