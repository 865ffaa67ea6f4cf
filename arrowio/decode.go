package arrowio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// errIncomplete: a chunk ended in the middle of a record batch (dictionaries without their batch).
var errIncomplete = errors.New("chunk ends before the record batch its messages lead to")

// decoder decodes one stream from its chunks, as they arrive. Message bodies are used in place: the
// arrays it returns point into the chunks (unless compressed) and hold references to them, so a chunk
// from the receive cache (recvbuf.go) goes back to it when the last array decoded from it is released.
type decoder struct {
	mem    *decodeAllocator
	limits recvLimits
	whole  bool           // the stream arrives as one message (DecodeIPC): errors name no message
	msgs   int            // messages fed so far
	size   int64          // the current message's bytes
	queue  []*ipc.Message // parsed, not yet read
	cur    *ipc.Message   // the message the ipc.Reader read last
	rdr    *ipc.Reader
	ready  []arrow.RecordBatch // decoded, not yet taken
	eos    bool
	framed bool // the last chunk parse saw was whole messages: eos says whether it ended the stream
	err    error
	closed bool

	// For delta dictionaries (checkValues): the stream's bytes so far, received and decompressed, and
	// by dictionary id the values its batches hold since it was last replaced (their widest field
	// nodes, summed).
	streamBytes int64
	dictValues  map[int64]int64
}

// newDecoder returns a decoder that allocates what it decodes from mem, within lim per message.
func newDecoder(mem memory.Allocator, lim recvLimits) *decoder {
	return &decoder{mem: &decodeAllocator{Allocator: mem, maxBuffer: maxDecodedBuffer, limit: lim.decodedBytes}, limits: lim}
}

// message names the message being decoded, for errors.
func (d *decoder) message() string {
	if d.whole {
		return "the stream"
	}
	return fmt.Sprintf("message %d of the stream", d.msgs)
}

// Message implements ipc.MessageReader for the ipc.Reader over the queue.
func (d *decoder) Message() (*ipc.Message, error) {
	if d.cur != nil {
		d.cur.Release()
		d.cur = nil
	}
	if len(d.queue) == 0 {
		return nil, errIncomplete
	}
	d.cur, d.queue = d.queue[0], d.queue[1:]
	return d.cur, nil
}

func (d *decoder) Retain()  {}
func (d *decoder) Release() {}

// done reports whether the stream has ended (or failed).
func (d *decoder) done() bool { return d.eos || d.err != nil }

// schema returns the stream's schema, or nil before the first chunk.
func (d *decoder) schema() *arrow.Schema {
	if d.rdr == nil {
		return nil
	}
	return d.rdr.Schema()
}

// feed decodes one chunk and releases the caller's reference to it (what was decoded keeps its own).
// After an error the decoder only watches for the end of the stream (so that the caller knows when
// the sender is done) and keeps returning that first error.
func (d *decoder) feed(chunk *memory.Buffer) error {
	chunk = alignedChunk(chunk)
	defer chunk.Release()
	if d.err != nil {
		if !d.eos {
			d.eos = chunkEnds(chunk.Bytes())
		}
		return d.err
	}
	if err := d.decode(chunk); err != nil {
		d.fail(err)
		if !d.eos && !d.framed {
			d.eos = chunkEnds(chunk.Bytes())
		}
	}
	return d.err
}

// alignedChunk returns chunk, or a copy of it if it does not start on an 8-byte boundary (releasing
// chunk then): decoded arrays point into the chunk, and Arrow buffers must be aligned for their values.
func alignedChunk(chunk *memory.Buffer) *memory.Buffer {
	b := chunk.Bytes()
	if len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%8 == 0 {
		return chunk
	}
	c := make([]byte, len(b))
	copy(c, b)
	chunk.Release()
	return memory.NewBufferBytes(c)
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.dropQueue()
}

func (d *decoder) decode(chunk *memory.Buffer) (err error) {
	defer recoverInvalid(&err, "decoding IPC stream")
	if d.eos {
		if chunk.Len() == 0 {
			return nil
		}
		return errors.New("data after the end of the stream")
	}
	// Each message has its own budget (WithMaxDecodedBytes, WithMaxDatalessRows).
	d.msgs++
	d.size = int64(chunk.Len())
	d.mem.reset()
	if err := d.parse(chunk); err != nil {
		return err
	}
	if d.rdr == nil {
		if len(d.queue) == 0 {
			if d.eos {
				return errors.New("stream ended before its schema")
			}
			return nil
		}
		rdr, err := ipc.NewReaderFromMessageReader(d, ipc.WithAllocator(d.mem))
		if err != nil {
			return err
		}
		d.rdr = rdr
		if err := validateSchema(rdr.Schema()); err != nil {
			return fmt.Errorf("invalid schema: %w", err)
		}
	}
	for len(d.queue) > 0 {
		if !d.rdr.Next() {
			if err := d.rdr.Err(); err != nil {
				if le := (*limitError)(nil); errors.As(err, &le) {
					return fmt.Errorf("%s: %w", d.message(), le.err) // without arrow-go's "unknown error"
				}
				return err
			}
			return errIncomplete
		}
		rec := d.rdr.RecordBatch()
		if m, ok := rec.(arrow.RecordBatchWithMetadata); ok {
			if i := m.Metadata().FindKey(abortKey); i >= 0 {
				return &abortError{msg: m.Metadata().Values()[i]}
			}
		}
		if err := validateBatch(rec); err != nil {
			return fmt.Errorf("invalid record batch: %w", err)
		}
		if rec.NumRows() > 0 {
			rec.Retain()
			d.ready = append(d.ready, rec)
		}
	}
	return nil
}

// parse splits a chunk into IPC messages onto the queue, noting the end-of-stream marker. Each message
// holds a reference to the chunk. What the messages' metadata claims is checked before arrow-go reads
// any of them (messageClaims): what their compressed buffers announce, each against its codec and all
// against the message's budget, and the values their batches hold (checkValues).
func (d *decoder) parse(buf *memory.Buffer) error {
	d.framed = false
	var (
		claims   int64
		batches  []ipcBatch
		claimErr error
	)
	b := buf.Bytes()
	eos, err := walkMessages(b, func(metaAt, metaLen, bodyAt, bodyLen int) {
		if claimErr != nil {
			return
		}
		c, err := messageClaims(b[metaAt:metaAt+metaLen], b[bodyAt:bodyAt+bodyLen])
		if err != nil {
			claimErr = fmt.Errorf("IPC message %d of %s: %w", len(d.queue)+1, d.message(), err)
			return
		}
		claims = satAdd(claims, c.decoded)
		if c.what != "" {
			batches = append(batches, ipcBatch{len(d.queue) + 1, c})
		}
		meta := memory.SliceBuffer(buf, metaAt, metaLen)
		body := memory.SliceBuffer(buf, bodyAt, bodyLen)
		d.queue = append(d.queue, ipc.NewMessage(meta, body))
		meta.Release() // the message holds them now
		body.Release()
	})
	if eos {
		d.eos = true
	}
	if err != nil {
		return err
	}
	d.framed = true
	if claimErr != nil {
		return claimErr
	}
	if claims > d.limits.decodedBytes {
		return fmt.Errorf("%s: %w: its compressed buffers need %d bytes to decompress into, more than the %d one message may decode to (WithMaxDecodedBytes)",
			d.message(), ErrDecodeLimit, claims, d.limits.decodedBytes)
	}
	return d.checkValues(batches, claims)
}

// ipcBatch is a batch of a chunk and its IPC message's number in the chunk, from 1.
type ipcBatch struct {
	msg int
	batchClaims
}

// checkValues checks the values that a message's batches claim (their metadata: batches is what
// messageClaims read, decoded what their compressed buffers decompress to) against what its bytes
// hold, before any of them is decoded: 8 values a byte and WithMaxDatalessRows more (see
// DefaultMaxDatalessRows). The rows of its record batches count in all; each field node of each batch
// (record or dictionary) counts on its own, so that deep nesting, where every level holds the same
// values again, is not refused. A delta dictionary batch adds to a dictionary of earlier messages:
// what its deltas have added since the dictionary was last replaced (the widest field node of each,
// summed) is bounded by the stream's bytes so far in the same way, so a stream of small messages of
// deltas cannot grow a dictionary past WithMaxDatalessRows values that store nothing.
func (d *decoder) checkValues(batches []ipcBatch, decoded int64) error {
	d.streamBytes = satAdd(d.streamBytes, satAdd(d.size, decoded))
	allow := rowAllowance(d.size, decoded, d.limits.datalessRows)
	bytes := func() string {
		return fmt.Sprintf("the message's %d bytes (%d received, %d decompressed)", satAdd(d.size, decoded), d.size, decoded)
	}
	rows := int64(0)
	for _, b := range batches {
		if b.what == "record batch" {
			if room := allow - rows; b.length > room {
				return fmt.Errorf("%s: %w: a record batch of %d rows, where %s leave room for %d more: 8 rows a byte and %d rows without data (WithMaxDatalessRows)",
					d.message(), ErrDecodeLimit, b.length, bytes(), room, d.limits.datalessRows)
			}
			rows += b.length
		}
		if b.widest > allow {
			return fmt.Errorf("%s: %w: IPC message %d, a %s: field node %d holds %d values, where %s allow %d: 8 a byte and %d without data (WithMaxDatalessRows)",
				d.message(), ErrDecodeLimit, b.msg, b.what, b.widestAt, b.widest, bytes(), allow, d.limits.datalessRows)
		}
		if b.what != "dictionary batch" {
			continue
		}
		if d.dictValues == nil {
			d.dictValues = make(map[int64]int64)
		}
		if !b.delta {
			d.dictValues[b.dict] = b.widest
			continue
		}
		held := satAdd(d.dictValues[b.dict], b.widest)
		d.dictValues[b.dict] = held
		if most := rowAllowance(d.streamBytes, 0, d.limits.datalessRows); held > most {
			return fmt.Errorf("%s: %w: IPC message %d, a delta of dictionary %d: with it, the dictionary's batches since it was last replaced hold %d values (their widest field nodes, summed), where the stream's %d bytes so far (received and decompressed) allow %d: 8 a byte and %d without data (WithMaxDatalessRows)",
				d.message(), ErrDecodeLimit, b.msg, b.dict, held, d.streamBytes, most, d.limits.datalessRows)
		}
	}
	return nil
}

// satAdd returns a+b for a, b >= 0, or MaxInt64 if that overflows.
func satAdd(a, b int64) int64 { return min(a, math.MaxInt64-b) + b }

// walkMessages walks the IPC messages of a chunk, calling fn with where each message's metadata and
// body lie, and reports whether it met the end-of-stream marker. Each message's metadata is verified
// before its body length is read from it.
func walkMessages(chunk []byte, fn func(metaAt, metaLen, bodyAt, bodyLen int)) (eos bool, err error) {
	for off := 0; off < len(chunk); {
		if eos {
			return eos, errors.New("data after the end-of-stream marker")
		}
		if len(chunk)-off < 4 {
			return eos, fmt.Errorf("truncated message header at byte %d", off)
		}
		metaLen := int64(int32(binary.LittleEndian.Uint32(chunk[off:])))
		off += 4
		if uint32(metaLen) == 0xffffffff { // continuation token, then the length
			if len(chunk)-off < 4 {
				return eos, fmt.Errorf("truncated message header at byte %d", off)
			}
			metaLen = int64(int32(binary.LittleEndian.Uint32(chunk[off:])))
			off += 4
		}
		if metaLen == 0 {
			eos = true
			continue
		}
		if metaLen < 0 || metaLen > int64(len(chunk)-off) {
			return eos, fmt.Errorf("message metadata of %d bytes at byte %d overruns the %d-byte chunk", metaLen, off, len(chunk))
		}
		metaAt := off
		if err := verifyMessageMeta(chunk[off : off+int(metaLen)]); err != nil {
			return eos, err
		}
		off += int(metaLen)
		probe := ipc.NewMessage(memory.NewBufferBytes(chunk[metaAt:off]), memory.NewBufferBytes(nil))
		bodyLen := probe.BodyLen()
		probe.Release()
		if bodyLen < 0 || bodyLen > int64(len(chunk)-off) {
			return eos, fmt.Errorf("message body of %d bytes at byte %d overruns the %d-byte chunk", bodyLen, off, len(chunk))
		}
		if fn != nil {
			fn(metaAt, int(metaLen), off, int(bodyLen))
		}
		off += int(bodyLen)
	}
	return eos, nil
}

// chunkEnds reports whether a chunk ends the stream, for a decoder that no longer decodes (after an
// error): whether its messages, walked by their lengths, include the end-of-stream marker. A chunk
// whose framing is broken falls back to its last eight bytes (endsWithEOS); a message body that
// happens to end with the marker's bytes does not end a stream whose framing holds.
func chunkEnds(chunk []byte) (eos bool) {
	defer func() {
		if recover() != nil {
			eos = endsWithEOS(chunk)
		}
	}()
	eos, err := walkMessages(chunk, nil)
	if err != nil && !eos {
		return endsWithEOS(chunk)
	}
	return eos
}

// endsWithEOS reports whether a chunk ends with the end-of-stream marker. It is how a receiver that
// stopped decoding after an error still finds the end of the sender's stream.
func endsWithEOS(chunk []byte) bool {
	n := len(chunk)
	switch {
	case n >= 8 && binary.LittleEndian.Uint32(chunk[n-8:]) == 0xffffffff && binary.LittleEndian.Uint32(chunk[n-4:]) == 0:
		return true
	case n == 4 && binary.LittleEndian.Uint32(chunk) == 0: // the pre-1.0 four-byte marker
		return true
	}
	return false
}

// take hands over the batches decoded so far; the caller releases them.
func (d *decoder) take() []arrow.RecordBatch {
	r := d.ready
	d.ready = nil
	return r
}

// table returns everything decoded as one table (zero copy: one chunk per batch). It needs the schema.
func (d *decoder) table() arrow.Table {
	recs := d.take()
	defer releaseBatches(recs)
	schema := d.schema()
	chunks := make([][]arrow.Array, schema.NumFields())
	rows := int64(0) // a table of no columns has rows all the same
	for _, rec := range recs {
		rows += rec.NumRows()
		for c := range chunks {
			chunks[c] = append(chunks[c], rec.Column(c))
		}
	}
	return newTableRows(schema, chunks, rows)
}

func (d *decoder) dropQueue() {
	for _, m := range d.queue {
		m.Release()
	}
	d.queue = nil
}

// close releases everything the decoder still holds.
func (d *decoder) close() {
	if d.closed {
		return
	}
	d.closed = true
	d.dropQueue()
	releaseBatches(d.ready)
	d.ready = nil
	if d.rdr != nil {
		d.rdr.Release()
		d.rdr = nil
	}
	if d.cur != nil {
		d.cur.Release()
		d.cur = nil
	}
}

// abortError is a stream its sender ended with an error.
type abortError struct{ msg string }

func (e *abortError) Error() string { return "the sender aborted the stream: " + e.msg }

// maxDecodedBuffer bounds one buffer the decoder allocates (a decompressed body buffer). A compressed
// buffer announces its uncompressed size in its first 8 bytes; without a bound, a damaged or hostile
// message could make the process try to allocate terabytes, which Go cannot survive. What a whole
// message may allocate is bounded too (WithMaxDecodedBytes; limits.go).
const maxDecodedBuffer = 1<<31 - 1 // an int on 32-bit platforms too

// ErrAllocationLimit is what a LimitAllocator panics with (wrapped, with the size and the limit)
// when it refuses an allocation. arrow-go's readers recover it into an error that wraps it, so
// errors.Is finds it in what they return.
var ErrAllocationLimit = errors.New("arrowio: allocation refused")

// LimitAllocator returns an allocator that allocates from mem but refuses, by a panic with an error
// wrapping ErrAllocationLimit, any one allocation above max bytes, and negative ones (a damaged size
// prefix, which would otherwise corrupt a checked allocator's count). Readers of untrusted input
// (DecodeIPC, arrow-go's IPC and Parquet readers under a recover) allocate through it so that a
// damaged length is an error, not an attempt to allocate terabytes, which ends the process.
func LimitAllocator(mem memory.Allocator, max int) memory.Allocator {
	return limitAllocator{Allocator: mem, max: max}
}

// limitAllocator is LimitAllocator's allocator.
type limitAllocator struct {
	memory.Allocator
	max int
}

func (a limitAllocator) Allocate(size int) []byte {
	a.check(size)
	return a.Allocator.Allocate(size)
}

func (a limitAllocator) Reallocate(size int, b []byte) []byte {
	a.check(size)
	return a.Allocator.Reallocate(size, b)
}

func (a limitAllocator) check(size int) {
	if size < 0 || size > a.max {
		panic(fmt.Errorf("%w: %d bytes is outside the limit of 0..%d (damaged input?)", ErrAllocationLimit, size, a.max))
	}
}
