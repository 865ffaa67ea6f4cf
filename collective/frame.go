package collective

import (
	"encoding/binary"
	"fmt"
	"math"

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
// the payload as a little-endian trailer (flag bit 1). A message a rank
// forwards unchanged, if it arrived as one frame with a checksum, goes out
// with that checksum, in one vectored write (call.forward).
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
	// The length is checked before it becomes an int: on 32-bit platforms
	// a length of 2^31 or more would turn negative and pass the limit.
	n, flags := binary.LittleEndian.Uint32(b[4:]), b[3]
	// An abort frame is bounded by abortMax, not by the limit: a peer
	// whose limit is below its error's text must still be heard (readAbort
	// reads at most abortMax bytes of it, and nothing of a longer one).
	if uint64(n) > uint64(maxFrame) && flags&flagAbort == 0 {
		return header{}, fmt.Errorf("%w: frame of %d bytes exceeds the limit of %d", ErrFrameTooLarge, n, maxFrame)
	}
	n = min(n, math.MaxInt32) // an abort frame's; still above abortMax
	return header{
		key: key{
			comm: binary.LittleEndian.Uint64(b[8:]),
			tag:  binary.LittleEndian.Uint64(b[16:]),
		},
		n:       int(n),
		flags:   flags,
		payload: binary.LittleEndian.Uint32(b[24:]),
	}, nil
}

// Tags. User tags are small non-negative integers. Collectives use internal
// tags: bit 63 set, a per-communicator call sequence in bits 40..62, the
// call's identity (what every rank of the call must agree on beyond the
// algorithm: the root, and for reductions whether the op is commutative)
// in bits 24..39, the wire id of the algorithm the call runs in bits 18..23
// and a step number within the call in bits 0..17. The sequence keeps
// consecutive collectives from matching each other's messages; the wire id
// and the identity keep ranks that run different algorithms (or different
// collectives) or that name different roots from taking each other's
// messages for their own, even where steps and lengths coincide: a message
// of the running call with another wire id or identity is ErrMismatch (see
// link.checkCall).
//
// The sequence has 23 bits: two calls 2^23 apart share their tags, and
// callBehind compares sequences modulo the field, so a call more than 2^22
// ahead looks like one behind. That matters only to a rank that runs 2^22
// calls ahead of a peer that holds all its messages queued meanwhile
// (gigabytes of queue).
const (
	// MaxTag is the largest tag Send and Recv accept.
	MaxTag       = 1<<31 - 1
	internalBit  = uint64(1) << 63
	stepBits     = 18
	wireBits     = 6
	identBits    = 16
	identShift   = stepBits + wireBits
	callShift    = identShift + identBits
	maxStep      = 1<<stepBits - 1
	sequenceMask = (uint64(1) << (63 - callShift)) - 1
	wireField    = uint64(1<<wireBits-1) << stepBits
	identField   = uint64(1<<identBits-1) << identShift
	seqField     = sequenceMask << callShift
)

// An ident is the part of a call's identity that the wire id does not
// carry: in bits 0..14 the root of a rooted collective, or for a
// collective without a root a hash of the sizes every rank must agree on
// (a vector's length and element size, reduce-scatter's counts, alltoall's
// and allgather-into's block size), and for reductions whether the op is
// commutative (bit 15). It is 0 where there is nothing more to agree on.
//
// Sizes that disagree also show as a message of an unexpected size, but not
// always where a rank would see it: a reduce-scatter rank receives only
// pieces of its own block, so counts that differ elsewhere would give it a
// wrong result without an error. The hash makes the first message between
// two ranks that disagree a mismatch, except for one disagreement in 2^15
// that collides (and then the sizes usually show it).
type ident uint16

const identCommutative = ident(1) << 15

func rootIdent(root int) ident { return ident(root) &^ identCommutative }

// sizeIdent hashes sizes into the 15 low bits of an ident.
func sizeIdent(sizes ...int) ident {
	h := sizeHashInit
	for _, v := range sizes {
		h = h.add(v)
	}
	return h.ident()
}

// sizeHash is a running FNV-1a hash of sizes.
type sizeHash uint64

const sizeHashInit sizeHash = 14695981039346656037

func (h sizeHash) add(v int) sizeHash {
	for i := range 8 {
		h ^= sizeHash(v>>(8*i)) & 0xff
		h *= 1099511628211
	}
	return h
}

func (h sizeHash) ident() ident { return ident(h^h>>16^h>>32^h>>48) &^ identCommutative }

// rooted reports whether the ident of a call under wire w holds a root
// (else a hash of sizes).
func rooted(w wire) bool {
	switch w {
	case wireBcast, wire(BcastBinomial), wire(BcastScatterAllgather), wire(GatherBinomial), wire(GatherLinear),
		wire(ScatterBinomial), wire(ScatterLinear), wire(ReduceBinomial), wire(ReduceScatterGather):
		return true
	}
	return false
}

func internalTag(seq uint64, w wire, id ident, step int) uint64 {
	return internalBit | (seq&sequenceMask)<<callShift | uint64(id)<<identShift | uint64(w)<<stepBits&wireField | uint64(step)&maxStep
}

// tagWire returns the wire id of an internal tag.
func tagWire(tag uint64) wire { return wire((tag & wireField) >> stepBits) }

// tagIdent returns the ident of an internal tag.
func tagIdent(tag uint64) ident { return ident((tag & identField) >> identShift) }

func (id ident) root() int         { return int(id &^ identCommutative) }
func (id ident) commutative() bool { return id&identCommutative != 0 }

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

// Compile-time checks of the tag layout: the wire ids fit their field, an
// allgather's four step ranges of MaxRanks (probe and the three second
// passes, see allgatherBase) fit below the fold-out step, and every rank
// fits the root bits of an ident.
var (
	_ [1<<wireBits - int(numWires)]struct{}
	_ [maxStep - 4*MaxRanks]struct{}
	_ [int(identCommutative) - MaxRanks]struct{} // every root fits the ident
)
