package collective

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/internal/crc32c"
)

// fuzzMaxFrame is the frame limit of the fuzzed communicator.
const fuzzMaxFrame = 1 << 16

// castagnoli is the test's own CRC32C (hash/crc32's), independent of the
// transport's internal/crc32c.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// expectRecv is the fuzz test's oracle: written independently of the
// reader, it walks a byte stream as the wire format says and returns the
// payload of the first frame for (worldID, tag) if every frame before it
// is well formed (ok; an abort frame, by which the peer says it failed,
// is not), and whether anything after it is not (later: the
// reader, which may read ahead before the receive is posted, may then fail
// the link and drop the queued message). A stream that ends cleanly after
// whole frames is well formed: the peer closed the link.
func expectRecv(in []byte, tag uint64) (want []byte, ok, later bool) {
	valid := func(b []byte) (payload, rest []byte, hdr [hdrLen]byte, good bool) {
		if len(b) < hdrLen {
			return nil, nil, hdr, false
		}
		copy(hdr[:], b)
		if crc32.Checksum(hdr[:28], castagnoli) != binary.LittleEndian.Uint32(hdr[28:]) ||
			hdr[0] != 0xF3 || hdr[1] != 0x4D || hdr[2] != 1 || hdr[3]&4 != 0 { // flag bit 2: the peer failed
			return nil, nil, hdr, false
		}
		n := uint64(binary.LittleEndian.Uint32(hdr[4:]))
		if n > fuzzMaxFrame || uint64(len(b)-hdrLen) < n {
			return nil, nil, hdr, false
		}
		payload, rest = b[hdrLen:hdrLen+int(n)], b[hdrLen+int(n):]
		sum, flags := binary.LittleEndian.Uint32(hdr[24:]), hdr[3]
		if flags&2 != 0 { // trailer
			if len(rest) < 4 {
				return nil, nil, hdr, false
			}
			sum, rest = binary.LittleEndian.Uint32(rest), rest[4:]
		}
		if flags&3 != 0 && crc32.Checksum(payload, castagnoli) != sum {
			return nil, nil, hdr, false
		}
		return payload, rest, hdr, true
	}
	b := in
	for len(b) > 0 {
		payload, rest, hdr, good := valid(b)
		if !good {
			return nil, false, false
		}
		b = rest
		if binary.LittleEndian.Uint64(hdr[8:]) == worldID && binary.LittleEndian.Uint64(hdr[16:]) == tag {
			for len(b) > 0 {
				var g bool
				if _, b, _, g = valid(b); !g {
					return payload, true, true
				}
			}
			return payload, true, false
		}
	}
	return nil, false, false // the peer closed without sending it
}

// fuzzFrame encodes one frame with the transport's encoder.
func fuzzFrame(comm, tag uint64, payload []byte, flags byte) []byte {
	h := header{key: key{comm, tag}, n: len(payload), flags: flags}
	if flags&flagPayload != 0 {
		h.payload = crc32Of(payload)
	}
	b := make([]byte, hdrLen, hdrLen+len(payload)+4)
	putHeader(b, h)
	b = append(b, payload...)
	if flags&flagTrailer != 0 {
		b = binary.LittleEndian.AppendUint32(b, crc32Of(payload))
	}
	return b
}

// FuzzLinkInput feeds arbitrary bytes to a communicator's link, as a broken
// or hostile peer would, and receives tag 1: the receive must end with
// exactly the payload the oracle finds or with an error, never a panic, a
// hang, or any other bytes (a frame whose checksum failed, one cut short,
// the wrong frame).
func FuzzLinkInput(f *testing.F) {
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	f.Add(fuzzFrame(worldID, 1, []byte("hello"), flagPayload))
	f.Add(fuzzFrame(worldID, 1, nil, 0))
	f.Add(fuzzFrame(worldID, 1, []byte("trailer"), flagTrailer))
	f.Add(fuzzFrame(worldID, 1, []byte("unchecked"), 0))
	f.Add(cat(fuzzFrame(worldID, 2, []byte("other tag"), flagPayload), fuzzFrame(worldID, 1, []byte("x"), 0)))
	f.Add(cat(fuzzFrame(7, 1, []byte("other comm"), flagPayload), fuzzFrame(worldID, 1, []byte("mine"), flagPayload)))
	f.Add(cat(fuzzFrame(worldID, internalTag(1, wireBcast, 0, 3), []byte("internal"), flagPayload), fuzzFrame(worldID, 1, []byte("after"), flagTrailer)))
	f.Add(cat(fuzzFrame(worldID, 1, []byte("first"), flagPayload), fuzzFrame(worldID, 1, []byte("second"), flagPayload)))
	f.Add(cat(fuzzFrame(worldID, 1, []byte("then junk"), flagPayload), []byte{0xF3, 0x4D, 1, 0, 9}))
	f.Add(fuzzFrame(worldID, 1, bytes.Repeat([]byte{0xA5}, 3000), flagPayload|flagTrailer))
	f.Add([]byte{0xF3, 0x4D, 1})
	f.Add(cat(fuzzFrame(0, abortMismatch, []byte("rank 0: ranks disagree"), flagAbort|flagPayload), fuzzFrame(worldID, 1, []byte("after abort"), 0)))
	f.Add(cat(fuzzFrame(worldID, 1, []byte("before abort"), 0), fuzzFrame(0, 0, bytes.Repeat([]byte{'x'}, 2*abortMax), flagAbort)))
	f.Fuzz(func(t *testing.T, in []byte) {
		want, ok, later := expectRecv(in, 1)
		a, b := net.Pipe()
		c, err := New(1, []net.Conn{b, nil}, WithMaxFrame(fuzzMaxFrame))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			_, _ = a.Write(in)
			_ = a.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := c.Recv(ctx, 0, 1)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			t.Fatal("receive hung")
		case err == nil && !ok:
			t.Fatalf("received %q; the input holds no well-formed frame for tag 1 before a bad one", got)
		case err == nil && !bytes.Equal(got, want):
			t.Fatalf("received %q, want %q", got, want)
		case err != nil && ok && !later:
			t.Fatalf("receive failed: %v; want %q (the input is well formed up to a clean end)", err, want)
		}
	})
}

func crc32Of(b []byte) uint32 { return crc32c.Checksum(b) }
