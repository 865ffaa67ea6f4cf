package netsim

import (
	"context"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// A simultaneous open in which the answer to A's first SYN, a
// sequence-zero RST, arrives after the peer's SYN has moved A to
// SYN-RECEIVED (the SYNs crossed, and the RST was overtaken). Measured on
// Linux 6.18 with nftables masquerade (docs/netsim.md): the RST is outside
// the window, A's socket ignores it and completes, and the router keeps the
// conntrack entry; a RST inside the window resets both.
func TestStaleRSTAfterCrossing(t *testing.T) {
	tests := []struct {
		name   string
		inject bool     // whether to inject a RST once A is in SYN-RECEIVED
		answer tcpFlags // the flags of the segment from A the RST answers
		linked bool
	}{
		{"no RST", false, 0, true},
		// The router's answer to A's first SYN: sequence 0.
		{"stale RST (sequence 0)", true, flagSYN, true},
		// An answer to A's SYN+ACK carries a sequence number in its window.
		{"RST in window", true, flagSYN | flagACK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var in *Internet
				var na *NAT
				var ha *Host
				injected := false
				hook := func(e Event) {
					// When X's SYN reaches A (which answers SYN+ACK at once),
					// the RST follows it into NA.
					if !tt.inject || injected || e.Kind != EventDeliver || e.Node != ha.name || e.Flags != "SYN" {
						return
					}
					injected = true
					a := ha.conns[tuple{ap("198.18.0.2:5000"), ap("198.51.100.2:5000")}]
					rst := resetFor(&packet{proto: protoTCP, src: ap("198.51.100.1:5000"), dst: e.Src,
						flags: tt.answer, from: a})
					in.after(time.Microsecond, func() { na.fromOutside(rst) })
				}
				in = New(WithTrace(hook))
				defer in.Close()
				link := WithLink(Link{Latency: 10 * time.Millisecond})
				na = must(in.AddNAT(addr("198.51.100.1"), LinuxMasquerade, link))
				nb := must(in.AddNAT(addr("198.51.100.2"), HomeRouter, link)) // drops A's first SYN
				ha = must(na.AddHost(addr("198.18.0.2")))
				hx := must(nb.AddHost(addr("198.18.1.2")))

				ctx := context.Background()
				type result struct {
					c   net.Conn
					err error
				}
				ac := make(chan result, 1)
				go func() {
					c, err := ha.DialTCP(ctx, ap("198.18.0.2:5000"), ap("198.51.100.2:5000"))
					ac <- result{c, err}
				}()
				time.Sleep(100 * time.Millisecond) // A's SYN has been dropped by NB
				cx, errX := hx.DialTCP(ctx, ap("198.18.1.2:5000"), ap("198.51.100.1:5000"))
				a := <-ac
				require.Equal(t, tt.inject, injected)
				if !tt.linked {
					require.ErrorIs(t, a.err, errConnRefused, "A's socket takes a RST in its window")
					require.Empty(t, na.Mappings(), "and the router ends the session")
					if cx != nil {
						cx.Close()
					}
					return
				}
				require.NoError(t, a.err)
				require.NoError(t, errX)
				defer a.c.Close()
				defer cx.Close()
				require.Len(t, na.Mappings(), 1, "the router keeps the session")
				msg := []byte("after the crossing")
				go func() { _, _ = cx.Write(msg) }()
				got := make([]byte, len(msg))
				_, err := io.ReadFull(a.c, got)
				require.NoError(t, err)
				require.Equal(t, msg, got)
			})
		})
	}
}

// The other direction, as measured: A's socket is gone, X's SYN reaches A's
// host through the session A's SYN left in NA, and A's stack answers with a
// sequence-0 RST. NA keeps the session (conntrack stays SYN_SENT2) and
// translates the RST, so X's dial is refused.
func TestStaleRSTOutward(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		link := WithLink(Link{Latency: 10 * time.Millisecond})
		na := must(in.AddNAT(addr("198.51.100.1"), LinuxMasquerade, link))
		nb := must(in.AddNAT(addr("198.51.100.2"), HomeRouter, link)) // drops A's SYN
		ha := must(na.AddHost(addr("198.18.0.2")))
		hx := must(nb.AddHost(addr("198.18.1.2")))

		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		c, err := ha.DialTCP(ctx, ap("198.18.0.2:5000"), ap("198.51.100.2:5000"))
		require.Error(t, err, "the dial gives up; its socket closes without a segment")
		require.Nil(t, c)
		require.Len(t, na.Mappings(), 1)

		c, err = hx.DialTCP(context.Background(), ap("198.18.1.2:5000"), ap("198.51.100.1:5000"))
		require.ErrorIs(t, err, errConnRefused, "A's stack answers, and NA translates the answer")
		require.Nil(t, c)
		require.Len(t, na.Mappings(), 1, "NA keeps the session")
		st := na.Stats()
		require.Zero(t, st.MappingsReset)
	})
}

// An expired session that a new SYN revives has forgotten which sides it
// had seen: the first answer to that SYN may end it again.
func TestSessionRenewForgetsSides(t *testing.T) {
	s := &session{}
	s.outbound(flagSYN)
	s.inbound(flagSYN)
	rst := &packet{proto: protoTCP, flags: flagRST | flagACK, seqZero: true}
	require.True(t, s.staleRST(rst, inward))
	require.True(t, s.staleRST(rst, outward))
	s.renew()
	require.False(t, s.staleRST(rst, inward))
	require.False(t, s.staleRST(rst, outward))
	require.Equal(t, sessNew, sessState(s.state.Load()))
	s.outbound(flagSYN)
	require.False(t, s.staleRST(rst, inward), "a refusal of the new SYN ends the session")
	require.True(t, s.staleRST(rst, outward))
	require.False(t, s.staleRST(&packet{proto: protoTCP, flags: flagRST | flagACK}, outward), "a RST in the window is not stale")
}
