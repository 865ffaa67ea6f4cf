package arrowio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Receive limits. A received message is decoded in place, so what decoding it costs beyond its own
// bytes comes from two things its sender controls: compressed buffers, each of which announces the
// size it decompresses to and is allocated that size, and batches whose columns hold nothing per
// value (null columns, run-end encoded ones, zero-width fixed-size types, structs and lists of those,
// no columns at all), which can claim any number of rows, or of values below the top level, in a few
// bytes. Both are bounded per message.

// ErrDecodeLimit is returned (wrapped, naming the message, the sizes and the limit) when a received
// message, or DecodeIPC's input, would cost more to decode than WithMaxDecodedBytes or
// WithMaxDatalessRows allows. The stream is refused; the communicator stays usable. A sender returns
// it too (wrapped, naming the row and the column) for a row that no message could carry within its
// WithMaxDatalessRows, and sends nothing of the table but its error.
var ErrDecodeLimit = errors.New("over the receive limit")

const (
	// DefaultMaxDecodedBytes is how many bytes decoding one received message may allocate unless
	// WithMaxDecodedBytes says otherwise: 4 GiB, twice the largest single buffer the decoder allocates
	// (maxDecodedBuffer). A message of arrowio's own senders decodes to about its WithBatchBytes (4
	// MiB by default) whatever its compression; only senders of whole batches (WithBatchBytes(0))
	// or of rows far larger than a message come near it. Without a total, a message of a few MiB
	// could hold a hundred Zstd buffers of 2 GiB each (a valid one expands up to 32768 times, see
	// maxExpansion) and make the receiver allocate hundreds of GiB, which ends the process.
	DefaultMaxDecodedBytes = 4 << 30

	// DefaultMaxDatalessRows is how many rows one received message may carry beyond those its bytes
	// hold unless WithMaxDatalessRows says otherwise: 2^28. A column that stores anything per row
	// spends at least a bit on it (a boolean, a validity bitmap), so a message of B bytes (counting
	// what its compressed buffers decompress to) holds at most 8B such rows, and a batch that has
	// one such column is bounded by its bytes already. Only batches of columns that hold nothing
	// per row can claim more, and a 232-byte message claiming 2^36 rows of one null column made
	// HashPartition ask for 512 GiB of hashes and die. Rows are what arrowio's own row operations
	// allocate by (HashPartition 12 bytes a row of scratch, a gather an 8-byte index more), so 2^28 of
	// them cost those 3-5 GiB, about what a message may decode to. The same holds below the top
	// level, where hashing allocates 8 bytes a value (of a list's values, a fixed-size list's N a
	// row, a dictionary's): each field node of a message, dictionary batches included, may hold no
	// more values than its rows may. arrowio's senders cut what they send to stay within it, and
	// refuse a single row over it (see WithMaxDatalessRows).
	DefaultMaxDatalessRows = 1 << 28
)

// recvLimits bounds what decoding one message may cost (see WithMaxDecodedBytes, WithMaxDatalessRows).
type recvLimits struct {
	decodedBytes int64
	datalessRows int64
}

var defaultRecvLimits = recvLimits{decodedBytes: DefaultMaxDecodedBytes, datalessRows: DefaultMaxDatalessRows}

// maxExpansion is the most bytes one byte of a compressed buffer can decompress to, by codec, from
// the formats themselves:
//
//   - LZ4 (frame format, of blocks in the block format): a sequence is a token byte, the literals
//     and, for a match, a 2-byte offset and the match length (4 + the token's 4 bits + the sum of as
//     many extension bytes as follow, each worth 255 at most, the last less). A match of m extension
//     bytes costs 3 + m bytes and copies at most 18 + 255m; a literal costs its byte; so output stays
//     under 255 times the input, whatever else the frame holds (headers, uncompressed blocks: less).
//   - Zstd (RFC 8878): every block starts with a 3-byte header and decompresses to at most
//     Block_Maximum_Size, 128 KiB; the densest is an RLE block, 3 bytes of header and 1 byte repeated
//     up to 128 KiB times, so output stays under 131072/4 = 32768 times the input. The limit applies
//     to RLE and raw blocks too (zstd's authors confirmed it in facebook/zstd#3072), and the decoder
//     arrow-go uses (klauspost/compress) refuses larger blocks of every type.
//
// A buffer announcing more than its compressed bytes can expand to is damaged: decompressing it
// would fail, after allocating what it announced.
var maxExpansion = [...]int64{0: 255, 1: 32768} // by CompressionType: LZ4_FRAME, ZSTD

var codecNames = [...]string{0: "LZ4", 1: "Zstd"}

// decodeAllocator is a decoder's allocator: it refuses any one allocation above maxBuffer, and any
// that would take what the current message has allocated past limit. Both refusals are panics,
// which arrow-go's reader recovers into the error it returns (the budget's as an error wrapping
// ErrDecodeLimit); reset starts each message's count.
type decodeAllocator struct {
	memory.Allocator
	maxBuffer int
	limit     int64
	used      atomic.Int64 // allocated for the current message (growth only: frees are not counted back)
}

func (a *decodeAllocator) Allocate(size int) []byte {
	a.charge(size, 0)
	return a.Allocator.Allocate(size)
}

func (a *decodeAllocator) Reallocate(size int, b []byte) []byte {
	a.charge(size, len(b))
	return a.Allocator.Reallocate(size, b)
}

// charge counts an allocation of size bytes that replaces one of had.
func (a *decodeAllocator) charge(size, had int) {
	limitAllocator{max: a.maxBuffer}.check(size)
	grow := int64(size - had)
	if grow <= 0 {
		return
	}
	if used := a.used.Add(grow); used > a.limit {
		a.used.Add(-grow)
		panic(&limitError{fmt.Errorf("%w: decoding it would allocate more than %d bytes (WithMaxDecodedBytes): %d bytes more asked for, with %d allocated", ErrDecodeLimit, a.limit, grow, used-grow)})
	}
}

func (a *decodeAllocator) reset() { a.used.Store(0) }

// limitError carries a receive limit's error through arrow-go's reader, which wraps what it
// recovers: the decoder reports it as it is.
type limitError struct{ err error }

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// fbFieldPos returns where the field in vtable slot `slot` of the flatbuffer table at pos lies, or 0 if
// the table does not have it. The metadata has been verified (verifyMessageMeta).
func fbFieldPos(buf []byte, pos, slot int) int {
	vt := pos - int(int32(binary.LittleEndian.Uint32(buf[pos:])))
	if 4+2*slot+2 > int(binary.LittleEndian.Uint16(buf[vt:])) {
		return 0
	}
	if fo := int(binary.LittleEndian.Uint16(buf[vt+4+2*slot:])); fo != 0 {
		return pos + fo
	}
	return 0
}

// fbDeref follows the offset at pos.
func fbDeref(buf []byte, pos int) int { return pos + int(binary.LittleEndian.Uint32(buf[pos:])) }

// batchClaims is what the metadata of one IPC message says decoding it takes (messageClaims).
type batchClaims struct {
	what     string // "record batch" or "dictionary batch"; "" for other messages, which claim nothing
	decoded  int64  // bytes its compressed buffers decompress to, each rounded up to 64 as allocated
	length   int64  // the batch's length (its rows)
	widest   int64  // the most values any one of its field nodes has
	widestAt int    // which node that is
	dict     int64  // a dictionary batch's dictionary id
	delta    bool   // a dictionary batch that adds to its dictionary rather than replacing it
}

// messageClaims reads from one IPC message's metadata (meta verified, body its body) what decoding it
// takes: the bytes arrow-go will allocate to decompress its compressed buffers, and the lengths of the
// batch and of its field nodes (FieldNode: length and null count, 16 bytes each), which say how many
// values each column holds at every depth (a list's values, a dictionary's). Each compressed buffer
// is checked first: it holds its 8-byte size, inside the body, and announces no more than its codec
// can expand its bytes to (maxExpansion) nor than one buffer may take (maxDecodedBuffer). Negative
// lengths are refused as damage.
func messageClaims(meta, body []byte) (batchClaims, error) {
	var c batchClaims
	root := fbDeref(meta, 0)
	typeAt, headerAt := fbFieldPos(meta, root, 1), fbFieldPos(meta, root, 2)
	if typeAt == 0 || headerAt == 0 {
		return c, nil
	}
	rb := fbDeref(meta, headerAt)
	switch meta[typeAt] {
	case 2: // DictionaryBatch{id, data: RecordBatch, isDelta}
		c.what = "dictionary batch"
		if at := fbFieldPos(meta, rb, 0); at != 0 {
			c.dict = int64(binary.LittleEndian.Uint64(meta[at:]))
		}
		if at := fbFieldPos(meta, rb, 2); at != 0 {
			c.delta = meta[at] != 0
		}
		at := fbFieldPos(meta, rb, 1)
		if at == 0 {
			return c, nil
		}
		rb = fbDeref(meta, at)
	case 3: // RecordBatch
		c.what = "record batch"
	default:
		return c, nil
	}
	if at := fbFieldPos(meta, rb, 0); at != 0 {
		c.length = int64(binary.LittleEndian.Uint64(meta[at:]))
	}
	if c.length < 0 {
		return c, fmt.Errorf("%s: length %d", c.what, c.length)
	}
	if at := fbFieldPos(meta, rb, 1); at != 0 {
		vec := fbDeref(meta, at)
		for i := range int(binary.LittleEndian.Uint32(meta[vec:])) {
			n := int64(binary.LittleEndian.Uint64(meta[vec+4+16*i:]))
			if n < 0 {
				return c, fmt.Errorf("%s: field node %d of length %d", c.what, i, n)
			}
			if n > c.widest {
				c.widest, c.widestAt = n, i
			}
		}
	}
	var err error
	c.decoded, err = compressedClaims(meta, rb, body, c.what)
	return c, err
}

// compressedClaims returns how many bytes arrow-go will allocate to decompress the compressed buffers
// of the RecordBatch table at rb (see messageClaims): what each announces, rounded up to a multiple of
// 64 bytes as arrow-go's buffers are, in all. Batches without compressed buffers claim 0.
func compressedClaims(meta []byte, rb int, body []byte, what string) (int64, error) {
	compAt, bufsAt := fbFieldPos(meta, rb, 3), fbFieldPos(meta, rb, 2)
	if compAt == 0 || bufsAt == 0 {
		return 0, nil
	}
	codec := 0 // BodyCompression.codec, LZ4_FRAME by default
	if at := fbFieldPos(meta, fbDeref(meta, compAt), 0); at != 0 {
		codec = int(int8(meta[at]))
	}
	if codec < 0 || codec >= len(maxExpansion) {
		return 0, fmt.Errorf("%s: unknown compression codec %d", what, codec)
	}
	vec := fbDeref(meta, bufsAt)
	n := int(binary.LittleEndian.Uint32(meta[vec:]))
	total := int64(0)
	for i := range n {
		off := int64(binary.LittleEndian.Uint64(meta[vec+4+16*i:]))
		size := int64(binary.LittleEndian.Uint64(meta[vec+4+16*i+8:]))
		if size == 0 {
			continue // arrow-go reads an empty buffer without looking at the body
		}
		if off < 0 || size < 0 || off > int64(len(body)) || size > int64(len(body))-off {
			return 0, fmt.Errorf("%s: buffer %d (%d bytes at %d) overruns the %d-byte body", what, i, size, off, len(body))
		}
		if size < 8 {
			return 0, fmt.Errorf("%s: compressed buffer %d of %d bytes, too short for its 8-byte size", what, i, size)
		}
		claim := int64(binary.LittleEndian.Uint64(body[off:]))
		switch {
		case claim == -1: // sent uncompressed
			continue
		case claim < 0:
			return 0, fmt.Errorf("%s: compressed buffer %d announces %d bytes", what, i, claim)
		case claim > maxExpansion[codec]*(size-8):
			return 0, fmt.Errorf("%s: compressed buffer %d announces %d bytes from %d bytes of %s, which expand to %d at most (damaged?)",
				what, i, claim, size-8, codecNames[codec], maxExpansion[codec]*(size-8))
		}
		if alloc := (claim + 63) &^ 63; alloc > maxDecodedBuffer { // as arrow-go's buffer asks for it
			return 0, fmt.Errorf("%w: %s: compressed buffer %d announces %d bytes, more than the %d one buffer may decompress to",
				ErrDecodeLimit, what, i, claim, maxDecodedBuffer)
		}
		// No overflow: at most 2^31 for each of fewer than 2^27 buffers (16 bytes of metadata each).
		total += (claim + 63) &^ 63
	}
	return total, nil
}

// rowAllowance returns how many rows a message of size bytes, which decoded to decoded more, may
// carry: eight a byte (see DefaultMaxDatalessRows) and dataless more. It saturates at MaxInt64.
func rowAllowance(size, decoded, dataless int64) int64 {
	bytes := size + decoded
	if bytes < 0 || bytes > (math.MaxInt64-dataless)/8 {
		return math.MaxInt64
	}
	return 8*bytes + dataless
}
