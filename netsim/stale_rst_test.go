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
		inject bool // whether to inject a RST once A is in SYN-RECEIVED
		stale  bool // sequence zero (the answer to A's bare SYN) or in window
		linked bool
	}{
		{"no RST", false, false, true},
		{"stale RST (sequence 0)", true, true, true},
		{"RST in window", true, false, false},
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
					rst := &packet{proto: protoTCP, src: e.Src, dst: ap("198.51.100.1:5000"),
						flags: flagRST | flagACK, to: a, seqZero: tt.stale}
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
