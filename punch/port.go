package punch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by the methods of a Port after Close.
var ErrClosed = errors.New("punch: port closed")

// Port is one reusable local TCP port: it listens, dials the rendezvous
// server and STUN servers (Dial), and punches links to peers (Punch), all
// from the same local endpoint, so that a NAT maps every one of these
// connections to the same public endpoint (on NATs with endpoint-independent
// mapping).
//
// An accept loop runs the link handshake on every inbound connection and
// routes it, by the rank it proved, to the Punch waiting for that rank. A
// link that arrives before its Punch starts is held for a while (WithHold);
// a connection that fails the handshake (another job, a wrong secret, a rank
// that is not expected, another protocol, silence) is logged and closed with
// a RST. At most 64 inbound handshakes run at once; when all are taken, a new
// connection evicts the oldest, so idle connections cannot lock peers out.
//
// A Port is safe for concurrent use: many Punch calls (one per peer rank)
// and Dials may run at once.
type Port struct {
	nw   Network
	id   Identity
	opts options
	log  *slog.Logger
	ln   net.Listener
	addr netip.AddrPort

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop, inbound handshakes, Punch calls

	mu       sync.Mutex
	closed   bool
	inflight []*pendingConn        // inbound handshakes in progress, oldest first
	running  int                   // inbound handshake goroutines, evicted ones until they exit
	waiters  map[int]chan net.Conn // rank -> authenticated inbound links for its Punch
	held     map[int][]*heldLink   // rank -> early arrivals
	nheld    int
	linked   map[int]bool // ranks whose last Punch succeeded: late links are dropped
}

type heldLink struct {
	c     net.Conn
	timer *time.Timer
}

// pendingConn is an inbound connection whose handshake is running.
type pendingConn struct {
	c       net.Conn
	since   time.Time
	evicted bool // aborted to make room for a newer one (guarded by Port.mu)
}

// Listen opens a Port on laddr through nw for the rank and job of id. laddr
// may have port 0 (an ephemeral port; see Addr) or an unspecified address.
// The context bounds only the listen call itself.
func Listen(ctx context.Context, nw Network, laddr netip.AddrPort, id Identity, opts ...Option) (*Port, error) {
	switch {
	case ctx == nil:
		return nil, errors.New("punch: listen: nil context")
	case nw == nil:
		return nil, errors.New("punch: listen: nil network")
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("punch: listen: %w", err)
	}
	o := newOptions(opts)
	nw = withCongestion(nw, o.congestion)
	ln, err := nw.ListenTCP(ctx, laddr)
	if err != nil {
		return nil, fmt.Errorf("punch: %w", err)
	}
	addr, err := addrPort(ln.Addr())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("punch: listen on %v: %w", laddr, err)
	}
	p := &Port{
		nw:      nw,
		id:      id,
		opts:    o,
		log:     o.logger.With("port", addr.String(), "rank", id.Rank),
		ln:      ln,
		addr:    addr,
		waiters: make(map[int]chan net.Conn),
		held:    make(map[int][]*heldLink),
		linked:  make(map[int]bool),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// errNotOpened is the error of the methods of a nil or zero Port.
var errNotOpened = errors.New("punch: port not opened with Listen")

// opened reports whether p was made by Listen (a nil or zero Port was not).
func (p *Port) opened() error {
	if p == nil || p.ln == nil {
		return errNotOpened
	}
	return nil
}

// Addr returns the local endpoint the port is bound to (the zero AddrPort
// for a Port not opened with Listen).
func (p *Port) Addr() netip.AddrPort {
	if p == nil {
		return netip.AddrPort{}
	}
	return p.addr
}

// Rank returns the rank the port's links prove.
func (p *Port) Rank() int {
	if p == nil {
		return 0
	}
	return p.id.Rank
}

// Network returns the network the port lives on.
func (p *Port) Network() Network {
	if p == nil {
		return nil
	}
	return p.nw
}

// Dial connects to raddr from the port's own local endpoint, with no
// handshake: for the rendezvous server, a relay or a STUN server. The
// connection has TCP_NODELAY and the port's congestion control set. Only one
// connection can exist per 4-tuple: a second Dial to the same raddr while the
// first is open fails. Close ends a Dial in progress (ErrClosed).
func (p *Port) Dial(ctx context.Context, raddr netip.AddrPort) (net.Conn, error) {
	if err := p.opened(); err != nil {
		return nil, err
	}
	if ctx == nil {
		return nil, fmt.Errorf("punch: port %v: dial %v: nil context", p.addr, raddr)
	}
	ctx, done, err := p.track(ctx)
	if err != nil {
		return nil, fmt.Errorf("punch: port %v: dial %v: %w", p.addr, raddr, err)
	}
	defer done()
	c, err := p.nw.DialTCP(ctx, p.addr, raddr)
	if err != nil {
		return nil, fmt.Errorf("punch: port %v: dial %v: %w", p.addr, raddr, ctxErr(ctx, err))
	}
	if p.ctx.Err() != nil { // Close came as the dial completed
		abort(c)
		return nil, fmt.Errorf("punch: port %v: dial %v: %w", p.addr, raddr, ErrClosed)
	}
	p.tuneLink(c)
	return c, nil
}

// track counts a call on the port that Close must end and wait for (Dial,
// DiscoverTCP): the context returned is canceled with ErrClosed when the
// port closes; done ends the call. On a closed port it returns ErrClosed.
func (p *Port) track(ctx context.Context) (_ context.Context, done func(), _ error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	p.wg.Add(1)
	p.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(p.ctx, func() { cancel(ErrClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
		p.wg.Done()
	}, nil
}

// Close stops the port: it closes the listener and every held link, makes
// running Punch, Dial and DiscoverTCP calls return ErrClosed and waits for
// them and for the accept loop. Links already returned by Punch and connections returned by Dial
// stay open; they belong to the caller. Closing a Port not opened with
// Listen is an error.
func (p *Port) Close() error {
	if err := p.opened(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var drop []net.Conn
	for r, hs := range p.held {
		for _, h := range hs {
			h.timer.Stop()
			drop = append(drop, h.c)
		}
		delete(p.held, r)
	}
	p.nheld = 0
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	for _, c := range drop {
		abort(c)
	}
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("punch: close port %v: %w", p.addr, err)
	}
	return nil
}

func (p *Port) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// acceptLoop accepts until the listener closes and hands each connection to
// its own handshake (admit).
func (p *Port) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure (e.g. out of file descriptors): back
			// off as net/http does rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("punch: accept failed; retrying", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		p.admit(c)
	}
}

// admit starts the handshake of an accepted connection. At most
// maxPendingInbound handshakes run at a time; when they are all taken, the
// oldest is aborted (RST) to make room: connections that say nothing (stray
// scanners, a flood of idle connects) then cannot lock a real peer out, as
// they could if the newest were refused. A genuine handshake takes one
// round trip, so it is evicted only by maxPendingInbound connections that
// arrive within that round trip, and its Punch retries.
func (p *Port) admit(c net.Conn) {
	pc := &pendingConn{c: c, since: time.Now()}
	p.mu.Lock()
	if p.running >= 2*maxPendingInbound {
		// Evicted handshakes exit as soon as their connection is
		// closed; this bound only holds if they have not yet.
		p.mu.Unlock()
		p.log.Warn("punch: rejected inbound connection: too many handshakes in progress",
			"remote", c.RemoteAddr().String(), "limit", maxPendingInbound)
		abort(c)
		return
	}
	var victim *pendingConn
	if len(p.inflight) >= maxPendingInbound {
		victim = p.inflight[0]
		victim.evicted = true
		p.inflight = slices.Delete(p.inflight, 0, 1)
	}
	p.inflight = append(p.inflight, pc)
	p.running++
	p.wg.Add(1)
	p.mu.Unlock()
	if victim != nil {
		p.log.Warn("punch: aborted the oldest inbound handshake to make room: too many in progress",
			"remote", victim.c.RemoteAddr().String(), "age", time.Since(victim.since), "limit", maxPendingInbound)
		abort(victim.c)
	}
	go p.inbound(pc)
}

// finish takes pc off the handshakes in progress and reports whether it was
// evicted meanwhile (admit then closes it).
func (p *Port) finish(pc *pendingConn) (evicted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.inflight, pc); i >= 0 {
		p.inflight = slices.Delete(p.inflight, i, i+1)
	}
	return pc.evicted
}

// inbound authenticates one accepted connection and routes it by the rank
// it proved.
func (p *Port) inbound(pc *pendingConn) {
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
		p.wg.Done()
	}()
	c := pc.c
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.handshakeTimeout)
	rank, err := handshake(ctx, c, p.id, anyRank)
	cancel()
	if p.finish(pc) {
		return // evicted: admit logged it and closes c
	}
	if err != nil && p.ctx.Err() != nil {
		// Close cut the handshake short: not a rejection.
		p.log.Debug("punch: closed inbound connection mid-handshake: port closed", "remote", c.RemoteAddr().String())
		abort(c)
		return
	}
	if err != nil {
		err = fmt.Errorf("handshake with %v: %w", c.RemoteAddr(), err)
		p.log.Warn("punch: rejected inbound connection", "remote", c.RemoteAddr().String(), "err", err)
		abort(c)
		return
	}
	p.deliver(rank, c)
}

// deliver hands an authenticated inbound link to the Punch waiting for rank,
// or holds it until that Punch starts.
func (p *Port) deliver(rank int, c net.Conn) {
	p.mu.Lock()
	reason := ""
	switch w, waiting := p.waiters[rank]; {
	case p.closed:
		reason = "port closed"
	case waiting:
		select {
		case w <- c:
			p.mu.Unlock()
			p.log.Debug("punch: inbound link routed to punch", "peer", rank, "remote", c.RemoteAddr().String())
			return
		default:
			reason = "too many inbound links for one punch"
		}
	case p.linked[rank]:
		reason = "late link: punch to this rank already succeeded"
	case p.nheld >= p.opts.holdCapacity:
		reason = "holding area full"
	case len(p.held[rank]) >= holdPerRank:
		reason = "too many early links from this rank"
	default:
		h := &heldLink{c: c}
		h.timer = time.AfterFunc(p.opts.holdTimeout, func() { p.expire(rank, h) })
		p.held[rank] = append(p.held[rank], h)
		p.nheld++
		p.mu.Unlock()
		p.log.Debug("punch: holding early link", "peer", rank, "remote", c.RemoteAddr().String())
		return
	}
	p.mu.Unlock()
	p.log.Info("punch: dropped inbound link", "peer", rank, "remote", c.RemoteAddr().String(), "reason", reason)
	abort(c)
}

// expire closes a held link that no Punch claimed in time.
func (p *Port) expire(rank int, h *heldLink) {
	p.mu.Lock()
	hs := p.held[rank]
	i := indexOf(hs, h)
	if i < 0 { // claimed by a Punch or dropped by Close meanwhile
		p.mu.Unlock()
		return
	}
	p.held[rank] = append(hs[:i:i], hs[i+1:]...)
	if len(p.held[rank]) == 0 {
		delete(p.held, rank)
	}
	p.nheld--
	p.mu.Unlock()
	p.log.Info("punch: dropped early link: no punch claimed it", "peer", rank,
		"remote", h.c.RemoteAddr().String(), "after", p.opts.holdTimeout)
	abort(h.c)
}

func indexOf(hs []*heldLink, h *heldLink) int {
	for i, x := range hs {
		if x == h {
			return i
		}
	}
	return -1
}

// register makes the Punch to rank the receiver of its inbound links,
// starting with those held.
func (p *Port) register(rank int) (chan net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if _, busy := p.waiters[rank]; busy {
		return nil, fmt.Errorf("a punch to rank %d is already running on this port", rank)
	}
	ch := make(chan net.Conn, 2*holdPerRank)
	for _, h := range p.held[rank] {
		h.timer.Stop()
		ch <- h.c
	}
	p.nheld -= len(p.held[rank])
	delete(p.held, rank)
	delete(p.linked, rank)
	p.waiters[rank] = ch
	p.wg.Add(1)
	return ch, nil
}

// unregister ends the Punch to rank and closes the inbound links it did not
// take.
func (p *Port) unregister(rank int, ch chan net.Conn, linked bool) {
	p.mu.Lock()
	delete(p.waiters, rank)
	if linked {
		p.linked[rank] = true
	}
	var drop []net.Conn
	for len(ch) > 0 {
		drop = append(drop, <-ch)
	}
	p.mu.Unlock()
	for _, c := range drop {
		abort(c)
	}
	p.wg.Done()
}
