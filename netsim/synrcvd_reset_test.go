package netsim

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A RST that reaches a socket in SYN-RECEIVED ends its handshake: the end
// that had its SYN-ACK (established) aborts before the other end, whose
// final ACK was lost, is established. netsim's reset ignored every state but
// ESTABLISHED, so the other end stayed in SYN-RECEIVED, and behind a NAT
// (whose session the RST had removed, so that no SYN-ACK retransmission got
// out to be answered) its dial hung until its retransmissions ran out (2 min)
// or its context ended, instead of failing at once, as on Linux, so that a
// punch loop tries again.
func TestResetInSynReceived(t *testing.T) {
	const seeds = 32
	lossy := Link{Latency: 10 * time.Millisecond, Loss: 0.3}
	var hit int
	for seed := range uint64(seeds) {
		var lost atomic.Int32
		bubble(t, func(t *testing.T, in *Internet) {
			na := must(in.AddNAT(addr("198.51.100.1"), HomeRouter, WithLink(lossy)))
			nb := must(in.AddNAT(addr("198.51.100.2"), HomeRouter, WithLink(Link{Latency: 10 * time.Millisecond})))
			a := must(na.AddHost(addr("198.18.0.2")))
			b := must(nb.AddHost(addr("198.18.1.2")))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// Simultaneous open through the two routers (ports preserved).
			type result struct {
				c   net.Conn
				err error
				at  time.Time
			}
			ra, rb := make(chan result, 1), make(chan result, 1)
			var wg sync.WaitGroup
			wg.Go(func() {
				c, err := a.DialTCP(ctx, ap("198.18.0.2:40000"), ap("198.51.100.2:40001"))
				ra <- result{c, err, time.Now()}
			})
			wg.Go(func() {
				c, err := b.DialTCP(ctx, ap("198.18.1.2:40001"), ap("198.51.100.1:40000"))
				rb <- result{c, err, time.Now()}
			})
			first, other := ra, rb
			var r result
			select {
			case r = <-ra:
			case r = <-rb:
				first, other = rb, ra
			}
			_ = first
			if r.err != nil {
				// Not the case under test (both failed, or the other
				// end had its handshake refused).
				wg.Wait()
				if o := <-other; o.c != nil {
					o.c.Close()
				}
				return
			}
			// One end is established: abort it at once, before it sends
			// anything that completes the other end's handshake.
			require.NoError(t, r.c.(*TCPConn).SetLinger(0))
			aborted := time.Now()
			require.NoError(t, r.c.Close())
			o := <-other
			wg.Wait()
			if o.c != nil {
				// The other end was established before the abort (its
				// ACK was not lost): the RST resets it.
				o.c.Close()
				return
			}
			hit++
			require.True(t, errors.Is(o.err, syscall.ECONNREFUSED) || errors.Is(o.err, syscall.ECONNRESET),
				"seed %d: the other end's dial ended with %v", seed, o.err)
			require.Less(t, o.at.Sub(aborted), time.Second,
				"seed %d: the other end's dial ended %v after the abort (final ACKs lost: %d)", seed, o.at.Sub(aborted), lost.Load())
		}, WithSeed(seed), lostACKTrace(&lost))
	}
	require.Positive(t, hit, "no run left an end in SYN-RECEIVED: the test does not test it")
	t.Logf("%d of %d runs left an end in SYN-RECEIVED", hit, seeds)
}
