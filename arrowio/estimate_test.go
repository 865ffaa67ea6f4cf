package arrowio

import (
	"bytes"
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
	assert.Equal(t, []int{0, 5}, groupBatches(slices, wholeBytes/2+pieces*64))
}
