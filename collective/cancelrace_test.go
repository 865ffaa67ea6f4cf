package collective

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPostedCancelRace: one rank sends a numbered stream of small messages
// on one tag while the other posts receives and cancels some of them at
// random moments (before, while or after the message arrives). Every
// message must end exactly once: returned by a Wait, dropped by a Cancel
// after it was delivered, or left queued for a later receive; in the
// order sent; and the communicator must stay usable.
func TestPostedCancelRace(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		for _, src := range []int{0, 1} {
			t.Run(name(kind, "/src=", src), func(t *testing.T) {
				const n = 300
				comms := newComms(t, kind, 2)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var sendErr error
				var wg sync.WaitGroup
				defer func() { cancel(); wg.Wait() }() // the sender ends before the test does
				wg.Go(func() {
					for i := range n {
						m := make([]byte, 8+i%50)
						binary.LittleEndian.PutUint64(m, uint64(i))
						if sendErr = comms[src].Send(ctx, 1, 3, m); sendErr != nil {
							return
						}
						if i%7 == 0 {
							time.Sleep(50 * time.Microsecond)
						}
					}
				})
				rng := rand.New(rand.NewPCG(uint64(src), 9))
				var got []int
				seen := func(b []byte) {
					require.GreaterOrEqual(t, len(b), 8)
					got = append(got, int(binary.LittleEndian.Uint64(b)))
				}
				for len(got) < n {
					var delivered []byte
					var mu sync.Mutex
					q, err := comms[1].PostRecvFunc(src, 3, func(k int) []byte {
						b := make([]byte, k)
						mu.Lock()
						delivered = b
						mu.Unlock()
						return b
					})
					require.NoError(t, err)
					if rng.IntN(3) == 0 {
						if rng.IntN(2) == 0 {
							time.Sleep(time.Duration(rng.IntN(100)) * time.Microsecond)
						}
						q.Cancel()
						if err := comms[1].Err(); err != nil {
							// Documented: a cancel in the middle of the
							// frame (net.Pipe hands a frame over in
							// pieces) breaks the link.
							require.ErrorContains(t, err, "mid-frame")
							return
						}
						mu.Lock()
						d := delivered
						mu.Unlock()
						if d != nil {
							seen(d) // delivered, then dropped
						}
						continue
					}
					b, err := q.Wait(ctx)
					require.NoError(t, err, "after %d messages", len(got))
					seen(b)
				}
				wg.Wait()
				require.NoError(t, sendErr)
				for i, v := range got {
					require.Equal(t, i, v, "message %d", i)
				}
			})
		}
	}
}

// TestRecvTimeoutRace: one rank sends a numbered stream of messages, small
// and large (streamed), on one tag while the other receives them with Recv
// under contexts that end at random moments (before, while or after a
// message arrives). Recv loses nothing when its context ends (a message
// that was arriving stays queued): every message must be received exactly
// once, in order, and the communicator must stay usable.
func TestRecvTimeoutRace(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		for _, src := range []int{0, 1} {
			t.Run(name(kind, "/src=", src), func(t *testing.T) {
				n := 200
				if raceEnabled {
					n = 60
				}
				comms := newComms(t, kind, 2)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var sendErr error
				var wg sync.WaitGroup
				defer func() { cancel(); wg.Wait() }()
				size := func(i int) int {
					if i%9 == 4 {
						return streamMin + 8 + i
					}
					return 8 + i%40
				}
				wg.Go(func() {
					for i := range n {
						m := make([]byte, size(i))
						binary.LittleEndian.PutUint64(m, uint64(i))
						if sendErr = comms[src].Send(ctx, 1, 3, m); sendErr != nil {
							return
						}
					}
				})
				rng := rand.New(rand.NewPCG(uint64(src), 11))
				for i := 0; i < n; {
					rctx, rcancel := context.WithTimeout(ctx, time.Duration(rng.IntN(300))*time.Microsecond)
					b, err := comms[1].Recv(rctx, src, 3)
					rcancel()
					if err != nil {
						require.ErrorIs(t, err, context.DeadlineExceeded)
						require.NoError(t, comms[1].Err(), "a Recv that times out must not poison (message %d)", i)
						continue
					}
					require.Len(t, b, size(i), "message %d", i)
					require.Equal(t, uint64(i), binary.LittleEndian.Uint64(b), "message %d", i)
					i++
				}
			})
		}
	}
}
