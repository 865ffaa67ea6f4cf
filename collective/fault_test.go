package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// collectiveCalls are one call of each collective, for the fault tests.
var collectiveCalls = []struct {
	name string
	call func(ctx context.Context, c *Comm) error
}{
	{"barrier", func(ctx context.Context, c *Comm) error { return c.Barrier(ctx) }},
	{"bcast", func(ctx context.Context, c *Comm) error {
		_, err := c.Bcast(ctx, 1, payload(1, 50_000, 0))
		return err
	}},
	{"gather", func(ctx context.Context, c *Comm) error {
		_, err := c.Gather(ctx, 2, payload(c.Rank(), 20_000, 0))
		return err
	}},
	{"scatter", func(ctx context.Context, c *Comm) error {
		parts := make([][]byte, c.Size())
		for i := range parts {
			parts[i] = payload(i, 20_000, 0)
		}
		_, err := c.Scatter(ctx, 0, parts)
		return err
	}},
	{"allgather", func(ctx context.Context, c *Comm) error {
		_, err := c.Allgather(ctx, payload(c.Rank(), 30_000, 0))
		return err
	}},
	{"alltoall", func(ctx context.Context, c *Comm) error {
		_, err := c.Alltoall(ctx, payload(c.Rank(), 10_000*c.Size(), 0))
		return err
	}},
	{"alltoallv", func(ctx context.Context, c *Comm) error {
		parts := make([][]byte, c.Size())
		for i := range parts {
			parts[i] = payload(i, 1000*i, 0)
		}
		_, err := c.Alltoallv(ctx, parts)
		return err
	}},
	{"reduce", func(ctx context.Context, c *Comm) error {
		_, err := Reduce(ctx, c, 3, vecI64(c.Rank(), 10_000), Sum[int64]())
		return err
	}},
	{"allreduce", func(ctx context.Context, c *Comm) error {
		_, err := Allreduce(ctx, c, vecI64(c.Rank(), 10_000), Sum[int64]())
		return err
	}},
	{"allreduce-ring", func(ctx context.Context, c *Comm) error {
		_, err := Allreduce(ctx, c, vecI64(c.Rank(), 200_000), Sum[int64]())
		return err
	}},
	{"reduce-scatter", func(ctx context.Context, c *Comm) error {
		counts := make([]int, c.Size())
		for i := range counts {
			counts[i] = 1000
		}
		_, err := ReduceScatter(ctx, c, vecI64(c.Rank(), 1000*c.Size()), counts, Sum[int64]())
		return err
	}},
}

// killLinks closes every connection of c abruptly, as if its process died.
func killLinks(c *Comm) {
	for _, l := range c.t.links {
		if l.conn != nil {
			_ = l.conn.Close()
		}
	}
}

// TestFaultKillRank kills one rank at a random point of a stream of calls
// of each collective: every other rank's call must fail, well within the
// deadline, with an error (none may hang or succeed forever).
func TestFaultKillRank(t *testing.T) {
	const p = 6
	base := runtime.NumGoroutine()
	for _, tc := range collectiveCalls {
		for _, kind := range []meshKind{tcpMesh, pipeKind} {
			t.Run(fmt.Sprint(tc.name, "/", kind), func(t *testing.T) {
				comms := newComms(t, kind, p)
				victim := rand.IntN(p)
				delay := time.Duration(rand.IntN(3000)) * time.Microsecond
				const limit = 20 * time.Second
				start := time.Now()
				errs := runAll(t, comms, limit, func(ctx context.Context, c *Comm) error {
					if c.Rank() == victim {
						time.Sleep(delay)
						killLinks(c)
						return nil
					}
					for i := 0; ; i++ {
						if err := tc.call(ctx, c); err != nil {
							return err
						}
						if i > 100_000 {
							return errors.New("survivor never noticed the dead rank")
						}
					}
				})
				elapsed := time.Since(start)
				assert.Less(t, elapsed, limit/2, "ranks noticed the death through their links, not the deadline")
				for r, err := range errs {
					if r == victim {
						continue
					}
					require.Error(t, err, "rank %d", r)
					assert.NotErrorIs(t, err, context.DeadlineExceeded, "rank %d", r)
					var pe *PeerError
					assert.ErrorAs(t, err, &pe, "rank %d: %v", r, err)
				}
			})
		}
	}
	checkNoLeaks(t, base)
}

// TestFaultCancel cancels one rank's context in the middle of a stream of
// calls: that rank returns context.Canceled, the others a link error.
func TestFaultCancel(t *testing.T) {
	const p = 5
	base := runtime.NumGoroutine()
	for _, tc := range collectiveCalls {
		t.Run(tc.name, func(t *testing.T) {
			comms := newComms(t, tcpMesh, p)
			victim := rand.IntN(p)
			delay := time.Duration(rand.IntN(3000)) * time.Microsecond
			const limit = 20 * time.Second
			start := time.Now()
			errs := runAll(t, comms, limit, func(ctx context.Context, c *Comm) error {
				if c.Rank() == victim {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					time.AfterFunc(delay, cancel)
				}
				for {
					if err := tc.call(ctx, c); err != nil {
						return err
					}
				}
			})
			assert.Less(t, time.Since(start), limit/2)
			for r, err := range errs {
				require.Error(t, err, "rank %d", r)
				if r == victim {
					assert.ErrorIs(t, err, context.Canceled, "rank %d", r)
				} else {
					assert.NotErrorIs(t, err, context.DeadlineExceeded, "rank %d", r)
				}
				// The communicator stays poisoned with the first error.
				assert.Error(t, comms[r].Barrier(context.Background()))
			}
		})
	}
	checkNoLeaks(t, base)
}

// TestFaultDeadline: a rank that never joins the collective makes the
// others' calls end at their deadline.
func TestFaultDeadline(t *testing.T) {
	comms := newComms(t, pipeKind, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			_, errs[i] = Allreduce(ctx, comms[i], []float64{1, 2, 3}, Sum[float64]())
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.Error(t, err, "rank %d", i)
	}
	assert.ErrorIs(t, errors.Join(errs...), context.DeadlineExceeded)
}

// corruptConn flips one byte of what is written through it at offset at.
type corruptConn struct {
	net.Conn
	mu  sync.Mutex
	off int
	at  int
}

func (c *corruptConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.at >= c.off && c.at < c.off+len(b) {
		b = append([]byte(nil), b...)
		b[c.at-c.off] ^= 0x20
	}
	c.off += len(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestFaultCorruptFrame: a byte flipped in transit, in the header or the
// payload, is detected and the error names the sending peer; with payload
// checksums off, header damage is still caught.
func TestFaultCorruptFrame(t *testing.T) {
	cases := []struct {
		name     string
		at       int
		checksum bool
		detected bool
	}{
		{"header tag", 17, true, true},
		{"header length", 5, true, true},
		{"payload", hdrLen + 100, true, true},
		{"payload last byte", hdrLen + 999, true, true},
		{"header without payload checksum", 9, false, true},
		{"payload without checksum", hdrLen + 100, false, false},
		{"streamed payload", hdrLen + 300_000, true, true},
		{"streamed payload last chunk", hdrLen + streamMin + 5, true, true},
		{"streamed trailer", hdrLen + 600_001, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			c0, err := New(0, []net.Conn{nil, &corruptConn{Conn: a, at: tc.at}}, WithChecksum(tc.checksum))
			require.NoError(t, err)
			c1, err := New(1, []net.Conn{b, nil})
			require.NoError(t, err)
			defer c0.Close()
			defer c1.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			msg := payload(0, 1000, 9)
			if tc.at > hdrLen+1000 {
				msg = payload(0, 600_000, 9)
			}
			go func() { _ = c0.Send(ctx, 1, 7, msg) }()
			got, err := c1.Recv(ctx, 0, 7)
			if !tc.detected {
				require.NoError(t, err)
				assert.NotEqual(t, msg, got, "the flipped byte arrives when checksums are off")
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
			var pe *PeerError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, 0, pe.Peer)
			assert.Equal(t, 1, pe.Rank)
			assert.Contains(t, err.Error(), "link to rank 0")
			// The communicator is poisoned.
			_, err = c1.Recv(ctx, 0, 7)
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

// TestFaultTruncatedAndOversized: a frame cut short by the peer closing,
// and a header announcing more than the frame limit.
func TestFaultTruncatedAndOversized(t *testing.T) {
	t.Run("truncated", func(t *testing.T) {
		a, b := net.Pipe()
		c1, err := New(1, []net.Conn{b, nil})
		require.NoError(t, err)
		defer c1.Close()
		var hdr [hdrLen]byte
		putHeader(hdr[:], header{key: key{worldID, 3}, n: 1000})
		go func() {
			_, _ = a.Write(hdr[:])
			_, _ = a.Write(make([]byte, 400))
			_ = a.Close()
		}()
		_, err = c1.Recv(context.Background(), 0, 3)
		assert.ErrorIs(t, err, ErrTruncated)
		var pe *PeerError
		assert.ErrorAs(t, err, &pe)
	})
	t.Run("oversized", func(t *testing.T) {
		a, b := net.Pipe()
		c1, err := New(1, []net.Conn{b, nil}, WithMaxFrame(1<<10))
		require.NoError(t, err)
		defer c1.Close()
		var hdr [hdrLen]byte
		putHeader(hdr[:], header{key: key{worldID, 3}, n: 1 << 20})
		go func() { _, _ = a.Write(hdr[:]) }()
		_, err = c1.Recv(context.Background(), 0, 3)
		assert.ErrorIs(t, err, ErrFrameTooLarge)
		_ = a.Close()
	})
	t.Run("send over limit", func(t *testing.T) {
		comms := newComms(t, pipeKind, 2, WithMaxFrame(100))
		err := comms[0].Send(context.Background(), 1, 0, make([]byte, 101))
		assert.ErrorIs(t, err, ErrFrameTooLarge)
		// Refused before any byte went out: the communicator is still usable.
		go func() { _ = comms[0].Send(context.Background(), 1, 0, []byte("ok")) }()
		got, err := comms[1].Recv(context.Background(), 0, 0)
		require.NoError(t, err)
		assert.Equal(t, "ok", string(got))
	})
	t.Run("peer closed", func(t *testing.T) {
		a, b := net.Pipe()
		c1, err := New(1, []net.Conn{b, nil})
		require.NoError(t, err)
		defer c1.Close()
		_ = a.Close()
		_, err = c1.Recv(context.Background(), 0, 3)
		assert.ErrorIs(t, err, ErrPeerClosed)
	})
}

// TestFaultPostedReceive: receives posted ahead end with an error, never a
// hang, when the peer dies or the communicator is closed, and a request
// cancelled mid-frame aborts the link instead of leaving the reader writing
// into memory its caller got back.
func TestFaultPostedReceive(t *testing.T) {
	ctx := context.Background()
	fresh := func(n int) []byte { return make([]byte, n) }

	t.Run("peer dies", func(t *testing.T) {
		comms := newComms(t, tcpMesh, 2)
		q1, err := comms[1].PostRecvFunc(0, 1, fresh)
		require.NoError(t, err)
		q2, err := comms[1].PostRecvFunc(0, 1, fresh)
		require.NoError(t, err)
		require.NoError(t, comms[0].Close())
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = q1.Wait(wctx)
		require.Error(t, err)
		require.NotErrorIs(t, err, context.DeadlineExceeded, "the dead peer ends the receive, not the deadline")
		_, err = q2.Wait(wctx)
		require.Error(t, err)
	})
	t.Run("closed", func(t *testing.T) {
		comms := newComms(t, pipeKind, 2)
		q, err := comms[1].PostRecvFunc(0, 1, fresh)
		require.NoError(t, err)
		require.NoError(t, comms[1].Close())
		_, err = q.Wait(ctx)
		require.ErrorIs(t, err, ErrClosed)
		q.Cancel() // after the end: nothing to do
	})
	t.Run("cancelled mid-frame", func(t *testing.T) {
		// A raw peer announces 1 MiB and sends 100 bytes of it: the
		// receive is being filled when its context ends.
		a, b := net.Pipe()
		c, err := New(1, []net.Conn{b, nil})
		require.NoError(t, err)
		defer c.Close()
		hdr := make([]byte, hdrLen)
		putHeader(hdr, header{key: key{worldID, 1}, n: 1 << 20})
		go func() { _, _ = a.Write(append(hdr, make([]byte, 100)...)) }()
		defer a.Close()
		started := make(chan struct{})
		q, err := c.PostRecvFunc(0, 1, func(n int) []byte { close(started); return make([]byte, n) })
		require.NoError(t, err)
		wctx, cancel := context.WithCancel(ctx)
		go func() { <-started; cancel() }()
		_, err = q.Wait(wctx)
		require.ErrorIs(t, err, context.Canceled)
		require.Error(t, c.Err(), "abandoning a receive into the caller's buffer mid-frame aborts the link")
	})
}

// TestFailureReachesEveryRank: a rank whose communicator fails tells its
// peers before closing its links, so a rank that waits for nothing from it
// fails promptly too (ErrPeerFailed, naming the peer), instead of waiting
// for its own deadline; a clean Close tells nobody anything.
func TestFailureReachesEveryRank(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		t.Run(string(kind), func(t *testing.T) {
			comms := newComms(t, kind, 3)
			// Rank 0 waits for rank 1, which sends nothing; rank 2 runs a
			// barrier alone, whose deadline fails its communicator.
			waiting := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := comms[0].Recv(ctx, 1, 9)
				waiting <- err
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, comms[2].Barrier(ctx), context.DeadlineExceeded)
			select {
			case err := <-waiting:
				require.ErrorIs(t, err, ErrPeerFailed)
				assert.NotErrorIs(t, err, context.DeadlineExceeded)
				var pe *PeerError
				require.ErrorAs(t, err, &pe)
				assert.Contains(t, []int{1, 2}, pe.Peer, "rank 2, or rank 1 passing it on")
				assert.Contains(t, err.Error(), "rank 2: barrier: context deadline exceeded", "the failed rank's reason")
			case <-time.After(10 * time.Second):
				t.Fatal("rank 0 still waits for rank 1 10 s after rank 2 failed")
			}
			assert.Eventually(t, func() bool { return comms[1].Err() != nil }, 10*time.Second, 5*time.Millisecond,
				"rank 1 heard of it too")
		})
	}
	t.Run("close", func(t *testing.T) {
		comms := newComms(t, pipeKind, 2)
		require.NoError(t, comms[1].Close())
		time.Sleep(50 * time.Millisecond)
		assert.NoError(t, comms[0].Err(), "a clean close is not a failure")
	})
}

// TestHalfFrameEndedAfterHalt: a receiver whose context ends in the middle
// of its own frame, after the communicator failed on another goroutine
// (halt, which ends a half-read frame only when nobody holds the read
// token, ran while this receiver held it), must still return: the frame it
// leaves behind is ended when it gives the token up. RecvInto used to wait
// forever for a request that nobody would complete.
func TestHalfFrameEndedAfterHalt(t *testing.T) {
	a, raw := net.Pipe()
	defer raw.Close()
	c, err := New(1, []net.Conn{a, nil})
	require.NoError(t, err)
	defer c.Close()
	l := c.links[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := c.RecvInto(ctx, 0, 5, make([]byte, 1<<20))
		res <- err
	}()
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		s := l.slots[key{worldID, 5}]
		return s != nil && s.waiters.len() == 1
	}, 5*time.Second, time.Millisecond)
	time.Sleep(10 * time.Millisecond) // the receiver reads, or sleeps while the drain does
	// A frame for nobody: a drain that holds the token hands it to the
	// sleeping receiver after it; a receiver that holds it queues it.
	_, err = raw.Write(fuzzFrame(worldID, 6, []byte("x"), flagPayload))
	require.NoError(t, err)
	// The receiver reads the header and the start of its payload, then
	// waits for the rest (a pipe's Write returns once all was read).
	frame := fuzzFrame(worldID, 5, make([]byte, 1<<20), 0)
	_, err = raw.Write(frame[:hdrLen+1000])
	require.NoError(t, err)
	// Another goroutine's failure halts the link; its abort frame waits up
	// to abortWait for the pipe (nobody reads raw), so the conn stays open
	// meanwhile, and the receiver's context ends in that window.
	go c.t.fail(errors.New("another call failed"))
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.err != nil
	}, 5*time.Second, 50*time.Microsecond)
	cancel()
	select {
	case err := <-res:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("RecvInto still waits 5 s after its context ended")
	}
}

// TestAbortFrameUnderSmallFrameLimit: an abort frame is bounded by
// abortMax, not by WithMaxFrame, so a peer with a small frame limit still
// hears why a rank failed (ErrPeerFailed), instead of ErrFrameTooLarge for
// an error text longer than the limit.
func TestAbortFrameUnderSmallFrameLimit(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		t.Run(string(kind), func(t *testing.T) {
			comms := newComms(t, kind, 2, WithMaxFrame(16))
			res := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := comms[0].Recv(ctx, 1, 9)
				res <- err
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, comms[1].Barrier(ctx), context.DeadlineExceeded)
			err := <-res
			require.ErrorIs(t, err, ErrPeerFailed)
			assert.NotErrorIs(t, err, ErrFrameTooLarge)
			assert.Contains(t, err.Error(), "rank 1: barrier: context deadline exceeded")
		})
	}
}
