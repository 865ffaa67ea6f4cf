package punch

import (
	"math/rand/v2"
	"time"
)

// The retry schedule. Against NATs that answer early SYNs with a RST, a
// link comes up only when the SYNs of the two ends pass their routers within
// about one router-to-router latency of each other, or when one end's SYN
// reaches the other's router while that end is retrying back to back (its
// mapping is then open nearly all the time). So:
//
//   - for the first interval (at most denseAttempts connects), a refused
//     connect is retried at once (after a random pause of under minGap, and
//     minGap after its start at the least; see again): the rendezvous
//     server starts both ends together, and an end that retries back to
//     back keeps its own NAT's mapping open nearly all the time, so the
//     peer's SYNs get in whether they leave a little before or after. An
//     end that starts late
//     spends this first interval retrying densely, long enough to meet one
//     of its peer's settled, sparser SYNs;
//   - then attempts come in bursts: up to burstAttempts back to back, for at
//     most an eighth of the current wait, and the wait between bursts grows
//     with the time since the start, elapsed/rampDivisor, until it reaches
//     the interval, where it stays. A burst keeps the mapping open for a
//     while, so two ends that both missed their dense start still meet when
//     their bursts overlap, not only when two single SYNs cross within a
//     router-to-router latency (on a 1 ms path, a 2 % chance per interval);
//     on a long path a burst is one attempt, as a refusal takes longer than
//     the burst may last. A refusal that comes back within minBurstRTT
//     comes from nearby (this very host, when the peer's private address is
//     also ours), where back-to-back attempts hold no mapping open: it
//     starts no burst;
//   - every wait between bursts is jittered by ±25 %.
//
// A connect that the NAT neither answers nor refuses (SYNs dropped) stays
// pending, and the kernel's SYN retransmissions carry on for it: cutting it
// short was measured to hurt. Attempts per endpoint stay bounded: with the
// default interval, at most 64 in the first 200 ms, then at most
// burstAttempts per wait (5 waits a second once the wait is the interval).
const (
	denseAttempts = 64
	burstAttempts = 4
	minBurstRTT   = time.Millisecond
	rampDivisor   = 16
	minGap        = 250 * time.Microsecond
)

// schedule paces the connects of one dial loop.
type schedule struct {
	start    time.Time     // when the punch began
	interval time.Duration // the longest wait between bursts
	burst    time.Time     // when the current burst began
	inBurst  int           // attempts in the current burst so far
	span     time.Duration // how long the current burst may last
	rng      *rand.Rand    // for the jitter
}

// newSchedule is the schedule of the dial loop from rank self to endpoint
// number endpoint of rank peer, in a punch that began at start. Its jitter
// comes from a generator seeded with the start time, the two ranks and the
// endpoint: the two ends of a pair, and the loops of one end, draw different
// sequences, and a simulation in virtual time (netsim under testing/synctest,
// whose clock starts at the same instant every run) draws the same ones every
// run, so a failure found with a seed reproduces with it.
func newSchedule(start time.Time, interval time.Duration, self, peer, endpoint int) schedule {
	seed := uint64(self)<<32 | uint64(peer)
	return schedule{start: start, interval: interval,
		rng: rand.New(rand.NewPCG(uint64(start.UnixNano())+uint64(endpoint), seed))}
}

// next is how long after begun, the start of attempt number attempt (which
// has just failed, refused by a RST or not), the next attempt begins. Only
// attempts refused after a round trip make a burst: another failure (no
// route, a failed handshake) says nothing about the peer's NAT that
// retrying at once could change.
func (s *schedule) next(begun time.Time, attempt int, refused bool) time.Duration {
	now := time.Now()
	elapsed := now.Sub(s.start)
	if elapsed < s.interval && attempt < denseAttempts {
		return s.again(now.Sub(begun))
	}
	if refused && now.Sub(begun) >= minBurstRTT && s.inBurst > 0 && s.inBurst < burstAttempts &&
		now.Sub(s.burst) < s.span {
		s.inBurst++
		return s.again(now.Sub(begun))
	}
	w := s.jitter(min(max(elapsed/rampDivisor, minGap), s.interval))
	s.burst, s.inBurst, s.span = begun.Add(w), 1, w/8
	return w
}

// again is the wait, from the start of an attempt that lasted took, until
// the next one of a dense run (the first interval, or a burst): a random pause of less than minGap after it
// ends, and at least minGap from its start. Without the pause, two ends on
// a path without jitter whose attempts both take exactly one round trip
// stay in the same phase for the whole run, and a phase in which each SYN
// reaches the other's router in the instant between a RST closing the
// mapping and the next SYN reopening it never links (seen in netsim with
// fixed latencies).
func (s *schedule) again(took time.Duration) time.Duration {
	return max(minGap, took+time.Duration(s.rng.Int64N(int64(minGap))))
}

// jitter spreads d uniformly over [0.75 d, 1.25 d). Two ends that retry at
// exactly the same period keep the same phase forever, and a phase at which
// each end's SYN meets the other's NAT just after a RST has closed its hole
// would then never succeed; jitter makes every phase come round.
func (s *schedule) jitter(d time.Duration) time.Duration {
	return d - d/4 + time.Duration(s.rng.Int64N(int64(d/2)))
}
