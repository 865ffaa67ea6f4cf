package rendezvous

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"testing"
)

// FuzzReadMessage reads frames one after the other from a stream, as a
// connection does: whatever arrives, readMessage never panics, consumes
// exactly the frame it decodes (so the bytes after it, e.g. a relay's raw
// stream, are left in the socket), decodes what decodeFrame decodes, and
// at the end of the input says io.EOF only between frames.
func FuzzReadMessage(f *testing.F) {
	var all []byte
	msgs := sampleMessages()
	for _, name := range slices.Sorted(maps.Keys(msgs)) {
		fr := encodeFrame(msgs[name])
		f.Add(fr)
		all = append(all, fr...)
	}
	f.Add(all)
	f.Add(append(encodeFrame(relayReady{}), "raw bytes after the frame"...))
	f.Add([]byte{'F', 'M', ProtoVersion, 0x05, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{'F', 'M', ProtoVersion, 0x07, 0x7F, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			before := len(b) - r.Len()
			m, err := readMessage(r, maxClientLoad)
			if err != nil {
				if errors.Is(err, io.EOF) != (before == len(b)) {
					t.Fatalf("at byte %d of %d: %v", before, len(b), err)
				}
				var e *Error
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &e) {
					t.Fatalf("error %v is neither an *Error nor the end of the input", err)
				}
				return
			}
			frame := b[before : len(b)-r.Len()]
			if again := encodeFrame(m); !bytes.Equal(again, frame) {
				t.Fatalf("read %x as %#v, which encodes to %x", frame, m, again)
			}
			if _, err := decodeFrame(frame, maxClientLoad); err != nil {
				t.Fatalf("readMessage took %x, decodeFrame refuses it: %v", frame, err)
			}
		}
	})
}
