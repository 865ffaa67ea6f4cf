package collective

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRecvIntoTooSmallWithAnotherWaiter: a RecvInto whose buffer is too
// short leaves the message queued for the next receive from that source
// and tag; when that next receive is already waiting (another goroutine's
// RecvInto, Recv or posted request), it must get the message instead of
// waiting for a later one.
func TestRecvIntoTooSmallWithAnotherWaiter(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		for _, tc := range []struct {
			name string
			src  int
			size int
			next string
		}{
			{"recv", 0, 10, "recv"},
			{"recvinto", 0, 10, "recvinto"},
			{"posted", 0, 10, "posted"},
			{"streamed recv", 0, streamMin + 5, "recv"},
			{"streamed posted", 0, 1 << 20, "posted"},
			{"self recv", 1, 10, "recv"},
			{"self posted", 1, 10, "posted"},
		} {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				comms := newComms(t, kind, 2)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				msg := payload(tc.src, tc.size, 3)
				first := make(chan error, 1)
				go func() {
					_, err := comms[1].RecvInto(ctx, tc.src, 4, make([]byte, 2))
					first <- err
				}()
				time.Sleep(20 * time.Millisecond) // let the short receive post first (not required for the outcome)
				second := make(chan []byte, 1)
				secondErr := make(chan error, 1)
				var q *Request
				if tc.next == "posted" {
					var err error
					q, err = comms[1].PostRecvFunc(tc.src, 4, func(n int) []byte { return make([]byte, n) })
					require.NoError(t, err)
				}
				go func() {
					var b []byte
					var err error
					switch tc.next {
					case "recv":
						b, err = comms[1].Recv(ctx, tc.src, 4)
					case "recvinto":
						buf := make([]byte, tc.size)
						var n int
						n, err = comms[1].RecvInto(ctx, tc.src, 4, buf)
						b = buf[:n]
					case "posted":
						b, err = q.Wait(ctx)
					}
					second <- b
					secondErr <- err
				}()
				time.Sleep(20 * time.Millisecond)
				require.NoError(t, comms[tc.src].Send(ctx, 1, 4, msg))
				// Whichever receive got the message first, the other one
				// either failed (too small) or is still waiting: a second,
				// short message settles it.
				err := <-first
				if err == nil {
					t.Fatalf("the 2-byte receive got the %d-byte message", tc.size)
				}
				require.True(t, errors.Is(err, ErrBufferTooSmall), "%v", err)
				require.NoError(t, <-secondErr, "the waiting receive must get the message the short one left queued")
				require.NoError(t, mismatch("message", <-second, msg))
				require.NoError(t, comms[0].Err())
				require.NoError(t, comms[1].Err())
			})
		}
	}
}
