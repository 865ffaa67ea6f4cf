package rendezvous

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

var testSecret = []byte("fnmesh test secret: 32 bytes ok!")

// loopServer runs a Server on 127.0.0.1 (TCP and the same UDP port) until the
// test ends.
type loopServer struct {
	*Server
	addr   string
	ap     netip.AddrPort
	cancel context.CancelFunc
	done   chan error
}

func startLoopServer(t testing.TB, opts ...ServerOption) *loopServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	pc, err := net.ListenPacket("udp4", ap.String())
	require.NoError(t, err)
	srv := NewServer(testSecret, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	ls := &loopServer{Server: srv, addr: ap.String(), ap: ap, cancel: cancel, done: make(chan error, 1)}
	go func() { ls.done <- srv.Serve(ctx, ln, pc) }()
	t.Cleanup(func() { ls.stop(t) })
	return ls
}

func (ls *loopServer) stop(t testing.TB) {
	ls.cancel()
	select {
	case err := <-ls.done:
		require.NoError(t, err)
		ls.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
}

// joinAll runs world Joins at once (options per rank index from opts) and
// returns the meshes in rank order.
func joinAll(ctx context.Context, t testing.TB, addr, job string, world int, opts func(i int) []Option) ([]*Mesh, error) {
	meshes := make([]*Mesh, world)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < world; i++ {
		g.Go(func() error {
			var o []Option
			if opts != nil {
				o = opts(i)
			}
			m, err := Join(gctx, addr, job, world, testSecret, o...)
			if err != nil {
				return fmt.Errorf("member %d: %w", i, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if meshes[m.Rank] != nil {
				m.Close()
				return fmt.Errorf("rank %d assigned twice", m.Rank)
			}
			meshes[m.Rank] = m
			return nil
		})
	}
	err := g.Wait()
	if err != nil {
		for _, m := range meshes {
			if m != nil {
				m.Close()
			}
		}
		return nil, err
	}
	return meshes, nil
}

// verifyMeshes checks that every pair's link carries n random bytes both
// ways intact, that both ends agree on the tier, and that the links are
// indexed right. It returns the tier of every pair (a < b).
func verifyMeshes(t testing.TB, meshes []*Mesh, n int) map[[2]int]Tier {
	t.Helper()
	world := len(meshes)
	tiers := map[[2]int]Tier{}
	for r, m := range meshes {
		require.Equal(t, r, m.Rank)
		require.Equal(t, world, m.World)
		require.Len(t, m.Links, world)
		require.Nil(t, m.Links[r])
		for p, l := range m.Links {
			if p == r {
				continue
			}
			require.NotNil(t, l, "rank %d has no link to %d", r, p)
			require.Equal(t, p, l.Peer)
			other := meshes[p].Links[r]
			require.Equal(t, l.Tier, other.Tier, "ranks %d and %d disagree on the tier", r, p)
			if r < p {
				tiers[[2]int{r, p}] = l.Tier
			}
		}
	}
	var g errgroup.Group
	for r, m := range meshes {
		for p, l := range m.Links {
			if l == nil {
				continue
			}
			g.Go(func() error {
				// Each end sends payload(r->p) and expects payload(p->r).
				out := payload(r, p, n)
				want := payload(p, r, n)
				werr := make(chan error, 1)
				go func() { _, err := l.Write(out); werr <- err }()
				got := make([]byte, n)
				if _, err := io.ReadFull(l, got); err != nil {
					return fmt.Errorf("rank %d reading from %d over %v: %w", r, p, l.Tier, err)
				}
				if err := <-werr; err != nil {
					return fmt.Errorf("rank %d writing to %d over %v: %w", r, p, l.Tier, err)
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("rank %d got corrupt bytes from %d over %v", r, p, l.Tier)
				}
				return nil
			})
		}
	}
	require.NoError(t, g.Wait())
	return tiers
}

// payload is the deterministic byte stream rank from sends rank to.
func payload(from, to, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(from), byte(from >> 8), byte(to), byte(to >> 8)}).Read(b)
	return b
}

func closeMeshes(meshes []*Mesh) {
	for _, m := range meshes {
		if m != nil {
			m.Close()
		}
	}
}
