package frame

import (
	"log/slog"
	"runtime"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
)

// Option configures a Frame. A frame's operators pass its options on to the
// frames they return.
type Option func(*config)

type config struct {
	mem         memory.Allocator
	compression arrowio.Compression
	profile     *Profile
	log         *slog.Logger
	parallelism int

	maxDecodedBytes, maxDatalessRows int64 // negative: arrowio's defaults
}

func newConfig(opts []Option) *config {
	cfg := &config{
		mem: memory.DefaultAllocator, log: slog.New(slog.DiscardHandler), parallelism: runtime.GOMAXPROCS(0),
		maxDecodedBytes: -1, maxDatalessRows: -1,
	}
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
	return cfg
}

// WithAllocator sets the allocator of every array the frame's operators
// build (default memory.DefaultAllocator). Tests pass a
// memory.CheckedAllocator to prove that nothing leaks.
func WithAllocator(mem memory.Allocator) Option {
	return func(c *config) {
		if mem != nil {
			c.mem = mem
		}
	}
}

// WithCompression compresses the Arrow buffers the operators exchange
// between ranks (arrowio.LZ4 or arrowio.Zstd; default none). Worth it when
// the links are slower than the codec, as between functions in different
// networks; on loopback or a fast LAN it costs more than it saves.
func WithCompression(c arrowio.Compression) Option {
	return func(cfg *config) { cfg.compression = c }
}

// WithProfile records the time, rows and bytes of every phase of every
// operator (partition, exchange, local join, ...) into p.
func WithProfile(p *Profile) Option {
	return func(c *config) { c.profile = p }
}

// WithParallelism sets how many goroutines a rank's local kernels may use
// at once (the integer-key hash join and the gathers of output columns);
// default runtime.GOMAXPROCS(0). Use 1 when several ranks share a machine's
// cores.
func WithParallelism(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.parallelism = n
		}
	}
}

// WithLogger logs each operator phase at debug level (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithDecodeLimits bounds what decoding one message a rank receives from
// another (in a shuffle, join, sort, ...), or one file ReadIPC reads, may
// cost: maxDecodedBytes what its compressed buffers may decompress to in
// all (arrowio.WithMaxDecodedBytes, default arrowio.DefaultMaxDecodedBytes,
// 4 GiB), maxDatalessRows the rows it may carry beyond those its bytes hold
// (arrowio.WithMaxDatalessRows: null columns and the like; default
// arrowio.DefaultMaxDatalessRows). Over either is an error wrapping
// arrowio.ErrDecodeLimit. A negative value keeps that default. Raise them to
// read compressed IPC files that decompress to more than 4 GiB each. Every
// rank sends under the same limits: a row or a dictionary that no message
// within maxDatalessRows can carry is refused by its sender, naming it,
// before anything moves.
func WithDecodeLimits(maxDecodedBytes, maxDatalessRows int64) Option {
	return func(c *config) {
		c.maxDecodedBytes, c.maxDatalessRows = maxDecodedBytes, maxDatalessRows
	}
}

// decodeLimits returns the arrowio options of the frame's decode limits.
func (c *config) decodeLimits() []arrowio.Option {
	return []arrowio.Option{arrowio.WithMaxDecodedBytes(c.maxDecodedBytes), arrowio.WithMaxDatalessRows(c.maxDatalessRows)}
}

func (c *config) arrowio() []arrowio.Option {
	return append([]arrowio.Option{arrowio.WithAllocator(c.mem), arrowio.WithCompression(c.compression)}, c.decodeLimits()...)
}
