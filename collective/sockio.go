package collective

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// polling counts the goroutines of this process polling a socket now. One
// at a time is enough to catch what arrives soon; more would only take the
// CPU from each other and from the ranks they wait for (tests run many
// ranks in one process), so the others sleep at once.
var polling atomic.Int32

// poller counts the time spent polling a full or empty socket, and says
// when to stop and sleep in the poller instead.
type poller struct {
	spin    time.Duration
	start   time.Time
	park    bool
	polling bool // counted in polling
}

// idle records one more poll that found nothing to do.
func (p *poller) idle() {
	switch {
	case p.spin <= 0:
		p.park = true
	case p.start.IsZero():
		if polling.Add(1) > 1 {
			polling.Add(-1)
			p.park = true
			return
		}
		p.polling = true
		p.start = time.Now()
	case time.Since(p.start) >= p.spin:
		p.stop()
		p.park = true
	default:
		runtime.Gosched() // let this process's other goroutines run
		osYield()         // and other processes' threads (ranks on the same CPUs)
	}
}

// stop ends the poller's polling.
func (p *poller) stop() {
	if p.polling {
		polling.Add(-1)
		p.polling = false
	}
}

func (p *poller) reset() {
	p.stop()
	*p = poller{spin: p.spin}
}

// errWouldBlock is a non-blocking read's "nothing to read now".
var errWouldBlock = errors.New("collective: read would block")

// wcursor is a position in a sequence of buffers being written.
type wcursor struct {
	segs [][]byte
	i    int // buffer
	off  int // offset in segs[i]
}

// advance moves the cursor n bytes on.
func (c *wcursor) advance(n int) {
	for n > 0 {
		k := min(n, len(c.segs[c.i])-c.off)
		n -= k
		if c.off += k; c.off == len(c.segs[c.i]) {
			c.i, c.off = c.i+1, 0
		}
	}
	for c.i < len(c.segs) && len(c.segs[c.i]) == 0 {
		c.i++
	}
}

// errNoSockIO is returned by the stand-in sockIO of systems that have none;
// nothing calls it (newSockIO returns nil there).
var errNoSockIO = errors.New("collective: no raw socket I/O on this system")
