package netsim

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// udpPair returns a socket on a host behind a link l and one on a public
// server, and the server's endpoint.
func udpPair(t *testing.T, in *Internet, l Link) (*UDPConn, *UDPConn, netip.AddrPort) {
	ctx := context.Background()
	srv := must(in.AddHost(addr("203.0.113.10"), WithLink(l)))
	cli := must(in.AddHost(addr("203.0.113.20")))
	s := must(srv.listenUDP(ctx, ap("0.0.0.0:9000")))
	c := must(cli.listenUDP(ctx, ap("0.0.0.0:0")))
	return c, s, ap("203.0.113.10:9000")
}

// drain reads datagrams from u until none arrives for a second and returns
// their first 4 bytes as sequence numbers, in arrival order.
func drain(t *testing.T, u *UDPConn) []uint32 {
	var seqs []uint32
	buf := make([]byte, 2048)
	for {
		u.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			require.ErrorIs(t, err, errDeadline)
			return seqs
		}
		require.GreaterOrEqual(t, n, 4)
		seqs = append(seqs, binary.BigEndian.Uint32(buf))
	}
}

func sendSeq(t *testing.T, u *UDPConn, to netip.AddrPort, count, size int, every time.Duration) {
	b := make([]byte, size)
	for i := 0; i < count; i++ {
		binary.BigEndian.PutUint32(b, uint32(i))
		_, err := u.WriteToUDPAddrPort(b, to)
		require.NoError(t, err)
		if every > 0 {
			time.Sleep(every)
		}
	}
}

func TestUDPLoss(t *testing.T) {
	for _, loss := range []float64{0, 0.1, 0.5} {
		t.Run("", func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				c, s, to := udpPair(t, in, Link{Latency: 5 * time.Millisecond, Loss: loss})
				const n = 4000
				sendSeq(t, c, to, n, 100, 10*time.Microsecond)
				got := len(drain(t, s))
				assert.InDelta(t, float64(n)*(1-loss), got, float64(n)*0.03, "loss %v", loss)
				assert.Equal(t, uint64(n-got), in.Stats().Lost)
			})
		})
	}
}

func TestUDPJitterReorders(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		c, s, to := udpPair(t, in, Link{Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond})
		sendSeq(t, c, to, 200, 64, time.Millisecond)
		seqs := drain(t, s)
		require.Len(t, seqs, 200, "jitter loses nothing")
		inversions := 0
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				inversions++
			}
		}
		assert.Greater(t, inversions, 10, "datagrams are reordered by jitter")
	})
}

func TestUDPQueueTailDrop(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		// 1 Mbit/s with at most 100 ms of queue: a burst of 100 datagrams
		// of 1000 bytes (1028 on the wire, 8.2 ms each) keeps only 13.
		ctx := context.Background()
		cli := must(in.AddHost(addr("203.0.113.20"), WithLink(Link{Bandwidth: Mbps, Queue: 100 * time.Millisecond})))
		srv := must(in.AddHost(addr("203.0.113.10")))
		s := must(srv.listenUDP(ctx, ap("0.0.0.0:9000")))
		c := must(cli.listenUDP(ctx, ap("0.0.0.0:0")))
		sendSeq(t, c, ap("203.0.113.10:9000"), 100, 1000, 0)
		seqs := drain(t, s)
		assert.Len(t, seqs, 13)
		assert.Equal(t, uint32(12), seqs[len(seqs)-1])
	})
}

func TestUDPSocketSemantics(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		c, s, to := udpPair(t, in, Link{})
		// A datagram larger than the buffer is truncated.
		_, err := c.WriteToUDPAddrPort(make([]byte, 100), to)
		require.NoError(t, err)
		buf := make([]byte, 10)
		n, from, err := s.ReadFrom(buf)
		require.NoError(t, err)
		assert.Equal(t, 10, n)
		assert.Equal(t, c.LocalAddrPort().Port(), from.(*net.UDPAddr).AddrPort().Port())
		// A socket that is not read drops what overflows its buffer.
		sendSeq(t, c, to, 40, 60000, 0)
		time.Sleep(time.Millisecond)
		assert.Len(t, drain(t, s), udpRecvBuffer/60000)
		// Sockets sharing a port split the senders between them.
		srv := s.h
		s2 := must(srv.listenUDP(ctx, ap("0.0.0.0:9000")))
		counts := map[*UDPConn]int{}
		for i := 0; i < 32; i++ {
			u := must(c.h.listenUDP(ctx, ap("0.0.0.0:0")))
			_, err := u.WriteToUDPAddrPort([]byte("hi"), to)
			require.NoError(t, err)
		}
		for _, u := range []*UDPConn{s, s2} {
			counts[u] = drainRaw(u)
		}
		assert.Equal(t, 32, counts[s]+counts[s2])
		assert.NotZero(t, counts[s])
		assert.NotZero(t, counts[s2])
		// Closed sockets fail.
		require.NoError(t, s2.Close())
		_, _, err = s2.ReadFrom(buf)
		assert.ErrorIs(t, err, net.ErrClosed)
		assert.ErrorIs(t, s2.Close(), net.ErrClosed)
	})
}

func drainRaw(u *UDPConn) int {
	n := 0
	buf := make([]byte, 64)
	for {
		u.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := u.ReadFrom(buf); err != nil {
			return n
		}
		n++
	}
}
