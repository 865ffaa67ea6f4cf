package punch

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/require"
)

// Every netsim host is a Network, so punch runs unchanged on the emulated
// internet.
var _ Network = (*netsim.Host)(nil)

var (
	ap       = netip.MustParseAddrPort
	addr     = netip.MustParseAddr
	stunAddr = ap("203.0.113.10:3478")
	wan      = netsim.Link{Latency: 15 * time.Millisecond, Jitter: 3 * time.Millisecond}
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// lab is a small emulated internet: a public STUN server and the NAT
// routers and hosts a test adds.
type lab struct {
	t    *testing.T
	in   *netsim.Internet
	stun *netsim.Host
}

// inBubble runs f in a synctest bubble (virtual time) with a fresh lab.
// The bubble fails the test if any goroutine is left blocked at the end.
func inBubble(t *testing.T, f func(t *testing.T, l *lab), opts ...netsim.Option) {
	synctest.Test(t, func(t *testing.T) {
		in := netsim.New(append([]netsim.Option{netsim.WithSeed(1)}, opts...)...)
		defer in.Close()
		l := &lab{t: t, in: in, stun: must(in.AddHost(stunAddr.Addr(), netsim.WithLink(wan)))}
		l.serveSTUN()
		f(t, l)
	})
}

// serveSTUN runs the STUN server pieces of this package on the public
// host, over TCP and UDP, until the test ends.
func (l *lab) serveSTUN() {
	ctx, cancel := context.WithCancel(context.Background())
	ln := must(l.stun.ListenTCP(ctx, stunAddr))
	pc := must(l.stun.ListenUDP(ctx, stunAddr))
	var wg sync.WaitGroup
	l.t.Cleanup(func() {
		cancel()
		ln.Close()
		pc.Close()
		wg.Wait()
	})
	wg.Go(func() { _ = ServeSTUNPacket(ctx, pc) })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = ServeSTUNConn(ctx, c)
			})
		}
	})
}

// worker is one rank on a host: its Port and the public endpoint STUN
// reported for it.
type worker struct {
	port   *Port
	public netip.AddrPort
}

// worker opens a Port on h:port for rank and learns its public endpoint
// with STUN over TCP from the port itself.
func (l *lab) worker(h *netsim.Host, port uint16, rank int, opts ...Option) *worker {
	p, err := Listen(context.Background(), h, netip.AddrPortFrom(h.Addr(), port), ident(rank), opts...)
	require.NoError(l.t, err)
	l.t.Cleanup(func() { require.NoError(l.t, p.Close()) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pub, err := DiscoverTCP(ctx, p, stunAddr)
	require.NoError(l.t, err)
	return &worker{port: p, public: pub}
}

// endpoints are the candidates a rendezvous server would hand out for w:
// the public one, and the private one when it differs.
func (w *worker) endpoints() []netip.AddrPort {
	if w.public == w.port.Addr() {
		return []netip.AddrPort{w.public}
	}
	return []netip.AddrPort{w.public, w.port.Addr()}
}

type punchOutcome struct {
	a, b         net.Conn
	errA, errB   error
	elapsed      time.Duration // virtual time until both returned
	setupA, setB time.Duration
}

// punch makes a and b punch at each other, b starting stagger after a, with
// a deadline of d.
func punch(a, b *worker, stagger, d time.Duration, aEps, bEps []netip.AddrPort) punchOutcome {
	var o punchOutcome
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d+stagger)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		actx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		o.a, o.errA = a.port.Punch(actx, Peer{Rank: b.port.Rank(), Endpoints: bEps})
		o.setupA = time.Since(start)
	})
	wg.Go(func() {
		time.Sleep(stagger)
		bctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		o.b, o.errB = b.port.Punch(bctx, Peer{Rank: a.port.Rank(), Endpoints: aEps})
		o.setB = time.Since(start)
	})
	wg.Wait()
	o.elapsed = time.Since(start)
	return o
}

// TestNetsimPunch punches between hosts behind the NAT behaviours that
// matter and checks the outcome the behaviour allows.
func TestNetsimPunch(t *testing.T) {
	tests := []struct {
		name    string
		a, b    netsim.NATConfig
		stagger time.Duration
		linked  bool
	}{
		// A Linux router answers the first SYNs with RST: the retry loop
		// from the same port must outlast that.
		{"two linux masquerade (RST)", netsim.LinuxMasquerade, netsim.LinuxMasquerade, 0, true},
		{"two linux masquerade (RST), 1 s stagger", netsim.LinuxMasquerade, netsim.LinuxMasquerade, time.Second, true},
		// Home routers drop the first SYNs: retries and retransmissions
		// close a 2.5 s gap.
		{"two home routers (drop), 2.5 s stagger", netsim.HomeRouter, netsim.HomeRouter, 2500 * time.Millisecond, true},
		{"masquerade and home router", netsim.LinuxMasquerade, netsim.HomeRouter, 500 * time.Millisecond, true},
		{"full cone and port-restricted cone", netsim.FullCone, netsim.PortRestrictedCone, 0, true},
		{"public host and home router (direct)", netsim.None, netsim.HomeRouter, 0, true},
		// A new public port per destination: the peer's SYNs go to a
		// port that STUN never saw. Only a relay connects these.
		{"two symmetric NATs", netsim.Symmetric, netsim.Symmetric, 0, false},
		{"symmetric and linux masquerade", netsim.Symmetric, netsim.LinuxMasquerade, 0, false},
		{"two cloud NATs", netsim.CloudNAT, netsim.CloudNAT, 0, false},
	}
	const deadline = 5 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, l *lab) {
				na := must(l.in.AddNAT(addr("198.51.100.1"), tt.a, netsim.WithLink(wan)))
				nb := must(l.in.AddNAT(addr("198.51.100.2"), tt.b, netsim.WithLink(wan)))
				a := l.worker(must(na.AddHost(addr("198.18.0.2"))), 40000, 0)
				b := l.worker(must(nb.AddHost(addr("198.18.1.2"))), 40001, 1)
				o := punch(a, b, tt.stagger, deadline, a.endpoints(), b.endpoints())
				if !tt.linked {
					for _, err := range []error{o.errA, o.errB} {
						var pe *PunchError
						require.ErrorAs(t, err, &pe)
						require.ErrorIs(t, err, context.DeadlineExceeded)
						require.NotEmpty(t, pe.Endpoints)
						require.Positive(t, pe.Endpoints[0].Attempts)
						require.Error(t, pe.Endpoints[0].Err)
					}
					// It gave up at its deadline, not before, not long after.
					require.GreaterOrEqual(t, o.setupA, deadline)
					require.Less(t, o.setupA, deadline+time.Second)
					t.Logf("as expected: %v", o.errA)
					return
				}
				require.NoError(t, o.errA)
				require.NoError(t, o.errB)
				defer o.a.Close()
				defer o.b.Close()
				requireSameLink(t, o.a, o.b)
				require.Equal(t, a.port.Addr().String(), o.a.LocalAddr().String(), "the link leaves from the port")
				t.Logf("linked in %v / %v of virtual time (%s resets, %s drops)", o.setupA, o.setB,
					fmt.Sprint(na.Stats().ResetsSent+nb.Stats().ResetsSent),
					fmt.Sprint(na.Stats().DroppedFiltered+nb.Stats().DroppedFiltered))
			})
		})
	}
}

// Behind two Linux routers a single connect fails with a RST: the link is
// made only because Punch retries from the same port (the routers sent
// RSTs, and the link still came up).
func TestNetsimRetriesThroughResets(t *testing.T) {
	inBubble(t, func(t *testing.T, l *lab) {
		na := must(l.in.AddNAT(addr("198.51.100.1"), netsim.LinuxMasquerade, netsim.WithLink(wan)))
		// Far apart: A's first SYN reaches B's router well before B's SYN
		// has left.
		nb := must(l.in.AddNAT(addr("198.51.100.2"), netsim.LinuxMasquerade,
			netsim.WithLink(netsim.Link{Latency: 60 * time.Millisecond})))
		a := l.worker(must(na.AddHost(addr("198.18.0.2"))), 40000, 0)
		b := l.worker(must(nb.AddHost(addr("198.18.1.2"))), 40001, 1)
		o := punch(a, b, 300*time.Millisecond, 5*time.Second, a.endpoints(), b.endpoints())
		require.NoError(t, o.errA)
		require.NoError(t, o.errB)
		defer o.a.Close()
		defer o.b.Close()
		requireSameLink(t, o.a, o.b)
		require.Positive(t, nb.Stats().ResetsSent+na.Stats().ResetsSent, "the routers must have refused early SYNs")
	})
}

// Two ranks behind one home router (hairpinning) reach each other both at
// their private endpoints and through the router: several links pass the
// handshake, and both ends keep the same one.
func TestNetsimSameNATSeveralLinks(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			inBubble(t, func(t *testing.T, l *lab) {
				n := must(l.in.AddNAT(addr("198.51.100.1"), netsim.HomeRouter, netsim.WithLink(wan)))
				a := l.worker(must(n.AddHost(addr("198.18.0.2"))), 40000, 0)
				b := l.worker(must(n.AddHost(addr("198.18.0.3"))), 40000, 1)
				require.Len(t, a.endpoints(), 2)
				o := punch(a, b, 0, 5*time.Second, a.endpoints(), b.endpoints())
				require.NoError(t, o.errA)
				require.NoError(t, o.errB)
				defer o.a.Close()
				defer o.b.Close()
				requireSameLink(t, o.a, o.b)
			}, netsim.WithSeed(seed))
		})
	}
}

// Abandoned links are aborted with a RST, so no TIME_WAIT blocks the next
// punch between the same ports; a link closed with FIN does (netsim keeps
// the 4-tuple in TIME_WAIT for 60 s and refuses to reuse it, stricter than
// Linux on loopback).
func TestNetsimNoTimeWaitAfterPunch(t *testing.T) {
	inBubble(t, func(t *testing.T, l *lab) {
		na := must(l.in.AddNAT(addr("198.51.100.1"), netsim.FullCone, netsim.WithLink(wan)))
		nb := must(l.in.AddNAT(addr("198.51.100.2"), netsim.FullCone, netsim.WithLink(wan)))
		a := l.worker(must(na.AddHost(addr("198.18.0.2"))), 40000, 0)
		b := l.worker(must(nb.AddHost(addr("198.18.1.2"))), 40001, 1)
		for round := range 3 {
			o := punch(a, b, 0, 5*time.Second, a.endpoints(), b.endpoints())
			require.NoError(t, o.errA, "round %d", round)
			require.NoError(t, o.errB, "round %d", round)
			requireSameLink(t, o.a, o.b)
			abort(o.a)
			abort(o.b)
		}
		// Control: close the link with FIN; the next punch over the same
		// 4-tuple fails while TIME_WAIT lasts.
		o := punch(a, b, 0, 5*time.Second, a.endpoints(), b.endpoints())
		require.NoError(t, o.errA)
		require.NoError(t, o.errB)
		require.NoError(t, o.a.Close())
		require.NoError(t, o.b.Close())
		time.Sleep(time.Second)
		o = punch(a, b, 0, 2*time.Second, a.endpoints(), b.endpoints())
		var pe *PunchError
		require.ErrorAs(t, o.errA, &pe)
		require.Error(t, o.errB)
		require.ErrorIs(t, pe.Endpoints[0].Err, syscall.EADDRNOTAVAIL, "TIME_WAIT holds the 4-tuple")
	})
}

// STUN over TCP and UDP from the punch port sees the NAT's mapping: the
// port preserved behind a Linux router, a new port per destination behind
// a symmetric NAT.
func TestNetsimDiscover(t *testing.T) {
	inBubble(t, func(t *testing.T, l *lab) {
		masq := must(l.in.AddNAT(addr("198.51.100.1"), netsim.LinuxMasquerade, netsim.WithLink(wan)))
		sym := must(l.in.AddNAT(addr("198.51.100.2"), netsim.Symmetric, netsim.WithLink(wan)))
		hm, hs := must(masq.AddHost(addr("198.18.0.2"))), must(sym.AddHost(addr("198.18.1.2")))
		pm := l.worker(hm, 40000, 0)
		require.Equal(t, ap("198.51.100.1:40000"), pm.public, "masquerade preserves the port")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		udp, err := DiscoverUDP(ctx, hm, pm.port.Addr(), stunAddr)
		require.NoError(t, err)
		require.Equal(t, ap("198.51.100.1:40000"), udp)

		ps := l.worker(hs, 40000, 1)
		require.Equal(t, addr("198.51.100.2"), ps.public.Addr())
		// A second server sees another port: symmetric mapping.
		other := must(l.in.AddHost(addr("203.0.113.11"), netsim.WithLink(wan)))
		ln := must(other.ListenTCP(ctx, ap("203.0.113.11:3478")))
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				defer c.Close()
				_ = ServeSTUNConn(ctx, c)
			}
		}()
		seen, err := DiscoverTCP(ctx, ps.port, ap("203.0.113.11:3478"))
		require.NoError(t, err)
		require.NotEqual(t, ps.public, seen, "symmetric NAT: a new port per destination")
	})
}

// A lossy path: STUN over UDP retransmits until an answer comes through.
func TestNetsimDiscoverUDPLoss(t *testing.T) {
	inBubble(t, func(t *testing.T, l *lab) {
		n := must(l.in.AddNAT(addr("198.51.100.1"), netsim.HomeRouter,
			netsim.WithLink(netsim.Link{Latency: 20 * time.Millisecond, Loss: 0.3})))
		h := must(n.AddHost(addr("198.18.0.2")))
		ok, slow := 0, 0
		for i := range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			start := time.Now()
			got, err := DiscoverUDP(ctx, h, netip.AddrPortFrom(h.Addr(), uint16(41000+i)), stunAddr)
			cancel()
			if err != nil {
				require.ErrorContains(t, err, "no answer after 7 requests")
				continue
			}
			ok++
			if time.Since(start) > 200*time.Millisecond { // more than one round trip: retransmitted
				slow++
			}
			require.Equal(t, netip.AddrPortFrom(n.Addr(), uint16(41000+i)), got)
		}
		require.GreaterOrEqual(t, ok, 8, "retransmission must get most requests through 30%% loss")
		require.Positive(t, slow, "some answers needed a retransmission")
	})
}

// scheduleSeeds is how many seeds TestNetsimPunchSchedule runs per row;
// docs/benchmarks.md reports a run with -seeds 200.
var scheduleSeeds = flag.Int("seeds", 20, "seeds per row of TestNetsimPunchSchedule")

// The retry schedule links two ends behind Linux routers (RST) quickly
// whether they start together or not, on a short path (1 ms per hop, where
// only SYNs that cross within about a millisecond get through) and a long
// one, with jitter on the links and without (where two ends whose attempts
// each take exactly a round trip could otherwise stay in a losing phase).
// Virtual time; the percentiles are logged for docs/benchmarks.md.
func TestNetsimPunchSchedule(t *testing.T) {
	runs := max(*scheduleSeeds, 10)
	for _, jittery := range []bool{true, false} {
		for _, lat := range []time.Duration{time.Millisecond, 15 * time.Millisecond} {
			for _, stagger := range []time.Duration{0, 30 * time.Millisecond, time.Second, 3 * time.Second} {
				l := netsim.Link{Latency: lat}
				if jittery {
					l.Jitter = lat / 5
				}
				t.Run(fmt.Sprintf("latency %v jitter %v stagger %v", lat, l.Jitter, stagger), func(t *testing.T) {
					scheduleRow(t, runs, l, stagger)
				})
			}
		}
	}
}

// scheduleRow punches runs pairs with seeds 0 to runs-1 over links l, the
// second end starting stagger after the first.
func scheduleRow(t *testing.T, runs int, link netsim.Link, stagger time.Duration) {
	var setups []time.Duration
	for seed := range uint64(runs) {
		inBubble(t, func(t *testing.T, l *lab) {
			// Each seed starts at another instant: the ends' jitter is
			// seeded with the punch's start time, and so draws other
			// sequences per seed, as the links' jitter does.
			time.Sleep(time.Duration(seed) * time.Millisecond)
			na := must(l.in.AddNAT(addr("198.51.100.1"), netsim.LinuxMasquerade, netsim.WithLink(link)))
			nb := must(l.in.AddNAT(addr("198.51.100.2"), netsim.LinuxMasquerade, netsim.WithLink(link)))
			a := l.worker(must(na.AddHost(addr("198.18.0.2"))), 40000, 0)
			b := l.worker(must(nb.AddHost(addr("198.18.1.2"))), 40001, 1)
			o := punch(a, b, stagger, 10*time.Second, []netip.AddrPort{a.public}, []netip.AddrPort{b.public})
			if o.errA == nil && o.errB == nil {
				requireSameLink(t, o.a, o.b)
				o.a.Close()
				o.b.Close()
				setups = append(setups, o.setB-stagger) // from the later start
			} else {
				t.Logf("seed %d: a: %v; b: %v", seed, o.errA, o.errB)
			}
		}, netsim.WithSeed(seed))
	}
	slices.Sort(setups)
	require.GreaterOrEqual(t, len(setups), runs-runs/10, "links made in %d of %d runs", len(setups), runs)
	at := func(q int) time.Duration { return setups[len(setups)*q/100].Round(time.Millisecond) }
	t.Logf("linked %d/%d; after the later start: p50 %v, p90 %v, p99 %v, max %v", len(setups), runs,
		at(50), at(90), at(99), setups[len(setups)-1].Round(time.Millisecond))
	// Virtual time, so deterministic: a pair that misses every crossing waits
	// for a SYN retransmission (1 s).
	require.Less(t, at(50), 500*time.Millisecond, "half the pairs link within a few round trips of the later start")
	require.Less(t, at(90), time.Second, "nine in ten link before a SYN retransmission")
}

// Against an endpoint that refuses every connect, the retries follow the
// ramp and stay bounded in count; a silent (dropping) endpoint gets a single
// pending connect.
func TestNetsimPunchAttemptsBounded(t *testing.T) {
	inBubble(t, func(t *testing.T, l *lab) {
		h := must(l.in.AddHost(addr("203.0.113.20"), netsim.WithLink(wan)))
		_ = must(l.in.AddNAT(addr("198.51.100.1"), netsim.HomeRouter, netsim.WithLink(wan)))
		p, err := Listen(context.Background(), h, ap("203.0.113.20:40000"), ident(0))
		require.NoError(t, err)
		defer p.Close()
		refusing := ap("203.0.113.10:9") // the STUN host, nothing on port 9: RST
		dropping := ap("198.51.100.1:9") // a home router: unsolicited SYNs dropped
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err = p.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{refusing, dropping}})
		require.Equal(t, 10*time.Second, time.Since(start).Round(time.Millisecond))
		var pe *PunchError
		require.ErrorAs(t, err, &pe)
		require.ErrorIs(t, pe.Endpoints[0].Err, syscall.ECONNREFUSED)
		// At most: 64 in the first 200 ms, ~16 ln(3200/200) = 45 until the
		// wait reaches 200 ms at 3.2 s, then ~5 a second: ~145. Here each
		// refusal takes a round trip (~60 ms), which slows the schedule.
		require.Greater(t, pe.Endpoints[0].Attempts, 50)
		require.Less(t, pe.Endpoints[0].Attempts, 175)
		require.Equal(t, 1, pe.Endpoints[1].Attempts, "a connect the NAT drops stays pending")
		require.ErrorIs(t, pe.Endpoints[1].Err, context.DeadlineExceeded)
		t.Logf("%v", err)
	})
}

// Close ends a Dial (and so a DiscoverTCP) in progress on the port, as it
// ends a Punch: the call returns ErrClosed at once, and Close waits for it.
// A dial to a router that drops unsolicited SYNs went on after Close for the
// kernel's 127 s of SYN retransmissions (or the caller's context), from a
// port that was closed, and could return a connection from it.
func TestNetsimCloseEndsDial(t *testing.T) {
	inBubble(t, func(t *testing.T, l *lab) {
		must(l.in.AddNAT(addr("198.51.100.1"), netsim.HomeRouter, netsim.WithLink(wan)))
		blackhole := ap("198.51.100.1:5000") // SYNs dropped: a dial to it hangs
		h := must(l.in.AddHost(addr("198.51.100.5"), netsim.WithLink(wan)))
		p, err := Listen(context.Background(), h, ap("198.51.100.5:40000"), ident(0))
		require.NoError(t, err)
		start := time.Now()
		var wg sync.WaitGroup
		var dialErr, stunErr error
		var dialTook, stunTook time.Duration
		wg.Go(func() {
			c, err := p.Dial(context.Background(), blackhole)
			if c != nil {
				c.Close()
			}
			dialErr, dialTook = err, time.Since(start)
		})
		wg.Go(func() {
			_, err := DiscoverTCP(context.Background(), p, ap("198.51.100.1:5001"))
			stunErr, stunTook = err, time.Since(start)
		})
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, p.Close())
		closed := time.Since(start)
		wg.Wait()
		require.ErrorIs(t, dialErr, ErrClosed)
		require.ErrorContains(t, dialErr, "dial "+blackhole.String())
		require.ErrorIs(t, stunErr, ErrClosed)
		require.LessOrEqual(t, dialTook, closed, "Close waits for the Dial")
		require.LessOrEqual(t, stunTook, closed, "Close waits for the DiscoverTCP")
		require.Less(t, closed, time.Second)
	})
}
