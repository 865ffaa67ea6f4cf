package rendezvous

import (
	"context"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// settle waits until the goroutine and descriptor counts are back to at
// most what they were, and fails if they do not come back.
func settle(t *testing.T, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for (runtime.NumGoroutine() > goroutines || openFDs(t) > fds) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
	}
	if n := openFDs(t); n > fds {
		t.Errorf("%d descriptors before, %d after", fds, n)
	}
}

// TestClientMeshCloseTwiceWhileInUse: Close unblocks a read in progress on
// a link, and a second Close is harmless.
func TestClientMeshCloseTwiceWhileInUse(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meshes, err := joinAll(ctx, t, srv.addr, "close-twice", 2, nil)
	require.NoError(t, err)
	defer closeMeshes(meshes)
	readErr := make(chan error, 1)
	go func() {
		_, err := meshes[0].Links[1].Read(make([]byte, 1))
		readErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, meshes[0].Close())
	select {
	case err := <-readErr:
		require.Error(t, err)
	case <-time.After(3 * time.Second):
		t.Fatal("a read on a link still blocks after Mesh.Close")
	}
	require.NoError(t, meshes[0].Close(), "second Close")
	// The peer sees the end.
	meshes[1].Links[0].SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = meshes[1].Links[0].Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

// TestClientLinksOutliveJoinContext: the ctx given to Join bounds the setup
// only; the links work after it ends.
func TestClientLinksOutliveJoinContext(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	meshes, err := joinAll(ctx, t, srv.addr, "outlive", 3, nil)
	require.NoError(t, err)
	defer closeMeshes(meshes)
	cancel()
	time.Sleep(50 * time.Millisecond)
	verifyMeshes(t, meshes, 1<<16)
}

// TestClientWorldOne: a job of one member has a mesh of no links.
func TestClientWorldOne(t *testing.T) {
	g, fds := runtime.NumGoroutine(), openFDs(t)
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Join(ctx, srv.addr, "solo", 1, testSecret)
	require.NoError(t, err)
	assert.Equal(t, 0, m.Rank)
	assert.Equal(t, 1, m.World)
	assert.Equal(t, []*Link{nil}, m.Links)
	require.NoError(t, m.Close())
	srv.stop(t)
	settle(t, g, fds)
}

// TestClientContextEndsWhilePunching: a Join whose ctx ends while it
// punches returns at once and leaves no socket or goroutine behind.
func TestClientContextEndsWhilePunching(t *testing.T) {
	srv := startFakeServer(t, time.Second, func(m *fakeMember) {
		m.send(m.table(4, 1))
		m.send(start{Rank: 1, PunchTimeout: 10 * time.Second, RelayTimeout: 10 * time.Second})
		m.drain()
	}, nil)
	g, fds := runtime.NumGoroutine(), openFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := Join(ctx, srv.addr, "punching", 4, testSecret, WithRank(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(began), 2*time.Second)
	assert.Contains(t, err.Error(), "rank 1: ")
	t.Log(err)
	settle(t, g, fds)
}

func TestClientNegativeConnectRetry(t *testing.T) {
	_, err := Join(context.Background(), "127.0.0.1:1", "j", 2, testSecret, WithConnectRetry(-time.Second))
	require.ErrorContains(t, err, "negative connect retry")
}
