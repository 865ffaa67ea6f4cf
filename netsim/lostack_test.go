package netsim

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lostACKTrace returns a trace function that counts the bare ACKs a link
// lost (the last segment of a three-way handshake).
func lostACKTrace(n *atomic.Int32) Option {
	return WithTrace(func(e Event) {
		if e.Kind == EventDrop && e.Flags == "ACK" && e.Reason == "lost on link" {
			n.Add(1)
		}
	})
}

// The last ACK of a handshake lost on the way leaves the end that sent it
// established and the other in SYN-RECEIVED. On Linux the first data segment
// the established end sends carries the same ACK and completes the other
// end's handshake at once (data is never sent without it); only an end that
// waits for the other to speak first waits for a SYN-ACK retransmission
// (1 s). netsim carried the data but not its ACK: the other end stayed in
// SYN-RECEIVED until its SYN-ACK retransmission was answered, 1 s or more
// after the data had arrived, and the accept (or, in a simultaneous open,
// the dial) waited for it. Virtual time: each seed is one deterministic run,
// and the seeds include runs where the ACK is lost.
func TestLostFinalACKCompletedByData(t *testing.T) {
	const seeds = 24
	lossy := Link{Latency: 10 * time.Millisecond, Loss: 0.3}
	for _, tc := range []struct {
		name         string
		simultaneous bool // both ends dial (TCP simultaneous open), else the server listens
	}{
		{"dial and accept", false},
		{"simultaneous open", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hit atomic.Int32 // runs where a final ACK was lost
			for seed := range uint64(seeds) {
				var lost atomic.Int32
				bubble(t, func(t *testing.T, in *Internet) {
					srv := must(in.AddHost(addr("203.0.113.10"), WithLink(lossy)))
					cli := must(in.AddHost(addr("203.0.113.20"), WithLink(Link{Latency: 10 * time.Millisecond})))
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					srvEP, cliEP := ap("203.0.113.10:80"), ap("203.0.113.20:4000")

					// The server's end of the connection, and when it had it.
					type end struct {
						c   net.Conn
						at  time.Time
						err error
					}
					srvEnd := make(chan end, 1)
					if tc.simultaneous {
						go func() {
							c, err := srv.DialTCP(ctx, srvEP, cliEP)
							srvEnd <- end{c, time.Now(), err}
						}()
					} else {
						ln, err := srv.ListenTCP(ctx, srvEP)
						require.NoError(t, err)
						defer ln.Close()
						go func() {
							c, err := ln.Accept()
							srvEnd <- end{c, time.Now(), err}
						}()
					}
					var c net.Conn
					var err error
					for range 10 { // a dial may be refused while the SYNs cross
						if c, err = cli.DialTCP(ctx, cliEP, srvEP); err == nil || !isRefused(err) {
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
					require.NoError(t, err, "seed %d", seed)
					defer c.Close()
					wrote := time.Now()
					_, err = c.Write([]byte("hello"))
					require.NoError(t, err)

					e := <-srvEnd
					require.NoError(t, e.err, "seed %d", seed)
					defer e.c.Close()
					got := make([]byte, 5)
					_, err = io.ReadFull(e.c, got)
					require.NoError(t, err)
					require.Equal(t, "hello", string(got))
					if lost.Load() > 0 {
						hit.Add(1)
					}
					// The data (10 ms + 10 ms away) completes the handshake:
					// no SYN-ACK retransmission (1 s) is waited for.
					require.Less(t, e.at.Sub(wrote), 500*time.Millisecond,
						"seed %d: the server's end came %v after the client's data (final ACKs lost: %d)",
						seed, e.at.Sub(wrote), lost.Load())
				}, WithSeed(seed), lostACKTrace(&lost))
			}
			require.Positive(t, hit.Load(), "no run lost a final ACK: the test does not test it")
			t.Logf("%d of %d runs lost a final ACK", hit.Load(), seeds)
		})
	}
}
