package netsim

import (
	"net/netip"
	"syscall"
	"time"
)

// The TCP state machine of connection setup and teardown, run under
// Internet.mu on segments delivered by the scheduler. Segments carry the
// sending socket (from) and the socket they acknowledge or reset (to) in
// place of sequence numbers: an ACK is acceptable if it acknowledges this
// very socket's SYN, as a real ACK number is if it covers its ISN.

type tcpState uint8

const (
	stateSynSent tcpState = iota + 1
	stateSynRcvd
	stateEstablished
	stateTimeWait
	stateClosed
)

func (s tcpState) String() string {
	switch s {
	case stateSynSent:
		return "SYN-SENT"
	case stateSynRcvd:
		return "SYN-RECEIVED"
	case stateEstablished:
		return "ESTABLISHED"
	case stateTimeWait:
		return "TIME-WAIT"
	case stateClosed:
		return "CLOSED"
	}
	return "?"
}

const (
	synRetries    = 6 // Linux tcp_syn_retries: gives up after 127 s
	synAckRetries = 5 // Linux tcp_synack_retries
	initialRTO    = time.Second
	// retransmitGiveUp is how long data goes unacknowledged before the
	// connection fails with ETIMEDOUT (Linux tcp_retries2 = 15).
	retransmitGiveUp = 924600 * time.Millisecond
)

// connPath is the NAT state an established connection traverses, shared by
// both ends. Writes refresh it; a write that finds it expired fails the
// connection as the NAT would.
type connPath struct {
	sessions []*session
}

// touch refreshes the sessions, or returns the first one found dead.
func (cp *connPath) touch(now int64) *session {
	for _, s := range cp.sessions {
		if !s.alive(now) {
			return s
		}
	}
	for _, s := range cp.sessions {
		s.last.Store(now)
	}
	return nil
}

func (h *Host) newConn(local, remote netip.AddrPort, passive bool) *TCPConn {
	c := &TCPConn{
		h: h, in: h.in, local: local, remote: remote, passive: passive,
		done: make(chan struct{}), closed: make(chan struct{}),
		rsem: make(chan struct{}, 1), wsem: make(chan struct{}, 1),
		rdl: newDeadline(), wdl: newDeadline(), linger: -1,
		rx: newStream(h.in.tcpBuf), rto: initialRTO,
	}
	h.addConn(c)
	return c
}

func (c *TCPConn) sendSeg(flags tcpFlags, to *TCPConn) {
	c.h.send(&packet{proto: protoTCP, src: c.local, dst: c.remote, flags: flags, from: c, to: to})
}

// rst answers segment p with a RST from the host's stack.
func (h *Host) rst(p *packet) {
	h.send(resetFor(p))
}

// resetFor is the RST that answers segment p.
func resetFor(p *packet) *packet {
	return &packet{proto: protoTCP, src: p.dst, dst: p.src, flags: flagRST | flagACK, to: p.from,
		seqZero: p.flags&flagACK == 0}
}

func (c *TCPConn) connect() {
	c.state = stateSynSent
	c.sendSeg(flagSYN, nil)
	c.armRTX()
}

// armRTX schedules the next retransmission of the SYN or SYN-ACK.
func (c *TCPConn) armRTX() {
	c.rtxGen++
	gen := c.rtxGen
	c.in.after(c.rto, func() {
		if c.rtxGen != gen || (c.state != stateSynSent && c.state != stateSynRcvd) {
			return
		}
		c.retries++
		limit := synRetries
		if c.passive {
			limit = synAckRetries
		}
		if c.retries > limit {
			c.handshakeFail(errno("connect", syscall.ETIMEDOUT))
			return
		}
		if c.state == stateSynSent {
			c.sendSeg(flagSYN, nil)
		} else {
			c.sendSeg(flagSYN|flagACK, c.peer)
		}
		c.rto *= 2
		c.armRTX()
	})
}

// handshakeFail ends a connection attempt.
func (c *TCPConn) handshakeFail(err error) {
	c.state = stateClosed
	c.rtxGen++
	c.h.removeConn(c)
	if c.passive {
		if c.ln != nil {
			c.ln.pending--
			c.ln = nil
		}
		return
	}
	c.err = err
	close(c.done)
}

// abandon ends an attempt whose dialer gave up (its context ended).
func (c *TCPConn) abandon() {
	if c.state == stateSynRcvd {
		c.sendSeg(flagRST|flagACK, c.peer)
	}
	c.state = stateClosed
	c.rtxGen++
	c.h.removeConn(c)
}

// tcpInput demultiplexes a segment to its connection, a listener, or a RST.
func (h *Host) tcpInput(p *packet) {
	c := h.conns[tuple{p.dst, p.src}]
	if c != nil && c.state == stateTimeWait {
		if p.isSYN() && h.listenerFor(p.dst) != nil {
			h.removeConn(c) // a new connection may take over a TIME-WAIT pair
			c = nil
		} else {
			if !p.isRST() {
				h.rst(p)
			}
			return
		}
	}
	if c != nil {
		c.input(p)
		return
	}
	switch {
	case p.isRST():
	case p.isSYN():
		l := h.listenerFor(p.dst)
		if l == nil {
			h.in.trace(EventDrop, h.name, p, "no listener: answering RST")
			h.rst(p)
			return
		}
		if l.pending+len(l.queue) >= cap(l.queue) {
			h.in.trace(EventDrop, h.name, p, "accept queue full")
			return
		}
		c := h.newConn(p.dst, p.src, true)
		c.ln = l
		l.pending++
		c.state = stateSynRcvd
		c.peer = p.from
		c.sendSeg(flagSYN|flagACK, c.peer)
		c.armRTX()
	default:
		h.rst(p)
	}
}

// input runs the state machine for a segment addressed to c.
func (c *TCPConn) input(p *packet) {
	f := p.flags
	syn, ack, rst := f&flagSYN != 0, f&flagACK != 0, f&flagRST != 0
	if rst && p.seqZero && c.state != stateSynSent {
		// An answer to our SYN that arrives after the peer's SYN (a
		// crossing): its sequence number lies outside the window.
		c.in.trace(EventDrop, c.h.name, p, "RST outside the window")
		return
	}
	switch c.state {
	case stateSynSent:
		switch {
		case rst:
			if p.to == c {
				c.handshakeFail(errno("connect", syscall.ECONNREFUSED))
			}
		case syn && ack:
			if p.to != c {
				c.h.rst(p)
				return
			}
			c.establish(p)
			c.sendSeg(flagACK, c.peer)
			c.ackOwed.Store(true)
		case syn: // the peer is connecting to us at the same time: simultaneous open
			c.peer = p.from
			c.state = stateSynRcvd
			c.sendSeg(flagSYN|flagACK, c.peer)
		case ack:
			if p.to != c {
				c.h.rst(p)
			}
		}
	case stateSynRcvd:
		switch {
		case rst:
			if p.to == c {
				c.handshakeFail(errno("connect", syscall.ECONNREFUSED))
			}
		case syn && !ack:
			if p.from == c.peer {
				c.sendSeg(flagSYN|flagACK, c.peer) // retransmitted SYN
			} else {
				c.sendSeg(flagACK, c.peer) // challenge ACK (RFC 5961)
			}
		case ack:
			if p.to != c {
				c.h.rst(p)
				return
			}
			if p.from != c.peer {
				return
			}
			c.establish(p)
			if syn {
				c.sendSeg(flagACK, c.peer)
				c.ackOwed.Store(true)
			}
		}
	case stateEstablished:
		switch {
		case rst:
			if p.to == c {
				c.reset(syscall.ECONNRESET, "RST received")
			}
		case syn:
			// A retransmitted SYN or SYN-ACK whose answer was lost gets an
			// ACK; a SYN from another socket gets a challenge ACK.
			c.sendSeg(flagACK, c.peer)
		}
	}
}

// establish completes the handshake on segment p from the peer: the
// connection's data path is the reverse of the way p came, through the NAT
// sessions p traversed.
func (c *TCPConn) establish(p *packet) {
	peer := p.from
	c.state = stateEstablished
	c.rtxGen++
	c.peer = peer
	c.tx = peer.rx
	c.rx.setPath(append([]hop(nil), p.hops...))
	c.tx.setPath(reverseHops(p.hops))
	if peer.path != nil {
		c.path = peer.path
	} else {
		c.path = &connPath{sessions: p.sessions}
	}
	if !c.passive {
		close(c.done)
		return
	}
	l := c.ln
	c.ln = nil
	l.pending--
	if l.isClosed {
		c.abort("listener closed")
		return
	}
	l.queue <- c // never blocks: pending + queued <= cap
}

// reset ends an established connection on a RST (or a failure with the
// same effect): data that had not arrived is lost; reads return what had;
// the next Read or Write (whichever comes first) reports the error, then
// reads return io.EOF and writes fail with EPIPE.
func (c *TCPConn) reset(n syscall.Errno, why string) {
	if c.state == stateTimeWait {
		// A RST ends a socket closed by Close (FIN-WAIT, LAST-ACK or
		// TIME-WAIT: Linux's default tcp_rfc1337 = 0) and frees its 4-tuple.
		c.release("RST received after close: " + why)
		return
	}
	if c.state == stateSynRcvd {
		// The peer, established on our SYN-ACK, aborted before its
		// final ACK (lost) or any data reached us: the RST ends the
		// handshake, as a RST addressed to c does in input.
		c.handshakeFail(errno("connect", syscall.ECONNREFUSED))
		return
	}
	if c.state != stateEstablished {
		return
	}
	c.state = stateClosed
	c.h.removeConn(c)
	if c.finRcvd {
		// CLOSE-WAIT: Linux reports EPIPE (tcp_reset), and reads, which
		// had the FIN, go on returning EOF.
		n = syscall.EPIPE
	}
	// Like Linux's sk_err, the error is reported once, by whichever of
	// Read and Write comes first; then reads return EOF and writes EPIPE.
	c.soErr.Store(uint32(n))
	c.rx.resetReader(c.in.now(), sinkReset)
	c.tx.failWriter()
	if c.in.tracer != nil {
		c.in.emit(Event{Kind: EventStream, Node: c.h.name, Proto: "tcp", Flags: "RST",
			Src: c.remote, Dst: c.local, Reason: why})
	}
}

// release frees the 4-tuple of a socket closed by Close at once (a RST
// ended it: received, or sent in answer to data that arrived after close).
func (c *TCPConn) release(why string) {
	if c.state != stateTimeWait {
		return
	}
	c.state = stateClosed
	c.h.removeConn(c)
	if c.in.tracer != nil {
		c.in.emit(Event{Kind: EventStream, Node: c.h.name, Proto: "tcp", Flags: "RST",
			Src: c.remote, Dst: c.local, Reason: why})
	}
}

// abort closes c with a RST (SO_LINGER 0, or close with unread data): the
// peer is reset after one path latency and the NAT sessions are removed.
func (c *TCPConn) abort(why string) {
	in := c.in
	if c.in.tracer != nil {
		in.emit(Event{Kind: EventStream, Node: c.h.name, Proto: "tcp", Flags: "RST+ACK",
			Src: c.local, Dst: c.remote, Reason: why})
	}
	if c.state == stateEstablished {
		peer := c.peer
		in.after(c.tx.latency, func() { peer.reset(syscall.ECONNRESET, "RST from peer: "+why) })
		if c.path != nil {
			for _, s := range c.path.sessions {
				if !s.dead.Load() {
					s.m.nat.killSession(s, "reset by "+c.local.String())
				}
			}
		}
	}
	c.state = stateClosed
	c.h.removeConn(c)
	c.rx.setSink(sinkReset)
}

// ackPeer sends the ACK that data or a FIN from c carries, if the peer
// may still be waiting for it in SYN-RECEIVED (the ACK that completed the
// handshake was lost): on Linux the first segment that follows the handshake
// completes the peer's side too, so a lost ACK costs nothing when the end
// that sent it speaks first. Links do not lose it, as TCP retransmits the
// data until it arrives. Caller holds in.mu.
func (c *TCPConn) ackPeer() {
	if !c.ackOwed.Load() {
		return
	}
	c.ackOwed.Store(false)
	if c.state != stateEstablished || c.peer == nil || c.peer.state != stateSynRcvd || c.peer.peer != c {
		return
	}
	c.h.send(&packet{proto: protoTCP, src: c.local, dst: c.remote, flags: flagACK, from: c, to: c.peer, reliable: true})
}

// sendFIN half-closes c: the FIN reaches the peer after the data written
// before it.
func (c *TCPConn) sendFIN() {
	if c.finSent || c.state != stateEstablished {
		return
	}
	c.ackPeer()
	c.finSent = true
	c.finFirst = !c.finRcvd
	in := c.in
	at := c.tx.shutWrite(in.now())
	if c.path != nil {
		// The FIN passes the NAT sessions that are alive and refreshes
		// them: conntrack's FIN_WAIT and TIME_WAIT timeouts run from it,
		// however long the connection was idle before.
		now := in.now().UnixNano()
		for _, s := range c.path.sessions {
			if s.alive(now) {
				s.last.Store(now)
				s.state.Store(int32(sessClosing))
				s.m.nat.scheduleCheck(s.m)
			}
		}
	}
	if in.tracer != nil {
		in.emit(Event{Kind: EventStream, Node: c.h.name, Proto: "tcp", Flags: "FIN",
			Src: c.local, Dst: c.remote})
	}
	peer := c.peer
	in.at(at, func() {
		peer.finRcvd = true
		c.tx.setFin()
		if peer.finFirst && peer.inTable && (peer.state == stateEstablished || peer.state == stateTimeWait) {
			// The peer had sent its FIN first (Close, or CloseWrite): both
			// FINs are in, it enters TIME-WAIT now, closed or not, and
			// keeps the 4-tuple for timeWait from this moment.
			peer.state = stateTimeWait
			peer.armTimeWait()
		}
	})
}

// armTimeWait frees c's 4-tuple after timeWait, unless rearmed or freed
// meanwhile.
func (c *TCPConn) armTimeWait() {
	c.twGen++
	gen := c.twGen
	c.in.after(c.in.timeWait, func() {
		if c.twGen == gen && c.state == stateTimeWait {
			c.state = stateClosed
			c.h.removeConn(c)
		}
	})
}

// hostDown drops c without a word to the peer (its host lost power).
func (c *TCPConn) hostDown() {
	c.state = stateClosed
	c.rtxGen++
	c.h.removeConn(c)
	if c.rx != nil {
		c.rx.setSink(sinkBlackhole)
	}
	if !c.userClosed {
		c.userClosed = true
		close(c.closed)
	}
	if !c.passive && c.err == nil && !isClosed(c.done) {
		c.err = closedError{"netsim host " + c.h.addr.String() + " is down"}
		close(c.done)
	}
}

// peerGone is called when c writes to a peer whose socket is gone: a closed
// socket's host answers RST; a dead host or path never answers, and TCP
// gives up after its retransmissions.
func (c *TCPConn) peerGone(kind sinkKind) {
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	switch kind {
	case sinkReset:
		// The closed socket answers the data with a RST and is gone (Linux
		// aborts a closed socket that receives data); the RST reaches c a
		// path latency later.
		peer := c.peer
		in.after(c.tx.latency, func() { peer.release("data arrived after close: answered RST") })
		in.after(2*c.tx.latency, func() { c.reset(syscall.ECONNRESET, "data sent to a closed socket") })
	case sinkBlackhole:
		in.after(retransmitGiveUp, func() { c.reset(syscall.ETIMEDOUT, "data never acknowledged") })
	}
}

// pathDead handles a write that found a NAT session of the path expired:
// the NAT drops the data, and answers it with RST if that is its policy.
// What the peer had received before stays readable: it only notices
// nothing more arrives.
func (c *TCPConn) pathDead(s *session) {
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	n := s.m.nat
	kind := sinkBlackhole
	if n.cfg.UnsolicitedSYN == SYNReset {
		kind = sinkReset
	}
	if in.tracer != nil {
		in.emit(Event{Kind: EventDrop, Node: n.name, Proto: "tcp", Src: c.local, Dst: c.remote,
			Reason: "data for an expired mapping"})
	}
	c.tx.cutPath(kind)
}
