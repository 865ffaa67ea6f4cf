package arrowio

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/fnmesh/fnmesh/collective"
)

// StreamWriter sends record batches to one rank as an Arrow IPC stream, one message of the
// communicator per batch (batches larger than WithBatchBytes are cut into slices first). A
// StreamReader on the other side, or any IPC reader fed the messages' payloads in order, reads it.
// The context given to NewStreamWriter governs every send. A StreamWriter is not safe for concurrent
// use.
type StreamWriter struct {
	ctx     context.Context
	c       *collective.Comm
	dst     int
	tag     int
	cfg     config
	enc     *encoder
	failed  error
	written int64
}

// NewStreamWriter starts a stream of batches of schema to rank dst with tag tag. Nothing is sent
// until the first Write or Close.
func NewStreamWriter(ctx context.Context, c *collective.Comm, dst, tag int, schema *arrow.Schema, opts ...Option) (*StreamWriter, error) {
	if c == nil {
		return nil, errors.New("arrowio: stream writer: nil communicator")
	}
	if schema == nil {
		return nil, errors.New("arrowio: stream writer: nil schema")
	}
	if err := sendableSchema(schema); err != nil {
		return nil, fmt.Errorf("arrowio: stream writer: %w", err)
	}
	cfg := newConfig(opts)
	enc, err := newEncoder(schema, &cfg)
	if err != nil {
		return nil, err
	}
	return &StreamWriter{ctx: ctx, c: c, dst: dst, tag: tag, cfg: cfg, enc: enc}, nil
}

// Write sends rec, which must have the stream's schema. The caller keeps ownership of rec. A row of
// rec that no message could carry within WithMaxDatalessRows (see there) fails the write before any of
// rec is sent and aborts the stream, so that the reader fails with the same error.
func (w *StreamWriter) Write(rec arrow.RecordBatch) error {
	if w.failed != nil {
		return w.failed
	}
	if rec == nil {
		return errors.New("arrowio: stream write: nil record batch")
	}
	if !rec.Schema().Equal(w.enc.schema) {
		return fmt.Errorf("arrowio: stream write: batch schema differs from the stream's: %s", schemaDiff(rec.Schema(), w.enc.schema))
	}
	if rec.NumRows() == 0 {
		return nil
	}
	pieces, err := splitBatch(rec, w.cfg.batchBytes, w.cfg.limits.datalessRows, 0)
	if err == nil {
		if err = dictsWithin(rec, w.cfg.limits.datalessRows); err != nil {
			releaseBatches(pieces)
		}
	}
	if err != nil {
		// A row that no receiver would take: end the stream, so that the receiver learns why.
		aerr := w.Abort(err)
		return errors.Join(fmt.Errorf("arrowio: stream write: %w", err), aerr)
	}
	defer releaseBatches(pieces)
	for _, p := range pieces {
		if err := w.send(func() (*wireChunk, error) { return w.enc.batch(p, false) }); err != nil {
			return err
		}
		w.written += p.NumRows()
	}
	return nil
}

// Close ends the stream: it sends the end-of-stream marker (and the schema, if no batch was sent).
func (w *StreamWriter) Close() error {
	if w.failed != nil {
		return w.failed
	}
	err := w.send(w.enc.end)
	if err == nil {
		w.failed = errors.New("arrowio: stream writer is closed")
	}
	return err
}

// Abort ends the stream with an error: the receiver's reader fails with cause (its text) instead of
// seeing a short stream. Use it when the producer of the batches fails part-way.
func (w *StreamWriter) Abort(cause error) error {
	if w.failed != nil {
		return w.failed
	}
	if cause == nil {
		cause = errors.New("aborted")
	}
	chunk := w.enc.abort(cause)
	w.failed = fmt.Errorf("arrowio: stream aborted: %w", cause)
	err := w.c.SendBuffers(w.ctx, w.dst, w.tag, chunk.parts)
	w.enc.release()
	if err != nil {
		return fmt.Errorf("arrowio: stream to rank %d: %w", w.dst, err)
	}
	return nil
}

// Rows returns the number of rows written so far.
func (w *StreamWriter) Rows() int64 { return w.written }

// send encodes one chunk and sends it. An encoding failure aborts the stream (so that the receiver
// learns of it); a send failure leaves the stream dead.
func (w *StreamWriter) send(encode func() (*wireChunk, error)) error {
	chunk, err := encode()
	if err != nil {
		if aerr := w.Abort(err); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	if err := w.c.SendBuffers(w.ctx, w.dst, w.tag, chunk.parts); err != nil {
		w.enc.release()
		w.failed = fmt.Errorf("arrowio: stream to rank %d: %w", w.dst, err)
		return w.failed
	}
	if w.enc.done {
		w.enc.release() // the stream has ended: let go of the last chunk now
	}
	return nil
}

// StreamReader receives a stream of record batches that a StreamWriter (or SendTable) on rank src sends
// with tag tag. It implements array.RecordReader. The context given to NewStreamReader governs every
// receive. A StreamReader is not safe for concurrent use.
type StreamReader struct {
	ctx  context.Context
	c    *collective.Comm
	src  int
	tag  int
	dec  *decoder
	cur  arrow.RecordBatch
	err  error
	refs atomic.Int64
}

var _ array.RecordReader = (*StreamReader)(nil)

// NewStreamReader waits for the start of a stream from rank src with tag tag and returns a reader of
// its batches. Release it when done: releasing a reader before the end of its stream receives and
// discards the rest, so that the next stream on the same tag starts clean.
func NewStreamReader(ctx context.Context, c *collective.Comm, src, tag int, opts ...Option) (*StreamReader, error) {
	if c == nil {
		return nil, errors.New("arrowio: stream reader: nil communicator")
	}
	cfg := newConfig(opts)
	r := &StreamReader{ctx: ctx, c: c, src: src, tag: tag, dec: newDecoder(cfg.mem, cfg.limits)}
	r.refs.Store(1)
	for r.dec.schema() == nil && !r.dec.done() {
		if err := r.recv(); err != nil {
			r.Release()
			return nil, err
		}
	}
	if r.dec.err != nil {
		err := r.wrap(r.dec.err)
		r.Release()
		return nil, err
	}
	return r, nil
}

func (r *StreamReader) wrap(err error) error {
	return fmt.Errorf("arrowio: stream from rank %d: %w", r.src, err)
}

// recv receives and decodes one chunk.
func (r *StreamReader) recv() error {
	chunk, err := recvChunk(r.ctx, r.c, r.src, r.tag)
	if err != nil {
		return r.wrap(err)
	}
	if err := r.dec.feed(chunk); err != nil {
		return r.wrap(err)
	}
	return nil
}

// Schema returns the stream's schema.
func (r *StreamReader) Schema() *arrow.Schema { return r.dec.schema() }

// Next advances to the next record batch, receiving it if need be. It returns false at the end of the
// stream or on error (see Err).
func (r *StreamReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	for r.err == nil {
		if len(r.dec.ready) > 0 {
			r.cur = r.dec.ready[0]
			r.dec.ready = r.dec.ready[1:]
			return true
		}
		if r.dec.eos {
			return false
		}
		if err := r.recv(); err != nil {
			r.err = err
			r.drain()
		}
	}
	return false
}

// RecordBatch returns the current batch; it is valid until the next call to Next or Release (Retain it
// to keep it longer).
func (r *StreamReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record returns the current batch.
//
// Deprecated: use RecordBatch (kept for array.RecordReader).
func (r *StreamReader) Record() arrow.RecordBatch { return r.cur }

// Err returns the error that ended the stream early, if any.
func (r *StreamReader) Err() error { return r.err }

// Retain adds a reference.
func (r *StreamReader) Retain() { r.refs.Add(1) }

// Release drops a reference; the last one drains the rest of the stream (bounded by the reader's
// context) and frees everything the reader holds.
func (r *StreamReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.drain()
	r.dec.close()
}

// drain receives and drops the rest of a stream after an error, so that no message of it is left
// queued on the tag. It stops at the end of the stream or when receiving fails.
func (r *StreamReader) drain() {
	for !r.dec.eos {
		chunk, err := recvChunk(r.ctx, r.c, r.src, r.tag)
		if err != nil {
			return
		}
		if r.dec.err == nil {
			r.dec.fail(errors.New("stream abandoned"))
		}
		r.dec.feed(chunk)
	}
}

// SendTable sends t to rank dst with tag tag, as one Arrow IPC stream: the schema once, then t's
// record batches in messages of about WithBatchBytes (large batches cut into slices, small ones sharing
// a message), the end-of-stream marker riding on the last. RecvTable (or a StreamReader) on dst receives
// it. A nil or unreadable t is sent as an aborted stream, so that the receiver fails too. The caller
// keeps ownership of t.
func SendTable(ctx context.Context, c *collective.Comm, dst, tag int, t arrow.Table, opts ...Option) error {
	if c == nil {
		return errors.New("arrowio: send table: nil communicator")
	}
	cfg := newConfig(opts)
	out := newOutStream(t, nil, &cfg, cfg.batchBytes, nil)
	defer out.close()
	for !out.done {
		if err := c.SendBuffers(ctx, dst, tag, out.nextWire().parts); err != nil {
			return fmt.Errorf("arrowio: send table to rank %d: %w", dst, err)
		}
	}
	if out.localErr != nil {
		return fmt.Errorf("arrowio: send table to rank %d: %w", dst, out.localErr)
	}
	return nil
}

// RecvTable receives a table that SendTable (or a StreamWriter) on rank src sends with tag tag. The
// result has one chunk per batch received, pointing into the received messages (no copy unless the
// batches were compressed). The caller releases it.
func RecvTable(ctx context.Context, c *collective.Comm, src, tag int, opts ...Option) (arrow.Table, error) {
	r, err := NewStreamReader(ctx, c, src, tag, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	for !r.dec.eos && r.err == nil {
		if err := r.recv(); err != nil {
			r.err = err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return r.dec.table(), nil
}
