package collective

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
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

// TestConcurrentCallers: what the docs promise of a Comm used from several
// goroutines at once. Concurrent Sends to one peer on one tag keep each
// goroutine's order; concurrent Recvs on one (source, tag) take each
// message once; a collective runs while the same Comm carries
// point-to-point traffic on user tags; sub-communicators, nested ones
// included, run their traffic and collectives concurrently with the
// parent's without mixing.
func TestConcurrentCallers(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		t.Run(string(kind)+"/sends and receives on one tag", func(t *testing.T) {
			comms := newComms(t, kind, 2)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const senders, each, receivers = 4, 100, 3
			for g := range senders {
				go func() {
					for i := range each {
						// Sizes up to past the streaming threshold.
						b := make([]byte, 8+(i%4)*(streamMin/2))
						binary.LittleEndian.PutUint32(b, uint32(g))
						binary.LittleEndian.PutUint32(b[4:], uint32(i))
						assert.NoError(t, comms[0].Send(ctx, 1, 7, b))
					}
				}()
			}
			type msg struct{ g, i int }
			got := make(chan msg, senders*each)
			var wg sync.WaitGroup
			for range receivers {
				wg.Go(func() {
					for range senders * each / receivers {
						b, err := comms[1].Recv(ctx, 0, 7)
						if !assert.NoError(t, err) {
							return
						}
						got <- msg{int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:]))}
					}
				})
			}
			wg.Wait()
			close(got)
			seen := make([]map[int]bool, senders)
			for g := range seen {
				seen[g] = map[int]bool{}
			}
			for m := range got {
				assert.False(t, seen[m.g][m.i], "message %v received twice", m)
				seen[m.g][m.i] = true
			}
			for range (senders * each) % receivers { // what the receivers' shares leave
				b, err := comms[1].Recv(ctx, 0, 7)
				require.NoError(t, err)
				seen[binary.LittleEndian.Uint32(b)][int(binary.LittleEndian.Uint32(b[4:]))] = true
			}
			for g := range senders {
				assert.Len(t, seen[g], each, "sender %d", g)
			}
			// One receiver: each sender's messages in the order sent.
			for g := range senders {
				go func() {
					for i := range each {
						b := make([]byte, 8)
						binary.LittleEndian.PutUint32(b, uint32(g))
						binary.LittleEndian.PutUint32(b[4:], uint32(i))
						assert.NoError(t, comms[0].Send(ctx, 1, 8, b))
					}
				}()
			}
			next := make([]int, senders)
			for range senders * each {
				b, err := comms[1].Recv(ctx, 0, 8)
				require.NoError(t, err)
				g, i := binary.LittleEndian.Uint32(b), int(binary.LittleEndian.Uint32(b[4:]))
				require.Equal(t, next[g], i, "sender %d out of order", g)
				next[g]++
			}
		})
		t.Run(string(kind)+"/collectives, p2p and sub-communicators at once", func(t *testing.T) {
			comms := newComms(t, kind, 4)
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				odd, err := c.Split(ctx, c.Rank()%2, 0)
				if err != nil {
					return err
				}
				half, err := c.Split(ctx, c.Rank()/2, 0)
				if err != nil {
					return err
				}
				nested, err := odd.Split(ctx, 0, -odd.Rank()) // reversed
				if err != nil {
					return err
				}
				all := []*Comm{c, odd, half, nested}
				errs := make([]error, 2*len(all))
				var wg sync.WaitGroup
				for i, s := range all {
					// Point-to-point on the same tag in every
					// communicator, tagged with the communicator.
					wg.Go(func() {
						to, from := (s.Rank()+1)%s.Size(), (s.Rank()+s.Size()-1)%s.Size()
						for k := range 30 {
							if errs[2*i] = s.Send(ctx, to, 5, []byte{byte(i), byte(k)}); errs[2*i] != nil {
								return
							}
							b, err := s.Recv(ctx, from, 5)
							if err != nil {
								errs[2*i] = err
								return
							}
							if b[0] != byte(i) || b[1] != byte(k) {
								errs[2*i] = fmt.Errorf("communicator %d got message %v, want [%d %d]", i, b, i, k)
								return
							}
						}
					})
					// Collectives on it at the same time.
					wg.Go(func() {
						for k := range 10 {
							sum, err := Allreduce(ctx, s, []int64{int64(s.WorldRank(s.Rank()) + k)}, Sum[int64]())
							if err != nil {
								errs[2*i+1] = err
								return
							}
							want := int64(k * s.Size())
							for r := range s.Size() {
								want += int64(s.WorldRank(r))
							}
							if sum[0] != want {
								errs[2*i+1] = fmt.Errorf("communicator %d: sum %d, want %d", i, sum[0], want)
								return
							}
						}
					})
				}
				wg.Wait()
				return errors.Join(errs...)
			})
		})
	}
}

// TestClosedSubCommunicatorDropsArrivals: frames that arrive for a
// sub-communicator after this rank closed it are read off the link and
// dropped, not queued (a peer that goes on sending on it would otherwise
// grow this rank's memory without bound), whatever their size (through the
// read buffer, streamed with a trailer) and with or without a checksum; the
// stream stays in step (the parent's messages that follow arrive intact),
// and a communicator split afterwards gets its traffic.
func TestClosedSubCommunicatorDropsArrivals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  meshKind
		crc   bool
		sizes []int
	}{
		{"tcp/small", tcpMesh, true, []int{0, 1, 100, 4000}},
		{"tcp/large", tcpMesh, true, []int{readBufSize/2 + 1, readBufSize + 7, streamMin + 3, 1 << 20}},
		{"tcp/no-checksum", tcpMesh, false, []int{0, 100, readBufSize + 7, streamMin + 3}},
		{"pipe/mixed", pipeKind, true, []int{0, 100, readBufSize + 7, streamMin + 3}},
		{"pipe/no-checksum", pipeKind, false, []int{1, readBufSize + 7, streamMin + 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comms := newComms(t, tc.kind, 2, WithChecksum(tc.crc))
			subs := splitAll(t, comms)
			closedID := subs[0].id
			require.NoError(t, subs[0].Close())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sent := make(chan error, 1)
			go func() {
				for round := range 3 {
					for i, n := range tc.sizes {
						if err := subs[1].Send(ctx, 0, i, payload(1, n, round)); err != nil {
							sent <- err
							return
						}
					}
					if err := comms[1].Send(ctx, 0, 7, payload(1, 999, round)); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			for round := range 3 {
				b, err := comms[0].Recv(ctx, 1, 7)
				require.NoError(t, err)
				require.Equal(t, payload(1, 999, round), b, "round %d: the parent's message after the dropped ones", round)
			}
			require.NoError(t, <-sent)
			l := comms[0].links[1]
			l.mu.Lock()
			for k, s := range l.slots {
				assert.NotEqual(t, closedID, k.comm, "%d messages queued for the closed sub-communicator", s.msgs.len())
			}
			l.mu.Unlock()
			require.NoError(t, comms[0].Err())

			// A communicator split afterwards has another id and gets
			// its messages.
			again := splitAll(t, comms)
			require.NotEqual(t, closedID, again[0].id)
			require.NoError(t, again[1].Send(ctx, 0, 0, []byte("live")))
			b, err := again[0].Recv(ctx, 1, 0)
			require.NoError(t, err)
			require.Equal(t, "live", string(b))
		})
	}
}

// TestSplitIDsNeverRepeat: sub-communicator ids, which a link uses to drop
// the frames of closed ones, are distinct across repeated splits with the
// same color, nested splits and splits of parts, and never the world's;
// a rank reopens an id it had closed should a new communicator have it.
func TestSplitIDsNeverRepeat(t *testing.T) {
	comms := newComms(t, tcpMesh, 4)
	var mu sync.Mutex
	ids := map[uint64]string{worldID: "world"}
	add := func(t *testing.T, c *Comm, what string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := ids[c.id]; ok && prev != what {
			t.Errorf("%s has the id of %s (%#x)", what, prev, c.id)
		}
		ids[c.id] = what
	}
	for _, tc := range []struct {
		name  string
		color func(rank int) int
	}{
		{"all in one", func(int) int { return 0 }},
		{"all in one again", func(int) int { return 0 }},
		{"halves", func(r int) int { return r / 2 }},
		{"halves again", func(r int) int { return r / 2 }},
		{"odd and even", func(r int) int { return r % 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				color := tc.color(c.Rank())
				sub, err := c.Split(ctx, color, 0)
				if err != nil {
					return err
				}
				add(t, sub, fmt.Sprintf("%s/color %d", tc.name, color))
				for i := range 2 { // parts of the part, with the same color
					subsub, err := sub.Split(ctx, 0, 0)
					if err != nil {
						return err
					}
					add(t, subsub, fmt.Sprintf("%s/color %d/part %d", tc.name, color, i))
					if err := subsub.Close(); err != nil {
						return err
					}
				}
				return sub.Close()
			})
		})
	}
	// Reopening: an id closed on a link takes traffic again once a new
	// communicator has it.
	l := comms[0].links[1]
	l.closeComm(12345, ErrClosed)
	l.mu.Lock()
	require.True(t, l.commClosed(12345))
	l.mu.Unlock()
	l.reopen(12345)
	l.mu.Lock()
	require.False(t, l.commClosed(12345))
	l.mu.Unlock()
}

// TestSubCommunicatorErrorsNameBothRanks: in a sub-communicator whose ranks
// have other numbers in the world, errors name every rank by both ("rank 1
// (world rank 3)"): its own errors, the link failures (which PeerError
// gives in world ranks, as errors.As still shows) and the failures it
// shares with the world communicator. A rank with the same number in both
// is named once; the world communicator's errors are as they were.
func TestSubCommunicatorErrorsNameBothRanks(t *testing.T) {
	past, cancelPast := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelPast()
	// Four ranks split by parity: sub {0, 2} and sub {1, 3}; world rank 3
	// is rank 1 of its part, world rank 1 rank 0.
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, world, subs []*Comm) error
		want string
		is   error
		peer *PeerError // the PeerError errors.As finds, if any
	}{
		{"recv past deadline", func(ctx context.Context, world, subs []*Comm) error {
			_, err := subs[3].Recv(past, 0, 0)
			return err
		}, "collective: rank 1 (world rank 3): recv from rank 0 (world rank 1): context deadline exceeded", context.DeadlineExceeded, nil},
		{"same number here, not there", func(ctx context.Context, world, subs []*Comm) error {
			return subs[0].Send(past, 1, 0, []byte("x"))
		}, "collective: rank 0: send to rank 1 (world rank 2): context deadline exceeded", context.DeadlineExceeded, nil},
		{"peer out of range", func(ctx context.Context, world, subs []*Comm) error {
			return subs[3].Send(ctx, 2, 0, nil)
		}, "collective: rank 1 (world rank 3): send: invalid argument: peer 2 out of range 0..1", ErrInvalidArgument, nil},
		{"nil alloc", func(ctx context.Context, world, subs []*Comm) error {
			_, err := subs[3].PostRecvFunc(0, 0, nil)
			return err
		}, "collective: rank 1 (world rank 3): recv from rank 0 (world rank 1): invalid argument: nil alloc", ErrInvalidArgument, nil},
		{"closed", func(ctx context.Context, world, subs []*Comm) error {
			require.NoError(t, subs[3].Close())
			_, err := subs[3].Recv(ctx, 0, 0)
			return err
		}, "collective: rank 1 (world rank 3): recv: communicator closed", ErrClosed, nil},
		{"link to a rank of the part", func(ctx context.Context, world, subs []*Comm) error {
			require.NoError(t, world[1].Close())
			_, err := subs[3].Recv(ctx, 0, 0)
			return err
		}, "collective: rank 1 (world rank 3): recv from rank 0 (world rank 1): link to rank 0 (world rank 1): peer closed the link", ErrPeerClosed, &PeerError{Rank: 3, Peer: 1}},
		{"link to a rank outside the part", func(ctx context.Context, world, subs []*Comm) error {
			// World rank 0 sends world rank 3 garbage: world rank 3's
			// links fail, its part's included.
			_, err := world[0].links[3].conn.Write(bytes.Repeat([]byte{0xff}, hdrLen))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return subs[3].Err() != nil }, time.Minute, time.Millisecond)
			return subs[3].Err()
		}, "rank 1 (world rank 3): link to world rank 0: corrupted frame: header checksum ffffffff, computed 6a9e93d5", ErrCorrupt, &PeerError{Rank: 3, Peer: 0}},
		{"collective of the part", func(ctx context.Context, world, subs []*Comm) error {
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			return subs[3].Barrier(cancelled)
		}, "collective: rank 1 (world rank 3): barrier: context canceled", context.Canceled, nil},
		{"the part's failure, told by the world", func(ctx context.Context, world, subs []*Comm) error {
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			require.Error(t, subs[3].Barrier(cancelled))
			_, err := world[3].Recv(ctx, 1, 0)
			return err
		}, "collective: rank 3: recv: barrier: context canceled", context.Canceled, nil},
		{"the world's failure, told by the part", func(ctx context.Context, world, subs []*Comm) error {
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			require.Error(t, world[3].Barrier(cancelled))
			return subs[3].Barrier(ctx)
		}, "collective: rank 1 (world rank 3): barrier: barrier: context canceled", context.Canceled, nil},
		{"world unchanged", func(ctx context.Context, world, subs []*Comm) error {
			_, err := world[3].Recv(past, 1, 0)
			return err
		}, "collective: rank 3: recv from rank 1: context deadline exceeded", context.DeadlineExceeded, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newComms(t, tcpMesh, 4)
			subs := make([]*Comm, 4)
			requireAllOK(t, world, func(ctx context.Context, c *Comm) error {
				s, err := c.Split(ctx, c.Rank()%2, 0)
				subs[c.Rank()] = s
				return err
			})
			require.Equal(t, 1, subs[3].Rank())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := tc.call(ctx, world, subs)
			require.Error(t, err)
			require.ErrorIs(t, err, tc.is)
			require.Equal(t, tc.want, err.Error())
			if tc.peer != nil {
				var pe *PeerError
				require.ErrorAs(t, err, &pe)
				require.Equal(t, tc.peer.Rank, pe.Rank, "PeerError.Rank is a world rank")
				require.Equal(t, tc.peer.Peer, pe.Peer, "PeerError.Peer is a world rank")
			}
		})
	}
}
