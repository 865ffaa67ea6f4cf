package rendezvous

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJoinLoopback(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meshes, err := joinAll(ctx, t, srv.addr, "loop", 4, nil)
	require.NoError(t, err)
	tiers := verifyMeshes(t, meshes, 1<<20)
	for pair, tier := range tiers {
		assert.Equal(t, TierDirect, tier, "pair %v", pair)
	}
	assert.Len(t, tiers, 6)

	// Nothing outlives the meshes and the server.
	closeMeshes(meshes)
	srv.stop(t)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestJoinOptions: a fixed local port is the one the links use, and STUN
// discovery through the server's own port is asked for and carried.
func TestJoinOptions(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ports := make([]uint16, 2)
	for i := range ports {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = uint16(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	meshes, err := joinAll(ctx, t, srv.addr, "options", 2, func(i int) []Option {
		return []Option{
			WithRank(i),
			WithLocalAddr(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[i])),
			WithSTUNServer(srv.ap),
			WithPunchTimeout(2 * time.Second),
		}
	})
	require.NoError(t, err)
	defer closeMeshes(meshes)
	verifyMeshes(t, meshes, 1000)
	for r, m := range meshes {
		l := m.Links[1-r]
		assert.Equal(t, TierDirect, l.Tier)
		assert.Equal(t, ports[r], addrPortOf(l.LocalAddr()).Port(), "rank %d's link leaves from its punch port", r)
		assert.Equal(t, ports[1-r], addrPortOf(l.RemoteAddr()).Port())
		assert.Positive(t, l.Setup)
		assert.GreaterOrEqual(t, m.Setup, l.Setup)
	}
	assert.Equal(t, int64(2), srv.Metrics().STUNRequests["tcp"])
}

func TestJoinBadArguments(t *testing.T) {
	tests := []struct {
		name  string
		job   string
		world int
		opts  []Option
		want  string
	}{
		{"empty job", "", 2, nil, "job ID of 0 bytes"},
		{"world 0", "j", 0, nil, "world size 0"},
		{"world too big", "j", MaxWorld + 1, nil, "world size 4097"},
		{"rank out of range", "j", 2, []Option{WithRank(2)}, "rank 2 out of range"},
		{"rank -1", "j", 2, []Option{WithRank(-1)}, "rank -1 out of range"},
		{"negative rank", "j", 2, []Option{WithRank(-7)}, "rank -7 out of range"},
		{"negative punch timeout", "j", 2, []Option{WithPunchTimeout(-time.Second)}, "negative punch timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Join(context.Background(), "127.0.0.1:1", tt.job, tt.world, testSecret, tt.opts...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := Join(context.Background(), "127.0.0.1:1", "j", 2, nil)
	assert.ErrorContains(t, err, "empty secret")
	_, err = Join(context.Background(), "no-port", "j", 2, testSecret)
	assert.ErrorContains(t, err, "server address")
}

// TestJoinWaitsForServer: workers started before their server keep dialing
// while it refuses, and join once it listens; WithConnectRetry bounds that,
// and 0 fails at the first refusal.
func TestJoinWaitsForServer(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // refused until the server below takes the port

	t.Run("retry off", func(t *testing.T) {
		_, err := Join(context.Background(), addr, "early", 2, testSecret, WithConnectRetry(0))
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.NotContains(t, err.Error(), "refused 1 times")
	})
	t.Run("retry runs out", func(t *testing.T) {
		began := time.Now()
		_, err := Join(context.Background(), addr, "early", 2, testSecret, WithConnectRetry(300*time.Millisecond))
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.ErrorContains(t, err, "is the server up")
		assert.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)
	})
	t.Run("context ends first", func(t *testing.T) {
		// Long enough for the first dial to be refused even on a loaded
		// machine (200 ms was not: the first dial itself sometimes timed
		// out, with no refusal to report), and well short of the 10 s
		// DefaultConnectRetry, so that the context still ends first.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := Join(ctx, addr, "early", 2, testSecret)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "the server refused")
	})
	t.Run("server comes up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		type result struct {
			m   *Mesh
			err error
		}
		results := make(chan result, 2)
		for r := range 2 {
			go func() {
				m, err := Join(ctx, addr, "early", 2, testSecret, WithRank(r))
				results <- result{m, err}
			}()
		}
		time.Sleep(300 * time.Millisecond) // both have been refused by now
		ln, err := net.Listen("tcp4", addr)
		require.NoError(t, err)
		srv := NewServer(testSecret)
		sctx, stop := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(sctx, ln, nil) }()
		defer func() { stop(); require.NoError(t, <-served) }()
		meshes := make([]*Mesh, 2)
		for range 2 {
			res := <-results
			require.NoError(t, res.err)
			meshes[res.m.Rank] = res.m
		}
		defer closeMeshes(meshes)
		verifyMeshes(t, meshes, 1000)
	})
}

// TestJoinSaysWhatItWaitedFor: a Join whose context ends while the job is
// incomplete says so, and the context's error is what errors.Is finds.
func TestJoinSaysWhatItWaitedFor(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Join(ctx, srv.addr, "alone", 3, testSecret)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "waiting for the other members of the job (1 of 3 joined when last heard from the server, ")
	assert.Equal(t, 1, strings.Count(err.Error(), context.DeadlineExceeded.Error()), "said once: %v", err)
}

// TestJoinWrongService: pointed at something that is not a rendezvous
// server (its HTTP port, say), Join says so instead of a bare I/O error.
func TestJoinWrongService(t *testing.T) {
	silent, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts and says nothing
		}
	}()
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()

	for _, addr := range []string{silent.Addr().String(), web.Listener.Addr().String()} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := Join(ctx, addr, "j", 2, testSecret)
		cancel()
		require.Error(t, err, addr)
		assert.ErrorContains(t, err, "not a rendezvous server's port?", addr)
	}
}
