package collective

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSendRecv(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		t.Run(string(kind), func(t *testing.T) {
			comms := newComms(t, kind, 3)
			ctx := context.Background()

			t.Run("tags keep order per tag and match across tags", func(t *testing.T) {
				go func() {
					for i := range 50 {
						_ = comms[0].Send(ctx, 1, i%3, []byte{byte(i)})
					}
				}()
				for tag := 2; tag >= 0; tag-- { // receive tags in another order than sent
					for i := tag; i < 50; i += 3 {
						got, err := comms[1].Recv(ctx, 0, tag)
						require.NoError(t, err)
						require.Equal(t, []byte{byte(i)}, got)
					}
				}
			})
			t.Run("large messages both ways at once", func(t *testing.T) {
				// Both ranks send 8 MiB before receiving: the link readers
				// keep this from deadlocking even on synchronous pipes.
				big := [2][]byte{payload(0, 8<<20+1, 1), payload(1, 8<<20+3, 1)}
				var wg sync.WaitGroup
				for r := range 2 {
					wg.Go(func() {
						assert.NoError(t, comms[r].Send(ctx, 1-r, 5, big[r]))
						got, err := comms[r].Recv(ctx, 1-r, 5)
						assert.NoError(t, err)
						assert.NoError(t, mismatch("big", got, big[1-r]))
					})
				}
				wg.Wait()
			})
			t.Run("SendBuffers", func(t *testing.T) {
				// Pieces of every size around the streaming threshold,
				// empty ones included, arrive as one message.
				for _, sizes := range [][]int{{}, {0, 0}, {5}, {3, 0, 7}, {streamMin - 10, 20}, {writeChunk + 1, 0, 3*writeChunk + 5, 1}} {
					var bufs [][]byte
					var want []byte
					for i, n := range sizes {
						b := payload(i, n, 3)
						bufs = append(bufs, b)
						want = append(want, b...)
					}
					done := make(chan error, 1)
					go func() { done <- comms[0].SendBuffers(ctx, 2, 6, bufs) }()
					got, err := comms[2].Recv(ctx, 0, 6)
					require.NoError(t, err)
					require.NoError(t, <-done)
					require.NoError(t, mismatch(fmt.Sprint("pieces ", sizes), got, want))
				}
			})
			t.Run("self", func(t *testing.T) {
				msg := []byte("to myself")
				require.NoError(t, comms[2].Send(ctx, 2, 9, msg))
				msg[0] = 'X' // Send copied it
				got, err := comms[2].Recv(ctx, 2, 9)
				require.NoError(t, err)
				assert.Equal(t, "to myself", string(got))
			})
			t.Run("RecvInto", func(t *testing.T) {
				go func() { _ = comms[1].Send(ctx, 2, 4, []byte("0123456789")) }()
				small := make([]byte, 4)
				_, err := comms[2].RecvInto(ctx, 1, 4, small)
				require.Error(t, err, "too small")
				buf := make([]byte, 64)
				n, err := comms[2].RecvInto(ctx, 1, 4, buf) // the message was kept
				require.NoError(t, err)
				assert.Equal(t, "0123456789", string(buf[:n]))
				if raceEnabled {
					return // sync.Pool drops items at random under the race detector
				}
				x := []byte("x")
				assert.Zero(t, testing.AllocsPerRun(50, func() {
					_ = comms[1].Send(ctx, 2, 4, x)
					_, _ = comms[2].RecvInto(ctx, 1, 4, buf)
				}), "send and RecvInto allocate nothing")
			})
			t.Run("RecvFunc", func(t *testing.T) {
				arena := make([]byte, 0, 1<<20)
				alloc := func(n int) []byte {
					if n > cap(arena)-len(arena) {
						return nil
					}
					arena = arena[:len(arena)+n]
					return arena[len(arena)-n:]
				}
				big := payload(1, 300<<10, 7)
				// Posted before the message arrives (read straight into the
				// arena), and after it arrived (queued, then copied in).
				go func() { _ = comms[1].Send(ctx, 2, 12, big) }()
				got, err := comms[2].RecvFunc(ctx, 1, 12, alloc)
				require.NoError(t, err)
				require.NoError(t, mismatch("posted", got, big))
				assert.Same(t, &arena[0], &got[0], "delivered into alloc's buffer")
				require.NoError(t, comms[1].Send(ctx, 2, 13, big))
				got, err = comms[2].RecvFunc(ctx, 1, 13, alloc)
				require.NoError(t, err)
				require.NoError(t, mismatch("queued", got, big))
				assert.Same(t, &arena[len(big)], &got[0])
				// A refused message is consumed and reported; the next one
				// arrives intact.
				require.NoError(t, comms[1].Send(ctx, 2, 14, big))
				require.NoError(t, comms[1].Send(ctx, 2, 14, []byte("next")))
				_, err = comms[2].RecvFunc(ctx, 1, 14, func(int) []byte { return nil })
				require.ErrorIs(t, err, ErrMismatch)
				_, err = comms[2].RecvFunc(ctx, 1, 14, func(n int) []byte { return make([]byte, n+1) })
				require.ErrorIs(t, err, ErrMismatch, "a buffer of the wrong length")
				require.NoError(t, comms[1].Send(ctx, 2, 14, []byte("last")))
				got, err = comms[2].RecvFunc(ctx, 1, 14, alloc)
				require.NoError(t, err)
				assert.Equal(t, "last", string(got))
				// An empty message fits any buffer of length 0, nil too: an
				// allocator that slices nil (or a spent arena) to n accepts it.
				require.NoError(t, comms[1].Send(ctx, 2, 16, nil))
				got, err = comms[2].RecvFunc(ctx, 1, 16, func(int) []byte { return nil })
				require.NoError(t, err)
				assert.Empty(t, got)
				require.NoError(t, comms[2].Err())
				_, err = comms[2].RecvFunc(ctx, 1, 14, nil)
				assert.Error(t, err)
			})
			t.Run("PostRecvFunc", func(t *testing.T) {
				// Two receives posted ahead are filled in the order posted,
				// each straight into its own buffer.
				bufs := [3][]byte{make([]byte, 300<<10), make([]byte, 5), make([]byte, 300<<10)}
				next := 0
				alloc := func(n int) []byte {
					b := bufs[next][:n]
					next++
					return b
				}
				q1, err := comms[2].PostRecvFunc(1, 15, alloc)
				require.NoError(t, err)
				q2, err := comms[2].PostRecvFunc(1, 15, alloc)
				require.NoError(t, err)
				msgs := [][]byte{payload(1, 300<<10, 8), []byte("small"), payload(1, 300<<10, 9)}
				go func() {
					for _, m := range msgs {
						_ = comms[1].Send(ctx, 2, 15, m)
					}
				}()
				got, err := q1.Wait(ctx)
				require.NoError(t, err)
				require.NoError(t, mismatch("first", got, msgs[0]))
				assert.Same(t, &bufs[0][0], &got[0])
				q3, err := comms[2].PostRecvFunc(1, 15, alloc)
				require.NoError(t, err)
				got, err = q2.Wait(ctx)
				require.NoError(t, err)
				assert.Equal(t, "small", string(got))
				got, err = q3.Wait(ctx)
				require.NoError(t, err)
				require.NoError(t, mismatch("third", got, msgs[2]))
				_, err = q3.Wait(ctx)
				require.Error(t, err, "a request is waited for once")

				// Cancelling a receive that nothing matched leaves the next
				// message for a later receive, and the communicator usable.
				q4, err := comms[2].PostRecvFunc(1, 16, func(n int) []byte { return make([]byte, n) })
				require.NoError(t, err)
				q4.Cancel()
				q4.Cancel() // twice is harmless
				require.NoError(t, comms[1].Send(ctx, 2, 16, []byte("kept")))
				got, err = comms[2].Recv(ctx, 1, 16)
				require.NoError(t, err)
				assert.Equal(t, "kept", string(got))
				// Cancelling a request whose message arrived drops it.
				q5, err := comms[2].PostRecvFunc(1, 17, func(n int) []byte { return make([]byte, n) })
				require.NoError(t, err)
				require.NoError(t, comms[1].Send(ctx, 2, 17, []byte("dropped")))
				require.NoError(t, comms[1].Send(ctx, 2, 17, []byte("next")))
				got, err = comms[2].Recv(ctx, 1, 17) // reads past the first, which q5 takes
				require.NoError(t, err)
				assert.Equal(t, "next", string(got))
				q5.Cancel()
				require.NoError(t, comms[2].Err())
			})
			t.Run("cancelled Recv loses nothing", func(t *testing.T) {
				cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				defer cancel()
				_, err := comms[0].Recv(cctx, 2, 11)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.NoError(t, comms[0].Err(), "a cancelled Recv does not poison")
				go func() { _ = comms[2].Send(ctx, 0, 11, []byte("late")) }()
				got, err := comms[0].Recv(ctx, 2, 11)
				require.NoError(t, err)
				assert.Equal(t, "late", string(got))
			})
			t.Run("bad arguments", func(t *testing.T) {
				assert.Error(t, comms[0].Send(ctx, 3, 0, nil))
				assert.Error(t, comms[0].Send(ctx, 1, -1, nil))
				_, err := comms[0].Recv(ctx, -1, 0)
				assert.Error(t, err)
				_, err = comms[0].Bcast(ctx, 5, nil)
				assert.Error(t, err)
			})
		})
	}
}

func TestSplit(t *testing.T) {
	comms := newComms(t, tcpMesh, 7)
	requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
		color := c.Rank() % 3
		if c.Rank() == 6 {
			color = -1 // in no part
		}
		sub, err := c.Split(ctx, color, -c.Rank())
		if err != nil {
			return err
		}
		if color < 0 {
			if sub != nil {
				return errors.New("undefined color got a communicator")
			}
			return c.Barrier(ctx)
		}
		var members []int
		for r := 5; r >= 0; r-- {
			if r%3 == color {
				members = append(members, r)
			}
		}
		if sub.Size() != len(members) || sub.WorldRank(sub.Rank()) != c.Rank() {
			return fmt.Errorf("rank %d: sub rank %d of %d", c.Rank(), sub.Rank(), sub.Size())
		}
		// The parts run collectives at the same time as each other,
		// then the world communicator runs one again.
		for range 3 {
			all, err := sub.Allgather(ctx, []byte{byte(c.Rank())})
			if err != nil {
				return err
			}
			for i, m := range members {
				if all[i][0] != byte(m) {
					return fmt.Errorf("rank %d: sub allgather %v, members %v", c.Rank(), all, members)
				}
			}
		}
		if err := sub.Close(); err != nil {
			return err
		}
		if err := sub.Barrier(ctx); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("closed sub-communicator: %v", err)
		}
		return c.Barrier(ctx)
	})
}

func TestBusy(t *testing.T) {
	comms := newComms(t, pipeKind, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error)
	go func() { done <- comms[0].Barrier(ctx) }() // waits for rank 1
	time.Sleep(20 * time.Millisecond)
	assert.ErrorIs(t, comms[0].Barrier(ctx), ErrBusy)
	require.NoError(t, comms[1].Barrier(ctx))
	require.NoError(t, <-done)
}

func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		var comms []*Comm
		if kind == tcpMesh {
			var err error
			comms, err = Local(context.Background(), 5)
			require.NoError(t, err)
		} else {
			links := pipeMesh(5)
			for i := range 5 {
				c, err := New(i, links[i])
				require.NoError(t, err)
				comms = append(comms, c)
			}
		}
		requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
			_, err := Allreduce(ctx, c, vecI64(c.Rank(), 100_000), Sum[int64]())
			return err
		})
		for _, c := range comms {
			require.NoError(t, c.Close())
		}
		for _, c := range comms {
			assert.ErrorIs(t, c.Barrier(context.Background()), ErrClosed)
		}
	}
	checkNoLeaks(t, base)
}

// TestTypes runs every op over every Number type.
func TestTypes(t *testing.T) {
	comms := newComms(t, tcpMesh, 3)
	requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
		return errors.Join(
			typeCase[int](ctx, c), typeCase[int8](ctx, c), typeCase[int16](ctx, c), typeCase[int32](ctx, c),
			typeCase[int64](ctx, c), typeCase[uint](ctx, c), typeCase[uint8](ctx, c), typeCase[uint16](ctx, c),
			typeCase[uint32](ctx, c), typeCase[uint64](ctx, c), typeCase[uintptr](ctx, c),
			typeCase[float32](ctx, c), typeCase[float64](ctx, c))
	})
}

func typeCase[T Number](ctx context.Context, c *Comm) error {
	r := T(c.Rank() + 1) // 1, 2, 3
	data := []T{r, 2 * r, 1}
	for _, tc := range []struct {
		op   Op[T]
		want []T
	}{
		{Sum[T](), []T{6, 12, 3}},
		{Prod[T](), []T{6, 48, 1}},
		{Min[T](), []T{1, 2, 1}},
		{Max[T](), []T{3, 6, 1}},
	} {
		got, err := Allreduce(ctx, c, data, tc.op)
		if err != nil {
			return err
		}
		if err := eqSlices(fmt.Sprintf("%T %v", r, tc.op), got, tc.want); err != nil {
			return err
		}
	}
	return nil
}

// TestAlltoallvParallelSends drives the exchange's concurrent senders
// (batches of at least parallelSendMin bytes), scattered and pairwise.
func TestAlltoallvParallelSends(t *testing.T) {
	comms := newComms(t, tcpMesh, 5)
	for _, a := range []Algorithm{AlltoallvScattered, AlltoallvPairwise} {
		for _, c := range comms {
			tu := DefaultTuning()
			tu.Force[OpAlltoallv] = a
			require.NoError(t, c.SetTuning(tu))
		}
		requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
			parts := make([][]byte, c.Size())
			for j := range parts {
				parts[j] = payload(c.Rank()*10+j, 300_001+j, 8)
			}
			got, err := c.Alltoallv(ctx, parts)
			if err != nil {
				return err
			}
			for j := range got {
				if err := mismatch(fmt.Sprint("from ", j), got[j], payload(j*10+c.Rank(), 300_001+c.Rank(), 8)); err != nil {
					return err
				}
			}
			return nil
		})
	}
}
