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
//	            bit 1 when it follows the payload in a 4-byte trailer,
//	            bit 2 for an abort frame (see link.writeAbort)
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
	flagAbort   = 1 << 2

	// An abort frame is the last frame a rank whose communicator failed
	// sends a peer before it closes the link: its tag holds abortMismatch
	// when the failure was a disagreement between ranks, its payload (at
	// most abortMax bytes) the error's text.
	abortMismatch = 1
	abortMax      = 512
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
// tags: bit 63 set, a per-communicator call sequence in bits 24..62, the
// wire id of the algorithm the call runs in bits 18..23 and a step number
// within the call in bits 0..17. The sequence keeps consecutive collectives
// from matching each other's messages; the wire id keeps ranks that run
// different algorithms (or different collectives) in the same call from
// taking each other's messages for their own, even where steps and lengths
// coincide: a message of the running call with another wire id is
// ErrMismatch (see link.checkCall).
const (
	// MaxTag is the largest tag Send and Recv accept.
	MaxTag       = 1<<31 - 1
	internalBit  = uint64(1) << 63
	stepBits     = 18
	wireBits     = 6
	callShift    = stepBits + wireBits
	maxStep      = 1<<stepBits - 1
	sequenceMask = (uint64(1) << (63 - callShift)) - 1
	wireField    = uint64(1<<wireBits-1) << stepBits
	seqField     = sequenceMask << callShift
)

func internalTag(seq uint64, w wire, step int) uint64 {
	return internalBit | (seq&sequenceMask)<<callShift | uint64(w)<<stepBits&wireField | uint64(step)&maxStep
}

// tagWire returns the wire id of an internal tag.
func tagWire(tag uint64) wire { return wire((tag & wireField) >> stepBits) }

// A wire id names the protocol a collective call runs, which every rank of
// the call must agree on: one per algorithm (the Algorithm's value), plus
// the protocols that are not one algorithm. Algorithms that send the same
// messages and may differ between ranks share one (alltoall(v) scattered
// and pairwise). Every message of a call carries the call's wire id;
// phases of a call use distinct steps.
type wire uint8

const (
	wireBcast         = wire(numAlgorithms) + iota // Bcast: the root's preamble names the algorithm
	wireAllgatherAuto                              // Allgather under Auto: a probe pass, then an agreed algorithm
	wireSplit                                      // Split: Bruck allgather of (color, key)
	numWires
)

func wireOf(a Algorithm) wire {
	switch a {
	case AlltoallPairwise:
		return wire(AlltoallScattered)
	case AlltoallvPairwise:
		return wire(AlltoallvScattered)
	}
	return wire(a)
}

func (w wire) String() string {
	switch {
	case w == wireBcast:
		return "bcast"
	case w == wireAllgatherAuto:
		return "allgather/auto"
	case w == wireSplit:
		return "split"
	case w > 0 && w < wire(numAlgorithms):
		return Algorithm(w).String()
	}
	return fmt.Sprintf("wire(%d)", uint8(w))
}

// MaxRanks is the largest communicator New accepts: the steps of the ring
// algorithms (one per rank) must fit the tag's step field.
const MaxRanks = 1 << 15

// Compile-time checks of the tag layout: the wire ids fit their field, and
// an allgather's four step ranges of MaxRanks (probe and the three second
// passes, see allgatherBase) fit below the fold-out step.
var (
	_ [1<<wireBits - int(numWires)]struct{}
	_ [maxStep - 4*MaxRanks]struct{}
)
