package collective

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// A link is this rank's end of the connection to one peer.
//
// Sends are written by the calling goroutine (header and payload in one
// vectored write). Receives are read by whoever holds the link's read
// token: a goroutine that waits for a message from the peer takes the token
// when nobody holds it and reads frames itself, handing each frame that is
// for another receive to that receive (straight into its buffer when it is
// posted) or queueing it, until its own message is complete. A message read
// by the goroutine that waits for it costs no wake-up at all; one read by
// another costs one.
//
// A drain goroutine per link takes the token when nobody else reads: when
// a write on the link has been in progress for writeKick (the peer may be
// writing to us at the same time, and someone must read for its write to
// end: this is what keeps two ranks that send each other large messages at
// once from deadlocking, even over synchronous conns such as net.Pipe), and
// when the token has been free for idleKick (so that a peer's sends
// complete even while this rank is busy elsewhere: messages that arrive
// before their receive is posted are queued, as before). The drain gives
// the token up as soon as a receiver wants it.
type link struct {
	t    *transport
	peer int      // world rank at the other end
	conn net.Conn // nil for the link to self
	sock *sockIO  // the conn's socket, when it is a TCP conn

	// Write side, under the write token: wsem holds a value while a
	// write is in progress (a channel rather than a mutex, so that a Send
	// waiting behind another can give up when its context ends).
	wsem   chan struct{}
	whdr   [hdrLen]byte
	wtrail [4]byte
	wvec   [][]byte
	wtmp   net.Buffers
	wint   interrupter // ends a Send's write when its context ends

	// Matching state and the read token, under mu.
	mu         sync.Mutex
	slots      map[key]*slot
	free       []*slot
	err        error    // set once the link is shut down (the transport failed)
	eof        error    // set once the peer closed the link cleanly: what is queued can still be received
	reading    bool     // the read token is held
	readingFor *request // the receive whose receiver holds the token (nil: the drain goroutine or a pump)
	sleepers   []*request
	writing    int       // writes in progress
	freeAt     time.Time // when the token was last released
	timer      *time.Timer
	timerAt    time.Time     // when timer fires; zero when it is not armed
	kick       chan struct{} // wakes the drain goroutine
	done       chan struct{} // closed on shutdown: the drain goroutine ends
	calls      [linkCalls]callWatch
	nextCall   int // the entry of calls watch replaces when all are taken
	// closed holds the ids of the sub-communicators closed on this rank
	// (nil until one is): frames for them are read off the link and
	// dropped on arrival (see closeComm), one entry per closed
	// sub-communicator for the life of the link.
	closed map[uint64]struct{}

	// Read side, owned by the holder of the read token.
	rbuf   []byte
	r, w   int
	cur    inFrame
	nb     bool        // reads do not wait (pump)
	pumped int         // bytes read since pump started
	rint   interrupter // ends a reading receiver's read when its context ends
}

// callWatch is what a link knows of the collective calls of one of the
// communicators that use it: the communicator's call mark (the running
// call's tag prefix) and the prefix of the latest internal receive posted
// on this link.
type callWatch struct {
	comm   uint64
	mark   *callMark
	posted uint64
	// queued holds the tags of the communicator's internal messages
	// that were queued on arrival (no receive posted yet), in arrival
	// order, which on one link is call order: notePost looks at the
	// records of the calls up to the one that posts, not at every
	// queued message (a rank that runs ahead queues one per call).
	queued fifo[uint64]
}

// linkCalls is how many communicators a link watches at once: the world
// communicator (always, in entry 0) and up to three split from it. When
// more sub-communicators are open at once, a new one takes the place of
// the least recently registered: a disagreement on that one's calls is then
// not recognised by wire id on this link (no message is taken for another
// algorithm's either: the call waits, until its deadline or a link
// closes).
const linkCalls = 4

// watch registers the call mark of communicator comm; l.mu must not be
// held.
func (l *link) watch(comm uint64, m *callMark) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for ; i < linkCalls; i++ {
		if w := l.calls[i]; w.comm == comm || w.mark == nil {
			break
		}
	}
	if i == linkCalls {
		i = 1 + l.nextCall // entry 0 is the world communicator's
		l.nextCall = (l.nextCall + 1) % (linkCalls - 1)
	}
	l.calls[i] = callWatch{comm: comm, mark: m}
}

// closeComm ends communicator comm's use of the link when it is closed (a
// sub-communicator: the link stays up): its posted receives fail with err,
// its queued messages are dropped, its call watch is forgotten, and a
// receiver of comm that is reading the link is poked out of its read. A
// receive whose frame is being read completes with its message. From then
// on every frame for comm that arrives is read off the link and dropped
// (its pooled buffer freed), so a peer that goes on sending on a
// sub-communicator this rank closed does not grow this rank's memory.
// Sub-communicator ids are never reused on a link (see Split), so this
// drops nothing a live communicator is sent. l.mu must not be held.
func (l *link) closeComm(comm uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed == nil {
		l.closed = make(map[uint64]struct{})
	}
	l.closed[comm] = struct{}{}
	for i := range l.calls {
		if l.calls[i].comm == comm {
			l.calls[i] = callWatch{}
		}
	}
	for k, s := range l.slots {
		if k.comm != comm {
			continue
		}
		for _, r := range s.waiters.items() {
			r.complete(nil, nil, err)
		}
		for _, m := range s.msgs.items() {
			putBuf(m.pb)
		}
		s.waiters.reset()
		s.msgs.reset()
		l.dropSlotIfEmpty(k, s)
	}
	if l.conn != nil && l.reading && l.readingFor != nil && l.readingFor.key.comm == comm {
		l.rint.poke()
	}
}

// reopen forgets that communicator comm was closed on this rank: a new
// communicator with its id (see Split) receives on the link. l.mu must not
// be held.
func (l *link) reopen(comm uint64) {
	l.mu.Lock()
	delete(l.closed, comm)
	l.mu.Unlock()
}

// commClosed reports whether communicator comm was closed on this rank
// (see closeComm); l.mu must be held. While no sub-communicator has been
// closed it costs one length check.
func (l *link) commClosed(comm uint64) bool {
	if len(l.closed) == 0 {
		return false
	}
	_, ok := l.closed[comm]
	return ok
}

// callOf returns the watch of communicator comm, or nil; l.mu must be
// held.
func (l *link) callOf(comm uint64) *callWatch {
	for i := range l.calls {
		if w := &l.calls[i]; w.comm == comm && w.mark != nil {
			return w
		}
	}
	return nil
}

// sameCallOtherWire reports whether internal tags a and b belong to the
// same call (sequence) under different wire ids or idents: ranks that
// disagree on the algorithm, the collective, the root or the op's
// commutativity.
func sameCallOtherWire(a, b uint64) bool {
	d := a ^ b
	return d&seqField == 0 && d&(wireField|identField) != 0
}

// callBehind reports whether internal tag a belongs to a call before b's
// (sequences compared modulo the field: a peer is never 2^22 calls ahead).
func callBehind(a, b uint64) bool {
	d := (b>>callShift - a>>callShift) & sequenceMask
	return d != 0 && d <= sequenceMask/2
}

// checkCall is called for an internal frame that no posted receive takes:
// if it belongs to its communicator's running call under another wire id
// or ident, or to a call this rank has finished (which received every
// message it was sent, so nothing will ever receive this one), the ranks
// disagree; the error poisons the transport (the caller returns it from
// readFrame). l.mu must be held.
func (l *link) checkCall(k key) error {
	w := l.callOf(k.comm)
	if w == nil {
		return nil
	}
	cur := w.mark.Load()
	switch {
	case cur == 0: // no call yet
	case sameCallOtherWire(k.tag, cur):
		return l.wireMismatch(k.tag, cur)
	case callBehind(k.tag, cur):
		return l.staleMismatch(k.tag, cur)
	}
	return nil
}

// notePost is called for every internal receive posted on the link: on the
// first of a call (for its communicator) it looks for messages of the same
// call under another wire id or ident queued before the call's mark was
// set, which checkCall did not see, and for messages of earlier calls that
// nobody received. It looks at the queued records of earlier calls once
// (and drops them) and at those of this call: amortised constant time per
// queued message. l.mu must be held.
func (l *link) notePost(k key) error {
	w := l.callOf(k.comm)
	if w == nil {
		return nil
	}
	prefix := k.tag &^ maxStep
	if w.posted == prefix {
		return nil
	}
	w.posted = prefix
	for w.queued.len() > 0 && callBehind(w.queued.front(), k.tag) {
		tag := w.queued.pop()
		if s := l.slots[key{k.comm, tag}]; s != nil && s.msgs.len() > 0 {
			return l.staleMismatch(tag, k.tag)
		}
	}
	for _, tag := range w.queued.items() {
		if (tag^k.tag)&seqField != 0 {
			break // a later call's: the peer runs ahead
		}
		if sameCallOtherWire(tag, k.tag) {
			return l.wireMismatch(tag, k.tag)
		}
	}
	return nil
}

// queuedMismatch looks at the queued messages of communicator comm for one
// of the call with tag prefix tag under another wire id or ident (see
// call.use); l.mu must not be held.
func (l *link) queuedMismatch(comm, tag uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.callOf(comm)
	if w == nil {
		return nil
	}
	for _, q := range w.queued.items() {
		switch {
		case callBehind(q, tag): // an earlier call's: notePost's to judge
		case (q^tag)&seqField != 0:
			return nil // a later call's: the peer runs ahead
		case sameCallOtherWire(q, tag):
			return l.wireMismatch(q, tag)
		}
	}
	return nil
}

func (l *link) staleMismatch(got, running uint64) error {
	return l.peerErr(fmt.Errorf("%w: a message of call %d (%v, step %d) came after this rank finished that call (it runs call %d): the ranks disagree about call %d (its root, sizes or counts)",
		ErrMismatch, (got&seqField)>>callShift, tagWire(got), got&maxStep, (running&seqField)>>callShift, (got&seqField)>>callShift))
}

func (l *link) wireMismatch(got, running uint64) error {
	call := (got & seqField) >> callShift
	gw, rw := tagWire(got), tagWire(running)
	if gw != rw {
		return l.peerErr(fmt.Errorf("%w: a message of call %d runs %v, this rank runs %v (ranks called different collectives, or chose different algorithms from different sizes or tuning)",
			ErrMismatch, call, gw, rw))
	}
	gi, ri := tagIdent(got), tagIdent(running)
	switch {
	case gi.root() == ri.root():
	case rooted(rw):
		return l.peerErr(fmt.Errorf("%w: a message of call %d (%v) names root %d, this rank root %d", ErrMismatch, call, rw, gi.root(), ri.root()))
	default:
		return l.peerErr(fmt.Errorf("%w: a message of call %d (%v) was sent by a rank with other sizes than this one's (vector length, element size, counts or block size; hashes %#x and %#x)", ErrMismatch, call, rw, gi.root(), ri.root()))
	}
	kind := func(id ident) string {
		if id.commutative() {
			return "a commutative"
		}
		return "a non-commutative"
	}
	return l.peerErr(fmt.Errorf("%w: a message of call %d (%v) reduces with %s op, this rank with %s one", ErrMismatch, call, rw, kind(gi), kind(ri)))
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

// inbound is a message received and not yet taken.
type inbound struct {
	b   []byte
	pb  *pbuf // non-nil when b is pooled
	sum msgSum
}

// msgSum is the CRC32C a received message's frame carried and this rank
// verified (ok), which lets it forward the message unchanged without reading
// it again to checksum it (see call.forward).
type msgSum struct {
	crc uint32
	ok  bool
}

const (
	readBufSize = 64 << 10
	streamMin   = 256 << 10 // payloads at least this large carry their CRC in a trailer

	// A large payload is read, and checksummed while in cache, readChunk
	// bytes at a time at most, and written in chunks of writeChunk bytes,
	// each checksummed just before it goes out. Between two ranks on a
	// 2-core Zen 5 VM, 512 KiB took 3-13% less time than 256 KiB (half the
	// writes, a fifth fewer acknowledgements per byte); four ranks on the
	// same two cores were within the noise. 1 MiB gained little more, and a
	// 512 KiB chunk stays well inside a 1 MiB L2 (docs/benchmarks.md).
	readChunk  = 512 << 10
	writeChunk = 512 << 10

	// writeKick is how long a large write (writeKickMin bytes or more) may
	// be in progress with nobody reading the link before the drain
	// goroutine starts reading it; idleKick is how long the link may go
	// unread at all, with or without a write in progress.
	writeAhead   = writeChunk // a streamed payload is checksummed this far ahead of what is written
	writeKick    = 50 * time.Microsecond
	writeKickMin = 64 << 10
	idleKick     = 1 * time.Millisecond
)

func newLink(t *transport, peer int, conn net.Conn) *link {
	l := &link{t: t, peer: peer, conn: conn, slots: make(map[key]*slot)}
	if conn != nil {
		l.rbuf = make([]byte, readBufSize)
		l.kick = make(chan struct{}, 1)
		l.wsem = make(chan struct{}, 1)
		l.done = make(chan struct{})
		l.timer = time.AfterFunc(time.Hour, l.onTimer)
		l.timer.Stop()
		l.sock = newSockIO(conn, t.spin)
		l.rint.set = conn.SetReadDeadline
		l.wint.set = conn.SetWriteDeadline
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

// ---- receive requests ------------------------------------------------------

type recvMode uint8

const (
	modeFresh   recvMode = iota // deliver a buffer the receiver owns, of the message's length
	modeScratch                 // deliver a pooled buffer; the receiver calls release
	modeExact                   // fill dst; the message must be exactly len(dst) bytes
	modeUpTo                    // fill dst[:n]; the message may be shorter than dst
	modeFunc                    // fill alloc(n), which must return n bytes (nil to refuse, unless n is 0)
)

const (
	statePosted uint8 = iota
	stateFilling
	stateDone
)

// A request is one posted receive. It is completed exactly once: by whoever
// reads its frame off the link, by a local send, or by the link's shutdown.
// Its receiver waits for it with link.wait; a receiver that sleeps (parked)
// gets one token on ready when the request completes or when the read
// token is handed to it.
type request struct {
	l         *link
	key       key
	mode      recvMode
	dst       []byte
	alloc     func(n int) []byte // modeFunc: called by whoever delivers, before any later frame of the link
	peek      func(b []byte)     // if set, sees a fresh message before the request completes (same ordering as alloc)
	state     uint8
	abandoned bool // the receiver left while its fresh or scratch buffer was being filled
	parked    bool // the receiver sleeps on ready
	sleeping  bool // ... and is in l.sleepers, waiting for the read token
	buf       []byte
	pb        *pbuf
	err       error
	sum       msgSum // of the message delivered
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

// complete finishes r and wakes its receiver if it sleeps; l.mu must be
// held (or r must be owned by the caller).
func (r *request) complete(b []byte, pb *pbuf, err error) {
	r.buf, r.pb, r.err, r.state = b, pb, err, stateDone
	r.wake()
}

// wake gives r's sleeping receiver its token; l.mu must be held.
func (r *request) wake() {
	if !r.parked {
		return
	}
	if r.sleeping {
		r.l.unsleep(r)
	}
	r.parked = false
	r.ready <- struct{}{}
}

// take hands a fully received message to r according to its mode. It
// returns false when the message must stay queued (an up-to receive whose
// buffer is too small).
func (r *request) take(m inbound) bool {
	b, pb := m.b, m.pb
	r.sum = m.sum // what the modes deliver is b or a copy of it
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
			r.complete(nil, nil, tooSmall(len(b), len(r.dst)))
			return false
		}
		n := copy(r.dst, b)
		putBuf(pb)
		r.complete(r.dst[:n], nil, nil)
	case modeFunc:
		d, err := r.callAlloc(len(b))
		if err != nil {
			putBuf(pb)
			r.complete(nil, nil, err)
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

// tooSmall is the error of an up-to receive whose buffer of m bytes
// cannot take a message of n.
func tooSmall(n, m int) error {
	return fmt.Errorf("%w: message of %d bytes, buffer of %d (the message stays queued)", ErrBufferTooSmall, n, m)
}

// callAlloc gets the buffer of a modeFunc receive for a message of n
// bytes from its alloc. A wrong-sized buffer, or nil for n > 0, is
// ErrMismatch (nil is a buffer of length 0 for an empty message); a panic
// in alloc (user code, which may run on the link's drain goroutine) is
// ErrPanic: either fails this receive only (the message is consumed).
func (r *request) callAlloc(n int) (d []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, r.l.peerErr(fmt.Errorf("%w: alloc for a message of %d bytes: %v", ErrPanic, n, p))
		}
	}()
	if d = r.alloc(n); (d == nil && n > 0) || len(d) != n {
		return nil, r.l.peerErr(fmt.Errorf("%w: unexpected message of %d bytes", ErrMismatch, n))
	}
	return d, nil
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
	if k.tag&internalBit != 0 {
		if err := l.notePost(k); err != nil {
			r.complete(nil, nil, err)
			l.mu.Unlock()
			return r
		}
	}
	s := l.slotFor(k)
	switch {
	case s.msgs.len() > 0:
		if r.take(s.msgs.front()) {
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
		if s := l.slots[r.key]; s != nil {
			for i, w := range s.waiters.items() {
				if w == r {
					s.waiters.removeAt(i)
					break
				}
			}
			l.dropSlotIfEmpty(r.key, s)
		}
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
		l.waitDone(r)
		r.recycle()
		return true
	default:
		l.mu.Unlock()
		return false
	}
}

// arrived hands a complete message to the first receive posted for k, or
// queues it; a message for a communicator closed on this rank is dropped
// (its pooled buffer freed). It reports whether a receive took it. l.mu
// must be held.
func (l *link) arrived(k key, m inbound) bool {
	if l.commClosed(k.comm) {
		putBuf(m.pb)
		return false
	}
	s := l.slotFor(k)
	for s.msgs.len() == 0 && s.waiters.len() > 0 {
		r := s.waiters.pop()
		if r.take(m) {
			l.dropSlotIfEmpty(k, s)
			return true
		}
	}
	s.msgs.push(m)
	if k.tag&internalBit != 0 {
		if w := l.callOf(k.comm); w != nil {
			w.queued.push(k.tag)
		}
	}
	return false
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

// halt fails every receive waiting on the link and drops queued messages;
// closeConn then closes the connection, which ends whoever reads it and
// any blocked write.
func (l *link) halt(err error) {
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
		if l.conn != nil {
			// A frame left half read by a receiver whose context ended,
			// with nobody reading on: its request ends here.
			if !l.reading && l.cur.active {
				l.cur.abort(err)
			}
			l.timer.Stop()
			close(l.done)
		}
	}
	l.mu.Unlock()
}

func (l *link) closeConn() {
	if l.conn != nil {
		_ = l.conn.Close()
		l.rint.close()
		l.wint.close()
	}
}
