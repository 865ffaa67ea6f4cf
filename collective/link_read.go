package collective

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fnmesh/fnmesh/internal/crc32c"
)

// Reading a link. Whoever holds the read token (a receiver waiting for its
// own message, or the drain goroutine) reads frames and delivers each to
// the receive posted for it, or queues it. See the comment on link.

// inFrame is a frame being read: its header is parsed, its payload (and
// trailer) partly read. A receiver whose context ends mid-frame leaves it
// here for the next holder of the token to finish.
type inFrame struct {
	active   bool
	h        header
	req      *request // the posted receive it fills, or nil
	dst      []byte
	pb       *pbuf
	mismatch error
	discard  bool   // for a communicator closed on this rank: read off the link, kept nowhere
	off      int    // payload bytes read
	crc      uint32 // CRC32C of dst[:off]
}

// abort ends the frame's request with err and forgets the frame; l.mu must
// be held.
func (f *inFrame) abort(err error) {
	if r := f.req; r != nil {
		if r.abandoned {
			r.recycle()
		} else {
			r.complete(nil, nil, err)
		}
	}
	*f = inFrame{}
}

// readable reports whether a goroutine may take the read token now; l.mu
// must be held.
func (l *link) readable() bool {
	return !l.reading && l.conn != nil && l.err == nil && l.eof == nil
}

// wait blocks until r is complete. While nobody else reads the link, the
// waiting goroutine reads it itself. ctx may be nil (collectives: their
// cancellation poisons the transport, which completes every request). If
// ctx ends first, r is withdrawn and ctx's error returned, unless r
// completed meanwhile.
func (l *link) wait(ctx context.Context, r *request) error {
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	for {
		l.mu.Lock()
		if r.state == stateDone {
			l.mu.Unlock()
			return nil
		}
		if done != nil && ctx.Err() != nil {
			l.mu.Unlock()
			return l.withdraw(r, ctx.Err())
		}
		if l.readable() {
			l.reading, l.readingFor = true, r
			l.mu.Unlock()
			if err := l.readFor(ctx, r); err != nil {
				return l.withdraw(r, err)
			}
			continue
		}
		r.parked = true
		if l.conn != nil && l.err == nil && l.eof == nil {
			r.sleeping = true
			l.sleepers = append(l.sleepers, r)
		}
		l.mu.Unlock()
		if done == nil {
			<-r.ready
			continue
		}
		select {
		case <-r.ready:
		case <-done:
			l.mu.Lock()
			if r.parked {
				if r.sleeping {
					l.unsleep(r)
				}
				r.parked = false
				l.mu.Unlock()
			} else {
				// r completed, or the read token was handed to r's
				// receiver: consume the wake-up, and pass the token on.
				l.mu.Unlock()
				<-r.ready
				l.mu.Lock()
				l.ensureReader()
				l.mu.Unlock()
			}
			return l.withdraw(r, ctx.Err())
		}
	}
}

// withdraw cancels r after its receiver's context ended with err. It
// returns err, or nil if r completed meanwhile (the caller consumes it).
func (l *link) withdraw(r *request, err error) error {
	if l.cancel(r, err) {
		return err
	}
	return nil
}

// waitDone sleeps until r is complete, without reading the link.
func (l *link) waitDone(r *request) {
	for {
		l.mu.Lock()
		if r.state == stateDone {
			l.mu.Unlock()
			return
		}
		r.parked = true
		l.mu.Unlock()
		<-r.ready
	}
}

// unsleep removes r from the goroutines waiting for the read token; l.mu
// must be held.
func (l *link) unsleep(r *request) {
	for i, s := range l.sleepers {
		if s == r {
			n := copy(l.sleepers[i:], l.sleepers[i+1:])
			l.sleepers[i+n] = nil
			l.sleepers = l.sleepers[:i+n]
			break
		}
	}
	r.sleeping = false
}

// readFor reads frames with the read token held until r is complete, then
// gives the token up. It returns an error only when ctx ended first; r is
// then still posted, or being filled. It returns nil with r not complete
// when its read was poked (see closeComm): the caller looks again.
func (l *link) readFor(ctx context.Context, r *request) error {
	disarm := l.armInterrupt(ctx)
	for {
		_, err := l.readFrame()
		if err != nil {
			interrupted := l.interrupted(err)
			if disarm != nil {
				disarm()
			}
			if !interrupted {
				l.readFailed(err) // completes r, one way or another
			}
			l.mu.Lock()
			l.release()
			l.mu.Unlock()
			if interrupted && ctx != nil {
				return ctx.Err() // nil when poked
			}
			return nil
		}
		l.mu.Lock()
		done := r.state == stateDone
		l.mu.Unlock()
		if done {
			if disarm != nil {
				disarm()
			}
			l.mu.Lock()
			l.release()
			l.mu.Unlock()
			return nil
		}
	}
}

// armInterrupt makes the end of ctx (nil: none) and a poke interrupt this
// goroutine's reads of the link, until disarm.
func (l *link) armInterrupt(ctx context.Context) (disarm func()) {
	l.rint.arm(ctx)
	return l.rint.disarm
}

// interrupted reports whether err is armInterrupt's doing.
func (l *link) interrupted(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) && l.rint.interrupted()
}

// readFailed handles a read error: a peer that closed the link cleanly has
// sent everything it meant to (its queued messages stay receivable, only
// receives that wait for more fail); any other error poisons the transport.
func (l *link) readFailed(err error) {
	if errors.Is(err, ErrPeerClosed) {
		l.peerClosed(l.peerErr(err))
	} else {
		l.t.fail(l.peerErr(err))
	}
}

// release gives the read token up; l.mu must be held. A frame left half
// read (its holder's context ended, or a pump found the socket empty) after
// the link was halted is ended here: halt could not, the token being held,
// and nobody will read the link again.
func (l *link) release() {
	l.reading, l.readingFor = false, nil
	if l.err != nil && l.cur.active {
		l.cur.abort(l.err)
	}
	l.freeAt = time.Now()
	l.ensureReader()
}

// ensureReader makes sure the link will be read while the token is free:
// it hands the token to a receiver that waits for it, or starts the drain
// goroutine at once (a frame is half read) or after writeKick (a write is
// in progress) or idleKick; l.mu must be held.
func (l *link) ensureReader() {
	if !l.readable() {
		return
	}
	switch {
	case len(l.sleepers) > 0:
		l.sleepers[0].wake()
	case l.cur.active:
		l.kickDrain()
	default:
		l.armTimer(idleKick) // unless it is armed already: onTimer re-arms it
	}
}

// armTimer makes the timer fire within d (at the latest); l.mu must be
// held. Re-arming a timer earlier than it was wakes the runtime's poller,
// so it is done only when needed, not on every release of the token.
func (l *link) armTimer(d time.Duration) {
	at := time.Now().Add(d)
	if !l.timerAt.IsZero() && !l.timerAt.After(at) {
		return
	}
	l.timerAt = at
	l.timer.Reset(d)
}

func (l *link) kickDrain() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// onTimer runs writeKick or idleKick after the token was last free.
func (l *link) onTimer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timerAt = time.Time{}
	if !l.readable() {
		return // re-armed when the token is released
	}
	if len(l.sleepers) > 0 {
		l.sleepers[0].wake()
		return
	}
	if l.writing > 0 || l.cur.active {
		l.kickDrain()
		return
	}
	if rest := idleKick - time.Since(l.freeAt); rest > 0 {
		l.armTimer(rest)
		return
	}
	l.kickDrain()
}

// drainLoop is the link's drain goroutine: it reads the link when kicked
// and nobody else does, until a receiver takes over.
func (l *link) drainLoop() {
	defer l.t.readers.Done()
	for {
		select {
		case <-l.kick:
		case <-l.done:
			return
		}
		l.mu.Lock()
		if !l.readable() {
			l.mu.Unlock()
			continue
		}
		l.reading = true
		l.mu.Unlock()
		l.drain()
	}
}

// drain reads frames with the token held until a receiver wants the token,
// or a frame went to a waiting receive with no write in progress (the
// receiver reads the next frames itself).
func (l *link) drain() {
	for {
		delivered, err := l.readFrame()
		if err != nil {
			l.readFailed(err)
			l.mu.Lock()
			l.release()
			l.mu.Unlock()
			return
		}
		l.mu.Lock()
		if len(l.sleepers) > 0 || (delivered && l.writing == 0) {
			l.release()
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
	}
}

// readFrame reads one frame (or finishes the one in l.cur) and delivers it.
// delivered says it went to a posted receive. The read token must be held.
func (l *link) readFrame() (delivered bool, err error) {
	f := &l.cur
	if !f.active {
		if err := l.fill(hdrLen, true); err != nil {
			return false, err
		}
		h, err := parseHeader(l.rbuf[l.r:l.r+hdrLen], l.t.maxFrame)
		if err != nil {
			return false, err
		}
		l.r += hdrLen
		if h.flags&flagAbort != 0 {
			return false, l.readAbort(h)
		}
		l.mu.Lock()
		if l.err != nil {
			l.mu.Unlock()
			return false, l.err
		}
		var req *request
		discard := false
		if s := l.slots[h.key]; s != nil && s.waiters.len() > 0 {
			req = s.waiters.pop()
			req.state = stateFilling
			l.dropSlotIfEmpty(h.key, s)
		} else {
			discard = l.commClosed(h.key.comm)
		}
		l.mu.Unlock()
		*f = inFrame{active: true, h: h, req: req, discard: discard}
		if !discard {
			f.dst, f.pb, f.mismatch = payloadBuffer(h.n, req)
		}
	}

	if f.discard {
		err = l.skipPayload(f)
	} else {
		err = l.readPayload(f)
	}
	if err != nil {
		if errors.Is(err, errWouldBlock) || l.interrupted(err) {
			return false, err // f stays for the next holder of the token
		}
		l.mu.Lock()
		f.abort(l.t.failureOr(l.peerErr(err)))
		l.mu.Unlock()
		return false, err
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	h, req, dst, pb, mismatch := f.h, f.req, f.dst, f.pb, f.mismatch
	discard := f.discard
	sum := msgSum{crc: f.crc, ok: h.flags&(flagPayload|flagTrailer) != 0}
	*f = inFrame{}
	switch {
	case discard:
		return false, nil
	case req == nil:
		if h.tag&internalBit != 0 {
			if err := l.checkCall(h.key); err != nil {
				putBuf(pb)
				return false, err
			}
		}
		return l.arrived(h.key, inbound{dst, pb, sum}), nil
	case mismatch != nil:
		if req.mode == modeUpTo {
			// Keep the message for a receive with a large enough buffer.
			req.complete(nil, nil, mismatch)
			l.arrived(h.key, inbound{dst, pb, sum})
			return true, nil
		}
		putBuf(pb)
		req.complete(nil, nil, l.peerErr(mismatch))
		return true, nil
	case req.abandoned:
		req.recycle()
		return l.arrived(h.key, inbound{dst, pb, sum}), nil
	default:
		if req.mode == modeFresh {
			dst = dst[:len(dst):len(dst)]
			if req.peek != nil {
				req.peek(dst)
			}
		}
		req.sum = sum
		req.complete(dst, pb, nil)
		return true, nil
	}
}

// readAbort reads the payload of an abort frame (the peer's communicator
// failed) and returns the error that fails this rank's transport in turn.
func (l *link) readAbort(h header) error {
	sentinel := []any{ErrPeerFailed}
	format := "%w"
	if h.tag == abortMismatch {
		sentinel, format = append(sentinel, ErrMismatch), "%w: %w"
	}
	reason := "(no reason received)"
	if h.n <= abortMax && l.fill(h.n, false) == nil {
		text := l.rbuf[l.r : l.r+h.n]
		if h.flags&flagPayload == 0 || crc32c.Checksum(text) == h.payload {
			reason = string(text)
		}
		l.r += h.n
	}
	return fmt.Errorf(format+": %s", append(sentinel, reason)...)
}

// payloadBuffer is where a payload of n bytes for req (nil: none posted)
// is read: the receiver's own buffer when it can take it, else a fresh or
// pooled one.
func payloadBuffer(n int, req *request) (dst []byte, pb *pbuf, mismatch error) {
	switch {
	case req == nil:
		dst, pb = getBuf(n) // a Recv takes the buffer over, RecvInto and collectives copy and return it
	case req.mode == modeExact && n != len(req.dst):
		mismatch = fmt.Errorf("%w: message of %d bytes, expected %d", ErrMismatch, n, len(req.dst))
		dst, pb = getBuf(n)
	case req.mode == modeUpTo && n > len(req.dst):
		mismatch = tooSmall(n, len(req.dst))
		dst, pb = getBuf(n)
	case req.mode == modeExact, req.mode == modeUpTo:
		dst = req.dst[:n]
	case req.mode == modeFunc:
		if dst, mismatch = req.callAlloc(n); mismatch != nil {
			dst, pb = getBuf(n)
		}
	case req.mode == modeFresh:
		dst = make([]byte, n)
	default:
		dst, pb = getBuf(n)
	}
	return dst, pb, mismatch
}

// fill makes at least n bytes available in rbuf[r:w]. atBoundary says a
// clean end of stream with nothing buffered is the peer closing the link.
func (l *link) fill(n int, atBoundary bool) error {
	if l.w-l.r >= n {
		return nil
	}
	if l.r > 0 {
		l.w = copy(l.rbuf, l.rbuf[l.r:l.w])
		l.r = 0
	}
	for l.w < n {
		m, err := l.read(l.rbuf[l.w:])
		l.w += m
		l.pumped += m
		if err != nil {
			if l.w >= n {
				return nil
			}
			return l.readErr(err, atBoundary && l.w == 0)
		}
	}
	return nil
}

// read reads from the link's conn into p, through its socket when it has
// one.
func (l *link) read(p []byte) (int, error) {
	if l.sock != nil {
		return l.sock.read(p, l.nb)
	}
	return l.conn.Read(p)
}

// pump reads, without waiting, whatever the peer has sent, if nobody else
// is reading the link: a writer whose socket is full calls it, so that two
// ranks that write to each other at once both keep streaming (and neither
// waits for the other to read). It reports whether it read anything.
func (l *link) pump() bool {
	l.mu.Lock()
	if !l.readable() {
		l.mu.Unlock()
		return false
	}
	l.reading = true
	l.mu.Unlock()
	l.nb, l.pumped = true, 0
	for {
		_, err := l.readFrame()
		if err == nil {
			continue
		}
		if !errors.Is(err, errWouldBlock) {
			l.readFailed(err)
		}
		break
	}
	l.nb = false
	got := l.pumped > 0 // read under the token: the next holder resets it
	l.mu.Lock()
	l.release()
	l.mu.Unlock()
	return got
}

func (l *link) readErr(err error, atBoundary bool) error {
	if errors.Is(err, io.EOF) {
		if atBoundary {
			return ErrPeerClosed
		}
		return fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	}
	if atBoundary {
		return err
	}
	return fmt.Errorf("%w: %w", ErrTruncated, err)
}

// skipPayload reads the rest of f's payload (and trailer) off the link and
// keeps none of it: the frame is for a communicator closed on this rank.
// The payload goes through the read buffer a piece at a time (nothing is
// allocated for it, whatever its length) and its CRC32C is checked as
// readPayload checks it, so the stream stays in step and a damaged frame
// is still found. It can be resumed after an interruption.
func (l *link) skipPayload(f *inFrame) error {
	check := f.h.flags&(flagPayload|flagTrailer) != 0
	for f.off < f.h.n {
		if l.r == l.w {
			if err := l.fill(1, false); err != nil {
				return err
			}
		}
		n := min(f.h.n-f.off, l.w-l.r)
		if check {
			f.crc = crc32c.UpdateCached(f.crc, l.rbuf[l.r:l.r+n])
		}
		l.r += n
		f.off += n
	}
	return l.checkPayload(f, check, ", for a closed sub-communicator")
}

// checkPayload ends the payload of f, all of it read and its CRC32C so far
// in f.crc: it reads the trailer if the frame has one and, if check, fails
// with ErrCorrupt when the checksums differ (note is added to the error's
// byte count).
func (l *link) checkPayload(f *inFrame, check bool, note string) error {
	want := f.h.payload
	if f.h.flags&flagTrailer != 0 {
		if err := l.fill(4, false); err != nil {
			return err
		}
		want = binary.LittleEndian.Uint32(l.rbuf[l.r:])
		l.r += 4
	}
	if check && f.crc != want {
		return fmt.Errorf("%w: payload checksum %08x, computed %08x (%d bytes%s)", ErrCorrupt, want, f.crc, f.h.n, note)
	}
	return nil
}

// readPayload reads the rest of f's payload into f.dst, from the read
// buffer first and then, for the bulk of a large message, straight from
// the connection, and checks its CRC32C chunk by chunk as it comes in
// (while it is in cache). It can be resumed after an interruption.
func (l *link) readPayload(f *inFrame) error {
	dst := f.dst
	check := f.h.flags&(flagPayload|flagTrailer) != 0
	if f.off < len(dst) {
		n := copy(dst[f.off:], l.rbuf[l.r:l.w])
		l.r += n
		if check {
			f.crc = crc32c.UpdateCached(f.crc, dst[f.off:f.off+n])
		}
		f.off += n
	}
	for f.off < len(dst) {
		rest := len(dst) - f.off
		if rest <= readBufSize/2 {
			// A small remainder goes through the buffer so that the
			// next header comes in with the same read.
			if err := l.fill(rest, false); err != nil {
				return err
			}
			copy(dst[f.off:], l.rbuf[l.r:l.r+rest])
			l.r += rest
			if check {
				f.crc = crc32c.UpdateCached(f.crc, dst[f.off:])
			}
			f.off += rest
			break
		}
		end := f.off + min(rest, readChunk)
		m, err := l.read(dst[f.off:end])
		l.pumped += m
		if check && m > 0 {
			f.crc = crc32c.UpdateCached(f.crc, dst[f.off:f.off+m])
		}
		f.off += m
		if err != nil && f.off < len(dst) {
			return l.readErr(err, false)
		}
	}
	return l.checkPayload(f, check, "")
}
