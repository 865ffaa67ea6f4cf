package arrowio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// ipcBytes writes tbl as an Arrow IPC stream or file.
func ipcBytes(t *testing.T, tbl arrow.Table, file bool, opts ...ipc.Option) []byte {
	var buf bytes.Buffer
	opts = append(opts, ipc.WithSchema(tbl.Schema()))
	var w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	if file {
		fw, err := ipc.NewFileWriter(&buf, opts...)
		require.NoError(t, err)
		w = fw
	} else {
		w = ipc.NewWriter(&buf, opts...)
	}
	tr := array.NewTableReader(tbl, 7)
	defer tr.Release()
	for tr.Next() {
		require.NoError(t, w.Write(tr.RecordBatch()))
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// requireDecoded checks what DecodeIPC returned: with want "", that it decoded, returning the table
// (the caller releases it); otherwise that it failed with an error containing want, releasing any
// table it returned too, and returns nil.
func requireDecoded(t *testing.T, got arrow.Table, err error, want string, msgAndArgs ...any) arrow.Table {
	t.Helper()
	if want == "" {
		require.NoError(t, err, msgAndArgs...)
		return got
	}
	if got != nil {
		got.Release()
	}
	require.ErrorContains(t, err, want, msgAndArgs...)
	return nil
}

// DecodeIPC reads what arrow-go's IPC writers write, stream and file,
// compressed or not, as the table written; and refuses what is not a whole
// stream or file.
func TestDecodeIPC(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator()) // for what DecodeIPC allocates
	defer mem.AssertSize(t, 0)
	// Every type arrow-go's IPC file writer writes (the first 36), in one
	// chunk (the file format has one dictionary per column); on the Go
	// allocator, since the file writer keeps references to the dictionaries.
	schema := arrow.NewSchema(allTypes()[:36], nil)
	tbl := genTable(t, memory.NewGoAllocator(), schema, genSpec{rows: 40, chunks: 1, card: 6, nulls: 0.2, seed: 7})
	defer tbl.Release()
	want := rowStrings(tbl)
	for _, c := range []struct {
		name string
		file bool
		opts []ipc.Option
	}{
		{"stream", false, nil},
		{"file", true, nil},
		{"stream lz4", false, []ipc.Option{ipc.WithLZ4()}},
		{"file zstd", true, []ipc.Option{ipc.WithZstd()}},
	} {
		data := ipcBytes(t, tbl, c.file, c.opts...)
		got, err := DecodeIPC(data, WithAllocator(mem))
		require.NoError(t, err, c.name)
		require.True(t, got.Schema().Equal(schema), c.name)
		require.Equal(t, want, rowStrings(got), c.name)
		got.Release()
	}

	stream := ipcBytes(t, tbl, false)
	file := ipcBytes(t, tbl, true)
	footer := bytes.Clone(file)
	shortFooter := bytes.Clone(file)
	shortFooter[len(shortFooter)-10]--                            // one byte of the footer follows the end of the stream
	binary.LittleEndian.PutUint32(footer[len(footer)-10:], 1<<30) // the footer's length
	bad := []struct {
		name, want string
		data       []byte
	}{
		{"empty", "no schema", nil},
		{"truncated stream", "overruns", stream[:len(stream)-20]},
		{"file without its closing magic", "closing magic", file[:len(file)-1]},
		{"file footer length", "footer of 1073741824 bytes", footer},
		{"file footer length one short", "", shortFooter},
		{"garbage", "", []byte("not an Arrow IPC stream at all")},
	}
	for _, b := range bad {
		got, err := DecodeIPC(b.data, WithAllocator(mem))
		if err == nil {
			got.Release()
		}
		require.ErrorContains(t, err, b.want, b.name)
	}
}

// ValidateTable accepts a sound table and names the column and chunk of an
// inconsistent one.
func TestValidateTable(t *testing.T) {
	mem := memory.NewGoAllocator()
	tbl := genTable(t, mem, arrow.NewSchema(allTypes(), nil), genSpec{rows: 30, chunks: 2, card: 5, nulls: 0.2, seed: 3})
	defer tbl.Release()
	require.NoError(t, ValidateTable(tbl))

	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"a", "b"}, nil)
	dict := sb.NewArray()
	sb.Release()
	defer dict.Release()
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{0, 1, 7}, nil)
	idx := ib.NewArray()
	ib.Release()
	defer idx.Release()
	d := array.NewDictionaryArray(dt, idx, dict)
	defer d.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{d}, 3)
	defer rec.Release()
	bad := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer bad.Release()
	require.ErrorContains(t, ValidateTable(bad), `column 0 ("d") chunk 0`)
	require.ErrorContains(t, ValidateTable(bad), "outside the dictionary of 2 values")
}
