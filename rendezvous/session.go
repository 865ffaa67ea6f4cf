package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/fnmesh/fnmesh/punch"
)

// session is a joined member's life until its mesh is ready: it waits for
// the peer table and the start, punches every peer at the scheduled moment,
// reports, follows the server's verdicts and relays where told to.
type session struct {
	c            *client
	pingInterval time.Duration

	frames     chan inbound // from the reader goroutine, in order, ending with its error
	stopReader chan struct{}
	readerDone chan struct{}

	table        []peerEntry
	startAt      time.Time
	punchTimeout time.Duration
	relayTimeout time.Duration
	port         *punch.Port
	peers        []*peerState // indexed by rank; nil at our own
	results      chan linkResult
	wg           sync.WaitGroup
	ready        int // peers with a final link

	// How far the job got, as the server last said (the joined frame,
	// then every ping): set by the reader, read when the wait ends.
	progress   sync.Mutex
	joined     int // members joined; 0: not heard yet
	joinedWhen time.Time
}

// heard records the server's count of the members joined.
func (s *session) heard(joined int) {
	s.progress.Lock()
	defer s.progress.Unlock()
	s.joined, s.joinedWhen = joined, time.Now()
}

// peerState is what this member knows about its link to one peer.
type peerState struct {
	rank     int
	lan      []netip.AddrPort // endpoints tried alone first (a peer that may share our LAN), or none
	eps      []netip.AddrPort // every endpoint, best first
	private  []netip.AddrPort
	cancel   context.CancelFunc // of the running punch
	punching bool
	link     net.Conn // punched, reported, awaiting the verdict
	verdict  Tier
	final    *Link
}

// inbound is a frame from the server, or the error that ended reading.
type inbound struct {
	msg message
	err error
}

// linkResult is the end of a punch or of a relay setup.
type linkResult struct {
	peer  int
	relay bool
	conn  net.Conn
	err   error
}

func newSession(c *client, pingInterval time.Duration) *session {
	return &session{
		c: c, pingInterval: pingInterval,
		frames:     make(chan inbound, 16),
		stopReader: make(chan struct{}), readerDone: make(chan struct{}),
	}
}

func (s *session) run(ctx context.Context) (m *Mesh, err error) {
	go s.readLoop()
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		s.finish(err == nil)
	}()
	var startTimer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil, s.waitingFor(ctx.Err())
		case in := <-s.frames:
			if in.err != nil {
				if s.c.ended.Load() {
					// The end of Join's context cut the connection short
					// (ctx, derived from it, is ending too).
					<-ctx.Done()
					return nil, s.waitingFor(ctx.Err())
				}
				return nil, s.waitingFor(readFailure(in.err))
			}
			t, err := s.handle(ctx, in.msg)
			if err != nil {
				return nil, err
			}
			if t != nil {
				defer t.Stop()
				startTimer = t.C
			} else if _, ok := in.msg.(start); ok {
				s.startPunching(ctx)
			}
		case <-startTimer:
			startTimer = nil
			s.startPunching(ctx)
		case r := <-s.results:
			if err := s.handleResult(ctx, r); err != nil {
				return nil, err
			}
		}
		if s.peers != nil && s.ready == s.c.world-1 {
			if err := s.c.write(done{}); err != nil {
				return nil, fmt.Errorf("telling the server the mesh is ready: %w", err)
			}
			return s.mesh(), nil
		}
	}
}

// waitingFor says what the session was waiting for when err (the end of
// its context, or of its connection to the server) stopped it.
func (s *session) waitingFor(err error) error {
	if s.peers == nil {
		if s.table != nil {
			return fmt.Errorf("waiting for the start of the punch round (all %d members joined): %w", s.c.world, err)
		}
		s.progress.Lock()
		joined, when := s.joined, s.joinedWhen
		s.progress.Unlock()
		if joined == 0 {
			return fmt.Errorf("waiting for the other members of the job (world %d) to join: %w", s.c.world, err)
		}
		return fmt.Errorf("waiting for the other members of the job (%d of %d joined when last heard from the server, %.1f s ago): %w",
			joined, s.c.world, time.Since(when).Seconds(), err)
	}
	var missing []int
	for r, ps := range s.peers {
		if ps != nil && ps.final == nil {
			missing = append(missing, r)
		}
	}
	list := fmt.Sprint(missing)
	if len(missing) > 8 {
		list = fmt.Sprintf("%v and %d more", missing[:8], len(missing)-8)
	}
	return fmt.Errorf("making links: %d of %d peers linked, none yet with ranks %s: %w", s.ready, s.c.world-1, list, err)
}

// readFailure says why reading the server's next frame failed: the server
// broke the protocol (a frame that does not decode, is over the size limit
// or of another version: the *Error from decoding stays in the chain for
// errors.Is and errors.As), or the connection was lost (EOF, a reset, or a
// server silent for too long).
func readFailure(err error) error {
	if bad := badFrame(err); bad != nil {
		return bad
	}
	return fmt.Errorf("lost the rendezvous server: %w", err)
}

// badFrame wraps err, an error from readMessage on the control
// connection, with what the server did wrong when the frame it sent does not
// decode; nil for any other error (an I/O one). Only for readMessage's
// errors: an error frame the server sends is its refusal, not a bad frame,
// even when its code is malformed.
func badFrame(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code {
	case CodeMalformed:
		return fmt.Errorf("rendezvous server sent a malformed frame: %w", err)
	case CodeTooLarge:
		return fmt.Errorf("rendezvous server sent a frame over the size limit: %w", err)
	case CodeVersion:
		return fmt.Errorf("rendezvous server speaks another protocol version: %w", err)
	}
	return nil
}

// readLoop reads the server's frames, answers pings at once (they measure
// the round trip the punch schedule depends on) and passes the rest on.
func (s *session) readLoop() {
	defer close(s.readerDone)
	idle := 3*s.pingInterval + 5*time.Second
	deadline := refresher{set: func(t time.Time) error { return s.c.deadline(s.c.ctrl.SetReadDeadline, t) }, d: idle}
	for {
		deadline.refresh()
		msg, err := readMessage(s.c.br, MaxPayload)
		if err != nil {
			if isTimeout(err) {
				err = fmt.Errorf("server silent for %v: %w", idle, err)
			}
			select {
			case s.frames <- inbound{err: err}:
			case <-s.stopReader:
			}
			return
		}
		if p, ok := msg.(ping); ok && p.Joined <= s.c.world {
			s.heard(p.Joined)
			s.c.write(pong{Seq: p.Seq}) // a failed write shows up as a failed read
			continue
		}
		select {
		case s.frames <- inbound{msg: msg}:
		case <-s.stopReader:
			return
		}
	}
}

// handle acts on one frame from the server; it returns the start timer
// when the frame was the start.
func (s *session) handle(ctx context.Context, msg message) (*time.Timer, error) {
	switch msg := msg.(type) {
	case peers:
		if s.table != nil {
			return nil, unexpected(msg, "no second peer table")
		}
		if len(msg.Members) != s.c.world {
			return nil, fmt.Errorf("server sent a peer table of %d members for world size %d", len(msg.Members), s.c.world)
		}
		s.table = msg.Members
	case start:
		return s.start(ctx, msg)
	case verdict:
		return nil, s.verdict(ctx, msg)
	case ping:
		// Only a ping the reader did not answer: the server broke the protocol.
		return nil, s.waitingFor(fmt.Errorf("protocol error: the server's ping says %d members joined a job of world size %d", msg.Joined, s.c.world))
	case errorMsg:
		// The server's end of the job (a member left, a timeout, a
		// shutdown): errors.As finds the *Error; the text says the phase.
		return nil, s.waitingFor(&Error{Code: msg.Code, Rank: msg.Rank, Msg: msg.Msg})
	default:
		return nil, unexpected(msg, "peers, start or verdict")
	}
	return nil, nil
}

// start takes this member's rank, opens the punch port with it and arms
// the timer for the job's common start.
func (s *session) start(ctx context.Context, st start) (*time.Timer, error) {
	c := s.c
	switch {
	case s.table == nil || s.peers != nil:
		return nil, unexpected(st, "start after one peer table")
	case st.Rank >= c.world:
		return nil, fmt.Errorf("server assigned rank %d in a world of %d", st.Rank, c.world)
	case c.cfg.rank >= 0 && st.Rank != c.cfg.rank:
		return nil, fmt.Errorf("server assigned rank %d, not the rank %d asked for", st.Rank, c.cfg.rank)
	}
	c.rank = st.Rank
	portLog := c.log // punch adds the rank itself
	c.log = c.log.With("rank", c.rank)
	s.startAt = time.Now().Add(st.Delay)
	s.punchTimeout, s.relayTimeout = st.PunchTimeout, st.RelayTimeout
	s.results = make(chan linkResult, 2*c.world)
	s.peers = make([]*peerState, c.world)
	me := s.table[c.rank]
	for r, e := range s.table {
		if r != c.rank {
			lan, eps := candidates(me, e)
			s.peers[r] = &peerState{rank: r, lan: lan, eps: eps, private: e.Private}
		}
	}
	c.log.Debug("start", "in", st.Delay, "punch_timeout", s.punchTimeout, "observed", me.Observed)
	if c.world > 1 {
		port, err := punch.Listen(ctx, c.cfg.nw, c.local, punch.Identity{Secret: c.secret, Job: c.job, Rank: c.rank},
			punch.WithLogger(portLog), punch.WithCongestionControl(c.cfg.congestion))
		if err != nil {
			return nil, fmt.Errorf("opening the punch port %v: %w", c.local, err)
		}
		s.port = port
	}
	if st.Delay <= 0 {
		// Late already: start now. (No timer due at once: in a synctest
		// bubble under -race, Go 1.26's immediate-timer path has crashed
		// the race runtime.)
		return nil, nil
	}
	return time.NewTimer(st.Delay), nil
}

// candidates lists a peer's endpoints, best first. A peer seen at our own
// public address may share our LAN (or only our NAT, as functions behind
// one cloud NAT do): its private endpoints come first, and are tried alone
// for the first part of the punch (lan), so that a LAN path, when there is
// one, wins over a path that turns around in the NAT (hairpinning).
func candidates(me, peer peerEntry) (lan, all []netip.AddrPort) {
	public := []netip.AddrPort{peer.Observed}
	if peer.Public.IsValid() && peer.Public != peer.Observed {
		public = append(public, peer.Public)
	}
	if me.Observed.Addr() == peer.Observed.Addr() && len(peer.Private) > 0 {
		lan = slices.Clone(peer.Private)
		return lan, dedup(append(slices.Clone(peer.Private), public...))
	}
	return nil, dedup(append(public, peer.Private...))
}

func dedup(eps []netip.AddrPort) []netip.AddrPort {
	out := eps[:0]
	for _, ep := range eps {
		if !slices.Contains(out, ep) {
			out = append(out, ep)
		}
	}
	return out
}

// startPunching starts one punch per undecided peer, all at once, each
// until the job's punch deadline (a LAN-first peer: its LAN stage first).
func (s *session) startPunching(ctx context.Context) {
	for _, ps := range s.peers {
		if ps != nil && ps.verdict == 0 {
			if ps.lan != nil {
				s.punch(ctx, ps, ps.lan, s.startAt.Add(min(s.punchTimeout/4, maxLANStage)))
			} else {
				s.punch(ctx, ps, ps.eps, s.startAt.Add(s.punchTimeout))
			}
		}
	}
	s.c.log.Debug("punching", "peers", s.c.world-1, "deadline", s.punchTimeout)
}

// maxLANStage bounds a LAN-first peer's LAN stage (which takes a quarter of
// the punch timeout up to this): a LAN answers in milliseconds, and peers
// that only share a NAT (functions behind one cloud NAT) wait this long
// before their hairpinned punch.
const maxLANStage = 300 * time.Millisecond

func (s *session) punch(ctx context.Context, ps *peerState, eps []netip.AddrPort, deadline time.Time) {
	pctx, cancel := context.WithDeadline(ctx, deadline)
	ps.cancel, ps.punching = cancel, true
	peer := punch.Peer{Rank: ps.rank, Endpoints: eps}
	s.wg.Go(func() {
		conn, err := s.port.Punch(pctx, peer)
		s.results <- linkResult{peer: peer.Rank, conn: conn, err: err}
	})
}

// handleResult takes the end of a punch (which it reports) or of a relay.
func (s *session) handleResult(ctx context.Context, r linkResult) error {
	ps := s.peers[r.peer]
	if r.relay {
		if r.err != nil {
			return fmt.Errorf("relay to rank %d: %w", r.peer, r.err)
		}
		s.setFinal(ps, r.conn, TierRelay)
		return nil
	}
	ps.punching = false
	ps.cancel()
	if ps.verdict == TierRelay {
		if r.conn != nil {
			abortConn(r.conn) // the server already chose the relay
		}
		return nil
	}
	if r.err != nil && ps.lan != nil && ctx.Err() == nil {
		// The LAN stage found nothing: try every endpoint until the deadline.
		s.c.log.Debug("no LAN path; trying every endpoint", "peer", r.peer, "err", r.err)
		ps.lan = nil
		s.punch(ctx, ps, ps.eps, s.startAt.Add(s.punchTimeout))
		return nil
	}
	out := outcomeFailed
	if r.err == nil {
		ps.link = r.conn
		out = outcomePublic
		if slices.Contains(ps.private, addrPortOf(r.conn.RemoteAddr())) {
			out = outcomeLAN
		}
	} else {
		s.c.log.Info("punch failed; asking for the relay", "peer", r.peer, "err", r.err)
	}
	if err := s.c.write(report{Peer: r.peer, Outcome: out}); err != nil {
		return fmt.Errorf("reporting the punch to rank %d: %w", r.peer, err)
	}
	return nil
}

// verdict follows the server's decision for a pair.
func (s *session) verdict(ctx context.Context, v verdict) error {
	if s.peers == nil || v.Peer >= s.c.world || v.Peer == s.c.rank || s.peers[v.Peer].verdict != 0 {
		return unexpected(v, fmt.Sprintf("one verdict per peer (rank %d)", v.Peer))
	}
	ps := s.peers[v.Peer]
	ps.verdict = v.Tier
	if v.Tier != TierRelay {
		if ps.link == nil {
			return fmt.Errorf("server decided %v for rank %d, but this side reported no link", v.Tier, v.Peer)
		}
		s.setFinal(ps, ps.link, v.Tier)
		return nil
	}
	if ps.punching {
		ps.cancel()
	}
	if ps.link != nil {
		abortConn(ps.link)
		ps.link = nil
	}
	s.c.log.Debug("relaying", "peer", v.Peer)
	s.wg.Go(func() {
		conn, err := s.relay(ctx, v.Peer, v.Nonce)
		s.results <- linkResult{peer: v.Peer, relay: true, conn: conn, err: err}
	})
	return nil
}

func (s *session) setFinal(ps *peerState, conn net.Conn, tier Tier) {
	ps.link = nil
	// A link can be ready before this member's punch round begins (a pair
	// the server relayed before our start): it took no time of the round.
	ps.final = &Link{Conn: conn, Peer: ps.rank, Tier: tier, Setup: max(0, time.Since(s.startAt))}
	s.ready++
	s.c.log.Debug("link ready", "peer", ps.rank, "tier", tier, "setup", ps.final.Setup)
}

// relay connects to the server's relay for the pair with peer, waits for
// the peer's side and authenticates the peer end to end.
func (s *session) relay(ctx context.Context, peer int, ticket [nonceSize]byte) (net.Conn, error) {
	c := s.c
	limit := &relayTimeoutError{relay: s.relayTimeout, handshake: punch.DefaultHandshakeTimeout}
	ctx, cancel := context.WithTimeoutCause(ctx, limit.relay+limit.handshake, limit)
	defer cancel()
	// fail says what failed; when the relay's own time limit ended it (not
	// Join's context), it says that rather than "context deadline exceeded".
	fail := func(what string, err error) (net.Conn, error) {
		if context.Cause(ctx) == limit {
			err = limit
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Through the port's network: its sockets get the links' congestion
	// control before they connect.
	conn, err := s.port.Network().DialTCP(ctx, netip.AddrPortFrom(c.cfg.laddr.Addr(), 0), c.server)
	if err != nil {
		return fail("connecting to the relay", err)
	}
	ok := false
	defer func() {
		if !ok {
			abortConn(conn)
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	rh := relayHello{Job: c.job, Rank: c.rank, Peer: peer, Nonce: ticket}
	signRelay(c.key, &rh)
	if err := writeMessage(conn, rh); err != nil {
		stop()
		return fail("sending relay-hello", err)
	}
	// Exact reads: the peer's handshake may follow the relay-ready frame
	// at once, and must be left for punch.Handshake.
	msg, err := readMessage(conn, maxClientLoad)
	waiting := fmt.Sprintf("waiting for rank %d at the relay", peer)
	if !stop() {
		return fail(waiting, ctx.Err())
	}
	switch m := msg.(type) {
	case nil:
		if bad := badFrame(err); bad != nil {
			err = bad
		}
		return fail(waiting, err)
	case errorMsg:
		return nil, fmt.Errorf("the server refused the relay: %w", &Error{Code: m.Code, Rank: m.Rank, Msg: m.Msg})
	case relayReady:
	default:
		return nil, unexpected(m, "relay-ready")
	}
	// The server's error frame may come in place of the peer's handshake
	// (afterReady tells them apart).
	stream := &afterReady{Conn: conn, peer: peer}
	id := punch.Identity{Secret: c.secret, Job: c.job, Rank: c.rank}
	if err := punch.Handshake(ctx, stream, id, peer); err != nil {
		if ab := (*relayAborted)(nil); errors.As(err, &ab) {
			return nil, ab.err
		}
		return fail("end-to-end handshake through the relay", err)
	}
	if !stream.handedOn() {
		return nil, fmt.Errorf("end-to-end handshake through the relay to rank %d left bytes unread", peer)
	}
	if nd, ok := conn.(interface{ SetNoDelay(bool) error }); ok {
		nd.SetNoDelay(true)
	}
	ok = true
	return conn, nil
}

// relayTimeoutError is how long a relay may take: the server's relay timeout
// (for the partner to come), then a handshake timeout.
type relayTimeoutError struct{ relay, handshake time.Duration }

func (e *relayTimeoutError) Error() string {
	return fmt.Sprintf("no relayed link within %v (the server's relay timeout of %v, plus %v for the handshake)",
		e.relay+e.handshake, e.relay, e.handshake)
}

// finish stops everything the session started: on success the links stay
// open; on failure every connection closes.
func (s *session) finish(success bool) {
	close(s.stopReader)
	s.c.ctrl.Close()
	<-s.readerDone
	for _, ps := range s.peers {
		if ps != nil && ps.cancel != nil {
			ps.cancel()
		}
	}
	if s.port != nil {
		s.port.Close() // waits for the punches; links already returned stay open
	}
	s.wg.Wait()
	if s.results != nil {
		// Results nobody took: punches that ended after the server chose
		// the relay for their pair.
		close(s.results)
		for r := range s.results {
			if r.conn != nil {
				abortConn(r.conn)
			}
		}
	}
	if success {
		return
	}
	for _, ps := range s.peers {
		if ps == nil {
			continue
		}
		if ps.link != nil {
			abortConn(ps.link)
		}
		if ps.final != nil {
			abortConn(ps.final.Conn)
		}
	}
}

func (s *session) mesh() *Mesh {
	m := &Mesh{Rank: s.c.rank, World: s.c.world, Links: make([]*Link, s.c.world)}
	for r, ps := range s.peers {
		if ps != nil {
			m.Links[r] = ps.final
		}
	}
	return m
}
