package punch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// Punch makes an authenticated TCP link to peer from the port's own local
// endpoint, by TCP simultaneous open: both ends call Punch for each other at
// about the same moment (the rendezvous server schedules it), each
// connecting from its fixed port to every endpoint of the other while its
// accept loop takes whatever arrives.
//
// Punch retries connect to each endpoint: the first SYNs of a simultaneous
// open often reach the peer's NAT before the peer's own SYN has opened it,
// and a NAT that answers them with a RST (as a default Linux router does)
// fails that attempt. Retries are back to back for the first interval, then
// come in short bursts spaced more and more widely until they are an
// interval apart (WithInterval, default 200 ms, ±25 % jitter); see
// schedule.go. A NAT that drops
// early SYNs leaves the attempt pending, and the kernel's SYN
// retransmissions outlast it. Every connection, dialed or accepted, must
// pass Handshake (within WithHandshakeTimeout) before it counts.
//
// When several links pass (say, one to the peer's private endpoint and one
// through its NAT), both ends keep the same one: the lower rank selects the
// first link that passed by sending a select frame on it, the higher rank
// answers with an ack on the first link selected, and every other link is
// closed with a RST. Roles come from the ranks, not from who dialed.
//
// Punch stops at ctx's deadline, or, when ctx has none, after
// WithPunchTimeout (default 10 s). It then returns a *PunchError that says
// what happened at each endpoint. No goroutine outlives the call; no
// connection other than the returned one stays open. The link returned has
// no deadline and TCP_NODELAY set.
//
// An endpoint the port cannot dial (one of the other address family than
// the port's, or an IPv6 link-local one without a zone) is not tried; the
// PunchError says why. A peer with no endpoints, or none that can be tried,
// is waited for passively: only its inbound link can win. Punch to a rank that already has a Punch running on this port
// fails.
func (p *Port) Punch(ctx context.Context, peer Peer) (net.Conn, error) {
	if err := p.opened(); err != nil {
		return nil, err
	}
	if ctx == nil {
		return nil, fmt.Errorf("punch to rank %d: nil context", peer.Rank)
	}
	if err := validRank("punch: peer rank", peer.Rank); err != nil {
		return nil, err
	}
	if peer.Rank == p.id.Rank {
		return nil, fmt.Errorf("punch: peer rank %d is the port's own rank", peer.Rank)
	}
	eps, err := candidates(peer.Endpoints)
	if err != nil {
		return nil, fmt.Errorf("punch to rank %d: %w", peer.Rank, err)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if _, ok := ctx.Deadline(); !ok {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, p.opts.punchTimeout)
		defer cancelT()
	}
	stop := context.AfterFunc(p.ctx, func() { cancel(ErrClosed) })
	defer stop()

	inbound, err := p.register(peer.Rank)
	if err != nil {
		return nil, fmt.Errorf("punch to rank %d: %w", peer.Rank, err)
	}
	r := &punchRun{
		p:          p,
		peer:       peer.Rank,
		eps:        eps,
		results:    make([]EndpointResult, len(eps)),
		controller: p.id.Rank < peer.Rank,
		events:     make(chan event),
		start:      time.Now(),
		log:        p.log.With("peer", peer.Rank),
	}
	for i, ep := range eps {
		r.results[i].Endpoint = ep
	}
	link, err := r.run(ctx, cancel, inbound)
	p.unregister(peer.Rank, inbound, err == nil)
	return link, err
}

// candidates checks and de-duplicates the endpoints of a peer, keeping
// their order. An endpoint no TCP connection can reach (no address, an
// unspecified, multicast or broadcast one, port 0) is an error: connecting
// to it fails at once, and the dial loop would retry it until the deadline.
func candidates(in []netip.AddrPort) ([]netip.AddrPort, error) {
	if len(in) > MaxEndpoints {
		return nil, fmt.Errorf("%d endpoints, at most %d", len(in), MaxEndpoints)
	}
	out := make([]netip.AddrPort, 0, len(in))
	seen := make(map[netip.AddrPort]bool, len(in))
	for _, ep := range in {
		ep = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
		a := ep.Addr()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) ||
			ep.Port() == 0 {
			return nil, fmt.Errorf("invalid endpoint %v", ep)
		}
		if !seen[ep] {
			seen[ep] = true
			out = append(out, ep)
		}
	}
	return out, nil
}

// reachable says why a socket bound to local cannot connect to remote, if
// it cannot: a port on an IPv4 address (0.0.0.0 included) reaches only IPv4
// endpoints and one on a specific IPv6 address only IPv6 ones; a port on any
// address ("::", dual-stack) reaches both. An IPv6 link-local endpoint
// (fe80::/10) without a zone names no interface to reach it on (the
// rendezvous wire format carries no zone), unless the port itself is bound
// to a zoned link-local address, whose interface the kernel then uses. Such
// dials fail at once ("no suitable address found", EINVAL) and would be
// retried until the deadline, a hundred times a second at first.
func reachable(local, remote netip.Addr) error {
	local, remote = local.Unmap(), remote.Unmap()
	if local.IsValid() && local != netip.IPv6Unspecified() && local.Is4() != remote.Is4() {
		family := func(a netip.Addr) string {
			if a.Is4() {
				return "IPv4"
			}
			return "IPv6"
		}
		return fmt.Errorf("a port on %s address %v cannot reach an %s endpoint", family(local), local, family(remote))
	}
	if remote.Is6() && remote.IsLinkLocalUnicast() && remote.Zone() == "" &&
		!(local.IsLinkLocalUnicast() && local.Zone() != "") {
		return fmt.Errorf("IPv6 link-local endpoint %v has no zone (interface) to dial it on", remote)
	}
	return nil
}

// punchRun is the state of one Punch. The goroutine running run owns every
// authenticated candidate link; dial loops own their connections until they
// hand them over in an evAuthed event.
type punchRun struct {
	p          *Port
	peer       int
	eps        []netip.AddrPort
	controller bool // the lower rank: it selects the link
	events     chan event
	start      time.Time
	log        *slog.Logger
	wg         sync.WaitGroup

	mu      sync.Mutex
	results []EndpointResult
	inbound int // authenticated inbound links seen
}

type link struct {
	c  net.Conn
	ep int // index of the endpoint dialed, or -1 for an accepted link
}

func (l *link) String() string {
	if l.ep < 0 {
		return "accepted from " + l.c.RemoteAddr().String()
	}
	return "dialed to " + l.c.RemoteAddr().String()
}

type eventKind int

const (
	evAuthed   eventKind = iota // a dialed link passed the handshake (hands the conn over)
	evSelected                  // higher rank: the peer selected this link
	evAcked                     // lower rank: the peer acked our selection
	evLost                      // a link failed in select/ack
)

type event struct {
	kind eventKind
	l    *link
	err  error
}

// send delivers ev to run, or, once the punch is over, drops it (closing a
// connection it would have handed over).
func (r *punchRun) send(ctx context.Context, ev event) {
	select {
	case r.events <- ev:
	case <-ctx.Done():
		if ev.kind == evAuthed {
			r.log.Debug("punch: closing losing link", "link", ev.l.String())
			abort(ev.l.c)
			r.record(ev.l.ep, notAgreed(context.Cause(ctx)))
		}
	}
}

func (r *punchRun) run(ctx context.Context, cancel context.CancelCauseFunc, inbound chan net.Conn) (net.Conn, error) {
	r.log.Debug("punch: start", "endpoints", r.eps, "controller", r.controller)
	for i, ep := range r.eps {
		if err := reachable(r.p.addr.Addr(), ep.Addr()); err != nil {
			r.record(i, err)
			r.log.Debug("punch: endpoint not tried", "endpoint", ep, "err", err)
			continue
		}
		r.dial(ctx, i)
	}
	var (
		owned   []*link // authenticated links, all closed at the end but the winner
		queue   []*link // lower rank: links waiting to be selected
		nominee *link   // lower rank: the link selected, awaiting the ack
		winner  *link
	)
	authed := func(l *link) {
		owned = append(owned, l)
		switch {
		case !r.controller:
			r.wg.Go(func() { r.awaitSelect(ctx, l) })
		case nominee == nil:
			nominee = l
			r.wg.Go(func() { r.nominate(ctx, l) })
		default:
			queue = append(queue, l)
		}
	}
	lose := func(l *link, err error) {
		r.log.Debug("punch: link lost before it was agreed", "link", l.String(), "err", err)
		for i, o := range owned {
			if o == l {
				owned = append(owned[:i:i], owned[i+1:]...)
				break
			}
		}
		abort(l.c)
		if l.ep >= 0 {
			// A select or ack cut short by the punch's deadline (a
			// connection deadline fires a moment before ctx reports
			// it) is no lost link, and dialing again is pointless.
			if ended(ctx) {
				r.record(l.ep, notAgreed(err))
			} else {
				r.record(l.ep, fmt.Errorf("link lost while agreeing on it: %w", err))
				r.dial(ctx, l.ep) // try that endpoint again
			}
		}
		if l == nominee {
			nominee = nil
			if len(queue) > 0 {
				next := queue[0]
				nominee, queue = next, queue[1:]
				r.wg.Go(func() { r.nominate(ctx, next) })
			}
		}
	}
loop:
	for winner == nil {
		select {
		case c := <-inbound:
			r.mu.Lock()
			r.inbound++
			r.mu.Unlock()
			authed(&link{c: c, ep: -1})
		case ev := <-r.events:
			switch ev.kind {
			case evAuthed:
				authed(ev.l)
			case evAcked:
				winner = ev.l
			case evSelected:
				if err := sendFrame(ctx, ev.l.c, kindAck); err != nil {
					lose(ev.l, err)
				} else {
					winner = ev.l
				}
			case evLost:
				lose(ev.l, ev.err)
			}
		case <-ctx.Done():
			break loop
		}
	}

	cause := context.Cause(ctx)
	cancel(nil) // stop every dial loop and pending handshake
	for _, l := range owned {
		if l != winner {
			r.log.Debug("punch: closing losing link", "link", l.String())
			abort(l.c)
			if winner == nil && l.ep >= 0 {
				r.record(l.ep, notAgreed(cause))
			}
		}
	}
	r.wg.Wait()
	if winner == nil {
		err := r.failure(cause)
		r.log.Info("punch: failed", "err", err)
		return nil, err
	}
	r.p.tuneLink(winner.c)
	r.log.Info("punch: linked", "link", winner.String(), "setup", time.Since(r.start))
	return winner.c, nil
}

// notAgreed is how a dialed link that passed the handshake ended when the
// punch ended before both ends agreed on it (select and ack): err says why.
func notAgreed(err error) error {
	return fmt.Errorf("passed the handshake but was not agreed on (select and ack) before the punch ended: %w", err)
}

// dial starts the dial loop of endpoint i.
func (r *punchRun) dial(ctx context.Context, i int) {
	r.wg.Go(func() { r.dialLoop(ctx, i) })
}

// dialLoop connects to endpoint i from the port every interval until a
// connection passes the handshake, the handshake is rejected (retrying
// cannot help) or ctx ends.
func (r *punchRun) dialLoop(ctx context.Context, i int) {
	p, ep := r.p, r.eps[i]
	// The timer is made on the first wait and never armed with a duration
	// <= 0: under testing/synctest with -race, immediate timers have crashed
	// the race runtime (Go 1.26), and an immediate retry needs no timer.
	var t *time.Timer
	sched := newSchedule(r.start, p.opts.interval, p.id.Rank, r.peer, i)
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for attempt := 1; ; attempt++ {
		begun := time.Now()
		r.attempted(i)
		c, err := p.nw.DialTCP(ctx, p.addr, ep)
		if err == nil {
			// A peer (or a middlebox) that accepts and never speaks
			// holds one attempt only for the handshake timeout.
			hctx, cancel := context.WithTimeout(ctx, p.opts.handshakeTimeout)
			_, err = handshake(hctx, c, p.id, r.peer)
			cancel()
			if err == nil {
				r.record(i, nil)
				r.send(ctx, event{kind: evAuthed, l: &link{c: c, ep: i}})
				return
			}
			r.log.Debug("punch: closing losing link", "link", "dialed to "+ep.String(), "err", err)
			abort(c)
			if IsRejection(err) {
				r.record(i, fmt.Errorf("handshake rejected: %w", err))
				r.log.Warn("punch: endpoint failed the handshake", "endpoint", ep, "err", err)
				return
			}
			err = fmt.Errorf("handshake failed: %w", err)
		}
		// The punch is over when ctx is; a dial that timed out also says
		// so (a dial has no deadline but ctx's), a handshake that timed out
		// does not (it has its own).
		dialEnded := c == nil && (errors.Is(err, os.ErrDeadlineExceeded) ||
			errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled))
		if ended(ctx) || dialEnded {
			// An attempt cut short says less than the one before it.
			if attempt == 1 {
				r.record(i, ctxErr(ctx, unwrapOp(err)))
			}
			return
		}
		r.record(i, unwrapOp(err))
		r.log.Debug("punch: attempt failed", "endpoint", ep, "attempt", attempt, "err", err)
		refused := errors.Is(err, syscall.ECONNREFUSED)
		wait := time.Until(begun.Add(sched.next(begun, attempt, refused)))
		if wait <= 0 {
			continue
		}
		if t == nil {
			t = time.NewTimer(wait)
		} else {
			t.Reset(wait)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// nominate is the lower rank's side of agreeing on l: send select, await
// the peer's ack.
func (r *punchRun) nominate(ctx context.Context, l *link) {
	err := sendFrame(ctx, l.c, kindSelect)
	if err == nil {
		err = recvFrame(ctx, l.c, kindAck)
	}
	if err != nil {
		r.send(ctx, event{kind: evLost, l: l, err: err})
		return
	}
	r.send(ctx, event{kind: evAcked, l: l})
}

// awaitSelect is the higher rank's side: wait for the peer to select l.
func (r *punchRun) awaitSelect(ctx context.Context, l *link) {
	if err := recvFrame(ctx, l.c, kindSelect); err != nil {
		r.send(ctx, event{kind: evLost, l: l, err: err})
		return
	}
	r.send(ctx, event{kind: evSelected, l: l})
}

// attempted counts a connect to endpoint i.
func (r *punchRun) attempted(i int) {
	r.mu.Lock()
	r.results[i].Attempts++
	r.mu.Unlock()
}

// record notes how the last attempt at endpoint i ended (nil: a link passed
// the handshake).
func (r *punchRun) record(i int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &r.results[i]
	res.Err = err
	res.Linked = res.Linked || err == nil
}

func (r *punchRun) failure(cause error) *PunchError {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cause == nil {
		cause = context.Canceled
	}
	return &PunchError{
		Rank:      r.peer,
		Local:     r.p.addr,
		Elapsed:   time.Since(r.start),
		Endpoints: append([]EndpointResult(nil), r.results...),
		Inbound:   r.inbound,
		Err:       cause,
	}
}

// ended reports whether ctx is over, counting its deadline as passed at
// once (a connection deadline set to it may fire before ctx reports it).
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// unwrapOp drops the "dial tcp a->b:" prefix of a *net.OpError: the
// endpoint is said once, in the PunchError.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil && err == error(op) {
		return op.Err
	}
	return err
}
