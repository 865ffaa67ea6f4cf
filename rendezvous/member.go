package rendezvous

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// member is one client's control connection on the server, from its join
// until it is done or gone. Two goroutines serve it: the connection's
// handler reads its frames, and a writer sends the frames queued for it
// (so a slow client never blocks its job) and pings it.
type member struct {
	s        *Server
	conn     net.Conn
	req      join           // what it asked for
	observed netip.AddrPort // source of the connection as the server sees it
	key      []byte         // its job's key

	// Guarded by the job's mutex.
	job  *job
	rank int // -1 until the job starts
	done bool

	mu      sync.Mutex // guards the fields below
	queue   []outItem
	final   bool // an error frame is queued: nothing after it
	pingSeq uint32
	pingAt  time.Time
	rtt     time.Duration // smallest round trip measured; 0: none yet
	werr    error         // the write that failed, which closed the connection
	wake    chan struct{}
	quit    chan struct{}

	wdeadline refresher // the writer's
}

// refresher keeps a connection deadline at least d ahead: it arms it a
// quarter more than d ahead and re-arms it only once less than d is left,
// so that a busy connection does not re-arm a timer for every frame, and
// the deadline passes between d and 1¼ d after the last refresh.
type refresher struct {
	set func(time.Time) error
	d   time.Duration
	at  time.Time
}

func (r *refresher) refresh() {
	if now := time.Now(); r.at.Sub(now) < r.d {
		r.at = now.Add(r.d + r.d/4)
		r.set(r.at)
	}
}

// outItem is a frame waiting to be written to a member.
type outItem struct {
	msg     message
	raw     []byte    // a frame encoded once for the whole job (the peer table)
	startAt time.Time // start frames only: the job-wide punch time, turned into a delay when written
	final   bool      // an error frame: half-close the connection after it
}

// serveControl runs a control connection after its hello: challenge, join,
// then the member's life in its job.
func (s *Server) serveControl(c net.Conn) {
	nonce := newNonce()
	// Through setDeadline: a shutdown that begins now or later cuts the
	// write short (a client that does not read would hold it up).
	s.setDeadline(c.SetWriteDeadline, time.Now().Add(s.cfg.handshakeTimeout))
	if err := writeMessage(c, challenge{Nonce: nonce, PingInterval: s.cfg.pingInterval}); err != nil {
		return
	}
	sent := time.Now()
	msg, err := readMessage(c, maxClientLoad)
	if err != nil {
		if connLost(err) {
			s.cfg.log.Debug("connection closed before joining", "remote", c.RemoteAddr(), "err", err)
			return // nobody to send an error to; the caller closes c
		}
		s.rejectRead(c, err)
		return
	}
	rtt := time.Since(sent)
	if k := kernelRTT(c); k > 0 && k < rtt {
		// The join may have been retransmitted, or the client slow to
		// answer: one such sample would delay the whole job's start.
		rtt = k
	}
	j, ok := msg.(join)
	if !ok {
		s.reject(c, &Error{Code: CodeBadRequest, Rank: -1, Msg: fmt.Sprintf("got %v, want join", msg.msgType())})
		return
	}
	if subtle.ConstantTimeCompare(j.Echo[:], nonce[:]) != 1 {
		s.reject(c, &Error{Code: CodeReplay, Rank: -1,
			Msg: "join answers another connection's challenge: replayed or stale message"})
		return
	}
	key, err := jobKey(s.secret, j.Job)
	if err != nil || !verifyJoin(key, &j) {
		s.reject(c, &Error{Code: CodeAuth, Rank: -1,
			Msg: fmt.Sprintf("join for job %q: token does not verify (wrong secret?)", j.Job)})
		return
	}
	if j.Rank >= j.World {
		s.reject(c, &Error{Code: CodeBadRequest, Rank: j.Rank,
			Msg: fmt.Sprintf("rank %d out of range for world size %d", j.Rank, j.World)})
		return
	}
	// From here on the member's job tells it of a shutdown.
	if !s.setPhase(c, phaseMember) {
		s.rejectShutdown(c)
		return
	}
	m := &member{
		s: s, conn: c, req: j, observed: addrPortOf(c.RemoteAddr()), key: key, rank: -1, rtt: rtt,
		wake: make(chan struct{}, 1), quit: make(chan struct{}),
	}
	if err := s.admit(m); err != nil {
		s.reject(c, err)
		return
	}
	s.cfg.log.Info("member joined", "job", j.Job, "world", j.World, "rank", j.Rank,
		"observed", m.observed, "private", j.Private, "rtt", rtt)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); m.writeLoop() }()
	m.readLoop()
	close(m.quit)
	wg.Wait()
}

// readLoop reads the member's frames until its connection ends.
func (m *member) readLoop() {
	br := bufio.NewReaderSize(m.conn, 256)
	idle := 3 * m.s.cfg.pingInterval
	deadline := refresher{set: m.setReadDeadline, d: idle}
	isDone := false // the member said done: it closes now, or within the handshake timeout
	for {
		if m.isFinal() {
			// An error frame is on its way: give the client a moment to
			// read it and close, then close.
			m.setReadDeadline(time.Now().Add(time.Second))
			io.Copy(io.Discard, io.LimitReader(br, 64<<10))
			return
		}
		if !isDone {
			deadline.refresh()
		}
		msg, err := readMessage(br, maxClientLoad)
		if err != nil {
			if m.isFinal() {
				return // we sent an error and are closing
			}
			reason := fmt.Errorf("connection lost: %w", err)
			if werr := m.writeErr(); werr != nil && isNetClosed(err) {
				// The writer closed the connection, which ended this
				// read: say why it did.
				reason = fmt.Errorf("writing to it failed (has it stopped reading?): %w", werr)
			} else if !connLost(err) {
				if e := asProtoError(err); e.Code != CodeTimeout {
					m.reject(e)
					reason = e
				} else {
					reason = fmt.Errorf("silent for %v: %w", idle, err)
				}
			}
			m.job.leave(m, reason)
			return
		}
		switch msg := msg.(type) {
		case pong:
			m.pong(msg.Seq)
		case report:
			err = m.job.report(m, msg)
		case done:
			if err = m.job.markDone(m); err == nil && !isDone {
				// Nothing more is owed to a member that is done: its
				// connection may not outlive the job by more than a
				// handshake timeout.
				isDone = true
				m.setReadDeadline(time.Now().Add(m.s.cfg.handshakeTimeout))
				if !m.s.setPhase(m.conn, phaseIdle) {
					return // shutting down: nothing more is owed to it
				}
			}
		case errorMsg:
			m.job.leave(m, fmt.Errorf("client gave up: %s: %s", msg.Code, msg.Msg))
			return
		default:
			err = &Error{Code: CodeBadRequest, Rank: -1, Msg: fmt.Sprintf("unexpected %v from a member", msg.msgType())}
		}
		if err != nil {
			e := asProtoError(err)
			m.reject(e)
			m.job.leave(m, e)
		}
	}
}

// setReadDeadline and setWriteDeadline set the connection's deadlines as
// the server allows (no later than its shutdown allows, once it is shutting
// down).
func (m *member) setReadDeadline(t time.Time) error {
	m.s.setDeadline(m.conn.SetReadDeadline, t)
	return nil
}

func (m *member) setWriteDeadline(t time.Time) error {
	m.s.setDeadline(m.conn.SetWriteDeadline, t)
	return nil
}

func isNetClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// connLost reports whether err ended a connection rather than a frame: the
// peer closed (also in the middle of a frame: a worker that dies while
// writing) or reset it, or this side closed it. Nothing is malformed then,
// and no error frame can reach the peer.
func connLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || connReset(err)
}

// connReset reports whether err is a connection reset (or aborted) by the
// peer, or closed by this side: unlike an EOF, which a half-closing client
// that still reads may cause, nothing more can be told to the peer.
func connReset(err error) bool {
	return isNetClosed(err) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// writeLoop writes queued frames and pings until the member's handler ends
// or a write fails.
func (m *member) writeLoop() {
	t := time.NewTicker(m.s.cfg.pingInterval)
	defer t.Stop()
	m.wdeadline = refresher{set: m.setWriteDeadline, d: m.s.cfg.handshakeTimeout}
	m.ping() // an early round-trip sample, before the world may complete
	for {
		select {
		case <-m.quit:
			m.flush() // an error frame queued last must still go out
			return
		case <-t.C:
			m.ping()
		case <-m.wake:
		}
		if !m.flush() {
			return
		}
	}
}

// flush writes every queued frame; it returns false once the connection is
// finished (write error or error frame sent).
func (m *member) flush() bool {
	for {
		m.mu.Lock()
		if len(m.queue) == 0 {
			m.mu.Unlock()
			return true
		}
		it := m.queue[0]
		m.queue[0] = outItem{}
		m.queue = m.queue[1:]
		if it.msg != nil {
			if st, ok := it.msg.(start); ok {
				st.Delay = time.Until(it.startAt) - m.rtt/2
				it.msg = st
			}
			if p, ok := it.msg.(ping); ok && p.Seq == m.pingSeq {
				m.pingAt = time.Now()
			}
		}
		m.mu.Unlock()
		b := it.raw
		if b == nil {
			b = encodeFrame(it.msg)
		}
		m.wdeadline.refresh()
		if _, err := m.conn.Write(b); err != nil {
			m.mu.Lock()
			m.werr = err
			m.mu.Unlock()
			m.conn.Close() // ends the handler's read, which evicts the member
			return false
		}
		if it.final {
			if cw, ok := m.conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			m.setReadDeadline(time.Now().Add(time.Second)) // wakes the reader if the client stays silent
			return false
		}
	}
}

// enqueue queues a frame for the writer; frames after an error are dropped
// (it reports false).
func (m *member) enqueue(it outItem) bool {
	m.mu.Lock()
	if m.final {
		m.mu.Unlock()
		return false
	}
	m.queue = append(m.queue, it)
	m.final = it.final
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return true
}

func (m *member) send(msg message) { m.enqueue(outItem{msg: msg}) }

// sendFinal queues an error frame, after which the connection closes. It
// reports false if an error frame was queued already (this one is dropped).
func (m *member) sendFinal(e *Error) bool {
	return m.enqueue(outItem{msg: errorMsg{Code: e.Code, Rank: e.Rank, Msg: e.Msg}, final: true})
}

// reject tells the member what it did wrong and counts it (rejected_total
// counts a connection's own faults; a job's end is counted by outcome in
// jobs_ended_total instead).
func (m *member) reject(e *Error) {
	if m.sendFinal(e) {
		m.s.met.rejected(e.Code)
	}
}

// writeErr is the write to the member that failed and closed its
// connection, if one did.
func (m *member) writeErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.werr
}

func (m *member) isFinal() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.final
}

// ping queues a ping, which carries the number of members of the job
// joined now: the waiting member learns how far its job got every ping
// interval, at the cost of one atomic load (no frame per join to every
// member, which would cost O(world²) frames).
func (m *member) ping() {
	m.mu.Lock()
	m.pingSeq++
	seq := m.pingSeq
	m.mu.Unlock()
	n := 1 // itself (a member has its job before its writer runs)
	if m.job != nil {
		n = max(n, int(m.job.joinedN.Load()))
	}
	m.enqueue(outItem{msg: ping{Seq: seq, Joined: n}})
}

// pong records a round-trip sample; the smallest one estimates the path's
// propagation delay, which is what punch scheduling needs.
func (m *member) pong(seq uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq != m.pingSeq || m.pingAt.IsZero() {
		return // a late answer to an older ping
	}
	if d := time.Since(m.pingAt); m.rtt == 0 || d < m.rtt {
		m.rtt = d
	}
	m.pingAt = time.Time{}
}

// owd estimates the one-way delay from the server to the member.
func (m *member) owd() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rtt / 2
}

// hasNoNAT reports whether the member is reachable at an address that is its
// own: the server saw its connection come from one of its private endpoints.
func (m *member) hasNoNAT() bool {
	for _, ap := range m.req.Private {
		if ap == m.observed {
			return true
		}
	}
	return false
}
