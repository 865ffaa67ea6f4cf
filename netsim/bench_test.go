package netsim

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
)

// streamPair connects a host behind a Linux masquerade NAT to a host behind
// a one-to-one NAT (a cloud VM), without shaping, and returns both ends.
func streamPair(tb testing.TB, in *Internet) (net.Conn, net.Conn) {
	tb.Helper()
	ctx := context.Background()
	na := must(in.AddNAT(addr("198.51.100.1"), LinuxMasquerade))
	nb := must(in.AddNAT(addr("198.51.100.2"), OneToOne))
	ha := must(na.AddHost(addr("198.18.0.2")))
	hb := must(nb.AddHost(addr("198.18.1.2")))
	ln := must(hb.ListenTCP(ctx, ap("0.0.0.0:9000")))
	defer ln.Close()
	a := must(ha.DialTCP(ctx, ap("0.0.0.0:0"), ap("198.51.100.2:9000")))
	b := must(ln.Accept())
	return a, b
}

// BenchmarkStream measures throughput in real time between two hosts behind
// NATs, without shaping, for several write sizes. allocs/op must not grow
// with the size.
func BenchmarkStream(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("write=%dKiB", size>>10), func(b *testing.B) {
			in := New()
			defer in.Close()
			w, r := streamPair(b, in)
			buf := make([]byte, size)
			done := make(chan int64)
			go func() {
				n, _ := io.CopyBuffer(io.Discard, r, make([]byte, 64<<10))
				done <- n
			}()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			w.(*TCPConn).CloseWrite()
			if n := <-done; n != int64(size)*int64(b.N) {
				b.Fatalf("read %d bytes, want %d", n, int64(size)*int64(b.N))
			}
			b.StopTimer()
		})
	}
}

// BenchmarkDial measures connection setup through a NAT in real time: dial,
// accept, and close with SO_LINGER 0, per operation.
func BenchmarkDial(b *testing.B) {
	in := New()
	defer in.Close()
	ctx := context.Background()
	nat := must(in.AddNAT(addr("198.51.100.1"), HomeRouter))
	cli := must(nat.AddHost(addr("198.18.0.2")))
	srv := must(in.AddHost(addr("203.0.113.10")))
	ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
	defer ln.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := cli.DialTCP(ctx, netip.AddrPort{}, ap("203.0.113.10:80"))
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		c.(*TCPConn).SetLinger(0)
		c.Close()
		s.Close()
	}
}
