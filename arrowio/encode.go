package arrowio

import (
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Streams travel as chunks: byte slices that each hold one or more whole IPC messages, whose
// concatenation is an Arrow IPC stream. The encoder makes one chunk per record batch, holding the batch
// and whatever precedes it in the stream (the schema before the first batch, dictionary batches when a
// dictionary changes); the end-of-stream marker rides on the last chunk or is a chunk of its own.

// abortKey marks a record batch that ends a stream with an error: a zero-row batch whose custom
// metadata maps abortKey to the sender's error. Any IPC reader can read it; arrowio's turns it into
// an error, so that a sender that fails part-way never leaves its receivers waiting.
const abortKey = "fnmesh.arrowio.abort"

// eosMarker is the IPC end-of-stream marker: the continuation token and a zero length.
var eosMarker = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// chunkSink collects the IPC messages an ipc.Writer emits into one chunk.
type chunkSink struct {
	buf  []byte
	skip int // payloads still to drop (a schema already sent by an earlier writer)
}

func (s *chunkSink) Start() error { return nil }

func (s *chunkSink) WritePayload(p ipc.Payload) error {
	if s.skip > 0 {
		s.skip--
		return nil
	}
	var n counter
	if _, err := p.WritePayload(&n); err != nil {
		return err
	}
	s.buf = slices.Grow(s.buf, int(n))
	_, err := p.WritePayload((*appender)(&s.buf))
	return err
}

func (s *chunkSink) Close() error {
	s.buf = append(s.buf, eosMarker...)
	return nil
}

type counter int64

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

type appender []byte

func (a *appender) Write(p []byte) (int, error) { *a = append(*a, p...); return len(p), nil }

// encoder encodes one stream into chunks.
type encoder struct {
	schema     *arrow.Schema
	mem        memory.Allocator
	opts       []ipc.Option
	sink       chunkSink
	w          *ipc.Writer
	reuse      bool // the previous chunk has been consumed: its buffer may be overwritten
	sentSchema bool
	done       bool
}

func newEncoder(schema *arrow.Schema, cfg *config) (*encoder, error) {
	opts, err := cfg.ipcWriterOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, ipc.WithSchema(schema))
	e := &encoder{schema: schema, mem: cfg.mem, opts: opts}
	e.w = ipc.NewWriterWithPayloadWriter(&e.sink, opts...)
	return e, nil
}

func (e *encoder) reset() {
	if e.reuse {
		e.sink.buf = e.sink.buf[:0]
	} else {
		e.sink.buf = nil
	}
}

// batch returns the chunk carrying rec (and, with last, the end of the stream).
func (e *encoder) batch(rec arrow.RecordBatch, last bool) ([]byte, error) {
	return e.batches([]arrow.RecordBatch{rec}, last)
}

// batches returns the chunk carrying recs, one IPC message each (and, with last, the end of the
// stream): small batches travel together.
func (e *encoder) batches(recs []arrow.RecordBatch, last bool) ([]byte, error) {
	if e.done {
		return nil, errors.New("arrowio: stream already ended")
	}
	e.reset()
	for _, rec := range recs {
		safe, err := ipcSafe(e.mem, rec)
		if err != nil {
			return nil, fmt.Errorf("arrowio: encoding a record batch: %w", err)
		}
		err = e.w.Write(safe)
		safe.Release()
		if err != nil {
			return nil, fmt.Errorf("arrowio: encoding a record batch: %w", err)
		}
	}
	if last {
		if err := e.close(); err != nil {
			return nil, err
		}
	}
	e.sentSchema = true
	return e.sink.buf, nil
}

// end returns the chunk that ends the stream (with the schema if no batch was sent).
func (e *encoder) end() ([]byte, error) {
	if e.done {
		return nil, errors.New("arrowio: stream already ended")
	}
	e.reset()
	if err := e.close(); err != nil {
		return nil, err
	}
	e.sentSchema = true
	return e.sink.buf, nil
}

func (e *encoder) close() error {
	e.done = true
	if err := e.w.Close(); err != nil {
		return fmt.Errorf("arrowio: ending the stream: %w", err)
	}
	return nil
}

// abort returns the chunk that ends the stream with cause: an abort batch and the end-of-stream
// marker, preceded by the schema if no chunk went out yet.
func (e *encoder) abort(cause error) []byte {
	e.release()
	e.reset()
	sink := &e.sink
	if e.sentSchema {
		sink.skip = 1 // the fresh writer's schema message: the receiver has it already
	}
	w := ipc.NewWriterWithPayloadWriter(sink, e.opts...)
	rb := array.NewRecordBuilder(e.mem, e.schema)
	empty := rb.NewRecordBatch()
	rb.Release()
	rec := array.NewRecordBatchWithMetadata(e.schema, empty.Columns(), 0, arrow.NewMetadata([]string{abortKey}, []string{cause.Error()}))
	empty.Release()
	err := w.Write(rec)
	rec.Release()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	sink.skip = 0
	e.sentSchema = true
	if err != nil {
		// Could not even encode an empty batch: end the stream early instead. A receiver still
		// notices: the stream is missing what it was promised (or its schema).
		return append(sink.buf[:0], eosMarker...)
	}
	return sink.buf
}

// release frees what the writer holds (the dictionaries it last wrote) without sending anything.
func (e *encoder) release() {
	if !e.done {
		e.done = true
		e.w.Close() // writes only into the sink, which the caller drops
	}
}

// splitBatch cuts rec into zero-copy slices of about target bytes each (one slice when target <= 0
// or rec is smaller). The caller releases every slice.
func splitBatch(rec arrow.RecordBatch, target int64) []arrow.RecordBatch {
	n := rec.NumRows()
	size := int64(0)
	if target > 0 && n > 1 {
		size = recordBytes(rec)
	}
	pieces := int64(1)
	if target > 0 && size > target {
		pieces = min((size+target-1)/target, n)
	}
	if pieces == 1 {
		rec.Retain()
		return []arrow.RecordBatch{rec}
	}
	rows := (n + pieces - 1) / pieces
	out := make([]arrow.RecordBatch, 0, pieces)
	for lo := int64(0); lo < n; lo += rows {
		out = append(out, rec.NewSlice(lo, min(lo+rows, n)))
	}
	return out
}

// planBatches lists the record batches t is sent as: its chunks, aligned across columns, cut to
// about target bytes, without empty ones. The caller releases every batch.
func planBatches(t arrow.Table, target int64) (out []arrow.RecordBatch, err error) {
	defer recoverInvalid(&err, "reading table")
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		out = append(out, splitBatch(rec, target)...)
	}
	if err := tr.Err(); err != nil {
		releaseBatches(out)
		return nil, err
	}
	return out, nil
}

// groupBatches groups consecutive batches into chunks of about target bytes (a batch larger than
// target, which splitBatch left whole, travels alone): it returns where each chunk's batches start.
func groupBatches(bs []arrow.RecordBatch, target int64) []int {
	var starts []int
	size := int64(0)
	for i, b := range bs {
		n := recordBytes(b)
		if i == 0 || target <= 0 || size+n > target {
			starts = append(starts, i)
			size = 0
		}
		size += n
	}
	return starts
}

func recordBytes(rec arrow.RecordBatch) int64 {
	size := int64(0)
	for _, col := range rec.Columns() {
		size += approxBytes(col.Data())
	}
	return size
}

func releaseBatches(bs []arrow.RecordBatch) {
	for _, b := range bs {
		if b != nil {
			b.Release()
		}
	}
}

// approxBytes estimates the bytes an array's values occupy in an IPC body (what a slice spans, not
// the whole buffers it shares with its parent).
func approxBytes(d arrow.ArrayData) int64 {
	n := int64(d.Len())
	if n == 0 {
		return 0
	}
	size := int64(0)
	if d.NullN() > 0 {
		size = (n + 7) / 8 // validity
	}
	bufs := d.Buffers()
	switch dt := d.DataType().(type) {
	case *arrow.StringType, *arrow.BinaryType:
		o := arrow.GetOffsets[int32](d, 1)
		return size + 4*n + int64(o[n]-o[0])
	case *arrow.LargeStringType, *arrow.LargeBinaryType:
		o := arrow.GetOffsets[int64](d, 1)
		return size + 8*n + o[n] - o[0]
	case *arrow.ListType, *arrow.MapType:
		o := arrow.GetOffsets[int32](d, 1)
		return size + 4*n + childBytes(d.Children()[0], int64(o[0]), int64(o[n]))
	case *arrow.LargeListType:
		o := arrow.GetOffsets[int64](d, 1)
		return size + 8*n + childBytes(d.Children()[0], o[0], o[n])
	case *arrow.FixedSizeListType:
		k := int64(dt.Len())
		off := int64(d.Offset())
		return size + childBytes(d.Children()[0], off*k, (off+n)*k)
	case *arrow.StructType:
		off := int64(d.Offset())
		for _, c := range d.Children() {
			size += childBytes(c, off, off+n)
		}
		return size
	case *arrow.DictionaryType:
		size += n * int64(dt.IndexType.(arrow.FixedWidthDataType).BitWidth()/8)
		if dict := d.Dictionary(); dict != nil {
			size += approxBytes(dict)
		}
		return size
	case arrow.FixedWidthDataType:
		if dt.ID() != arrow.DICTIONARY {
			return size + (n*int64(dt.BitWidth())+7)/8
		}
	}
	for _, b := range bufs {
		if b != nil {
			size += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		size += approxBytes(c)
	}
	return size
}

func childBytes(child arrow.ArrayData, lo, hi int64) int64 {
	if hi <= lo {
		return 0
	}
	s := array.NewSliceData(child, lo, hi)
	defer s.Release()
	return approxBytes(s)
}

// ipcSafe returns rec (retained), or a copy of it in which every column arrow-go's IPC writer
// (v18.6.0) would mishandle is compacted (copied to fresh buffers at offset 0): columns that hold a
// union or a list view at any depth. The writer cuts a sliced union's type ids to the slice's padded
// length without subtracting the slice's start (reading past a tight buffer), and fails on dense
// unions and list views even when they are merely sliced inside. Every other type is written
// correctly when sliced (TestEncodeSlicedEveryType), so the slices that splitBatch cuts from a large
// batch go out without a copy.
func ipcSafe(mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	var cols []arrow.Array
	for c, col := range rec.Columns() {
		if !holdsFragileType(col.DataType(), 0) {
			continue
		}
		if cols == nil {
			cols = slices.Clone(rec.Columns())
			for _, a := range cols {
				a.Retain()
			}
		}
		all := make([]int, col.Len())
		for i := range all {
			all[i] = i
		}
		compact, err := take(mem, col, all)
		if err != nil {
			for _, a := range cols {
				a.Release()
			}
			return nil, err
		}
		cols[c].Release()
		cols[c] = compact
	}
	if cols == nil {
		rec.Retain()
		return rec, nil
	}
	out := array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
	for _, a := range cols {
		a.Release()
	}
	return out, nil
}

func holdsFragileType(dt arrow.DataType, depth int) bool {
	if depth > 64 {
		return false
	}
	switch t := dt.(type) {
	case *arrow.SparseUnionType, *arrow.DenseUnionType, *arrow.ListViewType, *arrow.LargeListViewType:
		return true
	case *arrow.DictionaryType:
		return holdsFragileType(t.ValueType, depth+1)
	case arrow.ExtensionType:
		return holdsFragileType(t.StorageType(), depth+1)
	case *arrow.RunEndEncodedType:
		return holdsFragileType(t.Encoded(), depth+1)
	case arrow.NestedType:
		for _, f := range t.Fields() {
			if holdsFragileType(f.Type, depth+1) {
				return true
			}
		}
	}
	return false
}
