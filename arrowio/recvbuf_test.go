package arrowio

import (
	"context"
	"flag"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

func TestSizeClass(t *testing.T) {
	prev := 0
	for n := 1; n <= 1<<24; n += 1 + n/97 {
		c := sizeClass(n)
		require.GreaterOrEqual(t, c, n, "n=%d", n)
		require.Equal(t, c, sizeClass(c), "a class is its own class (n=%d)", n)
		require.GreaterOrEqual(t, c, prev, "classes grow with n (n=%d)", n)
		if n >= 8 {
			require.LessOrEqual(t, float64(c), float64(n)*1.125, "at most 1/8 wasted (n=%d)", n)
		}
		prev = c
	}
	for _, tc := range []struct{ n, class int }{{1, 1}, {7, 7}, {9, 9}, {17, 18}, {64 << 10, 64 << 10}, {4<<20 + 1, 4<<20 + 512<<10}} {
		assert.Equal(t, tc.class, sizeClass(tc.n), "n=%d", tc.n)
	}
}

func TestRecvCache(t *testing.T) {
	c := newRecvCache(3 << 20)
	a := c.get(1 << 20)
	require.Len(t, a, 1<<20)
	a[0] = 1
	c.put(a)
	assert.Equal(t, int64(sizeClass(1<<20)), c.held)
	b := c.get(1<<20 - 100) // same class: the same memory comes back
	require.Len(t, b, 1<<20-100)
	assert.Same(t, unsafe.SliceData(a), unsafe.SliceData(b))
	if checking() {
		assert.Equal(t, byte(0xA5), b[0], "released buffers are poisoned in test binaries")
	}
	assert.Zero(t, c.held)

	// Beyond the limit, released buffers go to the garbage collector.
	bufs := [][]byte{c.get(1 << 20), c.get(1 << 20), c.get(1 << 20), c.get(1 << 20)}
	for _, x := range bufs {
		c.put(x)
	}
	assert.Equal(t, int64(3<<20), c.held)
	// Slices that did not come from get are not taken.
	c.put(make([]byte, 100<<10+3))
	assert.Equal(t, int64(3<<20), c.held)
}

func TestSetReceiveCache(t *testing.T) {
	prev := SetReceiveCache(0)
	defer SetReceiveCache(prev)
	assert.Equal(t, int64(DefaultReceiveCache), prev)
	b := recvBuffers.get(1 << 20)
	recvBuffers.put(b)
	recvBuffers.mu.Lock()
	held := recvBuffers.held
	recvBuffers.mu.Unlock()
	assert.Zero(t, held, "a zero limit keeps nothing")
}

// TestReceivedTablesReturnTheirBuffers: a table received over a
// communicator lives in cached buffers until its last release, and
// survives other traffic in the meantime.
func TestReceivedTablesReturnTheirBuffers(t *testing.T) {
	// No collection may age the cache between the two looks at it.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	comms := newWorld(t, tcpLinks, 2)
	held := func() int64 {
		recvBuffers.mu.Lock()
		defer recvBuffers.mu.Unlock()
		return recvBuffers.held
	}
	// Rendering 4 x 20000 rows of every type takes about 30 s under the race detector on a loaded
	// 2-core machine (the 30 s limit it had made it fail there): the limit only catches a hang.
	errs := runRanks(t, comms, 120*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		const rows = 20000
		tbl := rankTable(t, mem, rows, c.Rank(), 0)
		defer tbl.Release()
		if c.Rank() == 0 {
			for range 2 {
				if err := SendTable(ctx, c, 1, 3, tbl, WithAllocator(mem)); err != nil {
					return err
				}
			}
			return nil
		}
		first, err := RecvTable(ctx, c, 0, 3, WithAllocator(mem))
		if err != nil {
			return err
		}
		before := held()
		second, err := RecvTable(ctx, c, 0, 3, WithAllocator(mem))
		if err != nil {
			first.Release()
			return err
		}
		defer second.Release()
		// Receiving the second table did not take the first one's memory.
		if err := hasRows(first, allSchema, rankRows(t, rows, 0, 0)); err != nil {
			return err
		}
		first.Release()
		assert.Greater(t, held(), before, "releasing a received table returns its buffers")
		return hasRows(second, allSchema, rankRows(t, rows, 0, 0))
	})
	requireNoErrors(t, errs)
}

// TestChecking: test binaries poison released receive buffers (so the
// other tests catch a use after release), except when they run benchmarks.
func TestChecking(t *testing.T) {
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		t.Skip("benchmarks requested: released receive buffers are not poisoned in this run")
	}
	require.True(t, checking())
	require.Equal(t, 1, minCached())
}

// TestRecvCacheAges: a buffer survives one garbage collection in the cache
// and is dropped at the second unless it was used in between.
func TestRecvCacheAges(t *testing.T) {
	c := newRecvCache(64 << 20)
	a, b := c.get(1<<20), c.get(1<<20)
	c.put(a)
	c.age()
	c.put(b) // released after the first collection
	require.Equal(t, int64(2*sizeClass(1<<20)), c.held)
	c.age()
	require.Equal(t, int64(sizeClass(1<<20)), c.held, "a is dropped, b is kept one more cycle")
	got := c.get(1 << 20)
	assert.Same(t, unsafe.SliceData(b), unsafe.SliceData(got))
	c.age()
	c.age()
	assert.Zero(t, c.held)
}

// TestRecvCacheAgesWithTheCollector: the process-wide cache is aged by real
// garbage collections.
func TestRecvCacheAgesWithTheCollector(t *testing.T) {
	recvBuffers.put(recvBuffers.get(1 << 20))
	held := func() int64 {
		recvBuffers.mu.Lock()
		defer recvBuffers.mu.Unlock()
		return recvBuffers.held
	}
	require.NotZero(t, held())
	require.Eventually(t, func() bool {
		runtime.GC()
		return held() == 0
	}, 10*time.Second, 10*time.Millisecond, "two collections drop unused buffers")
}
