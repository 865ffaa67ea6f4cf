package collective

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// A link is this rank's end of the connection to one peer. Sends are written
// by the calling goroutine (header and payload in one vectored write); one
// reader goroutine per link reads frames and hands each to the receive
// posted for its (communicator, tag), reading the payload straight into the
// receiver's buffer when one is posted, or queues it until a receive comes.
// Because the reader never waits for a receiver, two ranks that send large
// messages to each other at the same time never deadlock, even over
// synchronous conns such as net.Pipe.
type link struct {
	t    *transport
	peer int      // world rank at the other end
	conn net.Conn // nil for the link to self

	// Write side, under wmu.
	wmu    sync.Mutex
	whdr   [hdrLen]byte
	wtrail [4]byte
	wvec   [][]byte
	wtmp   net.Buffers
	dlMu   sync.Mutex // orders Send cancellation against the end of a write
	wgen   uint64
	wdead  bool // a write deadline in the past is set

	// Matching state, under mu.
	mu    sync.Mutex
	slots map[key]*slot
	free  []*slot
	err   error // set once the link is shut down (the transport failed)
	eof   error // set once the peer closed the link cleanly: what is queued can still be received

	// Read side, owned by the reader goroutine.
	rbuf []byte
	r, w int
}

type slot struct {
	msgs    fifo[inbound]  // arrived, not yet received
	waiters fifo[*request] // posted receives; non-empty only when msgs is empty
}

// fifo is a queue that reuses its backing array.
type fifo[T any] struct {
	buf  []T
	head int
}

func (f *fifo[T]) len() int   { return len(f.buf) - f.head }
func (f *fifo[T]) items() []T { return f.buf[f.head:] }
func (f *fifo[T]) front() T   { return f.buf[f.head] }
func (f *fifo[T]) push(x T) {
	if f.head > 0 && len(f.buf) == cap(f.buf) {
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf, f.head = f.buf[:n], 0
	}
	f.buf = append(f.buf, x)
}

func (f *fifo[T]) pop() T {
	var zero T
	x := f.buf[f.head]
	f.buf[f.head] = zero
	if f.head++; f.head == len(f.buf) {
		f.reset()
	}
	return x
}

func (f *fifo[T]) reset() {
	clear(f.buf)
	f.buf, f.head = f.buf[:0], 0
}

// removeAt removes the i-th item (counting from the front).
func (f *fifo[T]) removeAt(i int) {
	i += f.head
	copy(f.buf[i:], f.buf[i+1:])
	var zero T
	f.buf[len(f.buf)-1] = zero
	f.buf = f.buf[:len(f.buf)-1]
	if f.head == len(f.buf) {
		f.reset()
	}
}

type inbound struct {
	b  []byte
	pb *pbuf // non-nil when b is pooled
}

const (
	readBufSize = 64 << 10
	readChunk   = 256 << 10 // CRC is computed per chunk while it is in cache
	writeChunk  = 256 << 10
	streamMin   = 256 << 10 // payloads at least this large carry their CRC in a trailer
)

func newLink(t *transport, peer int, conn net.Conn) *link {
	l := &link{t: t, peer: peer, conn: conn, slots: make(map[key]*slot)}
	if conn != nil {
		l.rbuf = make([]byte, readBufSize)
	}
	return l
}

func (l *link) peerErr(err error) error {
	var pe *PeerError
	if errors.As(err, &pe) {
		return err
	}
	return &PeerError{Rank: l.t.rank, Peer: l.peer, Err: err}
}

// ---- receive side --------------------------------------------------------

type recvMode uint8

const (
	modeFresh   recvMode = iota // deliver a buffer the receiver owns, of the message's length
	modeScratch                 // deliver a pooled buffer; the receiver calls release
	modeExact                   // fill dst; the message must be exactly len(dst) bytes
	modeUpTo                    // fill dst[:n]; the message may be shorter than dst
	modeFunc                    // fill alloc(n), which must return n bytes (nil to refuse)
)

const (
	statePosted uint8 = iota
	stateFilling
	stateDone
)

// A request is one posted receive. It is completed exactly once, by the
// reader goroutine, by a local send, or by the link's shutdown, and then its
// ready channel holds one token.
type request struct {
	l         *link
	key       key
	mode      recvMode
	dst       []byte
	alloc     func(n int) []byte // modeFunc: called by whoever delivers, before any later frame of the link
	peek      func(b []byte)     // if set, sees a fresh message before the request completes (same ordering as alloc)
	state     uint8
	abandoned bool // the receiver left while the reader was filling a fresh or scratch buffer
	buf       []byte
	pb        *pbuf
	err       error
	ready     chan struct{}
}

// recycle returns r to its transport's pool. (The pool is per transport,
// not global: a channel made inside a testing/synctest bubble must not be
// used from another.)
func (r *request) recycle() {
	t := r.l.t
	*r = request{ready: r.ready}
	t.reqs.Put(r)
}

// complete finishes r; l.mu must be held (or r must be owned by the caller).
func (r *request) complete(b []byte, pb *pbuf, err error) {
	r.buf, r.pb, r.err, r.state = b, pb, err, stateDone
	r.ready <- struct{}{}
}

// take hands a fully received message to r according to its mode. It
// returns false when the message must stay queued (an up-to receive whose
// buffer is too small).
func (r *request) take(b []byte, pb *pbuf) bool {
	switch r.mode {
	case modeExact:
		if len(b) != len(r.dst) {
			putBuf(pb)
			r.complete(nil, nil, r.l.peerErr(fmt.Errorf("%w: message of %d bytes, expected %d", ErrMismatch, len(b), len(r.dst))))
			return true
		}
		copy(r.dst, b)
		putBuf(pb)
		r.complete(r.dst, nil, nil)
	case modeUpTo:
		if len(b) > len(r.dst) {
			r.complete(nil, nil, fmt.Errorf("message of %d bytes does not fit a %d-byte buffer", len(b), len(r.dst)))
			return false
		}
		n := copy(r.dst, b)
		putBuf(pb)
		r.complete(r.dst[:n], nil, nil)
	case modeFunc:
		d := r.alloc(len(b))
		if d == nil || len(d) != len(b) {
			putBuf(pb)
			r.complete(nil, nil, r.l.peerErr(fmt.Errorf("%w: unexpected message of %d bytes", ErrMismatch, len(b))))
			return true
		}
		copy(d, b)
		putBuf(pb)
		r.complete(d, nil, nil)
	case modeFresh:
		if r.peek != nil {
			r.peek(b)
		}
		r.complete(b[:len(b):len(b)], nil, nil) // a pooled buffer leaves the pool with the receiver
	case modeScratch:
		r.complete(b, pb, nil)
	}
	return true
}

func (l *link) slotFor(k key) *slot {
	s := l.slots[k]
	if s == nil {
		if n := len(l.free); n > 0 {
			s = l.free[n-1]
			l.free = l.free[:n-1]
		} else {
			s = new(slot)
		}
		l.slots[k] = s
	}
	return s
}

func (l *link) dropSlotIfEmpty(k key, s *slot) {
	if s.msgs.len() == 0 && s.waiters.len() == 0 {
		delete(l.slots, k)
		s.msgs.reset()
		s.waiters.reset()
		l.free = append(l.free, s)
	}
}

// post posts a receive for k. If a message is already queued the request is
// completed at once.
func (l *link) post(k key, mode recvMode, dst []byte) *request {
	return l.postReq(l.newReq(k, mode, dst, nil))
}

func (l *link) newReq(k key, mode recvMode, dst []byte, alloc func(int) []byte) *request {
	r, _ := l.t.reqs.Get().(*request)
	if r == nil {
		r = &request{ready: make(chan struct{}, 1)}
	}
	r.l, r.key, r.mode, r.dst, r.alloc, r.state = l, k, mode, dst, alloc, statePosted
	return r
}

func (l *link) postReq(r *request) *request {
	k := r.key
	l.mu.Lock()
	if l.err != nil {
		r.complete(nil, nil, l.err)
		l.mu.Unlock()
		return r
	}
	s := l.slotFor(k)
	switch {
	case s.msgs.len() > 0:
		m := s.msgs.front()
		if r.take(m.b, m.pb) {
			s.msgs.pop()
		}
		l.dropSlotIfEmpty(k, s)
	case l.eof != nil:
		l.dropSlotIfEmpty(k, s)
		r.complete(nil, nil, l.eof)
	default:
		s.waiters.push(r)
	}
	l.mu.Unlock()
	return r
}

// cancel withdraws r after its receiver's context ended. It reports whether
// r was still pending; if it was done already the caller must consume it.
// A request whose fresh or scratch buffer is being filled is abandoned: the
// reader queues the message for a later receive. A request whose caller's
// own buffer is being filled cannot be withdrawn without the reader writing
// into memory the caller gets back, so the link is aborted.
func (l *link) cancel(r *request, cause error) (pending bool) {
	l.mu.Lock()
	switch r.state {
	case statePosted:
		s := l.slots[r.key]
		for i, w := range s.waiters.items() {
			if w == r {
				s.waiters.removeAt(i)
				break
			}
		}
		l.dropSlotIfEmpty(r.key, s)
		l.mu.Unlock()
		r.recycle()
		return true
	case stateFilling:
		if r.mode == modeFresh || r.mode == modeScratch {
			r.abandoned = true
			l.mu.Unlock()
			return true
		}
		l.mu.Unlock()
		l.t.fail(l.peerErr(fmt.Errorf("receive into caller's buffer abandoned mid-frame: %w", cause)))
		<-r.ready
		r.recycle()
		return true
	default:
		l.mu.Unlock()
		return false
	}
}

// readLoop is the link's reader goroutine. A peer that closes the link
// cleanly (at a frame boundary) has sent everything it meant to: its queued
// messages stay receivable and only receives that wait for more from it
// fail. Any other read error poisons the transport.
func (l *link) readLoop() {
	defer l.t.readers.Done()
	for {
		err := l.readFrame()
		if err == nil {
			continue
		}
		if errors.Is(err, ErrPeerClosed) {
			l.peerClosed(l.peerErr(err))
		} else {
			l.t.fail(l.peerErr(err))
		}
		return
	}
}

// peerClosed fails the receives waiting on the link and every later one
// that finds nothing queued.
func (l *link) peerClosed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.eof = err
	for k, s := range l.slots {
		for _, r := range s.waiters.items() {
			r.complete(nil, nil, err)
		}
		s.waiters.reset()
		l.dropSlotIfEmpty(k, s)
	}
}

func (l *link) readFrame() error {
	if err := l.fill(hdrLen, true); err != nil {
		return err
	}
	h, err := parseHeader(l.rbuf[l.r:l.r+hdrLen], l.t.maxFrame)
	if err != nil {
		return err
	}
	l.r += hdrLen

	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return l.err
	}
	var req *request
	if s := l.slots[h.key]; s != nil && s.waiters.len() > 0 {
		req = s.waiters.pop()
		req.state = stateFilling
		l.dropSlotIfEmpty(h.key, s)
	}
	l.mu.Unlock()

	var (
		dst      []byte
		pb       *pbuf
		mismatch error
	)
	switch {
	case req == nil:
		dst, pb = getBuf(h.n) // a Recv takes the buffer over, RecvInto and collectives copy and return it
	case req.mode == modeExact && h.n != len(req.dst), req.mode == modeUpTo && h.n > len(req.dst):
		mismatch = fmt.Errorf("%w: message of %d bytes, expected %d", ErrMismatch, h.n, len(req.dst))
		if req.mode == modeUpTo {
			mismatch = fmt.Errorf("message of %d bytes does not fit a %d-byte buffer", h.n, len(req.dst))
		}
		dst, pb = getBuf(h.n)
	case req.mode == modeExact, req.mode == modeUpTo:
		dst = req.dst[:h.n]
	case req.mode == modeFunc:
		if dst = req.alloc(h.n); dst == nil || len(dst) != h.n {
			mismatch = fmt.Errorf("%w: unexpected message of %d bytes", ErrMismatch, h.n)
			dst, pb = getBuf(h.n)
		}
	case req.mode == modeFresh:
		dst = make([]byte, h.n)
	default:
		dst, pb = getBuf(h.n)
	}

	if err := l.readPayload(dst, h); err != nil {
		if req != nil {
			l.mu.Lock()
			if req.abandoned {
				req.recycle()
			} else {
				req.complete(nil, nil, l.t.failureOr(l.peerErr(err)))
			}
			l.mu.Unlock()
		}
		return err
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case req == nil:
		l.arrived(h.key, dst, pb)
	case mismatch != nil:
		if req.mode == modeUpTo {
			// Keep the message for a receive with a large enough buffer.
			req.complete(nil, nil, mismatch)
			l.arrived(h.key, dst, pb)
			return nil
		}
		putBuf(pb)
		req.complete(nil, nil, l.peerErr(mismatch))
	case req.abandoned:
		req.recycle()
		l.arrived(h.key, dst, pb)
	default:
		if req.mode == modeFresh {
			dst = dst[:len(dst):len(dst)]
			if req.peek != nil {
				req.peek(dst)
			}
		}
		req.complete(dst, pb, nil)
	}
	return nil
}

// arrived hands a complete message to the first receive posted for k, or
// queues it. l.mu must be held.
func (l *link) arrived(k key, b []byte, pb *pbuf) {
	s := l.slotFor(k)
	for s.msgs.len() == 0 && s.waiters.len() > 0 {
		r := s.waiters.pop()
		if r.take(b, pb) {
			l.dropSlotIfEmpty(k, s)
			return
		}
	}
	s.msgs.push(inbound{b, pb})
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
		m, err := l.conn.Read(l.rbuf[l.w:])
		l.w += m
		if err != nil {
			if l.w >= n {
				return nil
			}
			return l.readErr(err, atBoundary && l.w == 0)
		}
	}
	return nil
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

// readPayload reads the payload into dst, from the read buffer first and
// then, for the bulk of a large message, straight from the connection, and
// checks its CRC32C chunk by chunk.
func (l *link) readPayload(dst []byte, h header) error {
	check := h.flags&(flagPayload|flagTrailer) != 0
	var crc uint32
	off := copy(dst, l.rbuf[l.r:l.w])
	l.r += off
	if check {
		crc = crc32.Update(crc, castagnoli, dst[:off])
	}
	for off < len(dst) {
		rest := len(dst) - off
		if rest <= readBufSize/2 {
			// A small remainder goes through the buffer so that the
			// next header comes in with the same read.
			if err := l.fill(rest, false); err != nil {
				return err
			}
			copy(dst[off:], l.rbuf[l.r:l.r+rest])
			l.r += rest
			if check {
				crc = crc32.Update(crc, castagnoli, dst[off:])
			}
			off += rest
			break
		}
		end := off + min(rest, readChunk)
		m, err := l.conn.Read(dst[off:end])
		if check && m > 0 {
			crc = crc32.Update(crc, castagnoli, dst[off:off+m])
		}
		off += m
		if err != nil && off < len(dst) {
			return l.readErr(err, false)
		}
	}
	want := h.payload
	if h.flags&flagTrailer != 0 {
		if err := l.fill(4, false); err != nil {
			return err
		}
		want = binary.LittleEndian.Uint32(l.rbuf[l.r:])
		l.r += 4
	}
	if check && crc != want {
		return fmt.Errorf("%w: payload checksum %08x, computed %08x (%d bytes)", ErrCorrupt, want, crc, len(dst))
	}
	return nil
}

// ---- send side -----------------------------------------------------------

// send writes one message made of bufs (concatenated) under key k. The
// header and the buffers go out in one vectored write (writev on TCP). If
// ctx can end, its end interrupts the write: a write interrupted before any
// byte went out leaves the link usable, one interrupted mid-frame breaks it.
// Collectives pass a nil ctx: their cancellation aborts the communicator.
func (l *link) send(ctx context.Context, k key, bufs [][]byte) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if n > l.t.maxFrame {
		return fmt.Errorf("%w: message of %d bytes exceeds the limit of %d (WithMaxFrame)", ErrFrameTooLarge, n, l.t.maxFrame)
	}
	if l.conn == nil {
		return l.sendSelf(k, bufs, n)
	}
	h := header{key: k, n: n}
	streamed := l.t.checksum && n >= streamMin
	switch {
	case streamed:
		h.flags = flagTrailer
	case l.t.checksum:
		h.flags = flagPayload
		for _, b := range bufs {
			h.payload = crc32.Update(h.payload, castagnoli, b)
		}
	}

	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.t.failure(); err != nil {
		return err
	}
	var stop func() bool
	if ctx != nil && ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.dlMu.Lock()
		gen := l.wgen
		l.dlMu.Unlock()
		stop = context.AfterFunc(ctx, func() {
			l.dlMu.Lock()
			if l.wgen == gen {
				l.wdead = true
				_ = l.conn.SetWriteDeadline(time.Unix(1, 0))
			}
			l.dlMu.Unlock()
		})
	}
	putHeader(l.whdr[:], h)
	var (
		written int64
		err     error
	)
	if streamed {
		written, err = l.writeStreamed(bufs)
	} else {
		l.wvec = append(l.wvec[:0], l.whdr[:])
		for _, b := range bufs {
			if len(b) > 0 {
				l.wvec = append(l.wvec, b)
			}
		}
		written, err = l.flush()
	}
	if stop != nil {
		l.dlMu.Lock()
		l.wgen++
		stop()
		if l.wdead {
			l.wdead = false
			_ = l.conn.SetWriteDeadline(time.Time{})
		}
		l.dlMu.Unlock()
	}
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil && written == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err()
	}
	if ferr := l.t.failure(); ferr != nil {
		return ferr
	}
	perr := l.peerErr(fmt.Errorf("write: %w", err))
	if ctx != nil && ctx.Err() != nil {
		perr = l.peerErr(fmt.Errorf("send interrupted mid-frame: %w", ctx.Err()))
	}
	l.t.fail(perr)
	return l.t.failureOr(perr)
}

// flush writes l.wvec with one vectored write and empties it.
func (l *link) flush() (int64, error) {
	l.wtmp = l.wvec
	n, err := l.wtmp.WriteTo(l.conn)
	clear(l.wvec) // drop references to the caller's buffers
	l.wvec = l.wvec[:0]
	return n, err
}

// writeStreamed writes the header (already in whdr) and a large payload in
// writes of writeChunk bytes, computing the payload's CRC32C on each chunk
// just before writing it, while it is in cache for the kernel's copy, and
// sends the checksum in a 4-byte trailer.
func (l *link) writeStreamed(bufs [][]byte) (int64, error) {
	var (
		crc   uint32
		total int64
		size  int
	)
	l.wvec = append(l.wvec[:0], l.whdr[:])
	for _, b := range bufs {
		for len(b) > 0 {
			piece := b[:min(len(b), writeChunk-size)]
			b = b[len(piece):]
			crc = crc32.Update(crc, castagnoli, piece)
			l.wvec = append(l.wvec, piece)
			if size += len(piece); size == writeChunk {
				n, err := l.flush()
				total += n
				if err != nil {
					return total, err
				}
				size = 0
			}
		}
	}
	binary.LittleEndian.PutUint32(l.wtrail[:], crc)
	l.wvec = append(l.wvec, l.wtrail[:])
	n, err := l.flush()
	return total + n, err
}

// sendSelf delivers a message to this rank's own queues.
func (l *link) sendSelf(k key, bufs [][]byte, n int) error {
	var (
		b  []byte
		pb *pbuf
	)
	if k.tag&internalBit != 0 {
		b, pb = getBuf(n)
	} else {
		b = make([]byte, n)
	}
	off := 0
	for _, x := range bufs {
		off += copy(b[off:], x)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		putBuf(pb)
		return l.err
	}
	l.arrived(k, b, pb)
	return nil
}

// shutdown fails every receive waiting on the link, drops queued messages
// and closes the connection, which ends the reader and any blocked write.
func (l *link) shutdown(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
		for k, s := range l.slots {
			for _, r := range s.waiters.items() {
				r.complete(nil, nil, err)
			}
			for _, m := range s.msgs.items() {
				putBuf(m.pb)
			}
			delete(l.slots, k)
		}
	}
	l.mu.Unlock()
	if l.conn != nil {
		_ = l.conn.Close()
	}
}
