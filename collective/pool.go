package collective

import (
	"math/bits"
	"sync"
)

// A pool of receive and scratch buffers in power-of-two size classes. A
// pooled buffer travels with its *pbuf so that returning it allocates
// nothing. Buffers above the largest class are allocated and left to the
// garbage collector.
const (
	minClassBits = 6  // 64 B
	maxClassBits = 26 // 64 MiB
)

type pbuf struct {
	b     []byte // full capacity of the class
	class int
}

var bufPools [maxClassBits + 1]sync.Pool

func classOf(n int) int {
	if n <= 1<<minClassBits {
		return minClassBits
	}
	return bits.Len(uint(n - 1))
}

// getBuf returns a buffer of length n, pooled when n is within the classes.
// The second result is nil for unpooled buffers.
func getBuf(n int) ([]byte, *pbuf) {
	c := classOf(n)
	if c > maxClassBits {
		return make([]byte, n), nil
	}
	if v := bufPools[c].Get(); v != nil {
		p := v.(*pbuf)
		return p.b[:n], p
	}
	p := &pbuf{b: make([]byte, 1<<c), class: c}
	return p.b[:n], p
}

// putBuf returns p to its pool; nil is ignored.
func putBuf(p *pbuf) {
	if p != nil {
		bufPools[p.class].Put(p)
	}
}
