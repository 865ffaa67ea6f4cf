package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/testnet"
)

// flipConn flips one bit of the byte at stream offset at of what it writes.
type flipConn struct {
	net.Conn
	at, off int64
}

func (c *flipConn) Write(b []byte) (int, error) {
	if c.at >= c.off && c.at < c.off+int64(len(b)) {
		b = append([]byte(nil), b...)
		b[c.at-c.off] ^= 0x10
	}
	c.off += int64(len(b))
	return c.Conn.Write(b)
}

// side is one end's view of an exchange.
type side struct {
	self, peer int
	n          int64
}

func runExchange(t *testing.T, ctx context.Context, a, b net.Conn, sa, sb side) (exchangeResult, exchangeResult) {
	t.Helper()
	ra := make(chan exchangeResult, 1)
	go func() { ra <- exchange(ctx, a, sa.self, sa.peer, sa.n) }()
	rb := exchange(ctx, b, sb.self, sb.peer, sb.n)
	return <-ra, rb
}

func TestExchangeVerifiesBothDirections(t *testing.T) {
	for _, n := range []int64{0, 1, 100_003, 1 << 20, 3<<20 + 7} {
		a, b := testnet.TCPPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ra, rb := runExchange(t, ctx, a, b, side{0, 5, n}, side{5, 0, n})
		cancel()
		for _, r := range []exchangeResult{ra, rb} {
			require.NoError(t, r.Err, "n=%d", n)
			assert.Equal(t, n, r.Verified)
			assert.True(t, r.PeerVerified)
		}
	}
}

func TestExchangeDetectsCorruption(t *testing.T) {
	const n = 300_000
	for _, at := range []int64{headerSize, headerSize + 1, headerSize + 65536, headerSize + n - 1} {
		a, b := testnet.TCPPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ra, rb := runExchange(t, ctx, &flipConn{Conn: a, at: at}, b, side{1, 2, n}, side{2, 1, n})
		cancel()
		require.Error(t, rb.Err, "corrupted byte at payload offset %d went unnoticed", at-headerSize)
		assert.Contains(t, rb.Err.Error(), "1 of 300000 bytes differ")
		assert.Equal(t, int64(0), rb.Verified)
		require.Error(t, ra.Err)
		assert.Contains(t, ra.Err.Error(), "rank 2 reports")
		assert.Equal(t, int64(n), ra.Verified, "the other direction was intact")
		assert.False(t, ra.PeerVerified)
	}
	// A flipped bit in the seed changes the whole stream: caught too.
	a, b := testnet.TCPPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, rb := runExchange(t, ctx, &flipConn{Conn: a, at: headerSize - 1}, b, side{1, 2, n}, side{2, 1, n})
	require.Error(t, rb.Err)
	assert.Contains(t, rb.Err.Error(), "the first at offset 0")
}

func TestExchangeRejectsMismatchedPeers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sa, sb side
		want   string
	}{
		{"sizes", side{0, 1, 1000}, side{1, 0, 2000}, "use the same --bytes"},
		{"large sizes", side{0, 1, 8 << 20}, side{1, 0, 16 << 20}, "use the same --bytes"},
		{"ranks", side{0, 1, 1000}, side{2, 0, 1000}, "on the link between"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := testnet.TCPPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ra, rb := runExchange(t, ctx, a, b, tc.sa, tc.sb)
			// Both sides notice and say why: the first to notice used to
			// close at once, and its reset wiped the header it had sent
			// from the other's receive buffer ("connection reset by peer").
			require.Error(t, ra.Err)
			require.Error(t, rb.Err)
			assert.Contains(t, ra.Err.Error(), tc.want)
			assert.Contains(t, rb.Err.Error(), tc.want)
		})
	}
}

func TestExchangeEndsWhenPeerDiesOrContextEnds(t *testing.T) {
	a, b := testnet.TCPPair(t)
	go func() {
		var buf [headerSize + 100]byte
		_, _ = b.Read(buf[:])
		b.Close() // dies mid-exchange, sending nothing
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := exchange(ctx, a, 0, 1, 1<<20)
	require.Error(t, r.Err)

	a, _ = testnet.TCPPair(t) // the peer is silent
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r = exchange(ctx, a, 0, 1, 1000)
	require.Error(t, r.Err)
	assert.ErrorIs(t, r.Err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// BenchmarkExchange measures the verification exchange over loopback TCP:
// both directions at once, payload generated and checked on the fly.
// Throughput counts the bytes of one direction.
func BenchmarkExchange(b *testing.B) {
	const n = 64 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	b.SetBytes(n)
	for b.Loop() {
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		a, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(b, err)
		c := <-accepted
		done := make(chan exchangeResult, 1)
		go func() { done <- exchange(context.Background(), c, 1, 0, n) }()
		ra := exchange(context.Background(), a, 0, 1, n)
		rb := <-done
		require.NoError(b, ra.Err)
		require.NoError(b, rb.Err)
		a.Close()
		c.Close()
	}
}
