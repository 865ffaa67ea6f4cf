package collective

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Comm is a communicator: a group of ranks 0..Size()-1 connected pairwise,
// with point-to-point messages and collective operations among them.
//
// Send and Recv may be called from several goroutines at once. Collectives
// on one Comm must be called one at a time and in the same order on every
// rank (as in MPI); a collective called while another is running returns
// ErrBusy. A collective that fails for any reason (cancelled context, dead
// peer, corrupted frame, ranks that disagree) poisons the communicator and
// every communicator sharing its links: all pending and later calls return
// that first error, and the links are closed so that the other ranks' calls
// fail promptly too.
type Comm struct {
	t     *transport
	id    uint64 // carried in every frame of this communicator
	rank  int
	size  int
	links []*link // by rank in this communicator
	world []int   // world rank of each rank of this communicator
	owner bool    // the world communicator closes the links
	// renumbered says some rank of c has another number in the world
	// communicator: c's errors then name ranks by both (see view).
	renumbered bool

	tuning atomic.Pointer[Tuning]

	busy     atomic.Bool
	seq      uint64 // collective call sequence; guarded by busy
	mark     *callMark
	callMu   sync.Mutex
	active   uint64      // sequence of the running collective, 0 when none
	activeOp string      // its name
	closed   atomic.Bool // set before callMu is taken by Close
}

const worldID = 1

// New returns the communicator of rank rank over links, one connection per
// peer: links[i] connects to rank i, and links[rank] must be nil. Any
// reliable ordered byte stream works: punched or relayed TCP, netsim
// connections, or in-process pipes. The communicator owns the links from
// now on and closes them on Close.
//
// Every rank must create its communicator with the same tuning (options).
func New(rank int, links []net.Conn, opts ...Option) (*Comm, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(links) == 0 {
		return nil, errors.New("collective: new: no links (size 0)")
	}
	if len(links) > MaxRanks {
		return nil, fmt.Errorf("collective: new: %d ranks, more than MaxRanks (%d)", len(links), MaxRanks)
	}
	if rank < 0 || rank >= len(links) {
		return nil, fmt.Errorf("collective: new: rank %d out of range 0..%d", rank, len(links)-1)
	}
	for i, c := range links {
		if i == rank && c != nil {
			return nil, fmt.Errorf("collective: rank %d: new: links[%d] (self) must be nil", rank, i)
		}
		if i != rank && c == nil {
			return nil, fmt.Errorf("collective: rank %d: new: no link to rank %d", rank, i)
		}
	}
	t := newTransport(rank, links, cfg)
	c := &Comm{t: t, id: worldID, rank: rank, size: len(links), links: t.links, owner: true, mark: new(callMark)}
	c.world = make([]int, c.size)
	for i := range c.world {
		c.world[i] = i
	}
	c.watchCalls()
	tun := cfg.tuning
	c.tuning.Store(&tun)
	return c, nil
}

// Rank returns this process's rank in the communicator.
func (c *Comm) Rank() int { return c.rank }

// Size returns the number of ranks in the communicator.
func (c *Comm) Size() int { return c.size }

// WorldRank returns the rank in the world communicator (the one built from
// links) of rank r of c, or -1 when r is not a rank of c (r < 0 or
// r >= Size()).
func (c *Comm) WorldRank(r int) int {
	if r < 0 || r >= len(c.world) {
		return -1
	}
	return c.world[r]
}

// Tuning returns the communicator's current switch points and forced
// algorithms.
func (c *Comm) Tuning() Tuning { return *c.tuning.Load() }

// SetTuning replaces the switch points and forced algorithms. Every rank
// must make the same change at the same point of its sequence of calls.
// It is safe at any time: a collective takes the tuning once, when it
// begins, and uses that for all its choices, so a collective running
// while SetTuning is called finishes with the tuning it started with and
// the change applies from the next call.
func (c *Comm) SetTuning(t Tuning) error {
	if err := t.Validate(); err != nil {
		return err
	}
	c.tuning.Store(&t)
	return nil
}

// Err returns the error that poisoned the communicator, or one matching
// ErrClosed once it is closed, or nil while it is healthy.
func (c *Comm) Err() error {
	if err := c.t.failure(); err != nil {
		return c.view(err)
	}
	if c.closed.Load() {
		return c.closedErr()
	}
	return nil
}

// Close ends the communicator; closing it again does nothing (and returns
// nil). Closing the world communicator (the one New returned) closes every
// link, fails the calls still pending on it and on its sub-communicators
// with ErrClosed, and waits for its reader goroutines to end (a Close that
// runs at the same time as another waits for them too).
//
// Closing a sub-communicator leaves the links up: its pending receives
// (Recv, RecvInto, RecvFunc, a posted Request) fail with ErrClosed, the
// messages queued for it are dropped, and so is every message for it that
// arrives later (read off the link and freed, not queued: a peer that goes
// on sending on it costs this rank no memory), and its later calls fail
// with ErrClosed; a Send in progress completes. A collective running on it
// fails, as a collective interrupted any other way does: it poisons every
// communicator sharing its links (the peers running the collective with
// this rank would otherwise wait for it for ever). Close a sub-communicator
// when no collective runs on it.
func (c *Comm) Close() error {
	first := !c.closed.Swap(true)
	if c.owner {
		c.t.close()
		return nil
	}
	if !first {
		return nil
	}
	c.callMu.Lock()
	running, op := c.active, c.activeOp
	c.callMu.Unlock()
	if running != 0 {
		c.t.fail(c.localErr(op, fmt.Errorf("sub-communicator closed during the call: %w", ErrClosed)))
	}
	for _, l := range c.links {
		l.closeComm(c.id, c.closedErr())
	}
	return nil
}

func (c *Comm) closedErr() error { return c.localErr("", ErrClosed) }

// localErr is the failure err of this rank in operation op (none: "").
func (c *Comm) localErr(op string, err error) *localError {
	return &localError{rank: c.rank, world: c.world[c.rank], op: op, err: err}
}

// name names rank r of c (0 <= r < Size()) in an error: "rank r", or
// "rank r (world rank w)" when its world rank w is another number.
func (c *Comm) name(r int) string { return rankName(r, c.world[r]) }

// who names this rank in an error, as name does.
func (c *Comm) who() string { return c.name(c.rank) }

// peerName names the rank whose world rank is w, in c's numbering as
// name does, or "world rank w" when it is not a rank of c.
func (c *Comm) peerName(w int) string {
	for r, x := range c.world {
		if x == w {
			return c.name(r)
		}
	}
	return fmt.Sprintf("world rank %d", w)
}

// view returns err, a failure of the links that c shares with the
// communicators split from the same world communicator, as c reports it:
// in a sub-communicator whose ranks are numbered otherwise than the
// world's, a *PeerError (which names world ranks) or a *localError (which
// numbers this rank as the communicator it began on does) is told with
// each rank named by its rank in c and its world rank, "rank 1 (world
// rank 3): link to rank 0 (world rank 1): ...", or "world rank 5" for a
// peer outside c. Anything else, and everything on a communicator
// numbered as the world, is returned as it is.
func (c *Comm) view(err error) error {
	if !c.renumbered {
		return err
	}
	switch e := err.(type) {
	case *PeerError:
		return &viewError{err: e, text: fmt.Sprintf("%s: link to %s: %v", rankName(c.rank, e.Rank), c.peerName(e.Peer), e.Err)}
	case *localError:
		return &viewError{err: e, text: e.as(c.who())}
	}
	return err
}

// closedAfterPost is called after posting a receive on l: if c was closed
// meanwhile, after checkUsable, Close may have missed the receive; it
// fails it (and whatever else c has posted on l) now.
func (c *Comm) closedAfterPost(l *link) {
	if !c.owner && c.closed.Load() {
		l.closeComm(c.id, c.closedErr())
	}
}

func (c *Comm) checkUsable() error {
	if c.closed.Load() {
		return c.closedErr()
	}
	return c.t.failure()
}

// ---- collective call machinery ------------------------------------------

// A call is one running collective: its sequence number makes the tags of
// its messages distinct from those of every other call, its wire id those
// of a call that runs another algorithm.
type call struct {
	c     *Comm
	op    string
	seq   uint64
	wire  wire
	ident ident
	stop  func() bool
	// tun is the communicator's tuning when the call began: every
	// choice the call makes (its algorithm, its chunk size, its batch)
	// reads this snapshot, so a SetTuning while it runs takes effect
	// from the next call and never gives one call a mix of two tunings.
	tun *Tuning
}

// callMark holds the tag prefix (internalTag with step 0) of the latest
// collective call of a communicator, for its links' readers to recognise a
// message of that call sent under another wire id (see link.checkCall).
type callMark struct{ atomic.Uint64 }

// watchCalls registers c's call mark with its links.
func (c *Comm) watchCalls() {
	for _, l := range c.links {
		if l.conn != nil {
			l.watch(c.id, c.mark)
		}
	}
}

// use sets the protocol the call runs and its ident (the root, the op's
// commutativity: what the ranks must agree on besides the algorithm);
// every collective calls it before its first message. From then on a
// message of this call under another wire id or ident is a mismatch.
func (cl *call) use(w wire, id ident) {
	cl.wire, cl.ident = w, id
	tag := internalTag(cl.seq, w, id, 0)
	cl.c.mark.Store(tag)
	// A message of this call under another wire id or ident that arrived
	// before the mark was set was queued unchecked (checkCall compared it
	// with the previous call's mark). notePost finds it when this call
	// posts a receive on its link, but a call that posts none there (a
	// gather's non-root only sends) would leave it unseen while the rank
	// that sent it, and those waiting for that rank, hang.
	for _, l := range cl.c.links {
		if l.conn != nil {
			if err := l.queuedMismatch(cl.c.id, tag); err != nil {
				cl.c.t.fail(err)
				return
			}
		}
	}
}

// begin starts a collective. If ctx ends before the call does, the
// communicator is poisoned with ctx's error and its links closed, which
// ends this call's blocked sends and receives and, through the closed
// links, the other ranks' calls.
func (c *Comm) begin(ctx context.Context, op string) (*call, error) {
	if err := c.checkUsable(); err != nil {
		return nil, c.describeEarlier(op, err)
	}
	if !c.busy.CompareAndSwap(false, true) {
		return nil, c.describe(op, ErrBusy)
	}
	c.seq++
	cl := &call{c: c, op: op, seq: c.seq, tun: c.tuning.Load()}
	c.callMu.Lock()
	if c.closed.Load() { // Close ran after checkUsable: the call never starts
		c.callMu.Unlock()
		c.busy.Store(false)
		return nil, c.describe(op, c.closedErr())
	}
	c.active, c.activeOp = cl.seq, op
	c.callMu.Unlock()
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return nil, cl.end(err)
		}
		seq := cl.seq
		cl.stop = context.AfterFunc(ctx, func() {
			c.callMu.Lock()
			defer c.callMu.Unlock()
			if c.active == seq {
				c.t.fail(c.localErr(op, context.Cause(ctx)))
			}
		})
	}
	return cl, nil
}

// end finishes the call; a failure poisons the communicator. It returns
// the error to report: the first failure of the communicator, wrapped with
// the operation's name.
func (cl *call) end(err error) error {
	c := cl.c
	c.callMu.Lock()
	c.active = 0
	c.callMu.Unlock()
	if cl.stop != nil {
		cl.stop()
	}
	c.busy.Store(false)
	if err == nil {
		return nil
	}
	if f := c.t.failure(); f != nil {
		err = f
	} else {
		var pe *PeerError
		if !errors.As(err, &pe) {
			err = c.localErr(cl.op, err)
		}
		c.t.fail(err)
		err = c.t.failure()
	}
	return c.describe(cl.op, err)
}

// finish ends the call with *err, as end does; every collective defers it
// right after begin. A panic that unwinds through the collective (a bug:
// user functions are recovered where they are called) poisons the
// communicator before it goes on, so that the other ranks fail instead of
// waiting for this one.
func (cl *call) finish(err *error) {
	if p := recover(); p != nil {
		cl.end(fmt.Errorf("%w: %v", ErrPanic, p))
		panic(p)
	}
	*err = cl.end(*err)
}

// failCall runs a collective that fails at once with err on this rank (a
// bad argument): the communicator is poisoned so that the other ranks,
// which are running the collective, do not wait for this one. If the call
// cannot begin (the communicator already failed, for instance because
// another rank refused the same bad argument first), the error matches
// both err and the reason it could not begin.
func (c *Comm) failCall(ctx context.Context, op string, err error) error {
	cl, berr := c.begin(ctx, op)
	if berr != nil {
		return fmt.Errorf("%w (and %w)", berr, err)
	}
	return cl.end(err)
}

func (cl *call) tag(step int) key {
	return key{comm: cl.c.id, tag: internalTag(cl.seq, cl.wire, cl.ident, step)}
}

// send sends bufs, concatenated, to rank `to` of the communicator.
func (cl *call) send(to, step int, bufs ...[]byte) error {
	return cl.c.links[to].send(nil, cl.tag(step), bufs)
}

// post posts a receive from rank `from`.
func (cl *call) post(from, step int, mode recvMode, dst []byte) *request {
	return cl.c.links[from].post(cl.tag(step), mode, dst)
}

// postFunc posts a receive from rank `from` whose buffer alloc provides
// once the message's length is known.
func (cl *call) postFunc(from, step int, alloc func(n int) []byte) *request {
	l := cl.c.links[from]
	return l.postReq(l.newReq(cl.tag(step), modeFunc, nil, alloc))
}

// wait waits for r. Collectives need no context here: their cancellation
// poisons the transport, which completes every pending request.
func wait(r *request) ([]byte, *pbuf, error) {
	b, pb, _, err := waitSum(r)
	return b, pb, err
}

// waitSum is wait that also returns the checksum the message arrived with.
func waitSum(r *request) ([]byte, *pbuf, msgSum, error) {
	r.l.wait(nil, r)
	b, pb, err := r.buf, r.pb, r.err
	s := r.sum
	if err != nil {
		s = msgSum{}
	}
	r.recycle()
	return b, pb, s, err
}

// recv posts and waits in one step.
func (cl *call) recv(from, step int, mode recvMode, dst []byte) ([]byte, *pbuf, error) {
	return wait(cl.post(from, step, mode, dst))
}

// abandon gives up the call after err: it poisons the communicator (the
// call is failing anyway) so that every request still pending completes,
// then waits for those requests and releases them.
func (cl *call) abandon(err error, pending ...*request) {
	var pe *PeerError
	if !errors.As(err, &pe) {
		err = cl.c.localErr(cl.op, err)
	}
	cl.c.t.fail(err)
	for _, r := range pending {
		if r != nil {
			_, pb, _ := wait(r)
			putBuf(pb)
		}
	}
}
