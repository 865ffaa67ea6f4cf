package arrowio

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// outStream is one table on its way out, as a sequence of chunks.
type outStream struct {
	enc      *encoder
	batches  []arrow.RecordBatch
	starts   []int // where each chunk's batches start
	next     int   // the next chunk
	done     bool
	abortErr error // a failure to report in the next chunk
	localErr error // what went wrong here, once reported
}

// newOutStream plans the chunks of t. With cause set (or t nil, or t unreadable) the stream carries
// only that error, under schema (or t's, or an empty schema).
func newOutStream(t arrow.Table, schema *arrow.Schema, cfg *config, target int64, cause error) *outStream {
	s := &outStream{abortErr: cause}
	if t != nil {
		schema = t.Schema()
	} else if cause == nil {
		s.abortErr = errors.New("nil table")
	}
	if schema == nil {
		schema = arrow.NewSchema(nil, nil)
	}
	if s.abortErr == nil {
		if err := sendableSchema(schema); err != nil {
			// The stream cannot carry the schema itself: the abort goes out under an empty one.
			s.abortErr = err
			schema = arrow.NewSchema(nil, nil)
		}
	}
	enc, err := newEncoder(schema, cfg)
	if err != nil {
		// Only an unknown compression gets here: fall back to no compression to report it.
		enc, _ = newEncoder(schema, &config{mem: cfg.mem})
		s.abortErr = err
	}
	s.enc = enc
	if s.abortErr == nil {
		s.batches, err = planBatches(t, target, cfg.limits.datalessRows)
		if err != nil {
			s.abortErr = err
		}
		s.starts = groupBatches(s.batches, target, cfg.limits.datalessRows)
	}
	return s
}

// nextChunk returns the stream's next chunk as one slice, or nil once it has ended. It is valid until
// the next call or close.
func (s *outStream) nextChunk() []byte {
	c := s.nextWire()
	if c == nil {
		return nil
	}
	return c.bytes()
}

// nextWire returns the stream's next chunk, or nil once it has ended. It is valid until the next call
// or close.
func (s *outStream) nextWire() *wireChunk {
	if s.done {
		return nil
	}
	if s.abortErr != nil {
		return s.abort(s.abortErr)
	}
	if len(s.batches) == 0 {
		s.done = true
		chunk, err := s.enc.end()
		if err != nil {
			return s.abort(err)
		}
		return chunk
	}
	lo, hi := s.starts[s.next], len(s.batches)
	if s.next+1 < len(s.starts) {
		hi = s.starts[s.next+1]
	}
	last := hi == len(s.batches)
	chunk, err := s.enc.batches(s.batches[lo:hi], last)
	for i := lo; i < hi; i++ { // the encoder holds what the chunk points into
		s.batches[i].Release()
		s.batches[i] = nil
	}
	s.next++
	if err != nil {
		return s.abort(err)
	}
	s.done = last
	return chunk
}

func (s *outStream) abort(err error) *wireChunk {
	s.done = true
	s.abortErr = nil
	s.localErr = err
	return s.enc.abort(err)
}

func (s *outStream) close() {
	releaseBatches(s.batches)
	s.batches = nil
	s.enc.release()
}

func closeOut(ss []*outStream) {
	for _, s := range ss {
		if s != nil {
			s.close()
		}
	}
}

// inStream is one table arriving from rank `from`, a chunk at a time.
type inStream struct {
	from int
	dec  *decoder
}

func newInStream(from int, cfg *config) *inStream {
	return &inStream{from: from, dec: newDecoder(cfg.mem, cfg.limits)}
}

// feed decodes a chunk and releases it (empty chunks, rounds of a broadcast after the stream ended,
// are skipped).
func (s *inStream) feed(chunk *memory.Buffer) {
	if chunk.Len() == 0 {
		chunk.Release()
		return
	}
	s.dec.feed(chunk)
}

// check fails the stream unless its schema is want (named for errors as the schema of rank ref).
func (s *inStream) check(want *arrow.Schema, ref int) {
	if got := s.dec.schema(); s.dec.err == nil && got != nil && want != nil && !got.Equal(want) {
		s.dec.fail(fmt.Errorf("%w: rank %d's schema differs from rank %d's: %s", ErrSchemaMismatch, s.from, ref, schemaDiff(got, want)))
	}
}

// result returns the stream's table, or the error that ended it (naming the sender).
func (s *inStream) result() (arrow.Table, error) {
	switch {
	case s.dec.err != nil:
		var ae *abortError
		if errors.As(s.dec.err, &ae) || errors.Is(s.dec.err, ErrSchemaMismatch) {
			return nil, fmt.Errorf("rank %d: %w", s.from, s.dec.err)
		}
		return nil, fmt.Errorf("stream from rank %d: %w", s.from, s.dec.err)
	case !s.dec.eos:
		return nil, fmt.Errorf("stream from rank %d: ended without its end-of-stream marker", s.from)
	case s.dec.schema() == nil:
		return nil, fmt.Errorf("stream from rank %d: no schema", s.from)
	}
	return s.dec.table(), nil
}

func closeIn(ss []*inStream) {
	for _, s := range ss {
		if s != nil {
			s.dec.close()
		}
	}
}

// ErrSchemaMismatch is returned (wrapped, naming the ranks and the first differing column) when the
// tables of a collective operation do not all have the same schema.
var ErrSchemaMismatch = errors.New("schema mismatch")
