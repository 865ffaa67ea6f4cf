package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/fnmesh/fnmesh/punch"
)

// Server is a rendezvous server: it admits members into jobs, assigns ranks,
// hands out peer tables, schedules every pair's punch, arbitrates the tier of
// each pair and relays the pairs that cannot punch. One TCP listener carries
// control connections, relay connections and STUN over TCP; an optional UDP
// socket answers STUN.
//
// A Server is safe for concurrent use; Serve runs it until its context ends.
// A Server serves once: a second Serve while the first runs, or after it
// returned, fails.
type Server struct {
	secret []byte
	cfg    serverConfig
	met    metrics

	mu       sync.Mutex
	jobs     map[string]*job
	conns    map[net.Conn]connPhase // every open connection, for shutdown
	refusing map[net.Conn]struct{}  // connections over the limit being sent their error
	serving  bool                   // Serve has started (it is never reset)
	closing  bool
	answerBy time.Time     // once closing: no connection but a relay's may have a deadline later than this
	shutdown chan struct{} // closed when shutdown starts
	handlers sync.WaitGroup
}

// connPhase is where a connection's handler is, as far as a shutdown is
// concerned: only established relays may hold it up for the drain timeout;
// members being told their job's end get shutdownAnswerTimeout, and every
// other connection is woken at once (its reads and its writes: a client
// that stopped reading must not hold a write, and the shutdown, up).
type connPhase uint8

const (
	phaseNew       connPhase = iota // accepted; its handler has not armed its handshake deadline yet
	phaseHandshake                  // reading its first frames, or writing the challenge: told "shutdown" at once
	phaseIdle                       // STUN, or a member that is done: closed at once
	phaseMember                     // a member of a job: its job tells it, within shutdownAnswerTimeout
	phaseBusy                       // a relay (drained)
)

// setDeadline sets one of c's deadlines (set is c.SetReadDeadline,
// c.SetWriteDeadline or c.SetDeadline) to t; once the server is shutting
// down, to no later than s.answerBy. Under s.mu, as stop sets the deadlines
// that wake connections: a handler cannot re-arm a deadline a shutdown has
// just cut short past what the shutdown allows. Every deadline of a
// connection that is not an established relay is set through it.
func (s *Server) setDeadline(set func(time.Time) error, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing && (t.IsZero() || t.After(s.answerBy)) {
		t = s.answerBy
	}
	set(t)
}

// setPhase records c's phase; it reports false, changing nothing, once the
// server is shutting down. A handler arms its deadlines before it calls
// setPhase: a shutdown that starts later finds the phase and wakes the
// connection's read (stop), one that started earlier makes setPhase fail.
func (s *Server) setPhase(c net.Conn, p connPhase) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if _, ok := s.conns[c]; ok {
		s.conns[c] = p
	}
	return true
}

// errShutdown is what connections and members are told once shutdown has begun.
func errShutdown() *Error {
	return &Error{Code: CodeShutdown, Rank: -1, Msg: "rendezvous server shutting down"}
}

// shutdownAnswerTimeout bounds answering a connection that had not
// identified itself when shutdown began (a client that does not close
// after reading its error must not hold the shutdown up), and telling a
// member of a job that the server is shutting down.
const shutdownAnswerTimeout = time.Second

// maxRefusing bounds the connections over --max-conns that are sent an
// "overloaded" error frame at once, and refuseTimeout how long each may take
// (writing the frame, then draining until the client closes). More are
// closed at once with a RST and no frame: refusing must stay cheap when the
// server is flooded.
const (
	maxRefusing   = 64
	refuseTimeout = 250 * time.Millisecond
)

// rejectTimeout bounds answering a rejected connection that was admitted:
// writing its error frame, then draining until the client closes.
const rejectTimeout = 3 * time.Second

// NewServer returns a server that authenticates members with secret (the
// deployment secret shared with every worker; see docs/rendezvous.md). An
// option that is not valid (see ServerOption) makes Serve refuse to start.
func NewServer(secret []byte, opts ...ServerOption) *Server {
	cfg := defaultServerConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &Server{
		secret:   append([]byte(nil), secret...),
		cfg:      cfg,
		jobs:     make(map[string]*job),
		conns:    make(map[net.Conn]connPhase),
		refusing: make(map[net.Conn]struct{}),
		shutdown: make(chan struct{}),
	}
}

// Serve accepts connections on ln (and STUN datagrams on pc, which may be
// nil) until ctx ends or ln fails. On ctx's end it shuts down gracefully:
// it stops accepting, tells every waiting member with an error, lets
// established relays run for the drain timeout, closes everything and
// returns nil. Serve closes ln and pc, also when it refuses to start.
//
// A Server serves one listener, once: Serve fails if another Serve of the
// same Server is running or has returned (run one Server per listener).
func (s *Server) Serve(ctx context.Context, ln net.Listener, pc net.PacketConn) error {
	refuse := func(err error) error {
		if ln != nil {
			ln.Close()
		}
		if pc != nil {
			pc.Close()
		}
		return fmt.Errorf("rendezvous server: %w", err)
	}
	switch {
	case s == nil:
		return refuse(errors.New("nil server: make one with NewServer"))
	case ctx == nil:
		return refuse(errors.New("nil context"))
	case ln == nil:
		return refuse(errors.New("nil listener"))
	case len(s.secret) == 0:
		return refuse(errors.New("empty secret"))
	case s.cfg.err != nil:
		return refuse(s.cfg.err)
	}
	s.mu.Lock()
	closing, serving := s.closing, s.serving
	s.serving = true
	s.mu.Unlock()
	switch {
	case closing:
		return refuse(errors.New("already shut down"))
	case serving:
		return refuse(errors.New("already serving: one Serve per Server"))
	}

	// Connections accepted from an OS listener inherit its congestion
	// control, which relayed ones need from their first byte (see
	// punch.SetCongestionControl). Other listeners keep theirs.
	if sc, ok := ln.(syscall.Conn); ok {
		if err := punch.SetCongestionControl(sc, s.cfg.relayCongestion); err != nil {
			s.cfg.log.Warn("relayed connections keep the system's congestion control", "err", err)
		}
	}
	var udp sync.WaitGroup
	if pc != nil {
		udp.Go(func() { s.serveSTUNUDP(pc) })
	}
	accepted := make(chan error, 1)
	go func() { accepted <- s.acceptLoop(ctx, ln) }()

	var err error
	select {
	case <-ctx.Done():
		ln.Close()
		<-accepted // no connection is accepted after this
	case err = <-accepted:
		ln.Close()
		err = fmt.Errorf("rendezvous server: accept: %w", err)
	}
	s.cfg.log.Info("rendezvous server shutting down", "reason", firstErr(err, context.Cause(ctx))) // the signal, from signal.NotifyContext
	if pc != nil {
		pc.Close()
	}
	s.stop()
	udp.Wait()
	return err
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// acceptLoop accepts connections until ln fails (its error) or, while it
// backs off after a temporary accept error, ctx ends (nil: Serve closes ln
// and shuts down; the loop does not sleep its back-off out first).
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.cfg.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(c) {
			continue
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			defer s.untrack(c)
			s.handleConn(c)
		}()
	}
}

// isTemporary reports accept errors worth retrying (out of file
// descriptors, a connection aborted before it was accepted).
func isTemporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers a new connection, refusing it if the server is closing or
// at its connection limit. A refused connection gets an "overloaded" error
// frame from a short-lived handler, tracked like the others, if fewer than
// maxRefusing are being refused; otherwise it is reset at once.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	closing, full := s.closing, len(s.conns) >= s.cfg.maxConns
	answer := false
	switch {
	case closing:
	case !full:
		s.conns[c] = phaseNew
		s.met.conns.Add(1)
	case len(s.refusing) < maxRefusing:
		s.refusing[c] = struct{}{}
		s.handlers.Add(1)
		answer = true
	}
	s.mu.Unlock()
	switch {
	case closing:
		c.Close()
		return false
	case full:
		s.met.rejected(CodeOverloaded)
		if !answer {
			abortConn(c)
			return false
		}
		go func() {
			defer s.handlers.Done()
			s.rejectConn(c, &Error{Code: CodeOverloaded, Rank: -1,
				Msg: fmt.Sprintf("server at its limit of %d connections; retry later", s.cfg.maxConns)}, refuseTimeout)
			s.mu.Lock()
			delete(s.refusing, c)
			s.mu.Unlock()
		}()
		return false
	}
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.met.conns.Add(-1)
	}
	s.mu.Unlock()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// stop runs the graceful shutdown.
func (s *Server) stop() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.answerBy = time.Now().Add(shutdownAnswerTimeout)
	answerBy := s.answerBy
	close(s.shutdown)
	// Connections that are not in a job nor relaying are woken now: their
	// handlers answer "shutdown" (a connection that has not identified
	// itself yet) or just close (STUN, a member that is done), instead of
	// holding the shutdown up until their handshake timeout. Their writes
	// too: a client that stopped reading holds a write (the challenge, a
	// STUN answer, a ping) until its deadline. Members are told by their
	// jobs (below), and given until answerBy to read it: a writer blocked
	// on a member that does not read fails then, and closes.
	for c, p := range s.conns {
		switch p {
		case phaseHandshake, phaseIdle:
			c.SetWriteDeadline(time.Unix(1, 0))
			c.SetReadDeadline(time.Unix(1, 0))
		case phaseMember:
			c.SetDeadline(s.answerBy)
		}
	}
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()

	for _, j := range jobs {
		j.fail(errShutdown())
	}
	// Let established relays finish, up to the drain timeout, and members
	// read their error, up to answerBy (every other connection's deadlines
	// end by then): the drain timeout is the relays' alone, so a shorter one
	// (even 0) does not cut members off before their error reaches them.
	// Then cut what is left.
	drained := make(chan struct{})
	go func() { s.handlers.Wait(); close(drained) }()
	relaysCut := time.NewTimer(s.cfg.drainTimeout)
	defer relaysCut.Stop()
	allCut := time.NewTimer(max(s.cfg.drainTimeout, time.Until(answerBy)))
	defer allCut.Stop()
	for cut := false; !cut; {
		select {
		case <-drained:
			cut = true
		case <-relaysCut.C:
			if n := s.met.relaysActive.Load(); n > 0 {
				s.cfg.log.Warn("drain timeout: cutting the remaining relays", "relays", n)
			}
			s.closeConns(func(p connPhase) bool { return p == phaseBusy })
		case <-allCut.C:
			s.cfg.log.Warn("shutdown: closing the remaining connections", "relays", s.met.relaysActive.Load())
			cut = true
		}
	}
	s.closeConns(func(connPhase) bool { return true })
	s.mu.Lock()
	for c := range s.refusing {
		c.Close()
	}
	s.mu.Unlock()
	<-drained
}

// closeConns closes the open connections whose phase cut selects.
func (s *Server) closeConns(cut func(connPhase) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, p := range s.conns {
		if cut(p) {
			c.Close()
		}
	}
}

// handleConn demultiplexes a new connection by its first bytes: an fnmesh
// frame (control or relay) or a STUN message.
func (s *Server) handleConn(c net.Conn) {
	s.setDeadline(c.SetReadDeadline, time.Now().Add(s.cfg.handshakeTimeout))
	if !s.setPhase(c, phaseHandshake) {
		s.rejectShutdown(c)
		return
	}
	var hb [frameHeader]byte
	if _, err := io.ReadFull(c, hb[:]); err != nil {
		if isTimeout(err) {
			s.rejectRead(c, err)
			return
		}
		s.cfg.log.Debug("connection closed before its first frame", "remote", c.RemoteAddr(), "err", err)
		return
	}
	if punch.IsSTUN(hb[:]) {
		s.serveSTUNTCP(c, hb[:])
		return
	}
	msg, err := readAfterHeader(c, hb[:], maxClientLoad)
	if err != nil {
		if connReset(err) {
			// Reset in the middle of its first frame: nothing
			// malformed arrived, and no error frame can reach it.
			s.cfg.log.Debug("connection reset in its first frame", "remote", c.RemoteAddr(), "err", err)
			return
		}
		s.rejectRead(c, err)
		return
	}
	switch m := msg.(type) {
	case hello:
		s.serveControl(c)
	case relayHello:
		s.serveRelay(c, m)
	default:
		s.reject(c, &Error{Code: CodeBadRequest, Rank: -1,
			Msg: fmt.Sprintf("first frame is %v; want hello or relay-hello", msg.msgType())})
	}
}

// reject answers err with an error frame, counts it and closes c.
func (s *Server) reject(c net.Conn, err error) {
	e := asProtoError(err)
	s.met.rejected(e.Code)
	s.cfg.log.Info("rejected connection", "remote", c.RemoteAddr(), "code", e.Code.String(), "err", e.Msg)
	s.rejectConn(c, e, rejectTimeout)
}

// rejectRead answers a failed read of a connection's first frames: with
// "shutdown" if the read was woken by a shutdown, else as reject does.
func (s *Server) rejectRead(c net.Conn, err error) {
	if isTimeout(err) && s.isClosing() {
		s.rejectShutdown(c)
		return
	}
	s.reject(c, err)
}

// rejectShutdown tells a connection that has not joined a job or claimed a
// relay that the server is shutting down, briefly (shutdownAnswerTimeout).
func (s *Server) rejectShutdown(c net.Conn) {
	s.met.rejected(CodeShutdown)
	s.rejectConn(c, errShutdown(), shutdownAnswerTimeout)
}

// asProtoError turns a read or decode error into the *Error to send.
func asProtoError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &Error{Code: CodeMalformed, Rank: -1, Msg: "truncated frame: " + err.Error()}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Code: CodeTimeout, Rank: -1, Msg: "no complete frame in time"}
	}
	return &Error{Code: CodeMalformed, Rank: -1, Msg: err.Error()}
}

// rejectConn writes an error frame, half-closes, lets the client read it and
// closes c, all within d (and, once shutdown has begun, within its
// answerBy). The error reaches the client even if it still had bytes in
// flight (closing with unread input would reset the connection instead).
func (s *Server) rejectConn(c net.Conn, e *Error, d time.Duration) {
	end := time.Now().Add(d)
	s.setDeadline(c.SetWriteDeadline, end)
	writeMessage(c, errorMsg{Code: e.Code, Rank: e.Rank, Msg: e.Msg})
	if cw, ok := c.(interface{ CloseWrite() error }); ok && time.Until(end) > 0 {
		// Read what the client still sends until it closes (so that the
		// close does not reset the error frame away).
		cw.CloseWrite()
		s.setDeadline(c.SetReadDeadline, end)
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
	c.Close()
}

// addrPortOf returns the IP endpoint of a connection's address.
func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return unmapAP(a.AddrPort())
	case *net.UDPAddr:
		return unmapAP(a.AddrPort())
	case interface{ AddrPort() netip.AddrPort }:
		return unmapAP(a.AddrPort())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return unmapAP(ap)
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
