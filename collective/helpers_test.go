package collective

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pipeMesh connects n ranks with net.Pipe: synchronous, unbuffered conns,
// the harshest case for deadlocks.
func pipeMesh(n int) [][]net.Conn {
	links := make([][]net.Conn, n)
	for i := range links {
		links[i] = make([]net.Conn, n)
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			links[i][j], links[j][i] = net.Pipe()
		}
	}
	return links
}

type meshKind string

const (
	tcpMesh  meshKind = "tcp"
	pipeKind meshKind = "pipe"
)

// newComms builds n communicators over the given kind of in-process links
// and closes them when the test ends.
func newComms(t testing.TB, kind meshKind, n int, opts ...Option) []*Comm {
	t.Helper()
	var comms []*Comm
	switch kind {
	case tcpMesh:
		var err error
		comms, err = Local(context.Background(), n, opts...)
		require.NoError(t, err)
	case pipeKind:
		links := pipeMesh(n)
		for i := range n {
			c, err := New(i, links[i], opts...)
			require.NoError(t, err)
			comms = append(comms, c)
		}
	}
	t.Cleanup(func() {
		for _, c := range comms {
			_ = c.Close()
		}
	})
	return comms
}

// runAll runs fn on every rank concurrently and returns each rank's error.
// It fails the test if the ranks do not all return within limit.
func runAll(t testing.TB, comms []*Comm, limit time.Duration, fn func(ctx context.Context, c *Comm) error) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for i, c := range comms {
		wg.Go(func() { errs[i] = fn(ctx, c) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit + 10*time.Second):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("ranks still running %v after their deadline:\n%s", limit, buf[:n])
	}
	return errs
}

// requireAllOK runs fn on every rank and requires every rank to succeed.
func requireAllOK(t testing.TB, comms []*Comm, fn func(ctx context.Context, c *Comm) error) {
	t.Helper()
	for r, err := range runAll(t, comms, 60*time.Second, fn) {
		require.NoError(t, err, "rank %d", r)
	}
}

// checkNoLeaks waits for the goroutine count to come back to base.
func checkNoLeaks(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	memoMu sync.Mutex
	memo   = map[string]any{}
)

// memoize returns the value fn computes for k, computing it once: the ranks
// of a test compare against the same expected data, and computing it per
// rank under the race detector dominates the run time. Callers must not
// modify what it returns.
func memoize[T any](k string, fn func() T) T {
	memoMu.Lock()
	v, ok := memo[k]
	memoMu.Unlock()
	if ok {
		return v.(T)
	}
	v = fn() // may memoize its own parts; two ranks may race to compute the same value
	memoMu.Lock()
	defer memoMu.Unlock()
	if old, ok := memo[k]; ok {
		return old.(T)
	}
	memo[k] = v
	return v.(T)
}

// payload returns deterministic bytes that differ per rank, size and salt.
// The result is shared: do not modify it.
func payload(rank, size, salt int) []byte {
	return memoize(fmt.Sprint("payload", rank, size, salt), func() []byte { return makePayload(rank, size, salt) })
}

func makePayload(rank, size, salt int) []byte {
	b := make([]byte, size)
	x := uint32(rank*7919 + size*104729 + salt*15485863 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func name(parts ...any) string { return fmt.Sprint(parts...) }
