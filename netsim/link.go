package netsim

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Rate is a link bandwidth in bits per second.
type Rate int64

// Common rates.
const (
	Kbps Rate = 1_000
	Mbps Rate = 1_000_000
	Gbps Rate = 1_000_000_000
)

// Link describes the attachment of a host or router to the network above it
// (its LAN or the internet). A packet crosses one link per attachment on its
// path: a host on the internet talking to another crosses the sender's link
// up and the receiver's link down, so the one-way delay between them is the
// sum of both latencies. The zero Link is an ideal wire: no delay, unlimited
// bandwidth, no loss.
type Link struct {
	// Latency is the one-way propagation delay of the link.
	Latency time.Duration
	// Jitter varies each packet's delay uniformly in [Latency-Jitter,
	// Latency+Jitter] (never below zero). Datagrams may be reordered by it;
	// stream data never is.
	Jitter time.Duration
	// Bandwidth is the link's rate in each direction; 0 means unlimited.
	// Packets and stream data queue behind each other (store and forward).
	Bandwidth Rate
	// Loss is the probability in [0,1] that a packet crossing the link is
	// lost. It applies to TCP handshake segments (a lost SYN costs a
	// retransmission timeout) and to UDP datagrams; established TCP streams
	// are reliable and not slowed by it.
	Loss float64
	// Queue bounds the queueing delay a datagram or handshake segment may
	// meet on a link with limited Bandwidth; a packet that would wait longer
	// is dropped (tail drop). 0 means unbounded.
	Queue time.Duration
}

func (l Link) validate() error {
	switch {
	case l.Latency < 0 || l.Jitter < 0 || l.Queue < 0:
		return fmt.Errorf("netsim: link %+v: negative duration", l)
	case l.Bandwidth < 0:
		return fmt.Errorf("netsim: link %+v: negative bandwidth", l)
	case l.Loss < 0 || l.Loss > 1 || l.Loss != l.Loss:
		return fmt.Errorf("netsim: link %+v: loss must be in [0,1]", l)
	}
	return nil
}

// direction of travel over a link.
const (
	up   = 0 // from the attached node toward the network above
	down = 1 // from the network above toward the attached node
)

// link is the state of one attachment: its configuration, a PRNG for jitter
// and loss, and the time each direction's transmitter is busy until.
type link struct {
	cfg    Link
	shaped bool // any of latency, jitter, bandwidth

	mu   sync.Mutex
	rng  *rand.Rand
	busy [2]time.Time
}

func newLink(cfg Link, rng *rand.Rand) *link {
	return &link{cfg: cfg, rng: rng, shaped: cfg.Latency > 0 || cfg.Jitter > 0 || cfg.Bandwidth > 0}
}

// serialization is the time size bytes take to leave the transmitter.
func (l *link) serialization(size int) time.Duration {
	if l.cfg.Bandwidth <= 0 || size <= 0 {
		return 0
	}
	return time.Duration(int64(size) * 8 * int64(time.Second) / int64(l.cfg.Bandwidth))
}

// transit sends a packet of size bytes over the link in direction dir,
// ready to leave at t, and returns when it arrives at the far end, or why
// it was dropped (loss, or tail drop on a full queue) when lossy is set.
func (l *link) transit(t time.Time, size, dir int, lossy bool) (time.Time, string) {
	if !l.shaped && l.cfg.Loss == 0 {
		return t, ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lossy && l.cfg.Loss > 0 && l.rng.Float64() < l.cfg.Loss {
		return t, "lost on link"
	}
	if ser := l.serialization(size); ser > 0 {
		start := t
		if l.busy[dir].After(start) {
			start = l.busy[dir]
		}
		if lossy && l.cfg.Queue > 0 && start.Sub(t) > l.cfg.Queue {
			return t, "link queue full"
		}
		l.busy[dir] = start.Add(ser)
		t = l.busy[dir]
	}
	return t.Add(l.delay()), ""
}

// carry sends a chunk of stream data of size bytes over the link in
// direction dir, ready to leave at t. It returns when the chunk arrives at
// the far end and by how much its wait in the link's queue exceeded two
// segments' worth: the sender paces itself by that, as TCP's congestion
// control would, so that flows sharing a link interleave.
func (l *link) carry(t time.Time, size, dir int) (time.Time, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var excess time.Duration
	if ser := l.serialization(size); ser > 0 {
		start := t
		if l.busy[dir].After(start) {
			start = l.busy[dir]
		}
		excess = start.Sub(t) - 2*l.serialization(segment)
		l.busy[dir] = start.Add(ser)
		t = l.busy[dir]
	}
	return t.Add(l.delay()), excess
}

// delay is one packet's propagation delay: latency with jitter. Caller holds l.mu.
func (l *link) delay() time.Duration {
	d := l.cfg.Latency
	if j := int64(l.cfg.Jitter); j > 0 {
		d += time.Duration(l.rng.Int64N(2*j+1) - j)
		if d < 0 {
			d = 0
		}
	}
	return d
}

// hop is one crossing of a link in one direction.
type hop struct {
	l   *link
	dir int
}

// reverseHops returns the path back: the same links, in reverse order and
// direction.
func reverseHops(h []hop) []hop {
	r := make([]hop, len(h))
	for i, x := range h {
		r[len(h)-1-i] = hop{x.l, 1 - x.dir}
	}
	return r
}
