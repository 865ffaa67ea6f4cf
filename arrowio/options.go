package arrowio

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Compression selects the IPC body compression used on the wire.
type Compression int

const (
	// NoCompression sends buffers as they are (the default).
	NoCompression Compression = iota
	// LZ4 compresses each body buffer with LZ4 frames: fast, modest ratio.
	LZ4
	// Zstd compresses each body buffer with Zstandard: slower, better ratio.
	Zstd
)

// String returns "none", "lz4" or "zstd".
func (c Compression) String() string {
	switch c {
	case NoCompression:
		return "none"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// DefaultBatchBytes is the default size, in bytes of Arrow buffers, of one message of a stream: larger
// record batches are cut into slices (zero copy) and smaller consecutive ones share a message. A
// batch of fixed-width columns is cut into slices of equal rows; one with columns of variable width
// (strings, binaries, lists, views, and structs and fixed-size lists of them) is cut where the sizes
// of its rows say, so that a slice holds at most this many bytes, or is a single row larger than
// that (which travels alone). A receiver decodes a message once it has all of it, and a compressing
// sender holds one compressed message per destination.
const DefaultBatchBytes = 4 << 20

// Option configures an operation of this package.
type Option func(*config)

type config struct {
	mem         memory.Allocator
	compression Compression
	batchBytes  int64
	limits      recvLimits
}

func newConfig(opts []Option) config {
	cfg := config{mem: memory.DefaultAllocator, batchBytes: DefaultBatchBytes, limits: defaultRecvLimits}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
}

// WithAllocator sets the allocator for the arrays this package builds (partitions, decompressed
// buffers). The default is memory.DefaultAllocator.
func WithAllocator(mem memory.Allocator) Option {
	return func(c *config) {
		if mem != nil {
			c.mem = mem
		}
	}
}

// minSpaceSavings: a buffer that compression shrinks by less than this fraction is sent uncompressed.
const minSpaceSavings = 0.05

// WithCompression compresses the body buffers of every record batch sent (LZ4 or Zstd, the two codecs
// of the Arrow IPC format). Receivers need no option: the codec is named in each message. A buffer that
// compression shrinks by less than 5% is sent uncompressed, as the format allows (readers from Arrow
// 12 on understand it), so incompressible columns cost the receiver nothing to decode.
func WithCompression(c Compression) Option {
	return func(cfg *config) { cfg.compression = c }
}

// WithBatchBytes sets the size of one message of a stream (see DefaultBatchBytes); n <= 0 sends every
// record batch whole, in a message of its own.
func WithBatchBytes(n int64) Option {
	return func(c *config) { c.batchBytes = n }
}

// WithMaxDecodedBytes bounds what decoding one received message may allocate, in all (the buffers its
// compressed buffers decompress to, and anything else arrow-go's reader makes for it, such as the
// join of a delta dictionary to the dictionary before it): a message that would take more is refused
// with an error wrapping ErrDecodeLimit, before its compressed buffers are decompressed if what they
// announce is over the limit already. The default is DefaultMaxDecodedBytes; n < 0 restores it. With
// n = 0 only messages that decode without allocating pass: no compressed buffer, no delta dictionary.
// Uncompressed buffers are used where they arrive and are not counted; any one decompressed buffer is
// bounded at 2 GiB whatever n. The bound is
// per message of the communicator (each of the ranks' streams is cut into messages of about
// WithBatchBytes) and, for DecodeIPC, for its whole input. Receivers use it (RecvTable,
// NewStreamReader, the collectives, Shuffle, DecodeIPC); senders ignore it.
func WithMaxDecodedBytes(n int64) Option {
	return func(c *config) {
		if n < 0 {
			n = DefaultMaxDecodedBytes
		}
		c.limits.decodedBytes = n
	}
}

// WithMaxDatalessRows bounds the rows one received message may carry beyond eight a byte of it
// (counting what its compressed buffers decompress to), and the values of each of its columns at any
// depth (a list's values, a dictionary's): those of columns that hold nothing per value, null columns
// and the like, which can claim billions in a few bytes (see DefaultMaxDatalessRows). Rows and
// values that store something are bounded by the bytes and never refused. A message over the bound
// is refused, before anything of it is decoded, with an error wrapping ErrDecodeLimit. The default is
// DefaultMaxDatalessRows; n < 0 restores it. Like WithMaxDecodedBytes, it applies to each message
// received and to DecodeIPC's whole input; what delta dictionary batches add to a dictionary over a
// stream's messages is bounded by the stream's bytes so far in the same way.
//
// Senders use it too (SendTable, NewStreamWriter, the collectives, Shuffle): a sender cannot know a
// receiver's options, so it takes its own, the default unless given, as the receivers'. It cuts what
// it sends so that every message stays within n, and it refuses a row that no cut can bring within
// it (one row of a list holding 2^29 nulls, under the default), before sending anything of the table
// or batch, with an error wrapping ErrDecodeLimit that names the row and the column: rows are never
// cut across messages, so the receiver would refuse the message. A dictionary is sent whole, so one
// whose values hold more such values than its bytes allow (an entry of 2^29 nulls) is refused the
// same way, naming the column. As with any rank's failure to send, the receivers fail with the
// sender's error, and a collective fails on every rank it involves (see the package doc's Failures);
// a Shuffle of more than one rank refuses such a row whichever rank its keys send it to, and a
// StreamWriter aborts its stream. To send such rows, give every rank, senders and receivers, the same
// larger n (the collectives take the same options on every rank). The sender counts a row's bytes
// without its dictionaries and the messages' metadata, so it may refuse a row that a receiver would
// take by those few bytes (8 values a byte).
func WithMaxDatalessRows(n int64) Option {
	return func(c *config) {
		if n < 0 {
			n = DefaultMaxDatalessRows
		}
		c.limits.datalessRows = n
	}
}

// ipcWriterOptions returns the IPC writer's options; mem is the allocator of what the writer makes.
func (c *config) ipcWriterOptions(mem memory.Allocator) ([]ipc.Option, error) {
	opts := []ipc.Option{ipc.WithAllocator(mem)}
	switch c.compression {
	case NoCompression:
	case LZ4:
		opts = append(opts, ipc.WithLZ4(), ipc.WithMinSpaceSavings(minSpaceSavings))
	case Zstd:
		opts = append(opts, ipc.WithZstd(), ipc.WithMinSpaceSavings(minSpaceSavings))
	default:
		return nil, fmt.Errorf("arrowio: unknown compression %v", c.compression)
	}
	return opts, nil
}
