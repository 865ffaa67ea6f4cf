package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// arrow-go's Parquet reader decompresses every page into a buffer of the
// size its page header gives (the only caller of Codec.Decode). Two of its
// codecs allocate a larger buffer of their own when the compressed data
// claims more: Snappy by its length prefix (up to 4 GiB), Zstandard by a
// frame's content size (up to 64 GiB). A damaged page then makes the process
// allocate gigabytes, or die. At init, as compress.RegisterCodec intends,
// frame wraps those two codecs with a check of the claim against the buffer:
// a page whose data claims more than its header is refused (the codecs
// report errors by panicking, which the reader turns into an error), and a
// sound page decodes as before. The wrappers replace the codecs for the whole
// process; everything but Decode is passed through.
func init() {
	for _, b := range []boundedCodec{
		{c: compress.Codecs.Snappy, name: "snappy", claim: snappyClaim},
		{c: compress.Codecs.Zstd, name: "zstd", claim: zstdClaim, stream: zstdBoundedStream},
	} {
		inner, err := compress.GetCodec(b.c)
		if err != nil {
			continue // not compiled in
		}
		b.Codec = inner
		if sc, ok := inner.(compress.StreamingCodec); ok {
			compress.RegisterCodec(b.c, boundedStreamingCodec{boundedCodec: b, stream: sc})
		} else {
			compress.RegisterCodec(b.c, b)
		}
	}
}

// boundedStreamingCodec is a boundedCodec over a codec that also streams,
// which it keeps doing.
type boundedStreamingCodec struct {
	boundedCodec
	stream compress.StreamingCodec
}

func (b boundedStreamingCodec) NewReader(r io.Reader) io.ReadCloser  { return b.stream.NewReader(r) }
func (b boundedStreamingCodec) NewWriter(w io.Writer) io.WriteCloser { return b.stream.NewWriter(w) }
func (b boundedStreamingCodec) NewWriterLevel(w io.Writer, level int) (io.WriteCloser, error) {
	return b.stream.NewWriterLevel(w, level)
}

// boundedCodec is a codec whose Decode makes sure first that the data
// cannot decompress to more than len(dst).
type boundedCodec struct {
	compress.Codec
	c    compress.Compression
	name string
	// claim bounds what the data decompresses to; exact when the data says
	// how much it holds, not merely how much it may hold.
	claim func(src []byte) (n uint64, exact bool, err error)
	// stream decompresses src as a stream that needs at most about twice
	// max(size, 8 MiB) of memory of its own, or is nil.
	stream func(src []byte, size int) (io.ReadCloser, error)
}

// zstdBoundedStream decodes Zstandard data as a stream with one goroutine
// and a window of at most max(size, 8 MiB): a frame's window descriptor
// may claim up to 3.75 TB, which klauspost's decoder (arrow-go's, with its
// default options) would allocate up to its own limit of 512 MiB, twice,
// for history that an output of size bytes never needs. Writers' windows
// are 8 MiB or less at the usual levels.
func zstdBoundedStream(src []byte, size int) (io.ReadCloser, error) {
	d, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(uint64(max(size, 8<<20))))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}

func (b boundedCodec) Decode(dst, src []byte) []byte {
	n, exact, err := b.claim(src)
	switch {
	case err != nil:
		panic(fmt.Errorf("%s: %w", b.name, err))
	case n <= uint64(len(dst)):
		return b.Codec.Decode(dst, src)
	case exact:
		panic(fmt.Errorf("%s: %d compressed bytes claim to hold %d bytes, more than the page's %d", b.name, len(src), n, len(dst)))
	}
	// Only a bound, and above len(dst) (Zstandard frames without their
	// content size, whose compressed blocks may each hold up to 128 KiB):
	// decompress as a stream into dst, which cannot grow, and make sure
	// that nothing is left over.
	if b.stream == nil {
		panic(fmt.Errorf("%s: the data may hold up to %d bytes, more than the page's %d", b.name, n, len(dst)))
	}
	r, err := b.stream(src, len(dst))
	if err != nil {
		panic(fmt.Errorf("%s: %w", b.name, err))
	}
	defer r.Close()
	got, err := io.ReadFull(r, dst)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return dst[:got]
	case err != nil:
		panic(fmt.Errorf("%s: %w", b.name, err))
	}
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("the data decompresses to more than the page's %d bytes", len(dst))
		}
		panic(fmt.Errorf("%s: %w", b.name, err))
	}
	return dst
}

var errTruncated = errors.New("truncated header")

// snappyClaim is the decoded length a Snappy block starts with (a uvarint).
func snappyClaim(src []byte) (uint64, bool, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 {
		return 0, false, errors.New("malformed length prefix")
	}
	return n, true, nil
}

// zstdClaim bounds what Zstandard data (frames and skippable frames, as in
// RFC 8878) decompresses to, from the headers alone: the sum over its frames
// of the frame content size, or for a frame without one, of its blocks'
// sizes (raw and RLE blocks say theirs; a compressed block holds at most the
// maximum block size, 128 KiB). The bound is exact when every frame has
// its content size.
func zstdClaim(src []byte) (uint64, bool, error) {
	const (
		frameMagic     = 0xfd2fb528
		skippableMagic = 0x184d2a50 // the low 4 bits vary
		maxBlock       = 128 << 10
	)
	var total uint64
	exact := true
	add := func(n uint64) {
		if total > math.MaxUint64-n {
			total = math.MaxUint64
		} else {
			total += n
		}
	}
	for len(src) > 0 {
		if len(src) < 4 {
			return 0, false, errTruncated
		}
		magic := binary.LittleEndian.Uint32(src)
		if magic&^0xf == skippableMagic {
			if len(src) < 8 {
				return 0, false, errTruncated
			}
			n := uint64(binary.LittleEndian.Uint32(src[4:]))
			if n > uint64(len(src)-8) {
				return 0, false, errTruncated
			}
			src = src[8+n:]
			continue
		}
		if magic != frameMagic {
			return 0, false, fmt.Errorf("no frame magic number (%#08x)", magic)
		}
		if len(src) < 5 {
			return 0, false, errTruncated
		}
		fhd := src[4]
		pos := 5
		single := fhd&0x20 != 0
		if !single {
			pos++ // window descriptor
		}
		pos += [4]int{0, 1, 2, 4}[fhd&3] // dictionary id
		fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
		if fcsSize == 0 && single {
			fcsSize = 1
		}
		if len(src) < pos+fcsSize {
			return 0, false, errTruncated
		}
		fcs := uint64(0)
		switch fcsSize {
		case 1:
			fcs = uint64(src[pos])
		case 2:
			fcs = uint64(binary.LittleEndian.Uint16(src[pos:])) + 256
		case 4:
			fcs = uint64(binary.LittleEndian.Uint32(src[pos:]))
		case 8:
			fcs = binary.LittleEndian.Uint64(src[pos:])
		}
		pos += fcsSize
		var blocks uint64
		for last := false; !last; {
			if len(src) < pos+3 {
				return 0, false, errTruncated
			}
			h := int(src[pos]) | int(src[pos+1])<<8 | int(src[pos+2])<<16
			pos += 3
			last = h&1 != 0
			size := h >> 3
			switch (h >> 1) & 3 {
			case 0: // raw
				blocks += uint64(size)
				pos += size
			case 1: // RLE: one byte, repeated
				blocks += uint64(size)
				pos++
			case 2: // compressed
				blocks += maxBlock
				pos += size
			default:
				return 0, false, errors.New("reserved block type")
			}
			if pos > len(src) {
				return 0, false, errTruncated
			}
		}
		if fhd&0x04 != 0 { // content checksum
			pos += 4
			if pos > len(src) {
				return 0, false, errTruncated
			}
		}
		if fcsSize > 0 {
			add(fcs)
		} else {
			add(blocks)
			exact = false
		}
		src = src[pos:]
	}
	return total, exact, nil
}
