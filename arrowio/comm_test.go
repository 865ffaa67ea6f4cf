package arrowio

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// Communicators for the tests: real collective.Comms over loopback TCP (collective.Local) or over
// net.Pipe (synchronous, unbuffered: the harshest case for deadlocks).

type linkKind string

const (
	tcpLinks  linkKind = "tcp"
	pipeLinks linkKind = "pipe"
)

func newWorld(t testing.TB, kind linkKind, n int) []*collective.Comm {
	t.Helper()
	var comms []*collective.Comm
	switch kind {
	case tcpLinks:
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var err error
		comms, err = collective.Local(ctx, n)
		require.NoError(t, err)
	case pipeLinks:
		links := make([][]net.Conn, n)
		for i := range links {
			links[i] = make([]net.Conn, n)
		}
		for i := range n {
			for j := i + 1; j < n; j++ {
				links[i][j], links[j][i] = net.Pipe()
			}
		}
		for i := range n {
			c, err := collective.New(i, links[i])
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

// runRanks runs fn on every rank concurrently, each with its own checked allocator, and returns each
// rank's error. It fails the test if a rank does not return within limit (a hang) or leaks memory.
func runRanks(t *testing.T, comms []*collective.Comm, limit time.Duration, fn func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	errs := make([]error, len(comms))
	mems := make([]*memory.CheckedAllocator, len(comms))
	var wg sync.WaitGroup
	for i, c := range comms {
		mems[i] = memory.NewCheckedAllocator(memory.NewGoAllocator())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					buf := make([]byte, 64<<10)
					errs[i] = fmt.Errorf("rank %d panicked: %v\n%s", i, r, buf[:runtime.Stack(buf, false)])
				}
			}()
			errs[i] = fn(ctx, c, mems[i])
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit + 10*time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("ranks did not return within %v:\n%s", limit, buf[:runtime.Stack(buf, true)])
	}
	for i, m := range mems {
		if n := m.CurrentAlloc(); n != 0 {
			t.Errorf("rank %d leaked %d bytes", i, n)
		}
	}
	return errs
}

func requireNoErrors(t *testing.T, errs []error) {
	t.Helper()
	for r, err := range errs {
		require.NoError(t, err, "rank %d", r)
	}
}
