package netsim

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRealTime runs outside a synctest bubble, as `fnmesh demo` does: the
// same timers drive latency, retransmission and deadlines on the wall clock.
func TestRealTime(t *testing.T) {
	ctx := context.Background()
	in := New()
	defer in.Close()
	link := WithLink(Link{Latency: 3 * time.Millisecond})
	srv := must(in.AddHost(addr("203.0.113.10"), link))
	na := must(in.AddNAT(addr("198.51.100.1"), LinuxMasquerade, link))
	nb := must(in.AddNAT(addr("198.51.100.2"), HomeRouter, link))
	a := must(na.AddHost(addr("198.18.0.2")))
	b := must(nb.AddHost(addr("198.18.1.2")))
	ln := echoServer(t, srv, 80)
	defer ln.Close()

	start := time.Now()
	c, err := a.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 12*time.Millisecond, "one round trip over four links")
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 4))
	require.NoError(t, err)
	c.Close()

	// A dial into a dropping NAT times out with the context.
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = a.DialTCP(dctx, ap("0.0.0.0:0"), ap("198.51.100.2:9"))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	// Simultaneous open between the two NATs, both sides retrying from
	// fixed ports.
	loop := func(h *Host, laddr, raddr string) error {
		var err error
		for i := 0; i < 50; i++ {
			var c net.Conn
			if c, err = h.DialTCP(ctx, ap(laddr), ap(raddr)); err == nil {
				return c.Close()
			}
			time.Sleep(time.Duration(10+i%7) * time.Millisecond)
		}
		return err
	}
	done := make(chan error, 1)
	go func() { done <- loop(b, "198.18.1.2:7000", "198.51.100.1:7000") }()
	require.NoError(t, loop(a, "198.18.0.2:7000", "198.51.100.2:7000"))
	require.NoError(t, <-done)

	// A read deadline on the wall clock.
	pc := must(b.ListenUDP(ctx, ap("0.0.0.0:0")))
	defer pc.Close()
	pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err = pc.ReadFrom(make([]byte, 1))
	assert.ErrorIs(t, err, errDeadline)
}
