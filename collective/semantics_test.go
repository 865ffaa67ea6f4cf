package collective

import (
	"context"
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
