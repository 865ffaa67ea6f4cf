package arrowio

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// TestEncodeSlicedEveryType encodes slices of batches of every type, whose buffers end exactly where
// their values do (as buffers received from another rank do), and reads them back with arrow-go's own
// IPC reader and with this package's decoder. It is the evidence behind ipcSafe, which copies only the
// types arrow-go's writer mishandles when sliced: slices of every other type go out without a copy.
func TestEncodeSlicedEveryType(t *testing.T) {
	mem := checkedMem(t)
	var ranges [][2]int64
	for lo := int64(0); lo < 300; lo += 37 {
		for _, n := range []int64{1, 7, 63, 64, 65, 129} {
			if lo+n <= 300 {
				ranges = append(ranges, [2]int64{lo, lo + n})
			}
		}
	}
	for i, f := range allTypes() {
		schema := arrow.NewSchema([]arrow.Field{f}, nil)
		for _, nulls := range []float64{0, 0.3} {
			t.Run(fmt.Sprintf("%s/nulls=%v", f.Name, nulls), func(t *testing.T) {
				tbl := genTable(t, mem, schema, genSpec{rows: 300, chunks: 1, card: 90, nulls: nulls, seed: uint64(i)})
				defer tbl.Release()
				rec := tightBatch(t, tbl)
				defer rec.Release()
				for _, r := range ranges {
					slice := rec.NewSlice(r[0], r[1])
					err := checkEncodedSlice(mem, slice)
					slice.Release()
					require.NoError(t, err, "rows [%d, %d)", r[0], r[1])
				}
			})
		}
	}
}

// checkEncodedSlice encodes rec as a one-batch stream and decodes it twice.
func checkEncodedSlice(mem memory.Allocator, rec arrow.RecordBatch) error {
	cfg := newConfig([]Option{WithAllocator(mem)})
	enc, err := newEncoder(rec.Schema(), &cfg)
	if err != nil {
		return err
	}
	chunk, err := enc.batch(rec, true)
	if err != nil {
		return err
	}
	wire := bytes.Clone(chunk.bytes())
	enc.release()

	rdr, err := ipc.NewReader(bytes.NewReader(wire), ipc.WithAllocator(mem))
	if err != nil {
		return err
	}
	defer rdr.Release()
	if !rdr.Next() {
		return fmt.Errorf("arrow-go's reader: no batch: %v", rdr.Err())
	}
	if got := rdr.RecordBatch(); !array.RecordEqual(got, rec) {
		return fmt.Errorf("arrow-go's reader: the batch differs")
	}

	dec := newDecoder(mem, defaultRecvLimits)
	defer dec.close()
	if err := dec.feed(memory.NewBufferBytes(wire)); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	got := dec.take()
	defer releaseBatches(got)
	if len(got) != 1 || !array.RecordEqual(got[0], rec) {
		return fmt.Errorf("decoder: the batch differs")
	}
	return nil
}

// tightBatch returns t's single batch rebuilt with buffers cut to the bytes its values use.
func tightBatch(t *testing.T, tbl arrow.Table) arrow.RecordBatch {
	tr := array.NewTableReader(tbl, -1)
	defer tr.Release()
	require.True(t, tr.Next())
	rec := tr.RecordBatch()
	cols := make([]arrow.Array, rec.NumCols())
	for c, col := range rec.Columns() {
		d := tightData(col.Data())
		cols[c] = array.MakeFromData(d)
		d.Release()
	}
	out := array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
	releaseArrays(cols)
	return out
}

// tightData copies d with every buffer whose used length is known cut to it: validity bitmaps,
// booleans, fixed-width values and union type ids.
func tightData(d arrow.ArrayData) arrow.ArrayData {
	n := d.Offset() + d.Len()
	bufs := make([]*memory.Buffer, len(d.Buffers()))
	for i, b := range d.Buffers() {
		if b == nil {
			continue
		}
		used := b.Len()
		id := d.DataType().ID()
		switch {
		case i == 0 && id != arrow.SPARSE_UNION && id != arrow.DENSE_UNION:
			used = (n + 7) / 8
		case i == 1 && id == arrow.BOOL:
			used = (n + 7) / 8
		case i == 1 && (id == arrow.SPARSE_UNION || id == arrow.DENSE_UNION):
			used = n
		case i == 1 && id != arrow.DICTIONARY:
			if fw, ok := d.DataType().(arrow.FixedWidthDataType); ok && fw.BitWidth()%8 == 0 {
				used = n * fw.BitWidth() / 8
			}
		}
		bufs[i] = memory.NewBufferBytes(bytes.Clone(b.Bytes()[:min(used, b.Len())]))
	}
	children := make([]arrow.ArrayData, len(d.Children()))
	for c, child := range d.Children() {
		children[c] = tightData(child)
	}
	out := array.NewData(d.DataType(), d.Len(), bufs, children, d.NullN(), d.Offset())
	for _, c := range children {
		c.Release()
	}
	if dict := d.Dictionary(); dict != nil {
		out.SetDictionary(dict)
	}
	return out
}

func releaseArrays(as []arrow.Array) {
	for _, a := range as {
		if a != nil {
			a.Release()
		}
	}
}

// poisonAllocator overwrites every buffer it frees before handing it back, so that anything still
// pointing into a freed buffer reads garbage.
type poisonAllocator struct{ memory.Allocator }

func (a poisonAllocator) Free(b []byte) {
	for i := range b {
		b[i] = 0xa5
	}
	a.Allocator.Free(b)
}

// TestChunksOutliveWriterBuffers sends tables whose encoding needs buffers the IPC writer makes and
// frees (compressed bodies, rebased string offsets and truncated bitmaps of sliced batches, dictionary
// batches): a chunk points into them without copying, so they must stay intact until it has been sent.
// The sender's allocator poisons what it frees.
func TestChunksOutliveWriterBuffers(t *testing.T) {
	for _, v := range []variant{
		{"plain, sliced", 300, []Option{WithBatchBytes(3 << 10)}},
		{"lz4, sliced", 300, []Option{WithCompression(LZ4), WithBatchBytes(3 << 10)}},
		{"zstd", 300, []Option{WithCompression(Zstd)}},
	} {
		t.Run(v.name, func(t *testing.T) {
			comms := newWorld(t, tcpLinks, 2)
			errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				tbl := genTable(t, mem, allSchema, genSpec{rows: v.rows, chunks: 2, card: 40, nulls: 0.2, seed: 9})
				defer tbl.Release()
				if c.Rank() == 0 {
					return SendTable(ctx, c, 1, 3, tbl, withMem(v.opts, poisonAllocator{mem})...)
				}
				got, err := RecvTable(ctx, c, 0, 3, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer got.Release()
				return sameRows(got, tbl)
			})
			requireNoErrors(t, errs)
		})
	}
}
