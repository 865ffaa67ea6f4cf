package arrowio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ipcMagic starts and ends an Arrow IPC file (the random-access format).
var ipcMagic = []byte("ARROW1")

// DecodeIPC decodes a whole Arrow IPC stream, or the whole contents of an Arrow IPC file (the
// random-access format), held in data, with the checks arrowio makes on every message it receives:
// each message's flatbuffer metadata is verified before arrow-go reads it, no message or body may
// overrun data, the buffers decoding allocates (decompressed bodies) are bounded, each and in all
// (WithMaxDecodedBytes: data counts as one message), so are rows, and values of each column at any
// depth, beyond what data holds (WithMaxDatalessRows), and every record batch is validated before it
// is kept. Malformed input is an error, never a panic or an attempt to
// allocate what a damaged length claims. A file is read through the stream it embeds (the format
// puts one between its leading magic and its footer), so its footer's block offsets are never
// followed. Zero-row batches are dropped.
//
// The returned table (the caller releases it) points into data, which must not change while the
// table is in use; buffers that decoding makes come from WithAllocator's allocator.
func DecodeIPC(data []byte, opts ...Option) (arrow.Table, error) {
	stream, err := ipcStream(data)
	if err != nil {
		return nil, fmt.Errorf("arrowio: decode IPC: %w", err)
	}
	cfg := newConfig(opts)
	dec := newDecoder(cfg.mem, cfg.limits)
	dec.whole = true
	defer dec.close()
	if err := dec.feed(memory.NewBufferBytes(stream)); err != nil {
		return nil, fmt.Errorf("arrowio: decode IPC: %w", err)
	}
	if dec.schema() == nil {
		return nil, errors.New("arrowio: decode IPC: no schema message")
	}
	return dec.table(), nil
}

// ipcStream returns the IPC stream data holds: data itself, or the stream an IPC file embeds
// between its magic (padded to 8 bytes) and its footer (then the footer's length and the magic).
func ipcStream(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, ipcMagic) {
		return data, nil
	}
	const head, tail = 8, 4 + 6 // magic and padding; footer length and magic
	if len(data) < head+tail || !bytes.HasSuffix(data, ipcMagic) {
		return nil, fmt.Errorf("an Arrow IPC file of %d bytes without its closing magic", len(data))
	}
	footer := int64(int32(binary.LittleEndian.Uint32(data[len(data)-tail:])))
	if footer <= 0 || footer > int64(len(data)-head-tail) {
		return nil, fmt.Errorf("an Arrow IPC file footer of %d bytes in a %d-byte file", footer, len(data))
	}
	return data[head : int64(len(data)-tail)-footer], nil
}

// ValidateTable checks that every array of t is consistent, as arrowio checks every batch it
// receives: buffers long enough for their lengths, offsets that ascend and stay inside the data or
// child they index, dictionary indices inside their dictionary, view headers inside their buffers
// with prefixes that match their values, null counts that match the validity bitmaps, decimal types
// whose precision and scale arrow-go can handle, and every column as long as the table. arrow-go's
// readers (IPC, Parquet) check none of this, and
// an inconsistent array makes whoever reads it panic later. A table that passes is safe to read
// with arrow-go's accessors.
func ValidateTable(t arrow.Table) (err error) {
	defer recoverInvalid(&err, "validating a table")
	if err := validateSchema(t.Schema()); err != nil {
		return fmt.Errorf("arrowio: %w", err)
	}
	for i := range int(t.NumCols()) {
		col := t.Column(i)
		if int64(col.Len()) != t.NumRows() {
			return fmt.Errorf("arrowio: column %d (%q) has %d rows in a table of %d", i, col.Name(), col.Len(), t.NumRows())
		}
		for j, a := range col.Data().Chunks() {
			if !arrow.TypeEqual(a.DataType(), col.DataType()) {
				return fmt.Errorf("arrowio: column %d (%q) chunk %d is of type %s, not %s", i, col.Name(), j, a.DataType(), col.DataType())
			}
			if err := validateData(a.Data(), 0); err != nil {
				return fmt.Errorf("arrowio: column %d (%q) chunk %d: %w", i, col.Name(), j, err)
			}
		}
	}
	return nil
}
