package arrowio

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// isClosed reports whether c was closed, without waiting and without harm
// to it: a receive under an ended context fails at once, with ErrClosed
// when c is closed and with the context's error (leaving c as it was)
// otherwise.
func isClosed(c *collective.Comm) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Recv(ctx, c.Rank(), 0)
	return errors.Is(err, collective.ErrClosed)
}

// useSplit splits world, runs an all-gather on the part (which makes
// arrowio's duplicate of it) and drops the part without closing it. It
// returns the duplicate.
func useSplit(ctx context.Context, world *collective.Comm, tbl arrow.Table) (*collective.Comm, error) {
	sub, err := world.Split(ctx, 0, world.Rank())
	if err != nil {
		return nil, err
	}
	out, err := AllgatherTable(ctx, sub, tbl)
	if err != nil {
		return nil, err
	}
	out.Release()
	privatesMu.Lock()
	p := privates[weak.Make(sub)]
	privatesMu.Unlock()
	if p == nil || p.comm == nil || isClosed(p.comm) {
		return nil, errors.New("no open duplicate after an all-gather")
	}
	return p.comm, nil
}

// The duplicate arrowio makes of a communicator is closed once that
// communicator is garbage (so that it leaves no registration on the links it
// shares with the world), and forgotten.
func TestPrivateClosedWithItsCommunicator(t *testing.T) {
	world := newWorld(t, tcpLinks, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tbl := genTable(t, memory.DefaultAllocator, arrow.NewSchema(allTypes()[:3], nil), genSpec{rows: 3, chunks: 1, card: 2, seed: 1})
	defer tbl.Release()
	dups := make([]*collective.Comm, len(world))
	errs := make([]error, len(world))
	var wg sync.WaitGroup
	for r := range world {
		wg.Go(func() { dups[r], errs[r] = useSplit(ctx, world[r], tbl) })
	}
	wg.Wait()
	requireNoErrors(t, errs)
	require.Eventually(t, func() bool {
		runtime.GC()
		for _, dup := range dups {
			if !isClosed(dup) {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "the duplicates of garbage communicators were not closed")
	// The world and its own duplicate still work.
	errs = runRanks(t, world, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tbl := genTable(t, mem, arrow.NewSchema(allTypes()[:3], nil), genSpec{rows: 3, chunks: 1, card: 2, seed: 2})
		defer tbl.Release()
		out, err := AllgatherTable(ctx, c, tbl, WithAllocator(mem))
		if err == nil {
			out.Release()
		}
		return err
	})
	requireNoErrors(t, errs)
}
