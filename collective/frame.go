package collective

import (
	"encoding/binary"
	"fmt"

	"github.com/fnmesh/fnmesh/internal/crc32c"
)

// Wire format. Every message on a link is one frame: a fixed 32-byte header
// followed by the payload.
//
//	offset size field
//	0      2    magic 0xF3 0x4D
//	2      1    version (1)
//	3      1    flags: bit 0 set when the payload checksum is in the header,
//	            bit 1 when it follows the payload in a 4-byte trailer
//	4      4    payload length, little endian
//	8      8    communicator id
//	16     8    tag: user tags are 0..MaxTag; internal tags have bit 63 set
//	24     4    CRC32C of the payload (0 unless flag bit 0 is set)
//	28     4    CRC32C of header bytes 0..27
//
// Large payloads (streamMin and up) are sent in chunks, each checksummed
// just before it is written while it is in cache, and their CRC32C follows
// the payload as a little-endian trailer (flag bit 1).
//
// The header checksum is always verified, so a damaged length or tag is
// caught before any payload is read; the payload checksum is on by default
// (WithChecksum(false) turns it off on the sending side).
const (
	hdrLen      = 32
	hdrMagic0   = 0xF3
	hdrMagic1   = 0x4D
	hdrVersion  = 1
	flagPayload = 1 << 0
	flagTrailer = 1 << 1
)

// key is what a receive matches on: the communicator and the tag.
type key struct {
	comm uint64
	tag  uint64
}

type header struct {
	key
	n       int
	flags   byte
	payload uint32 // payload CRC32C
}

// putHeader encodes h into b (len(b) >= hdrLen).
func putHeader(b []byte, h header) {
	b[0], b[1], b[2], b[3] = hdrMagic0, hdrMagic1, hdrVersion, h.flags
	binary.LittleEndian.PutUint32(b[4:], uint32(h.n))
	binary.LittleEndian.PutUint64(b[8:], h.comm)
	binary.LittleEndian.PutUint64(b[16:], h.tag)
	binary.LittleEndian.PutUint32(b[24:], h.payload)
	binary.LittleEndian.PutUint32(b[28:], crc32c.Checksum(b[:28]))
}

// parseHeader decodes and checks a header; maxFrame bounds the payload length.
func parseHeader(b []byte, maxFrame int) (header, error) {
	if got, want := binary.LittleEndian.Uint32(b[28:]), crc32c.Checksum(b[:28]); got != want {
		return header{}, fmt.Errorf("%w: header checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	if b[0] != hdrMagic0 || b[1] != hdrMagic1 {
		return header{}, fmt.Errorf("%w: bad magic %02x%02x", ErrCorrupt, b[0], b[1])
	}
	if b[2] != hdrVersion {
		return header{}, fmt.Errorf("%w: unsupported frame version %d", ErrCorrupt, b[2])
	}
	h := header{
		key: key{
			comm: binary.LittleEndian.Uint64(b[8:]),
			tag:  binary.LittleEndian.Uint64(b[16:]),
		},
		n:       int(binary.LittleEndian.Uint32(b[4:])),
		flags:   b[3],
		payload: binary.LittleEndian.Uint32(b[24:]),
	}
	if h.n > maxFrame {
		return header{}, fmt.Errorf("%w: frame of %d bytes exceeds the limit of %d", ErrFrameTooLarge, h.n, maxFrame)
	}
	return h, nil
}

// Tags. User tags are small non-negative integers. Collectives use internal
// tags: bit 63 set, a per-communicator call sequence in bits 24..62 and a
// step number within the call in bits 0..23, so that consecutive collectives
// never match each other's messages.
const (
	// MaxTag is the largest tag Send and Recv accept.
	MaxTag       = 1<<31 - 1
	internalBit  = uint64(1) << 63
	stepBits     = 24
	maxStep      = 1<<stepBits - 1
	sequenceMask = (uint64(1) << (63 - stepBits)) - 1
)

func internalTag(seq uint64, step int) uint64 {
	return internalBit | (seq&sequenceMask)<<stepBits | uint64(step)&maxStep
}
