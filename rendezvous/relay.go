package rendezvous

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// relayChunk is how many bytes the generic copy (connections that are not
// TCP sockets) moves before the relay-bytes counter is updated.
const relayChunk = 4 << 20

// relaySlot is a pair decided for relay: it waits for both sides' relay
// connections, each presenting its single-use ticket.
type relaySlot struct {
	job   *job
	ranks [2]int             // lower rank first
	nonce [2][nonceSize]byte // each side's ticket

	// Guarded by the job's mutex.
	used    [2]bool
	conns   [2]net.Conn
	watch   *relayWatch // reads the first side's connection while it waits
	spliced bool        // both sides arrived; the slot left the job
	dead    bool        // aborted, timed out, or the first side is gone
	late    *Error      // the first side is gone (gave up, hung up, broke the protocol): the slot stays, to tell a late partner this

	ready      chan struct{} // closed by the second side once both were told (err set on failure)
	err        *Error
	errWaiting *Error        // on failure, what the first side is told (nil: nothing, it is gone)
	splice     *splice       // set before ready is closed, on success
	cancel     chan struct{} // closed by abort
}

// abort fails a slot still waiting for a side; the job's mutex is held.
func (sl *relaySlot) abort(e *Error) {
	if sl.spliced || sl.dead {
		return
	}
	sl.dead = true
	sl.err = e
	close(sl.cancel)
}

// errEarlyBytes is what a relay watch reports when the waiting side sent
// something before relay-ready.
var errEarlyBytes = errors.New("sent bytes before relay-ready")

// relayWatch reads the connection of the side of a relay that waits for its
// partner, so that the server notices at once when it hangs up (or resets)
// instead of splicing its partner to a dead socket. A side that follows the
// protocol sends nothing until it has read relay-ready, which the server
// writes only after the watch has stopped: the watch never takes a byte of
// the relayed stream. A byte that does arrive first breaks the protocol and
// fails the relay (the byte is not relayed).
type relayWatch struct {
	c    net.Conn
	done chan struct{} // closed when the read returned
	n    int
	err  error
}

func watchRelay(c net.Conn) *relayWatch {
	w := &relayWatch{c: c, done: make(chan struct{})}
	c.SetReadDeadline(time.Time{}) // the relay timeout bounds the wait
	go func() {
		var b [1]byte
		w.n, w.err = c.Read(b[:])
		close(w.done)
	}()
	return w
}

// stop ends the watch and returns its outcome (see result).
func (w *relayWatch) stop() error {
	w.c.SetReadDeadline(time.Unix(1, 0)) // wakes the read
	<-w.done
	return w.result()
}

// result is, once done is closed, why the watch ended: nil if it was
// stopped with nothing read, errEarlyBytes, or the read's error (the side
// hung up).
func (w *relayWatch) result() error {
	switch {
	case w.n > 0:
		return errEarlyBytes
	case w.err == nil, isTimeout(w.err):
		return nil
	case errors.Is(w.err, io.EOF):
		return errors.New("hung up")
	}
	return w.err
}

// waitingGone describes the first side of slot, which left its wait with
// cause: partner is what its partner is told (now or when it arrives, its
// ticket spent), own what it is told itself (nil: it hung up).
func waitingGone(slot *relaySlot, side int, cause error) (partner, own *Error) {
	r, p := slot.ranks[side], slot.ranks[1-side]
	if errors.Is(cause, errEarlyBytes) {
		return &Error{Code: CodeRelay, Rank: r,
				Msg: fmt.Sprintf("rank %d broke the protocol while waiting for rank %d (it sent bytes before relay-ready)", r, p)},
			&Error{Code: CodeBadRequest, Rank: p,
				Msg: fmt.Sprintf("relay: rank %d sent bytes before relay-ready; the relay to rank %d is off", r, p)}
	}
	return &Error{Code: CodeRelay, Rank: r,
		Msg: fmt.Sprintf("rank %d disconnected while waiting for rank %d (%v)", r, p, cause)}, nil
}

// serveRelay handles a relay connection after its relay-hello: it checks the
// ticket, waits for the partner and splices the two connections.
//
// The MAC is checked before the job is looked up, with the key derived from
// the secret and the job ID the client claims: a client without the secret
// gets the same auth error whether or not the job exists, so it cannot probe
// which job IDs are in progress.
func (s *Server) serveRelay(c net.Conn, rh relayHello) {
	key, err := jobKey(s.secret, rh.Job)
	if err != nil || !verifyRelay(key, &rh) {
		s.reject(c, &Error{Code: CodeAuth, Rank: -1, Msg: fmt.Sprintf("relay for job %q: token does not verify", rh.Job)})
		return
	}
	// Once shutdown begins every job is failed and gone: a relay-hello
	// then gets the shutdown error, the same whatever its job or ticket
	// (it tells nothing about a job, as invalidTicket does not).
	// From here on a shutdown does not wake the connection: its job's
	// failure, or the drain, ends it.
	s.mu.Lock()
	j, closing := s.jobs[rh.Job], s.closing
	if !closing {
		s.conns[c] = phaseBusy
	}
	s.mu.Unlock()
	if closing {
		s.reject(c, errShutdown())
		return
	}
	if j == nil {
		s.reject(c, invalidTicket(&rh))
		return
	}
	slot, side, partner, err := j.claimRelay(&rh, c)
	if err != nil {
		s.reject(c, err)
		return
	}
	if partner == nil {
		if !s.awaitPartner(j, slot, side) {
			return
		}
	} else if !s.connectPair(slot, side) {
		return
	}
	s.pump(slot, side)
}

// invalidTicket is the one answer to every relay-hello whose MAC verifies
// but whose ticket is not valid now: its job is gone, waiting again under
// the same ID, or setting up links without this ticket (unknown, already
// used, the other side's, ranks out of range). It says nothing the
// relay-hello did not carry: a relay-hello captured off the wire and
// replayed gets the same frame whether or not its job still runs.
func invalidTicket(rh *relayHello) *Error {
	return &Error{Code: CodeReplay, Rank: rh.Peer,
		Msg: fmt.Sprintf("relay ticket of rank %d for rank %d of job %q is not valid: unknown, already used, or its job is not setting up links",
			rh.Rank, rh.Peer, rh.Job)}
}

// claimRelay checks a relay ticket and records the connection; partner is
// the other side's connection if it is already there. Every invalid ticket
// gets invalidTicket's answer, whatever the job's state.
func (j *job) claimRelay(rh *relayHello, c net.Conn) (slot *relaySlot, side int, partner net.Conn, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	lo, hi := min(rh.Rank, rh.Peer), max(rh.Rank, rh.Peer)
	if j.state != jobPunching || hi >= j.world {
		return nil, 0, nil, invalidTicket(rh)
	}
	key := [2]int{lo, hi}
	slot = j.relays[key]
	if rh.Rank != lo {
		side = 1
	}
	if slot == nil || slot.used[side] || subtle.ConstantTimeCompare(slot.nonce[side][:], rh.Nonce[:]) != 1 {
		return nil, 0, nil, invalidTicket(rh)
	}
	if slot.late != nil {
		slot.used[side] = true // the ticket is spent all the same
		return nil, 0, nil, slot.late
	}
	slot.used[side] = true
	slot.conns[side] = c
	if slot.used[1-side] {
		slot.spliced = true
		delete(j.relays, key)
		partner = slot.conns[1-side]
	} else {
		// Started under the job's mutex: the second side, which stops
		// it, finds it there.
		slot.watch = watchRelay(c)
	}
	return slot, side, partner, nil
}

// awaitPartner blocks the first side of a pair until the second arrives,
// the job fails, the first side hangs up (or sends before relay-ready) or the
// relay timeout passes. It reports whether to splice.
func (s *Server) awaitPartner(j *job, slot *relaySlot, side int) bool {
	c, w := slot.conns[side], slot.watch
	t := time.NewTimer(s.cfg.relayTimeout)
	defer t.Stop()
	// gone marks the slot as failed by this side unless the partner
	// claimed it already (then connectPair decides).
	gone := func(late *Error) bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		if slot.spliced {
			return false
		}
		// The slot stays in the job (it goes with the job) so that a
		// partner arriving late hears why, not that its ticket is
		// unknown.
		slot.dead, slot.late = true, late
		return true
	}
	select {
	case <-slot.ready:
	case <-slot.cancel:
		w.stop()
		if slot.err.Code == CodeRelay {
			s.reject(c, slot.err) // the relay failed: its job completed without it
		} else {
			// The job failed: counted by outcome, as for its members'
			// control connections, not as a rejection.
			s.rejectConn(c, slot.err, rejectTimeout)
		}
		return false
	case <-w.done:
		partner, own := waitingGone(slot, side, w.result())
		if gone(partner) {
			s.met.relayFailures.Add(1)
			if own != nil {
				s.reject(c, own)
			} else {
				s.cfg.log.Info("relay side disconnected while waiting for its partner", "job", j.id,
					"rank", slot.ranks[side], "peer", slot.ranks[1-side], "err", w.err)
			}
			return false
		}
		<-slot.ready // the partner arrived just now: it saw the watch end
	case <-t.C:
		late := &Error{Code: CodeRelay, Rank: slot.ranks[side],
			Msg: fmt.Sprintf("rank %d gave up waiting for rank %d after %v", slot.ranks[side], slot.ranks[1-side], s.cfg.relayTimeout)}
		if gone(late) {
			w.stop()
			s.met.relayFailures.Add(1)
			s.reject(c, &Error{Code: CodeRelay, Rank: slot.ranks[1-side],
				Msg: fmt.Sprintf("rank %d did not connect within %v", slot.ranks[1-side], s.cfg.relayTimeout)})
			return false
		}
		<-slot.ready // the partner arrived just now
	}
	if slot.err != nil {
		if slot.errWaiting != nil {
			s.reject(c, slot.errWaiting)
		}
		return false
	}
	return true
}

// connectPair runs on the second side's connection: it stops the watch on
// the first side, tells both sides the relay is ready (the last bytes the
// server writes of its own), then releases the first side. It reports
// whether to splice.
//
// The two sides are told one after the other. When the first is told and
// the second cannot be, the first has taken the next bytes for its peer's;
// it gets an error frame all the same (awaitPartner sends errWaiting), and
// nothing of the second side is ever relayed to it. The client tells that
// frame from a peer's handshake by its first two bytes, "FM" here, "FN"
// of the link handshake's "FNMH" (afterReady).
func (s *Server) connectPair(slot *relaySlot, side int) bool {
	fail := func(e, waiting *Error) bool {
		slot.err, slot.errWaiting = e, waiting
		close(slot.ready)
		s.reject(slot.conns[side], e)
		return false
	}
	if cause := slot.watch.stop(); cause != nil {
		partner, own := waitingGone(slot, 1-side, cause)
		s.met.relayFailures.Add(1)
		return fail(partner, own)
	}
	if s.isClosing() {
		shut := errShutdown()
		return fail(shut, shut)
	}
	for _, i := range []int{1 - side, side} {
		c := slot.conns[i]
		s.setDeadline(c.SetWriteDeadline, time.Now().Add(s.cfg.handshakeTimeout))
		if err := writeMessage(c, relayReady{}); err != nil {
			e := &Error{Code: CodeRelay, Rank: slot.ranks[i], Msg: fmt.Sprintf("rank %d unreachable: %v", slot.ranks[i], err)}
			s.met.relayFailures.Add(1)
			return fail(e, e)
		}
	}
	active := s.met.relaysActive.Add(1)
	s.met.relaysTotal.Add(1)
	slot.splice = &splice{both: make(chan struct{}), pipeSize: relayPipeSize(active)}
	slot.splice.left.Store(2)
	close(slot.ready)
	return true
}

// splice tracks the two directions of an established relay.
type splice struct {
	left     atomic.Int32
	both     chan struct{}
	pipeSize int // of each direction's pipe (relayPipeSize)
}

// pump copies one direction of a relay: from this side's connection to the
// partner's. Between two TCP sockets on Linux the copy runs in the kernel
// (relayCopy: splice(2) through a pipe); its congestion control came from
// the listener (Serve). The handler returns (and closes its
// connection) only when both directions are done.
func (s *Server) pump(slot *relaySlot, side int) {
	src, dst := slot.conns[side], slot.conns[1-side]
	src.SetReadDeadline(time.Time{})
	dst.SetWriteDeadline(time.Time{})
	err := relayCopy(dst, src, &s.met.relayBytes, slot.splice.pipeSize)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite() // pass the half close on
		}
	} else {
		// A reset or error on one side ends both directions.
		src.Close()
		dst.Close()
	}
	sp := slot.splice
	if sp.left.Add(-1) == 0 {
		close(sp.both)
		s.met.relaysActive.Add(-1)
	} else {
		<-sp.both
	}
}

func copyCounting(dst io.Writer, src io.Reader, counter *atomic.Int64) error {
	for {
		n, err := io.CopyN(dst, src, relayChunk)
		counter.Add(n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
