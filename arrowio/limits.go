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
// size it decompresses to and is allocated that size, and record batches whose columns hold nothing
// per row (null columns, run-end encoded ones, zero-width fixed-size types, structs of those, no
// columns at all), which can claim any number of rows in a few bytes. Both are bounded per message.

// ErrDecodeLimit is returned (wrapped, naming the message, the sizes and the limit) when a received
// message, or DecodeIPC's input, would cost more to decode than WithMaxDecodedBytes or
// WithMaxDatalessRows allows. The stream is refused; the communicator stays usable.
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
	// them cost those 3-5 GiB, about what a message may decode to.
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
//     many extension bytes as follow, each worth 255 at most). A match of m extension bytes costs 3 +
//     m bytes and copies at most 19 + 255m; a literal costs its byte; so output stays under 255
//     times the input, whatever else the frame holds (headers, uncompressed blocks: less).
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
	if size < 0 || size > a.maxBuffer {
		panic(fmt.Sprintf("an allocation of %d bytes is outside the limit of 0..%d (damaged input?)", size, a.maxBuffer))
	}
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

// compressedClaims returns how many bytes arrow-go will allocate to decompress the compressed buffers
// of one IPC message (meta verified, body its body): what each announces, rounded up to a multiple of
// 64 bytes as arrow-go's buffers are, in all. Each
// announcement is checked first: a compressed buffer holds its 8-byte size, inside the body, and
// announces no more than its codec can expand its bytes to (maxExpansion). Messages without
// compressed buffers claim 0.
func compressedClaims(meta, body []byte) (int64, error) {
	root := fbDeref(meta, 0)
	typeAt, headerAt := fbFieldPos(meta, root, 1), fbFieldPos(meta, root, 2)
	if typeAt == 0 || headerAt == 0 {
		return 0, nil
	}
	rb := fbDeref(meta, headerAt)
	what := "record batch"
	switch meta[typeAt] {
	case 2: // DictionaryBatch: its data is a RecordBatch
		at := fbFieldPos(meta, rb, 1)
		if at == 0 {
			return 0, nil
		}
		rb, what = fbDeref(meta, at), "dictionary batch"
	case 3: // RecordBatch
	default:
		return 0, nil
	}
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
		claim = (claim + 63) &^ 63       // no overflow: claim is at most 32768 times a length that fits in the body
		if claim > math.MaxInt64-total { // buffers may overlap: many can claim the same bytes
			return math.MaxInt64, nil
		}
		total += claim
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
