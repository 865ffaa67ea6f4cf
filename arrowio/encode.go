package arrowio

import (
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/encoded"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Streams travel as chunks: each holds one or more whole IPC messages, and their concatenation is an
// Arrow IPC stream. The encoder makes one chunk per record batch (or per group of small ones), holding
// the batch and whatever precedes it in the stream (the schema before the first batch, dictionary
// batches when a dictionary changes); the end-of-stream marker rides on the last chunk or is a chunk of
// its own.
//
// A chunk is encoded without copying the batch: it is a list of parts (wireChunk) whose large ones
// point into the batch's own buffers, or into buffers the IPC writer made for it (rebased offsets,
// truncated bitmaps, compressed bodies), which the encoder keeps alive until the chunk has been sent. A
// communicator that writes a list of buffers sends it as it is; otherwise it is copied once into a
// reused buffer (wireChunk.bytes).

// abortKey marks a record batch that ends a stream with an error: a zero-row batch whose custom
// metadata maps abortKey to the sender's error. Any IPC reader can read it; arrowio's turns it into
// an error, so that a sender that fails part-way never leaves its receivers waiting.
const abortKey = "fnmesh.arrowio.abort"

// eosMarker is the IPC end-of-stream marker: the continuation token and a zero length.
var eosMarker = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

const (
	// inlineBytes: writes up to this size (message headers, metadata, padding, small buffers) are
	// copied into the chunk's arena; larger ones are referenced where they are.
	inlineBytes = 1 << 10
	arenaBlock  = 16 << 10
)

// wireChunk is one encoded chunk: the concatenation of parts. It implements io.Writer for
// ipc.Payload.WritePayload and ipc.PayloadWriter for an ipc.Writer.
type wireChunk struct {
	parts [][]byte
	size  int
	arena []byte // the block small writes are copied into
	open  int    // where the last part starts in arena, if it is there (-1 if not)
	flat  []byte // bytes' buffer, reused
	skip  int    // payloads still to drop (a schema already sent by an earlier writer)
	mute  bool   // drop everything (a writer being retired, see encoder.restart)
}

func (c *wireChunk) reset() {
	clear(c.parts) // drop references to the batches
	c.parts, c.size, c.open = c.parts[:0], 0, -1
	c.arena = c.arena[:0]
}

// Write appends p: copied into the arena when small, referenced otherwise.
func (c *wireChunk) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	c.size += n
	if n > inlineBytes {
		c.parts = append(c.parts, p)
		c.open = -1
		return n, nil
	}
	if cap(c.arena)-len(c.arena) < n {
		// A new block: the parts in the old one keep pointing at it.
		c.arena = make([]byte, 0, max(arenaBlock, n))
		c.open = -1
	}
	start := len(c.arena)
	c.arena = append(c.arena, p...)
	if c.open >= 0 {
		c.parts[len(c.parts)-1] = c.arena[c.open:len(c.arena):len(c.arena)]
	} else {
		c.open = start
		c.parts = append(c.parts, c.arena[start:len(c.arena):len(c.arena)])
	}
	return n, nil
}

// bytes returns the chunk as one slice: its only part, or a copy of the parts in a buffer that the
// next chunk of the same encoder reuses.
func (c *wireChunk) bytes() []byte {
	switch len(c.parts) {
	case 0:
		return nil
	case 1:
		return c.parts[0]
	}
	if cap(c.flat) < c.size {
		c.flat = make([]byte, 0, c.size)
	}
	c.flat = c.flat[:0]
	for _, p := range c.parts {
		c.flat = append(c.flat, p...)
	}
	return c.flat
}

func (c *wireChunk) Start() error { return nil }

func (c *wireChunk) WritePayload(p ipc.Payload) error {
	if c.mute {
		return nil
	}
	if c.skip > 0 {
		c.skip--
		return nil
	}
	_, err := p.WritePayload(c)
	return err
}

func (c *wireChunk) Close() error {
	if c.mute {
		return nil
	}
	_, err := c.Write(eosMarker)
	return err
}

// heldAllocator defers frees until release. The IPC writer frees the buffers it made for a payload
// (metadata, truncated bitmaps, rebased offsets, compressed bodies) as soon as it has handed the
// payload over, but the chunk points into them until it has been sent.
type heldAllocator struct {
	memory.Allocator
	held [][]byte
}

func (a *heldAllocator) Free(b []byte) { a.held = append(a.held, b) }

func (a *heldAllocator) release() {
	for _, b := range a.held {
		a.Allocator.Free(b)
	}
	clear(a.held)
	a.held = a.held[:0]
}

// encoder encodes one stream into chunks. A chunk it returns is valid until its next call or release:
// send it before encoding the next.
type encoder struct {
	schema  *arrow.Schema
	mem     *heldAllocator
	opts    []ipc.Option
	chunk   wireChunk
	w       *ipc.Writer
	pending []arrow.RecordBatch // encoded into the current chunk: its parts may point into them
	dicts   []arrow.ArrayData   // the dictionaries of the batch written last (dictionaries' order)
	// compacted maps a dictionary that ipcSafe compacted to its copy, so that batches sharing a
	// dictionary share its copy too (and the writer sends it once).
	compacted  map[arrow.ArrayData]arrow.ArrayData
	sentSchema bool
	done       bool
	closed     bool
}

func newEncoder(schema *arrow.Schema, cfg *config) (*encoder, error) {
	e := &encoder{schema: schema, mem: &heldAllocator{Allocator: cfg.mem}, compacted: map[arrow.ArrayData]arrow.ArrayData{}}
	e.chunk.open = -1
	opts, err := cfg.ipcWriterOptions(e.mem)
	if err != nil {
		return nil, err
	}
	e.opts = append(opts, ipc.WithSchema(schema))
	e.w = ipc.NewWriterWithPayloadWriter(&e.chunk, e.opts...)
	return e, nil
}

// recycle lets go of the previous chunk: its batches and the writer's buffers it pointed into.
func (e *encoder) recycle() {
	releaseBatches(e.pending)
	clear(e.pending)
	e.pending = e.pending[:0]
	e.mem.release()
	e.chunk.reset()
}

// batch returns the chunk carrying rec (and, with last, the end of the stream).
func (e *encoder) batch(rec arrow.RecordBatch, last bool) (*wireChunk, error) {
	return e.batches([]arrow.RecordBatch{rec}, last)
}

// batches returns the chunk carrying recs, one IPC message each (and, with last, the end of the
// stream): small batches travel together.
func (e *encoder) batches(recs []arrow.RecordBatch, last bool) (_ *wireChunk, err error) {
	if e.done {
		return nil, errors.New("arrowio: stream already ended")
	}
	defer recoverInvalid(&err, "encoding a record batch") // the caller aborts the stream
	e.recycle()
	for _, rec := range recs {
		if len(e.compacted) > maxCompactedDicts {
			e.dropCompacted() // a stream of ever new dictionaries: keep what it holds bounded
		}
		safe, err := ipcSafe(e.mem.Allocator, rec, e.compacted)
		if err != nil {
			return nil, fmt.Errorf("arrowio: encoding a record batch: %w", err)
		}
		e.pending = append(e.pending, safe)
		if e.floatDictChanged(safe) {
			e.restart()
		}
		if err := e.w.Write(safe); err != nil {
			return nil, fmt.Errorf("arrowio: encoding a record batch: %w", err)
		}
	}
	if last {
		if err := e.close(); err != nil {
			return nil, err
		}
	}
	e.sentSchema = true
	return &e.chunk, nil
}

// floatDictChanged reports whether rec has a dictionary holding floating-point values that is not the
// one the batch written before had in its place, and notes rec's dictionaries. The IPC writer (arrow-go
// v18.6.0) sends a changed dictionary only if it differs from the last one sent by array.ApproxEqual,
// which compares floats with an absolute tolerance of 1e-5 (and -0 equal to +0): a dictionary of
// float64 1.000001 after one of 1.0 would not be sent, and the receiver would decode the batch with
// the old values. Such a change needs a fresh writer (restart).
func (e *encoder) floatDictChanged(rec arrow.RecordBatch) bool {
	var dicts []arrow.ArrayData
	for _, col := range rec.Columns() {
		dicts = appendDicts(dicts, col.Data(), 0)
	}
	changed := false
	if e.dicts != nil && len(dicts) == len(e.dicts) {
		for i, d := range dicts {
			if d != e.dicts[i] && holdsFloat(d.DataType()) {
				changed = true
				break
			}
		}
	}
	e.dicts = dicts
	return changed
}

// appendDicts appends the dictionaries of d and its descendants (those of dictionaries' values too),
// in a fixed order.
func appendDicts(dst []arrow.ArrayData, d arrow.ArrayData, depth int) []arrow.ArrayData {
	if d == nil || depth > 64 {
		return dst
	}
	if dict, _ := d.Dictionary().(*array.Data); dict != nil { // a Data without one returns a nil *Data
		dst = append(dst, dict)
		dst = appendDicts(dst, dict, depth+1)
	}
	for _, c := range d.Children() {
		dst = appendDicts(dst, c, depth+1)
	}
	return dst
}

// holdsFloat reports whether values of dt hold floating-point numbers at any depth.
func holdsFloat(dt arrow.DataType) bool {
	return typeHolds(dt, 0, func(dt arrow.DataType) bool {
		switch dt.(type) {
		case *arrow.Float16Type, *arrow.Float32Type, *arrow.Float64Type:
			return true
		}
		return false
	})
}

// typeHolds reports whether dt, or a type it is made of at any depth
// (dictionary values, extension storage, run-end-encoded values, nested
// fields), is one that `is` says yes to. It looks 64 levels deep at most.
func typeHolds(dt arrow.DataType, depth int, is func(arrow.DataType) bool) bool {
	if depth > 64 {
		return false
	}
	if is(dt) {
		return true
	}
	switch t := dt.(type) {
	case *arrow.DictionaryType:
		return typeHolds(t.ValueType, depth+1, is)
	case arrow.ExtensionType:
		return typeHolds(t.StorageType(), depth+1, is)
	case *arrow.RunEndEncodedType:
		return typeHolds(t.Encoded(), depth+1, is)
	case arrow.NestedType:
		for _, f := range t.Fields() {
			if typeHolds(f.Type, depth+1, is) {
				return true
			}
		}
	}
	return false
}

// restart replaces the IPC writer with a fresh one, which sends every dictionary of the next batch
// again (as replacements: the stream's schema message is not repeated). The old writer's end of
// stream is dropped; the chunk keeps what it already holds.
func (e *encoder) restart() {
	e.chunk.mute = true
	e.w.Close()
	e.chunk.mute = false
	e.chunk.skip = 1 // the fresh writer's schema message: the receiver has it already
	e.w = ipc.NewWriterWithPayloadWriter(&e.chunk, e.opts...)
}

// end returns the chunk that ends the stream (with the schema if no batch was sent).
func (e *encoder) end() (*wireChunk, error) {
	if e.done {
		return nil, errors.New("arrowio: stream already ended")
	}
	e.recycle()
	if err := e.close(); err != nil {
		return nil, err
	}
	e.sentSchema = true
	return &e.chunk, nil
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
func (e *encoder) abort(cause error) *wireChunk {
	if !e.done {
		e.done = true
		e.w.Close() // writes only into the chunk, which is reset next
	}
	e.recycle()
	c := &e.chunk
	if e.sentSchema {
		c.skip = 1 // the fresh writer's schema message: the receiver has it already
	}
	w := ipc.NewWriterWithPayloadWriter(c, e.opts...)
	cols, err := emptyColumns(e.mem.Allocator, e.schema)
	if err == nil {
		rec := array.NewRecordBatchWithMetadata(e.schema, cols, 0, arrow.NewMetadata([]string{abortKey}, []string{cause.Error()}))
		releaseColumns(cols)
		e.pending = append(e.pending, rec)
		err = w.Write(rec)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	c.skip = 0
	e.sentSchema = true
	if err != nil {
		// Could not even encode an empty batch: end the stream early instead. A receiver still
		// notices: the stream is missing what it was promised (or its schema).
		c.reset()
		c.Write(eosMarker)
	}
	return c
}

// emptyColumns returns a zero-length array of each of schema's columns' types. arrow-go (v18.6.0)
// has no builder for a dictionary of nested values (NewRecordBuilder panics: "unsupported value type
// for dictionary builder"), and MakeArrayOfNull panics on list views, so each column is tried both
// ways, under a recover.
func emptyColumns(mem memory.Allocator, schema *arrow.Schema) (cols []arrow.Array, err error) {
	for i, f := range schema.Fields() {
		col := emptyArray(mem, f.Type, false)
		if col == nil {
			col = emptyArray(mem, f.Type, true)
		}
		if col == nil {
			releaseColumns(cols)
			return nil, fmt.Errorf("column %d (%q): cannot make an empty array of %s", i, f.Name, f.Type)
		}
		cols = append(cols, col)
	}
	return cols, nil
}

func emptyArray(mem memory.Allocator, dt arrow.DataType, ofNull bool) (a arrow.Array) {
	defer func() {
		if recover() != nil {
			a = nil
		}
	}()
	if ofNull {
		return array.MakeArrayOfNull(mem, dt, 0)
	}
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	return b.NewArray()
}

func releaseColumns(as []arrow.Array) {
	for _, a := range as {
		a.Release()
	}
}

// release frees everything the encoder holds (the last chunk, the dictionaries the writer last
// wrote) without sending anything.
func (e *encoder) release() {
	if e.closed {
		return
	}
	e.closed = true
	if !e.done {
		e.done = true
		e.w.Close() // writes only into the chunk, which the caller drops
	}
	e.recycle()
	e.dropCompacted()
}

// maxCompactedDicts bounds the dictionary copies an encoder keeps (see encoder.compacted).
const maxCompactedDicts = 64

// dropCompacted lets go of the encoder's dictionary copies (batches written keep their own references).
func (e *encoder) dropCompacted() {
	for src, d := range e.compacted {
		src.Release()
		d.Release()
	}
	clear(e.compacted)
}

// splitBatch cuts rec into zero-copy slices of about target bytes each (one slice when target <= 0
// or rec is smaller; rows of fixed width are cut evenly, those of variable width where their sizes
// say, so that a slice is within target unless it is one row larger: see rowsize.go), and of values
// a receiver accepts under limit, its WithMaxDatalessRows: a batch with a field node of more values
// than its bytes account for (columns that store nothing per value: nulls, run-end encoded or
// zero-width ones, no columns at all; see DefaultMaxDatalessRows) is cut so that no slice has more
// than limit in one. A single row cannot be cut: one that holds more such values than a message of
// its bytes may is refused with an error wrapping ErrDecodeLimit that names it (as row first+i,
// first being the caller's number for rec's first row) and its column, so that the sender fails
// rather than its receivers. Malformed arrays are an error too. The caller releases every slice.
func splitBatch(rec arrow.RecordBatch, target, limit, first int64) (out []arrow.RecordBatch, err error) {
	defer func() {
		// Malformed arrays (offsets past their values) make arrow-go's slicing panic.
		if r := recover(); r != nil {
			releaseBatches(out)
			out, err = nil, fmt.Errorf("malformed array data: %v", r)
		}
	}()
	n := rec.NumRows()
	w := widestNode(rec)
	over := w > rowAllowance(dataBytes(rec), 0, limit)
	pieces := int64(1)
	if n > 1 {
		if size := recordBytes(rec); target > 0 && size > target {
			if slices.ContainsFunc(rec.Schema().Fields(), func(f arrow.Field) bool { return unevenRows(f.Type, 0) }) {
				return cutRows(&out, rec, cutBySize(rec, target), limit, first)
			}
			pieces = (size + target - 1) / target
		}
		if over {
			per := max(limit, 1)
			pieces = max(pieces, (w+per-1)/per)
		}
		pieces = min(pieces, n)
	}
	if pieces == 1 && !over {
		rec.Retain()
		return []arrow.RecordBatch{rec}, nil
	}
	rows := (n + pieces - 1) / pieces
	bounds := make([]int64, 0, pieces+1)
	for lo := int64(0); lo < n; lo += rows {
		bounds = append(bounds, lo)
	}
	return cutRows(&out, rec, append(bounds, n), limit, first)
}

// cutRows cuts rec into slices at bounds (from 0 to its rows), each cut further as it takes to be
// within limit (appendWithinDataless), into *out, which holds them as they are made (for the caller to
// release them should a malformed array panic) and on success; it returns *out.
func cutRows(out *[]arrow.RecordBatch, rec arrow.RecordBatch, bounds []int64, limit, first int64) ([]arrow.RecordBatch, error) {
	*out = make([]arrow.RecordBatch, 0, len(bounds)-1)
	for i, lo := range bounds[:len(bounds)-1] {
		var err error
		if *out, err = appendWithinDataless(*out, rec.NewSlice(lo, bounds[i+1]), limit, first+lo, 0); err != nil {
			releaseBatches(*out)
			*out = nil
			return nil, err
		}
	}
	return *out, nil
}

// appendWithinDataless appends piece (whose reference it takes) to out, halved as many times as it
// takes for every part to hold no more values in any field node than a receiver takes under limit
// (see splitBatch), or refuses the row that cannot be brought within it (first is the caller's
// number for piece's first row). splitBatch's even cut assumes the values spread evenly over the
// rows; a few rows holding most of them (a list of nulls whose first rows are long) would otherwise
// go out in one piece the receiver refuses, though each of them alone fits.
func appendWithinDataless(out []arrow.RecordBatch, piece arrow.RecordBatch, limit, first int64, depth int) ([]arrow.RecordBatch, error) {
	n := piece.NumRows()
	allow := rowAllowance(dataBytes(piece), 0, limit)
	if depth > 64 || widestNode(piece) <= allow {
		return append(out, piece), nil
	}
	if n <= 1 {
		err := datalessRowError(piece, first, allow, limit)
		piece.Release()
		return out, err
	}
	half := n / 2
	a, b := piece.NewSlice(0, half), piece.NewSlice(half, n)
	piece.Release()
	out, err := appendWithinDataless(out, a, limit, first, depth+1)
	if err != nil {
		b.Release()
		return out, err
	}
	return appendWithinDataless(out, b, limit, first+half, depth+1)
}

// datalessRowError words the refusal of row, a batch of one row whose values are over allow, what
// its bytes and limit (WithMaxDatalessRows) let one message carry.
func datalessRowError(row arrow.RecordBatch, at, allow, limit int64) error {
	bytes := dataBytes(row)
	for c, col := range row.Columns() {
		if v := nodeValues(col.Data(), 0); v > allow {
			return fmt.Errorf("row %d, column %d (%q): %w: a field node of %d values, where the row's %d bytes allow %d (8 a byte and %d without data: WithMaxDatalessRows), and a row is not cut across messages",
				at, c, row.Schema().Field(c).Name, ErrDecodeLimit, v, bytes, allow, limit)
		}
	}
	return fmt.Errorf("row %d: %w: its %d bytes allow %d rows (8 a byte and %d without data: WithMaxDatalessRows)", at, ErrDecodeLimit, bytes, allow, limit)
}

// planBatches lists the record batches t is sent as: its chunks, aligned across columns, cut to
// about target bytes and within limit, the receivers' WithMaxDatalessRows (see splitBatch), without
// empty ones. A row that cannot be sent within limit is an error that names it by its row in t. The
// caller releases every batch.
func planBatches(t arrow.Table, target, limit int64) (out []arrow.RecordBatch, err error) {
	defer recoverInvalid(&err, "reading table")
	if t.NumCols() == 0 {
		// A table reader reads no rows from a table of no columns: its rows are one batch of none.
		if t.NumRows() > 0 {
			rec := array.NewRecordBatch(t.Schema(), nil, t.NumRows())
			out, err = splitBatch(rec, target, limit, 0)
			rec.Release()
		}
		return out, err
	}
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	first := int64(0)
	for tr.Next() {
		rec := tr.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		pieces, err := splitBatch(rec, target, limit, first)
		if err == nil {
			err = dictsWithin(rec, limit)
		}
		if err != nil {
			releaseBatches(pieces)
			releaseBatches(out)
			return nil, err
		}
		out = append(out, pieces...)
		first += rec.NumRows()
	}
	if err := tr.Err(); err != nil {
		releaseBatches(out)
		return nil, err
	}
	return out, nil
}

// sendableRows checks that every row of t can be sent within limit, the receivers'
// WithMaxDatalessRows (see splitBatch), and returns the error naming the first that cannot.
// Dictionaries are not looked at (see dictsWithin): a part of t may carry less of them.
func sendableRows(t arrow.Table, limit int64) (err error) {
	if t == nil || t.NumCols() == 0 {
		return nil // rows of no columns can always be cut (unless limit is 0: planBatches says so)
	}
	defer recoverInvalid(&err, "reading table")
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	first := int64(0)
	for tr.Next() {
		rec := tr.RecordBatch()
		pieces, err := splitBatch(rec, 0, limit, first)
		releaseBatches(pieces)
		if err != nil {
			return err
		}
		first += rec.NumRows()
	}
	return tr.Err()
}

// dictsWithin checks that every dictionary of rec, at any depth, can be sent within limit, the
// receivers' WithMaxDatalessRows: a dictionary goes out whole, in a message of its own, so one whose
// values hold more values that store nothing than its bytes allow (see DefaultMaxDatalessRows) cannot
// be cut to fit and would be refused by every receiver. The error names the column.
func dictsWithin(rec arrow.RecordBatch, limit int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed array data: %v", r)
		}
	}()
	for c, col := range rec.Columns() {
		if !typeHolds(col.DataType(), 0, func(dt arrow.DataType) bool { return dt.ID() == arrow.DICTIONARY }) {
			continue
		}
		for _, d := range appendDicts(nil, col.Data(), 0) {
			w, bytes := nodeValues(d, 0), sizeOf(d, false)
			if allow := rowAllowance(bytes, 0, limit); w > allow {
				return fmt.Errorf("column %d (%q): %w: its dictionary (of %s) has a field node of %d values, where its %d bytes allow %d (8 a byte and %d without data: WithMaxDatalessRows), and a dictionary is sent whole",
					c, rec.ColumnName(c), ErrDecodeLimit, d.DataType(), w, bytes, allow, limit)
			}
		}
	}
	return nil
}

// groupBatches groups consecutive batches into chunks of about target bytes (a batch larger than
// target, which splitBatch left whole, travels alone), and of no more rows than a receiver accepts
// for their bytes under limit, its WithMaxDatalessRows (see splitBatch): it returns where each
// chunk's batches start. A dictionary a batch shares with the one before it does not count: the
// stream's IPC writer sends a dictionary only when it changes.
func groupBatches(bs []arrow.RecordBatch, target, limit int64) []int {
	var starts []int
	size, data, rows := int64(0), int64(0), int64(0)
	for i, b := range bs {
		n, d, r := recordBytes(b), dataBytes(b), b.NumRows()
		if i > 0 {
			n -= repeatedDictBytes(b, bs[i-1])
		}
		if i == 0 || target <= 0 || size+n > target || rows+r > rowAllowance(data+d, 0, limit) {
			starts = append(starts, i)
			size, data, rows = 0, 0, 0
		}
		size += n
		data += d
		rows += r
	}
	return starts
}

// repeatedDictBytes returns what recordBytes counts for the dictionaries of rec's dictionary
// columns that are the very dictionaries of prev's same columns, which arrow-go's writer does not
// send again. (It does not send one equal by value either; that is not looked for.)
func repeatedDictBytes(rec, prev arrow.RecordBatch) int64 {
	n := int64(0)
	for c, col := range rec.Columns() {
		if c >= int(prev.NumCols()) || col.DataType().ID() != arrow.DICTIONARY {
			continue
		}
		dict, _ := col.Data().Dictionary().(*array.Data) // a Data without one returns a nil *Data
		if prevDict, _ := prev.Column(c).Data().Dictionary().(*array.Data); dict != nil && dict == prevDict {
			n += approxBytes(dict)
		}
	}
	return n
}

// recordBytes estimates the bytes rec's arrays occupy in IPC messages, its dictionaries' included
// (approxBytes).
func recordBytes(rec arrow.RecordBatch) int64 {
	size := int64(0)
	for _, col := range rec.Columns() {
		size += approxBytes(col.Data())
	}
	return size
}

// dataBytes is recordBytes without the dictionaries, which go out in messages of their own and only
// when they change: the bytes a message carrying rec surely holds, which bound the values it may
// carry (rowAllowance).
func dataBytes(rec arrow.RecordBatch) int64 {
	size := int64(0)
	for _, col := range rec.Columns() {
		size += sizeOf(col.Data(), false)
	}
	return size
}

// widestNode returns the most values any one IPC field node of rec holds when it is sent (see
// nodeValues), or its rows if that is more (a batch of no columns has no nodes).
func widestNode(rec arrow.RecordBatch) int64 {
	w := rec.NumRows()
	for _, col := range rec.Columns() {
		w = max(w, nodeValues(col.Data(), 0))
	}
	return w
}

// nodeValues returns the most values that d, or any array it is made of, holds as arrow-go's IPC
// writer sends it: the values a slice spans of a list's, a struct's or a run-end encoded array's
// children. Where it cannot tell cheaply (the children of unions), it counts a child whole, which is
// no less than what is sent. A dictionary does not count: it is sent whole in a batch of its own, however
// its indices are cut.
func nodeValues(d arrow.ArrayData, depth int) int64 {
	n := int64(d.Len())
	if n == 0 || depth > 64 {
		return n
	}
	w := n
	dt := d.DataType()
	if ext, ok := dt.(arrow.ExtensionType); ok {
		dt = ext.StorageType()
	}
	off := int64(d.Offset())
	switch dt := dt.(type) {
	case *arrow.ListType, *arrow.MapType:
		o := arrow.GetOffsets[int32](d, 1)
		return max(w, childValues(d.Children()[0], int64(o[0]), int64(o[n]), depth))
	case *arrow.LargeListType:
		o := arrow.GetOffsets[int64](d, 1)
		return max(w, childValues(d.Children()[0], o[0], o[n], depth))
	case *arrow.FixedSizeListType:
		k := int64(dt.Len())
		return max(w, childValues(d.Children()[0], off*k, (off+n)*k, depth))
	case *arrow.RunEndEncodedType:
		lo, runs := int64(encoded.FindPhysicalOffset(d)), int64(encoded.GetPhysicalLength(d))
		for _, c := range d.Children() {
			w = max(w, childValues(c, lo, lo+runs, depth))
		}
		return w
	case *arrow.StructType:
		for _, c := range d.Children() {
			w = max(w, childValues(c, off, off+n, depth))
		}
		return w
	}
	for _, c := range d.Children() {
		w = max(w, nodeValues(c, depth+1))
	}
	return w
}

func childValues(child arrow.ArrayData, lo, hi int64, depth int) int64 {
	if hi <= lo {
		return 0
	}
	s := array.NewSliceData(child, lo, hi)
	defer s.Release()
	return nodeValues(s, depth+1)
}

func releaseBatches(bs []arrow.RecordBatch) {
	for _, b := range bs {
		if b != nil {
			b.Release()
		}
	}
}

// approxBytes estimates the bytes an array's values occupy in an IPC body (what a slice spans, not
// the whole buffers it shares with its parent), and its dictionaries' at any depth.
func approxBytes(d arrow.ArrayData) int64 { return sizeOf(d, true) }

// sizeOf is approxBytes, with or without the dictionaries.
func sizeOf(d arrow.ArrayData, dicts bool) int64 {
	n := int64(d.Len())
	if n == 0 || d.DataType().ID() == arrow.NULL { // a null array is sent without buffers
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
		return size + 4*n + childBytes(d.Children()[0], int64(o[0]), int64(o[n]), dicts)
	case *arrow.LargeListType:
		o := arrow.GetOffsets[int64](d, 1)
		return size + 8*n + childBytes(d.Children()[0], o[0], o[n], dicts)
	case *arrow.FixedSizeListType:
		k := int64(dt.Len())
		off := int64(d.Offset())
		return size + childBytes(d.Children()[0], off*k, (off+n)*k, dicts)
	case *arrow.StructType:
		off := int64(d.Offset())
		for _, c := range d.Children() {
			size += childBytes(c, off, off+n, dicts)
		}
		return size
	case *arrow.RunEndEncodedType:
		// arrow-go's writer sends the runs a slice spans, not its children whole.
		lo, runs := int64(encoded.FindPhysicalOffset(d)), int64(encoded.GetPhysicalLength(d))
		return childBytes(d.Children()[0], lo, lo+runs, dicts) + childBytes(d.Children()[1], lo, lo+runs, dicts)
	case *arrow.DictionaryType:
		size += n * int64(dt.IndexType.(arrow.FixedWidthDataType).BitWidth()/8)
		if dict := d.Dictionary(); dicts && dict != nil {
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
		size += sizeOf(c, dicts)
	}
	return size
}

func childBytes(child arrow.ArrayData, lo, hi int64, dicts bool) int64 {
	if hi <= lo {
		return 0
	}
	s := array.NewSliceData(child, lo, hi)
	defer s.Release()
	return sizeOf(s, dicts)
}

// ipcSafe returns rec (retained), or a copy of it in which every column arrow-go's IPC writer
// (v18.6.0) would mishandle is compacted (copied to fresh buffers at offset 0): columns that hold a
// union or a list view at any depth. The writer cuts a sliced union's type ids to the slice's padded
// length without subtracting the slice's start (reading past a tight buffer), and fails on dense
// unions and list views even when they are merely sliced inside. Every other type is written
// correctly when sliced (TestEncodeSlicedEveryType), so the slices that splitBatch cuts from a large
// batch go out without a copy, except view columns that use less than half of their character
// buffers (wastesViewBytes): the writer would send all of those buffers with every slice
// (TestViewSlicesSendTheirBytes), so such a column is compacted too.
//
// Dictionaries that hold such types are compacted too (compactFragileDicts), once each: cache (kept
// by the caller across batches, which releases its keys and values) maps a dictionary to its copy.
func ipcSafe(mem memory.Allocator, rec arrow.RecordBatch, cache map[arrow.ArrayData]arrow.ArrayData) (arrow.RecordBatch, error) {
	var cols []arrow.Array
	for c, col := range rec.Columns() {
		if !holdsFragileType(col.DataType()) && !wastesViewBytes(col.Data(), 0) {
			continue
		}
		// take reads the values where the offsets and views say: malformed ones would make it
		// panic halfway, holding what it allocated.
		if err := validateColumn(col); err != nil {
			for _, a := range cols {
				a.Release()
			}
			return nil, fmt.Errorf("column %d (%q): %w", c, rec.ColumnName(c), err)
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
		compact, err := takeData(mem, col, all)
		if err == nil {
			// take shares dictionaries: those that hold a union or a list view are compacted too.
			var safe arrow.ArrayData
			safe, err = compactFragileDicts(mem, compact, 0, cache)
			compact.Release()
			compact = safe
		}
		if err != nil {
			for _, a := range cols {
				a.Release()
			}
			return nil, err
		}
		cols[c].Release()
		cols[c] = array.MakeFromData(compact)
		compact.Release()
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

// compactFragileDicts returns d (retained) with every dictionary at any depth that holds a union or a
// list view (holdsFragileType) replaced by a compacted copy, at offset 0: arrow-go's IPC writer writes
// a dictionary with the same code as a column, so a sliced union in a dictionary went out as damage
// the receiver's reader failed on ("slice bounds out of range"; TestFragileDictionaryValuesSliced).
func compactFragileDicts(mem memory.Allocator, d arrow.ArrayData, depth int, cache map[arrow.ArrayData]arrow.ArrayData) (arrow.ArrayData, error) {
	if depth > 64 {
		return nil, errors.New("type nested more than 64 deep")
	}
	changed := false
	children := make([]arrow.ArrayData, len(d.Children()))
	release := func() {
		for _, c := range children {
			if c != nil {
				c.Release()
			}
		}
	}
	defer release()
	for i, c := range d.Children() {
		nc, err := compactFragileDicts(mem, c, depth+1, cache)
		if err != nil {
			return nil, err
		}
		children[i] = nc
		changed = changed || nc != c
	}
	var dict arrow.ArrayData
	if dd, _ := d.Dictionary().(*array.Data); dd != nil {
		if cached, ok := cache[dd]; ok {
			dict = cached
			changed = true
		} else if holdsFragileType(dd.DataType()) {
			all := make([]int, dd.Len())
			for i := range all {
				all[i] = i
			}
			arr := array.MakeFromData(dd)
			taken, err := takeData(mem, arr, all)
			arr.Release()
			if err != nil {
				return nil, fmt.Errorf("dictionary: %w", err)
			}
			dict, err = compactFragileDicts(mem, taken, depth+1, cache)
			taken.Release()
			if err != nil {
				return nil, fmt.Errorf("dictionary: %w", err)
			}
			if cache != nil {
				dd.Retain()
				cache[dd] = dict // the cache's reference
			} else {
				defer dict.Release()
			}
			changed = true
		} else {
			dict = dd
		}
	}
	if !changed {
		d.Retain()
		return d, nil
	}
	out := array.NewData(d.DataType(), d.Len(), d.Buffers(), children, d.NullN(), d.Offset())
	if dict != nil {
		out.SetDictionary(dict)
	}
	return out, nil
}

// wastesViewBytes reports whether d, or an array it is made of at any depth, is a view array (string or
// binary view) that uses less than half of its character buffers: arrow-go's IPC writer sends them
// all whole, so a slice of a large view column (splitBatch's, or a caller's) would carry every byte
// of it. ipcSafe compacts such a column (take copies the characters its views use: compactViews).
// Dictionaries are written whole anyway and are not looked into.
func wastesViewBytes(d arrow.ArrayData, depth int) bool {
	n := d.Len()
	if depth > 64 || n == 0 || !typeHolds(d.DataType(), 0, isViewType) {
		return false
	}
	off := d.Offset()
	dt := d.DataType()
	if ext, ok := dt.(arrow.ExtensionType); ok {
		dt = ext.StorageType() // the buffers and children are the storage's
	}
	switch dt := dt.(type) {
	case *arrow.StringViewType, *arrow.BinaryViewType:
		var bits []byte
		if d.NullN() != 0 && d.Buffers()[0] != nil {
			bits = d.Buffers()[0].Bytes()
		}
		hs := arrow.GetData[arrow.ViewHeader](d.Buffers()[1].Bytes())[off : off+n]
		used, total := viewBytes(hs, bits, off, d.Buffers()[2:])
		return 2*used < total
	case *arrow.DictionaryType:
		return false
	case *arrow.ListType, *arrow.MapType:
		o := arrow.GetOffsets[int32](d, 1)
		return childWastes(d.Children()[0], int64(o[0]), int64(o[n]), depth)
	case *arrow.LargeListType:
		o := arrow.GetOffsets[int64](d, 1)
		return childWastes(d.Children()[0], o[0], o[n], depth)
	case *arrow.FixedSizeListType:
		k := int64(dt.Len())
		return childWastes(d.Children()[0], int64(off)*k, int64(off+n)*k, depth)
	case *arrow.StructType:
		for _, c := range d.Children() {
			if childWastes(c, int64(off), int64(off+n), depth) {
				return true
			}
		}
		return false
	}
	// The types ipcSafe compacts anyway.
	for _, c := range d.Children() {
		if wastesViewBytes(c, depth+1) {
			return true
		}
	}
	return false
}

func childWastes(child arrow.ArrayData, lo, hi int64, depth int) bool {
	if hi <= lo {
		return false
	}
	s := array.NewSliceData(child, lo, hi)
	defer s.Release()
	return wastesViewBytes(s, depth+1)
}

func isViewType(dt arrow.DataType) bool {
	switch dt.(type) {
	case *arrow.StringViewType, *arrow.BinaryViewType:
		return true
	}
	return false
}

func holdsFragileType(dt arrow.DataType) bool {
	return typeHolds(dt, 0, func(dt arrow.DataType) bool {
		switch dt.(type) {
		case *arrow.SparseUnionType, *arrow.DenseUnionType, *arrow.ListViewType, *arrow.LargeListViewType:
			return true
		}
		return false
	})
}
