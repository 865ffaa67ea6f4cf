package arrowio

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A slice of a run-end encoded column is sent as the runs it spans (arrow-go's writer slices the
// children), so the sender's estimate of its bytes and of its widest field node counts those runs,
// not the children whole: slices of one large column group into few messages instead of one each.
func TestRunEndEncodedSliceEstimate(t *testing.T) {
	mem := checkedMem(t)
	const runs, runLen = 100_000, 3
	b := array.NewRunEndEncodedBuilder(mem, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64)
	vb := b.ValueBuilder().(*array.Int64Builder)
	for i := range runs {
		b.AppendRuns([]uint64{runLen})
		vb.Append(int64(i))
	}
	col := b.NewArray()
	b.Release()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "r", Type: col.DataType()}}, nil)
	whole := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	defer whole.Release()

	// sent is the size of the IPC message arrow-go writes for rec.
	sent := func(rec arrow.RecordBatch) int64 {
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
		require.NoError(t, w.Write(rec))
		require.NoError(t, w.Close())
		return int64(buf.Len())
	}
	wholeBytes := recordBytes(whole)
	assert.InDelta(t, float64(sent(whole)), float64(wholeBytes), 0.05*float64(wholeBytes), "the whole column")

	const pieces = 10
	var slices []arrow.RecordBatch
	for i := range pieces {
		lo := int64(i) * whole.NumRows() / pieces
		slices = append(slices, whole.NewSlice(lo+1, (int64(i)+1)*whole.NumRows()/pieces)) // off run boundaries
	}
	defer releaseBatches(slices)
	for i, s := range slices {
		est := recordBytes(s)
		assert.InDelta(t, float64(sent(s)), float64(est), 0.1*float64(est), "slice %d: estimate %d", i, est)
		assert.Less(t, widestNode(s), int64(runs/pieces*runLen+2), "slice %d: widest node", i)
	}
	// Ten slices of a column, grouped to half of its bytes a message, go in two messages.
	assert.Equal(t, []int{0, 5}, groupBatches(slices, wholeBytes/2+pieces*64, DefaultMaxDatalessRows))
}

// Chunks that share one large dictionary group into messages by their indices' bytes: the
// dictionary goes out once, with the first, and the writer does not send it again.
func TestSharedDictionaryCountedOnce(t *testing.T) {
	mem := checkedMem(t)
	const entries, chunks, rows = 50_000, 40, 1000
	vals := array.NewStringBuilder(mem)
	for i := range entries {
		vals.Append(fmt.Sprintf("a fairly long value %08d", i))
	}
	dict := vals.NewArray()
	vals.Release()
	defer dict.Release()
	idx := array.NewInt32Builder(mem)
	for i := range chunks * rows {
		idx.Append(int32(i * 7 % entries))
	}
	indices := idx.NewArray()
	idx.Release()
	defer indices.Release()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	col := array.NewDictionaryArray(dt, indices, dict)
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}}, nil)
	whole := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	defer whole.Release()
	var bs []arrow.RecordBatch
	for i := range chunks {
		bs = append(bs, whole.NewSlice(int64(i*rows), int64((i+1)*rows)))
	}
	defer releaseBatches(bs)

	dictBytes := approxBytes(dict.Data())
	target := int64(chunks * rows * 4) // every chunk's indices, far less than the dictionary
	require.Greater(t, dictBytes, 5*target)
	// The first chunk, which carries the dictionary, travels alone; the other 39 together.
	assert.Equal(t, []int{0, 1}, groupBatches(bs, target, DefaultMaxDatalessRows))

	// Chunks with dictionaries of their own count each.
	copyOfDict := array.NewSlice(dict, 0, entries) // the same values in another array
	defer copyOfDict.Release()
	other := array.NewDictionaryArray(dt, indices, copyOfDict)
	defer other.Release()
	mixed := array.NewRecordBatch(schema, []arrow.Array{other}, int64(other.Len()))
	defer mixed.Release()
	second := mixed.NewSlice(0, rows)
	defer second.Release()
	assert.Equal(t, []int{0, 1, 2}, groupBatches([]arrow.RecordBatch{bs[0], second, bs[1]}, target, DefaultMaxDatalessRows))
}
