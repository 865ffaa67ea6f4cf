package arrowio

import (
	"context"
	"flag"
	"math/bits"
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
// its message and messages of about the same size share a class.
type recvCache struct {
	mu    sync.Mutex
	free  map[int][][]byte // by capacity
	held  int64
	limit int64
}

var recvBuffers = &recvCache{free: make(map[int][][]byte), limit: DefaultReceiveCache}

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
	for class, bufs := range c.free {
		for c.held > c.limit && len(bufs) > 0 {
			bufs[len(bufs)-1] = nil // for the garbage collector
			bufs = bufs[:len(bufs)-1]
			c.held -= int64(class)
		}
		c.free[class] = bufs
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
	if bufs := c.free[class]; len(bufs) > 0 {
		b := bufs[len(bufs)-1]
		bufs[len(bufs)-1] = nil
		c.free[class] = bufs[:len(bufs)-1]
		c.held -= int64(class)
		c.mu.Unlock()
		return b[:n]
	}
	c.mu.Unlock()
	return make([]byte, n, class)
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
