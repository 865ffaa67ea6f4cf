package arrowio

import (
	"context"
	"flag"
	"math/bits"
	"runtime"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fnmesh/fnmesh/collective"
)

// Receive buffers. A received message is read straight into a buffer of this
// package's cache (collective.Comm.RecvFunc), the arrays decoded from it point
// into it, and once the last of them is released the buffer goes back to the
// cache for the next message. Memory the process has touched before costs
// nothing to reuse, where a fresh buffer costs the kernel a page fault and a
// page of zeroes every 4 KiB and the garbage collector a cycle every few
// buffers (an exchange on loopback ran 1.1-1.4x faster with the cache).

const (
	// cacheMin: smaller messages get plain buffers (they are cheap, and
	// many of them are headers and end-of-stream markers).
	cacheMin = 64 << 10
	// DefaultReceiveCache is how many bytes of released receive buffers
	// the process keeps for reuse unless SetReceiveCache says otherwise.
	DefaultReceiveCache = 256 << 20
)

// recvCache keeps released receive buffers by size class: sizes round up to
// an eighth of their power of two, so a buffer is at most 1/8 larger than
// its message and messages of about the same size share a class. Buffers
// age with the garbage collector, as sync.Pool's do: each collection moves
// what is in the cache to an older generation and drops what was already
// there, so a buffer unused for two collections goes back to the heap. A
// busy job keeps its buffers; an idle process, or one short of memory
// (whose collector runs often), does not keep them for long.
type recvCache struct {
	mu    sync.Mutex
	free  map[int][][]byte // by capacity: released since the last collection
	old   map[int][][]byte // released before it
	held  int64            // bytes in free and old
	limit int64
}

var recvBuffers = newRecvCache(DefaultReceiveCache)

func newRecvCache(limit int64) *recvCache {
	return &recvCache{free: make(map[int][][]byte), old: make(map[int][][]byte), limit: limit}
}

func init() { ageAfterGC(recvBuffers) }

// ageAfterGC ages c after every garbage collection, from a cleanup of an
// object nobody refers to, which runs once a collection has found it
// unreachable and then arms the next one.
func ageAfterGC(c *recvCache) {
	sentinel := new([16]byte)
	runtime.AddCleanup(sentinel, func(c *recvCache) {
		c.age()
		ageAfterGC(c)
	}, c)
}

// age drops the old generation and makes the free one old.
func (c *recvCache) age() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for class, bufs := range c.old {
		c.held -= int64(class) * int64(len(bufs))
	}
	clear(c.old)
	c.free, c.old = c.old, c.free
}

// checking: in test binaries (unless they run benchmarks) every received
// message goes through the cache, and a buffer that comes back is
// overwritten at once, so that any use of an array after its release shows
// up as wrong data in whatever test checks it, not only when a large buffer
// happens to be reused. Decided on first use, after the test flags are
// parsed.
var checking = sync.OnceValue(func() bool {
	if !testing.Testing() {
		return false
	}
	bench := flag.Lookup("test.bench")
	return bench == nil || bench.Value.String() == ""
})

// minCached is the smallest message that gets a cached buffer.
func minCached() int {
	if checking() {
		return 1
	}
	return cacheMin
}

// SetReceiveCache sets how many bytes of released receive buffers the
// process keeps for the next messages (DefaultReceiveCache to start with;
// 0 keeps none, leaving every buffer to the garbage collector) and returns
// the previous limit. Buffers held beyond a lowered limit are dropped.
func SetReceiveCache(limit int64) (previous int64) {
	c := recvBuffers
	c.mu.Lock()
	defer c.mu.Unlock()
	previous, c.limit = c.limit, max(limit, 0)
	for _, gen := range []map[int][][]byte{c.old, c.free} {
		for class, bufs := range gen {
			for c.held > c.limit && len(bufs) > 0 {
				bufs[len(bufs)-1] = nil // for the garbage collector
				bufs = bufs[:len(bufs)-1]
				c.held -= int64(class)
			}
			gen[class] = bufs
		}
	}
	return previous
}

// sizeClass returns the capacity of the buffer for an n-byte message
// (n >= 1).
func sizeClass(n int) int {
	step := max(1<<(bits.Len(uint(n))-1)>>3, 1)
	return (n + step - 1) / step * step
}

// get returns a buffer of length n; from the cache when one of n's class
// is there. Its contents are undefined: the message overwrites them.
func (c *recvCache) get(n int) []byte {
	if n < minCached() {
		return make([]byte, n)
	}
	class := sizeClass(n)
	c.mu.Lock()
	b := pop(c.free, class)
	if b == nil {
		b = pop(c.old, class)
	}
	if b != nil {
		c.held -= int64(class)
	}
	c.mu.Unlock()
	if b == nil {
		return make([]byte, n, class)
	}
	return b[:n]
}

// pop takes a buffer of the class out of gen, or returns nil.
func pop(gen map[int][][]byte, class int) []byte {
	bufs := gen[class]
	if len(bufs) == 0 {
		return nil
	}
	b := bufs[len(bufs)-1]
	bufs[len(bufs)-1] = nil
	gen[class] = bufs[:len(bufs)-1]
	return b
}

// put takes back a buffer get made, unless the cache is full.
func (c *recvCache) put(b []byte) {
	class := cap(b)
	if class < minCached() || sizeClass(class) != class {
		return
	}
	b = b[:class]
	if checking() {
		for i := range b {
			b[i] = 0xA5
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held+int64(class) > c.limit {
		return
	}
	c.free[class] = append(c.free[class], b)
	c.held += int64(class)
}

// recvAllocator is the memory.Allocator of cached receive buffers: what
// releases the buffer of a received message (Free) once no array points
// into it any more. Allocate and Reallocate serve anything else as any
// allocator would (zeroed memory).
type recvAllocator struct{}

func (recvAllocator) Allocate(size int) []byte {
	b := recvBuffers.get(size)
	clear(b)
	return b
}

func (a recvAllocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

func (recvAllocator) Free(b []byte) { recvBuffers.put(b) }

// recvChunk receives the next message of a stream into a cached buffer and
// returns it as an Arrow buffer holding one reference: the decoder slices
// the arrays' buffers out of it, and the last release returns it.
func recvChunk(ctx context.Context, c *collective.Comm, src, tag int) (*memory.Buffer, error) {
	b, err := c.RecvFunc(ctx, src, tag, recvBuffers.get)
	if err != nil {
		return nil, err
	}
	return cachedChunk(b), nil
}

// cachedChunk wraps a buffer recvBuffers.get made as an Arrow buffer that
// returns it to the cache on its last release.
func cachedChunk(b []byte) *memory.Buffer {
	if len(b) < minCached() {
		return memory.NewBufferBytes(b)
	}
	return memory.NewBufferWithAllocator(b, recvAllocator{})
}
