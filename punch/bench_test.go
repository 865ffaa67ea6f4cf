package punch

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// BenchmarkHandshake measures one link handshake (hello and proof both
// ways) over a fresh loopback TCP connection, connection set-up excluded.
func BenchmarkHandshake(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		acc := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			acc <- c
		}()
		ca, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		cb := <-acc
		b.StartTimer()
		var wg sync.WaitGroup
		var errB error
		wg.Go(func() { errB = Handshake(ctx, cb, ident(1), 0) })
		if err := Handshake(ctx, ca, ident(0), 1); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		if errB != nil {
			b.Fatal(errB)
		}
		b.StopTimer()
		ca.Close()
		cb.Close()
		b.StartTimer()
	}
}

// BenchmarkPunchLoopback measures a whole Punch between two Ports on
// loopback: connect from the fixed ports, handshake, agreement on the link.
// Links are aborted (RST) between iterations, so the same 4-tuple is reused
// every time.
func BenchmarkPunchLoopback(b *testing.B) {
	ctx := context.Background()
	laddr := netip.MustParseAddrPort("127.0.0.1:0")
	a, err := Listen(ctx, OS(), laddr, ident(0))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	c, err := Listen(ctx, OS(), laddr, ident(1))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		la, lc, ea, ec := punchPair(pctx, a, c, []netip.AddrPort{a.Addr()}, []netip.AddrPort{c.Addr()})
		cancel()
		if ea != nil || ec != nil {
			b.Fatal(ea, ec)
		}
		abort(la)
		abort(lc)
	}
}
