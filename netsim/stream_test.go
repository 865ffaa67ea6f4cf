package netsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStream256MiB sends 256 MiB between two hosts behind NATs, in real
// time and without shaping, and checks that it arrives bit-identical.
func TestStream256MiB(t *testing.T) {
	in := New(WithSeed(7))
	defer in.Close()
	w, r := streamPair(t, in)
	const total = 256 << 20
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	sent := sha256.New()
	go func() {
		chunk := make([]byte, len(block))
		for i := 0; i < total/len(block); i++ {
			// Every block differs: its first 8 bytes count, and the rest is
			// rotated by i, so a misplaced block changes the hash.
			copy(chunk, block[i%len(block):])
			copy(chunk[len(block)-i%len(block):], block)
			binary.LittleEndian.PutUint64(chunk, uint64(i))
			sent.Write(chunk)
			// Odd write sizes exercise the ring's wrap-around.
			for off := 0; off < len(chunk); {
				n := min(len(chunk)-off, 1+(i*7919+off)%(200<<10))
				if _, err := w.Write(chunk[off : off+n]); err != nil {
					t.Error(err)
					return
				}
				off += n
			}
		}
		w.Close()
	}()
	got := sha256.New()
	n, err := io.CopyBuffer(got, r, make([]byte, 48<<10))
	require.NoError(t, err)
	require.Equal(t, int64(total), n)
	assert.Equal(t, sent.Sum(nil), got.Sum(nil))
	r.Close()
}

// shapedPair connects two public hosts whose links are l each.
func shapedPair(t *testing.T, in *Internet, l Link) (net.Conn, net.Conn) {
	ctx := context.Background()
	srv := must(in.AddHost(addr("203.0.113.10"), WithLink(l)))
	cli := must(in.AddHost(addr("203.0.113.20"), WithLink(l)))
	ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
	defer ln.Close()
	c := must(cli.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80")))
	s := must(ln.Accept())
	return c, s
}

func TestShapingLatency(t *testing.T) {
	tests := []struct {
		name   string
		link   Link
		rounds int
	}{
		{"fixed 25 ms", Link{Latency: 25 * time.Millisecond}, 20},
		{"40 ms ± 10 ms jitter", Link{Latency: 40 * time.Millisecond, Jitter: 10 * time.Millisecond}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				c, s := shapedPair(t, in, tt.link)
				defer c.Close()
				defer s.Close()
				go io.Copy(s, s)
				buf := make([]byte, 1)
				start := time.Now()
				for i := 0; i < tt.rounds; i++ {
					_, err := c.Write(buf)
					require.NoError(t, err)
					_, err = io.ReadFull(c, buf)
					require.NoError(t, err)
				}
				// A round trip crosses four links (two each way).
				rtt := time.Since(start) / time.Duration(tt.rounds)
				want := 4 * tt.link.Latency
				assert.InEpsilon(t, float64(want), float64(rtt), 0.03, "mean RTT %v, want %v", rtt, want)
			})
		})
	}
}

func TestShapingBandwidth(t *testing.T) {
	tests := []struct {
		name string
		link Link
		size int
	}{
		{"100 Mbit/s, 10 ms", Link{Latency: 10 * time.Millisecond, Bandwidth: 100 * Mbps}, 16 << 20},
		{"10 Mbit/s, 50 ms ± 5 ms", Link{Latency: 50 * time.Millisecond, Jitter: 5 * time.Millisecond, Bandwidth: 10 * Mbps}, 4 << 20},
		{"1 Gbit/s, 1 ms", Link{Latency: time.Millisecond, Bandwidth: Gbps}, 24 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				c, s := shapedPair(t, in, tt.link)
				defer s.Close()
				data := pattern(tt.size)
				start := time.Now()
				go func() {
					c.Write(data)
					c.Close()
				}()
				got, err := io.ReadAll(s)
				require.NoError(t, err)
				elapsed := time.Since(start)
				require.True(t, bytes.Equal(data, got), "data differs")
				// The sender's link is busy for size/bandwidth; the last
				// chunk then crosses the receiver's link (store and
				// forward), and each link adds its latency.
				bw := float64(tt.link.Bandwidth)
				want := time.Duration(float64(tt.size+segment)*8/bw*1e9) + 2*tt.link.Latency
				assert.InEpsilon(t, float64(want), float64(elapsed), 0.02, "took %v, want %v", elapsed, want)
				rate := float64(tt.size) * 8 / (elapsed - 2*tt.link.Latency).Seconds()
				assert.InEpsilon(t, bw, rate, 0.02, "goodput %.2f Mbit/s, configured %.2f", rate/1e6, bw/1e6)
			})
		})
	}
}

func TestSharedBottleneck(t *testing.T) {
	// Two flows leave one host over its 50 Mbit/s uplink at the same time:
	// they share it, and together they fill it.
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		src := must(in.AddHost(addr("203.0.113.20"), WithLink(Link{Latency: 5 * time.Millisecond, Bandwidth: 50 * Mbps})))
		const size = 8 << 20
		var wg sync.WaitGroup
		took := make([]time.Duration, 2)
		start := time.Now()
		for i, dstAddr := range []string{"203.0.113.10", "203.0.113.11"} {
			dst := must(in.AddHost(addr(dstAddr), WithLink(Link{Latency: 5 * time.Millisecond})))
			ln := must(dst.ListenTCP(ctx, ap("0.0.0.0:80")))
			c := must(src.DialTCP(ctx, ap("0.0.0.0:0"), netip.AddrPortFrom(dst.Addr(), 80)))
			s := must(ln.Accept())
			ln.Close()
			wg.Add(2)
			go func() {
				defer wg.Done()
				c.Write(make([]byte, size))
				c.Close()
			}()
			go func() {
				defer wg.Done()
				n, _ := io.Copy(io.Discard, s)
				assert.Equal(t, int64(size), n)
				took[i] = time.Since(start)
				s.Close()
			}()
		}
		wg.Wait()
		both := float64(2*size) * 8 / max(took[0], took[1]).Seconds()
		assert.InEpsilon(t, 50e6, both, 0.03, "aggregate %.1f Mbit/s", both/1e6)
		assert.InEpsilon(t, float64(took[0]), float64(took[1]), 0.1, "each flow gets about half: %v", took)
	})
}

func TestJitterNeverReordersStreams(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		c, s := shapedPair(t, in, Link{Latency: 20 * time.Millisecond, Jitter: 19 * time.Millisecond, Bandwidth: 200 * Mbps})
		defer s.Close()
		data := pattern(3 << 20)
		go func() {
			for off := 0; off < len(data); off += 1000 {
				c.Write(data[off:min(off+1000, len(data))])
				time.Sleep(time.Millisecond)
			}
			c.Close()
		}()
		got, err := io.ReadAll(s)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(data, got))
	})
}

func TestWindowFlowControl(t *testing.T) {
	// A writer may run ahead of its reader by the window, not more.
	bubble(t, func(t *testing.T, in *Internet) {
		c, s := shapedPair(t, in, Link{Latency: 10 * time.Millisecond})
		defer c.Close()
		defer s.Close()
		var written int64
		var mu sync.Mutex
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Write(buf)
				mu.Lock()
				written += int64(n)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		time.Sleep(time.Second)
		mu.Lock()
		assert.Equal(t, int64(1<<20), written, "window set by WithTCPBuffer")
		mu.Unlock()
		n, err := io.ReadFull(s, make([]byte, 3<<20))
		require.NoError(t, err)
		assert.Equal(t, 3<<20, n)
	}, WithTCPBuffer(1<<20))
}

// pattern returns n bytes that do not repeat with any period below 64 KiB
// (cheap to build under the race detector).
func pattern(n int) []byte {
	unit := make([]byte, 65521) // prime length
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range unit {
		unit[i] = byte(rng.Uint32())
	}
	data := make([]byte, n)
	for off := 0; off < n; off += copy(data[off:], unit) {
	}
	return data
}
