package collective

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// splitAll splits every rank of comms into one sub-communicator of the
// same ranks.
func splitAll(t *testing.T, comms []*Comm) []*Comm {
	t.Helper()
	subs := make([]*Comm, len(comms))
	requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
		s, err := c.Split(ctx, 0, c.Rank())
		subs[c.Rank()] = s
		return err
	})
	return subs
}

// TestCloseSubCommunicatorEndsPending: closing a sub-communicator ends the
// receives pending on it promptly with ErrClosed, whether their goroutine
// is reading the link or sleeping, drops what was queued for it, and
// leaves the links and the parent's traffic alone.
func TestCloseSubCommunicatorEndsPending(t *testing.T) {
	alloc := func(n int) []byte { return make([]byte, n) }
	pending := map[string]func(ctx context.Context, sub *Comm) error{
		"Recv": func(ctx context.Context, sub *Comm) error {
			_, err := sub.Recv(ctx, 1, 3)
			return err
		},
		"RecvInto": func(ctx context.Context, sub *Comm) error {
			_, err := sub.RecvInto(ctx, 1, 3, make([]byte, 16))
			return err
		},
		"RecvFunc": func(ctx context.Context, sub *Comm) error {
			_, err := sub.RecvFunc(ctx, 1, 3, alloc)
			return err
		},
		"Request.Wait": func(ctx context.Context, sub *Comm) error {
			q, err := sub.PostRecvFunc(1, 3, alloc)
			if err != nil {
				return err
			}
			_, err = q.Wait(ctx)
			return err
		},
	}
	base := runtime.NumGoroutine()
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		for name, call := range pending {
			for _, ctxKind := range []string{"background", "deadline"} {
				t.Run(string(kind)+"/"+name+"/"+ctxKind, func(t *testing.T) {
					comms := newComms(t, kind, 2)
					subs := splitAll(t, comms)
					ctx := context.Background()
					if ctxKind == "deadline" {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, time.Minute)
						defer cancel()
					}
					// A message queued for the sub on another tag, which
					// Close drops.
					require.NoError(t, subs[1].Send(ctx, 0, 4, []byte("queued")))
					// Two receives at once on the sub: one reads the link,
					// the other sleeps; and one on the parent.
					errs := make(chan error, 2)
					for range 2 {
						go func() { errs <- call(ctx, subs[0]) }()
					}
					world := make(chan []byte, 1)
					go func() {
						b, err := comms[0].Recv(ctx, 1, 3)
						assert.NoError(t, err)
						world <- b
					}()
					time.Sleep(30 * time.Millisecond)
					require.NoError(t, subs[0].Close())
					for range 2 {
						select {
						case err := <-errs:
							require.ErrorIs(t, err, ErrClosed)
							assert.Contains(t, err.Error(), "rank 0")
						case <-time.After(5 * time.Second):
							t.Fatal("a receive on the closed sub-communicator still waits")
						}
					}
					require.NoError(t, subs[0].Close(), "Close twice")
					require.ErrorIs(t, subs[0].Err(), ErrClosed)
					_, err := subs[0].Recv(ctx, 1, 4)
					require.ErrorIs(t, err, ErrClosed)
					require.ErrorIs(t, subs[0].Send(ctx, 1, 4, nil), ErrClosed)
					// The parent is untouched: its pending receive gets
					// its message, its collectives run.
					require.NoError(t, comms[1].Send(ctx, 0, 3, []byte("world")))
					select {
					case b := <-world:
						assert.Equal(t, "world", string(b))
					case <-time.After(5 * time.Second):
						t.Fatal("the parent's receive never completed")
					}
					require.NoError(t, comms[0].Err())
					requireAllOK(t, comms, func(ctx context.Context, c *Comm) error { return c.Barrier(ctx) })
					l := comms[0].links[1]
					l.mu.Lock()
					for k := range l.slots {
						assert.NotEqual(t, subs[0].id, k.comm, "a slot of the closed sub-communicator is left")
					}
					l.mu.Unlock()
				})
			}
		}
	}
	checkNoLeaks(t, base)
}

// TestCloseSubCommunicatorDuringCollective: a collective running on a
// sub-communicator that is closed fails with ErrClosed at once; as any
// interrupted collective it poisons the communicators sharing the links,
// so the peer running it with this rank fails too instead of waiting.
func TestCloseSubCommunicatorDuringCollective(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		t.Run(string(kind), func(t *testing.T) {
			comms := newComms(t, kind, 3)
			subs := splitAll(t, comms)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs := make(chan error, 2)
			for r := range 2 { // rank 2 never joins: the call waits
				go func() { errs <- subs[r].Barrier(ctx) }()
			}
			time.Sleep(30 * time.Millisecond)
			require.NoError(t, subs[0].Close())
			for range 2 {
				select {
				case err := <-errs:
					require.Error(t, err)
				case <-time.After(5 * time.Second):
					t.Fatal("a barrier still waits after Close")
				}
			}
			require.ErrorIs(t, subs[0].Err(), ErrClosed)
			require.ErrorIs(t, comms[0].Err(), ErrClosed, "the world communicator shares the failure")
			assert.Contains(t, comms[0].Err().Error(), "rank 0: barrier: sub-communicator closed during the call")
		})
	}
	checkNoLeaks(t, base)
}

// TestRecvIntoTooSmall: a message longer than RecvInto's buffer is
// ErrBufferTooSmall naming this rank, the peer and the message's length;
// the message stays queued whole and in order, small or streamed, from a
// peer or from this rank, posted before it arrived or after.
func TestRecvIntoTooSmall(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		for _, tc := range []struct {
			name   string
			src    int
			size   int
			posted bool // the receive waits before the message is sent
		}{
			{"small queued", 0, 10, false},
			{"small posted", 0, 10, true},
			{"streamed queued", 0, streamMin + 5, false},
			{"streamed posted", 0, 3 << 20, true},
			{"self", 1, 10, false},
		} {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				comms := newComms(t, kind, 2)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				msgs := [][]byte{payload(tc.src, tc.size, 1), payload(tc.src, 3, 2), {}}
				send := func() {
					for _, m := range msgs {
						assert.NoError(t, comms[tc.src].Send(ctx, 1, 9, m))
					}
				}
				if tc.posted {
					go func() {
						time.Sleep(20 * time.Millisecond)
						send()
					}()
				} else {
					send()
				}
				small := make([]byte, 4)
				n, err := comms[1].RecvInto(ctx, tc.src, 9, small)
				require.ErrorIs(t, err, ErrBufferTooSmall)
				assert.Zero(t, n)
				assert.Contains(t, err.Error(), "collective: rank 1: recv from rank "+string(rune('0'+tc.src))+": ")
				assert.Contains(t, err.Error(), "message of "+itoa(tc.size)+" bytes, buffer of 4")
				assert.NotContains(t, err.Error(), "\x00")
				require.NoError(t, comms[1].Err(), "the communicator stays usable")
				buf := make([]byte, 4<<20)
				for i, m := range msgs {
					n, err := comms[1].RecvInto(ctx, tc.src, 9, buf)
					require.NoError(t, err, "message %d", i)
					require.NoError(t, mismatch(name("message ", i), buf[:n], m))
				}
				require.NoError(t, comms[0].Err())
				require.NoError(t, comms[1].Err())
			})
		}
	}
}

// TestP2PErrorsSayWhere: point-to-point errors name this rank and the peer
// and match the documented sentinels; none of them poisons.
func TestP2PErrorsSayWhere(t *testing.T) {
	comms := newComms(t, tcpMesh, 3)
	past, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	ctx := context.Background()
	c := comms[2]
	for _, tc := range []struct {
		name string
		call func() error
		is   error
		text string
	}{
		{"peer out of range", func() error { return c.Send(ctx, 3, 0, nil) }, ErrInvalidArgument, "collective: rank 2: send: invalid argument: peer 3 out of range 0..2"},
		{"negative peer", func() error { _, err := c.Recv(ctx, -1, 0); return err }, ErrInvalidArgument, "collective: rank 2: recv: invalid argument: peer -1"},
		{"negative tag", func() error { return c.Send(ctx, 1, -1, nil) }, ErrInvalidArgument, "collective: rank 2: send: invalid argument: tag -1 out of range 0..2147483647"},
		{"tag above MaxTag", func() error { _, err := c.RecvInto(ctx, 1, MaxTag+1, nil); return err }, ErrInvalidArgument, "tag 2147483648 out of range"},
		{"internal tag", func() error { return c.SendBuffers(ctx, 1, -1<<63, nil) }, ErrInvalidArgument, "tag -9223372036854775808 out of range"},
		{"nil alloc", func() error { _, err := c.PostRecvFunc(1, 0, nil); return err }, ErrInvalidArgument, "collective: rank 2: recv from rank 1: invalid argument: nil alloc"},
		{"send past deadline", func() error { return c.Send(past, 1, 0, []byte("x")) }, context.DeadlineExceeded, "collective: rank 2: send to rank 1: context deadline exceeded"},
		{"send to self past deadline", func() error { return c.Send(past, 2, 0, []byte("x")) }, context.DeadlineExceeded, "collective: rank 2: send to rank 2: context deadline exceeded"},
		{"recv past deadline", func() error { _, err := c.Recv(past, 0, 0); return err }, context.DeadlineExceeded, "collective: rank 2: recv from rank 0: context deadline exceeded"},
		{"request waited twice", func() error {
			q, err := c.PostRecvFunc(0, 1, func(n int) []byte { return make([]byte, n) })
			require.NoError(t, err)
			q.Cancel()
			_, err = q.Wait(ctx)
			return err
		}, nil, "collective: rank 2: recv from rank 0: request already waited for or cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			assert.Contains(t, err.Error(), tc.text)
			require.NoError(t, c.Err(), "a point-to-point error does not poison")
		})
	}
	// Nothing was sent: the send to self with an ended context left no
	// message behind.
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	_, err := c.Recv(short, 2, 0)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func itoa(n int) string { return fmt.Sprint(n) }
