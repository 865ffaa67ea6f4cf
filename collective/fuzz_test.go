package collective

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/internal/crc32c"
)

// FuzzLinkInput feeds arbitrary bytes to a communicator's link, as a
// broken or hostile peer would: a receive must end with a message or an
// error, never a panic, a hang or a message whose checksum failed.
func FuzzLinkInput(f *testing.F) {
	frame := func(tag uint64, payload []byte, flags byte) []byte {
		h := header{key: key{worldID, tag}, n: len(payload), flags: flags}
		if flags&flagPayload != 0 {
			h.payload = crc32Of(payload)
		}
		b := make([]byte, hdrLen, hdrLen+len(payload)+4)
		putHeader(b, h)
		b = append(b, payload...)
		if flags&flagTrailer != 0 {
			c := crc32Of(payload)
			b = append(b, byte(c), byte(c>>8), byte(c>>16), byte(c>>24))
		}
		return b
	}
	f.Add(frame(1, []byte("hello"), flagPayload))
	f.Add(frame(1, nil, 0))
	f.Add(frame(1, []byte("trailer"), flagTrailer))
	f.Add(append(frame(2, []byte("other tag"), flagPayload), frame(1, []byte("x"), 0)...))
	f.Add(frame(internalTag(1, wireBcast, 3), []byte("internal"), flagPayload))
	f.Add([]byte{0xF3, 0x4D, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		c, err := New(1, []net.Conn{b, nil}, WithMaxFrame(1<<16))
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
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("receive hung")
		}
		if err == nil && len(got) > len(in) {
			t.Fatalf("received %d bytes from %d of input", len(got), len(in))
		}
	})
}

func crc32Of(b []byte) uint32 { return crc32c.Checksum(b) }
