package arrowio

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// withRows returns a copy of stream, an IPC stream whose second message is a record batch, with that
// batch's length and the length of its first field node set to rows.
func withRows(t *testing.T, stream []byte, rows int64) []byte {
	stream = bytes.Clone(stream)
	meta, rb := firstBatch(t, stream)
	binary.LittleEndian.PutUint64(meta[fbFieldAt(t, meta, rb, 0):], uint64(rows)) // RecordBatch.length
	nodes := fbFieldAt(t, meta, rb, 1)                                            // RecordBatch.nodes
	vec := nodes + int(binary.LittleEndian.Uint32(meta[nodes:]))
	binary.LittleEndian.PutUint64(meta[vec+4:], uint64(rows)) // FieldNode.length of the first
	return stream
}

// Lengths a message claims are checked against the buffers and children that must back them without
// overflowing: a fixed-size list of 2^31-1 values per list claiming 2^33 lists over 2^31-1 values
// needs 2^64-2^33 child values, a product that wrapped to a negative number, so the batch was accepted
// and reading its second row panicked in the caller (a slice past the child's end); likewise a
// fixed-size binary of 1 MiB a value claiming 2^44 values over a 1 MiB buffer (2^64 bytes wrapped to 0).
func TestLengthProductsDoNotOverflow(t *testing.T) {
	mem := checkedMem(t)
	nulls := array.NewNull(1<<31 - 1)
	defer nulls.Release()
	fsl := arrow.FixedSizeListOf(1<<31-1, arrow.Null)
	fslData := array.NewData(fsl, 1, []*memory.Buffer{nil}, []arrow.ArrayData{nulls.Data()}, 0, 0)
	defer fslData.Release()
	fb := array.NewFixedSizeBinaryBuilder(mem, &arrow.FixedSizeBinaryType{ByteWidth: 1 << 20})
	fb.Append(make([]byte, 1<<20))
	fixed := fb.NewArray()
	fb.Release()
	defer fixed.Release()
	ib := array.NewInt64Builder(mem)
	ib.Append(7)
	ints := ib.NewArray()
	ib.Release()
	defer ints.Release()

	for _, c := range []struct {
		name string
		col  arrow.ArrayData
		rows int64
		want string
	}{
		{"fixed-size list", fslData, 1 << 33, "2147483647 child values for 8589934592 lists"},
		{"fixed-size binary", fixed.Data(), 1 << 44, "1048576 bytes for 17592186044416 values"},
		{"int64", ints.Data(), 1 << 61, "2305843009213693952"},
	} {
		col := array.MakeFromData(c.col)
		schema := arrow.NewSchema([]arrow.Field{{Name: "c", Type: col.DataType()}}, nil)
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, 1)
		col.Release()
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
		require.NoError(t, w.Write(rec))
		require.NoError(t, w.Close())
		rec.Release()
		// Lifting the bound on rows without data lets these lengths reach validation (a fixed-size
		// list of null values stores nothing per row; TestDatalessRowsBounded tests the bound).
		got, err := DecodeIPC(withRows(t, buf.Bytes(), c.rows), WithAllocator(mem), WithMaxDatalessRows(math.MaxInt64))
		requireDecoded(t, got, err, c.want, c.name)
	}
}
