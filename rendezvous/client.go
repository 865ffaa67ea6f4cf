package rendezvous

import (
	"bufio"
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fnmesh/fnmesh/punch"
)

// CheckAddr says what is wrong with a rendezvous server address, nil if it
// has the form Join takes, HOST:PORT with a port of 1..65535 (the host is
// resolved when the job is joined). Commands check an address with their
// other arguments through it (a bad --rendezvous is a usage error, not a
// failed join).
func CheckAddr(addr string) error {
	_, _, err := splitAddr(addr)
	return err
}

// splitAddr splits HOST:PORT, with a port of 1..65535.
func splitAddr(addr string) (host string, port uint16, err error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want HOST:PORT (%w)", err)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("port %q is not 1..65535", ps)
	}
	return host, uint16(p), nil
}

// Join joins job (of world ranks) at the rendezvous server at addr
// ("host:port") and returns this rank's mesh: one authenticated link to
// every other rank, made in parallel. secret is the deployment secret the
// server and every worker share; it never crosses the wire.
//
// Join opens a punch port (WithLocalAddr), connects from it to the server,
// proves it holds the secret and waits until world members have joined.
// The server then hands every member the peer table and one common moment
// to start, and every pair punches at once (TCP simultaneous open). The
// server decides each pair's tier from both sides' reports: a pair that has
// no link by the punch deadline (WithPunchTimeout) is relayed through the
// server, and every link, punched or relayed, passes punch.Handshake before
// Join returns it. Links look the same whatever their tier.
//
// Join returns when every link is ready, or fails with an error that says
// which rank and which peer (a member that leaves the job makes every other
// member's Join fail with an error matching ErrMemberLeft; a job that does
// not fill up in the server's job timeout, ErrJobTimeout). On failure no
// link stays open. ctx bounds the whole call, and only the call: the links
// of the Mesh it returns stay open after ctx ends, until Mesh.Close.
func Join(ctx context.Context, addr string, job string, world int, secret []byte, opts ...Option) (*Mesh, error) {
	began := time.Now()
	cfg := newClientConfig(opts)
	fail := func(err error) (*Mesh, error) {
		return nil, fmt.Errorf("rendezvous: join job %q at %s: %w", job, addr, err)
	}
	switch {
	case ctx == nil:
		return fail(errors.New("nil context"))
	case CheckJob(job) != nil:
		return fail(CheckJob(job))
	case world < 1 || world > MaxWorld:
		return fail(fmt.Errorf("world size %d out of range 1..%d", world, MaxWorld))
	case cfg.rankSet && (cfg.rank < 0 || cfg.rank >= world):
		return fail(fmt.Errorf("rank %d out of range for world size %d (want 0..%d)", cfg.rank, world, world-1))
	case cfg.punchTimeout < 0:
		return fail(fmt.Errorf("negative punch timeout %v", cfg.punchTimeout))
	case cfg.connectRetry < 0:
		return fail(fmt.Errorf("negative connect retry %v (WithConnectRetry: 0 fails at the first refusal)", cfg.connectRetry))
	}
	key, err := jobKey(secret, job)
	if err != nil {
		return fail(err)
	}
	servers, otherFamily, err := resolve(ctx, addr, cfg.laddr)
	if err != nil {
		return fail(err)
	}
	if !cfg.laddr.Addr().IsValid() {
		// Any address of the server's family: a dual-stack socket cannot
		// dial IPv4 peers from "[::]:port".
		any := netip.IPv4Unspecified()
		if servers[0].Addr().Is6() {
			any = netip.IPv6Unspecified()
		}
		cfg.laddr = netip.AddrPortFrom(any, cfg.laddr.Port())
	}
	// A port without an address is a STUN server given wrongly, not none:
	// only the zero AddrPort means no STUN server.
	if cfg.stun != (netip.AddrPort{}) {
		cfg.stun = unmapAP(cfg.stun)
		if err := checkEndpoint(cfg.stun); err != nil {
			return fail(fmt.Errorf("WithSTUNServer: %w", err))
		}
		if cfg.stun.Addr().Is4() != servers[0].Addr().Is4() {
			// The punch port meets the server, and its peers, over the
			// server's family: a public endpoint of the other is no use.
			return fail(fmt.Errorf("WithSTUNServer: STUN server %v is not of the family of the rendezvous server's address %v",
				cfg.stun, servers[0].Addr()))
		}
	}
	c := &client{
		cfg: cfg, job: job, world: world, secret: secret, key: key, servers: servers, otherFamily: otherFamily,
		rank: -1, log: cfg.log.With("job", job),
	}
	m, err := c.run(ctx)
	if err != nil {
		if c.rank >= 0 {
			err = fmt.Errorf("rank %d: %w", c.rank, err)
		}
		return fail(err)
	}
	m.Setup = time.Since(began)
	c.log.Info("mesh ready", "world", m.World, "setup", m.Setup) // c.log names the rank
	return m, nil
}

// resolve turns "host:port" into the endpoints to dial, in order: an IP
// literal as it is, a name's addresses through the system resolver. Of a
// name's addresses it keeps those of the punch port's family, in the
// resolver's order (a socket of one family cannot dial the other): the
// family of the address WithLocalAddr bound, else IPv4 when the name has an
// IPv4 address, else IPv6. Members that meet the server over one family
// have endpoints of that family, and can punch each other. other lists the
// addresses of the other family, which Join does not dial (its errors name
// them).
func resolve(ctx context.Context, addr string, laddr netip.AddrPort) (eps, other []netip.AddrPort, err error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ap = unmapAP(ap)
		if ap.Port() == 0 {
			return nil, nil, fmt.Errorf("server address %q: port \"0\" is not 1..65535", addr)
		}
		if a := laddr.Addr(); a.IsValid() && !a.IsUnspecified() && a.Unmap().Is4() != ap.Addr().Is4() {
			return nil, nil, fmt.Errorf("server address %q: not of the family of the punch port's address %v", addr, a)
		}
		return []netip.AddrPort{ap}, nil, nil
	}
	host, p, err := splitAddr(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("server address %q: %w", addr, err)
	}
	ips, err := lookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, nil, fmt.Errorf("server address %q: %w", addr, firstErr(err, errors.New("no address")))
	}
	want4 := slices.ContainsFunc(ips, func(ip netip.Addr) bool { return ip.Unmap().Is4() }) // IPv4 if there is one
	if a := laddr.Addr(); a.IsValid() && !a.IsUnspecified() {
		want4 = a.Unmap().Is4()
	}
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), p)
		switch {
		case ap.Addr().Is4() != want4:
			if !slices.Contains(other, ap) {
				other = append(other, ap)
			}
		case !slices.Contains(eps, ap):
			eps = append(eps, ap)
		}
	}
	if len(eps) == 0 { // only a bound punch port can want a family the name lacks
		family := "IPv6"
		if want4 {
			family = "IPv4"
		}
		return nil, nil, fmt.Errorf("server address %q: no %s address (the punch port's address is %v; the name has %v)",
			addr, family, laddr.Addr(), ips)
	}
	return eps, other, nil
}

// lookupNetIP resolves server names (a variable for tests).
var lookupNetIP = net.DefaultResolver.LookupNetIP

// handshakeLimit bounds the client's side of the control handshake.
const handshakeLimit = 30 * time.Second

// client is one Join in progress.
type client struct {
	cfg    clientConfig
	job    string
	world  int
	secret []byte
	key    []byte
	log    *slog.Logger

	servers     []netip.AddrPort // the server's endpoints to dial, in order
	otherFamily []netip.AddrPort // the server name's addresses Join does not dial (errors name them)
	server      netip.AddrPort   // the one of servers the control connection reached

	ctrl   net.Conn
	br     *bufio.Reader
	wmu    sync.Mutex     // serializes writes to ctrl (the reader answers pings)
	local  netip.AddrPort // the punch port: the configured address (or none) and the port reserved
	public netip.AddrPort // from STUN, if asked for
	rank   int
	ended  atomic.Bool // Join's context ended: that is why reading the server failed
	dmu    sync.Mutex  // orders ctrl's deadlines with the past one the end of Join's context sets
}

// deadline sets a deadline of the control connection through set (one of
// ctrl's deadline methods), unless Join's context has ended: the deadline in
// the past that its end set must stay, or a read or write it should cut
// short would block on.
func (c *client) deadline(set func(time.Time) error, t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.ended.Load() {
		return nil
	}
	return set(t)
}

// run is Join after its arguments are checked.
func (c *client) run(ctx context.Context) (*Mesh, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.ctrl.Close() // the server evicts this member and tells the others
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		c.dmu.Lock()
		defer c.dmu.Unlock()
		c.ended.Store(true) // before the deadline that makes the reader fail
		c.ctrl.SetDeadline(time.Unix(1, 0))
	})
	defer stop()

	// A server that accepts and then says nothing must not hold Join
	// forever, whatever ctx allows. (Through c.deadline, as every later
	// deadline: if ctx has ended already, its past deadline stays.)
	c.deadline(c.ctrl.SetDeadline, time.Now().Add(handshakeLimit))
	pingInterval, joined, err := c.handshake()
	if err != nil {
		return nil, ctxCause(ctx, err)
	}
	c.deadline(c.ctrl.SetWriteDeadline, time.Time{}) // the session's reader keeps the read deadline
	s := newSession(c, pingInterval)
	s.heard(joined)
	m, err := s.run(ctx)
	if err != nil {
		return nil, ctxCause(ctx, err)
	}
	ok = true
	return m, nil
}

// ctxEnded is ctx.Err(), or context.DeadlineExceeded once ctx's deadline
// has passed: a connection deadline set from it fires a moment before the
// context's own timer.
func ctxEnded(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) && ctx.Err() == nil {
		return context.DeadlineExceeded
	}
	return ctx.Err()
}

// ctxCause prefers the context's error to the I/O error it caused.
func ctxCause(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// connect reserves the punch port and dials the server from it. The port is
// held by a listener only until the control connection is up: the punch
// port proper (punch.Listen, which needs this member's rank) opens on the
// same port once the server has assigned the rank.
func (c *client) connect(ctx context.Context) error {
	ln, err := c.cfg.nw.ListenTCP(ctx, c.cfg.laddr)
	if err != nil {
		return fmt.Errorf("opening the punch port: %w", err)
	}
	defer ln.Close()
	port := addrPortOf(ln.Addr()).Port()
	c.local = netip.AddrPortFrom(c.cfg.laddr.Addr(), port)
	if c.cfg.stun.IsValid() {
		c.public = c.discover(ctx)
		if err := ctxEnded(ctx); err != nil {
			// Not a failed discovery to join without: Join is over.
			return fmt.Errorf("asking the STUN server %v for the public endpoint of port %d: %w", c.cfg.stun, port, err)
		}
	}
	ctrl, err := c.dialServer(ctx)
	if err != nil {
		return fmt.Errorf("connecting to the server from port %d: %w", port, err)
	}
	c.ctrl = ctrl
	c.br = bufio.NewReaderSize(ctrl, 4096)
	c.log = c.log.With("local", addrPortOf(ctrl.LocalAddr()))
	return nil
}

// dialServer dials the rendezvous server from the punch port, trying its
// endpoints in order (a name may have several) as net.Dialer does: the
// first that connects is the server. Each dial but a round's last gets a
// share of the time ctx leaves (at least 2 s, as net.Dialer gives), so that
// an endpoint that does not answer leaves time for the next. While
// endpoints refuse the connection (the server is not up yet, or
// restarting: workers and server are often started together) it tries
// those again, 20 ms later at first and up to 500 ms apart, for as long as
// WithConnectRetry allows; other failures (no route, a timeout) drop the
// endpoint. The error names every endpoint tried and what each did.
func (c *client) dialServer(ctx context.Context) (net.Conn, error) {
	began := time.Now()
	wait := 20 * time.Millisecond
	tries := make([]serverDial, len(c.servers))
	live := make([]int, len(c.servers)) // indexes of the endpoints still worth dialing
	for i, ap := range c.servers {
		tries[i].ep, live[i] = ap, i
	}
	fail := func(ctxErr error) error {
		return &serverDialError{tries: tries, ctxErr: ctxErr, took: time.Since(began), otherFamily: c.otherFamily}
	}
	for {
		var refused []int
		for k, i := range live {
			if err := ctxEnded(ctx); err != nil {
				return nil, fail(err)
			}
			dctx, cancel := ctx, context.CancelFunc(func() {})
			if d, ok := ctx.Deadline(); ok && k < len(live)-1 {
				dctx, cancel = context.WithDeadline(ctx, partialDeadline(time.Now(), d, len(live)-k))
			}
			dialed := time.Now()
			conn, err := c.cfg.nw.DialTCP(dctx, c.local, c.servers[i])
			cancel()
			if err == nil {
				c.server = c.servers[i]
				return conn, nil
			}
			t := &tries[i]
			t.err = err
			switch {
			case ctxEnded(ctx) != nil:
				// The dial Join's end cut short says nothing of the endpoint.
				t.err, t.cut = nil, true
				return nil, fail(ctxEnded(ctx))
			case errors.Is(err, syscall.ECONNREFUSED):
				t.refused++
				refused = append(refused, i)
			case dctx.Err() != nil:
				t.timedOut = time.Since(dialed) // its share of ctx's time ran out
			}
			if len(c.servers) > 1 && k < len(live)-1 {
				c.log.Debug("rendezvous server endpoint failed; trying the next", "endpoint", c.servers[i], "err", err)
			}
		}
		left := c.cfg.connectRetry - time.Since(began)
		if len(refused) == 0 || left <= 0 {
			return nil, fail(nil)
		}
		live = refused
		c.log.Debug("rendezvous server refused the connection; trying again", "in", wait, "endpoints", len(live))
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fail(ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// partialDeadline is the deadline of one of addrsLeft dials that share the
// time until deadline: an equal share, but at least 2 s (or all that is
// left), as net.Dialer splits its deadline among a name's addresses.
func partialDeadline(now, deadline time.Time, addrsLeft int) time.Time {
	const saneMinimum = 2 * time.Second
	left := deadline.Sub(now)
	share := left / time.Duration(addrsLeft)
	if share < saneMinimum {
		share = min(saneMinimum, left)
	}
	return now.Add(share)
}

// serverDial is what dialing one of the server's endpoints came to.
type serverDial struct {
	ep       netip.AddrPort
	refused  int           // connections refused
	err      error         // the last failure; nil if never dialed (or cut short by Join's end)
	cut      bool          // Join's end cut its dial short
	timedOut time.Duration // when not 0: the dial's share of ctx's time, this long, ran out
}

// serverDialError is the failure to connect to the server at any of its
// endpoints. It reads as the single endpoint's error when there was one;
// errors.Is finds the context's error and every endpoint's.
type serverDialError struct {
	tries       []serverDial
	ctxErr      error // Join's context ended
	took        time.Duration
	otherFamily []netip.AddrPort
}

func (e *serverDialError) Error() string {
	if len(e.tries) == 1 && len(e.otherFamily) == 0 {
		t := e.tries[0]
		switch {
		case e.ctxErr != nil && t.refused > 0:
			return fmt.Sprintf("%v (the server refused %d connections)", e.ctxErr, t.refused)
		case e.ctxErr != nil:
			return e.ctxErr.Error()
		case t.refused > 1:
			return fmt.Sprintf("refused %d times in %v (is the server up, and is this its rendezvous port?): %v",
				t.refused, e.took.Round(time.Millisecond), t.err)
		}
		return t.err.Error()
	}
	var b strings.Builder
	if e.ctxErr != nil {
		fmt.Fprintf(&b, "%v after %v; ", e.ctxErr, e.took.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "no endpoint of the server answered in %v", e.took.Round(time.Millisecond))
		if slices.ContainsFunc(e.tries, func(t serverDial) bool { return t.refused > 0 }) {
			b.WriteString(" (is the server up, and is this its rendezvous port?)")
		}
		b.WriteString(": ")
	}
	var untried []netip.AddrPort
	n := 0
	for _, t := range e.tries {
		if t.err == nil && t.refused == 0 && !t.cut {
			untried = append(untried, t.ep)
			continue
		}
		if n++; n > 1 {
			b.WriteString("; ")
		}
		switch {
		case t.cut && t.refused > 0:
			fmt.Fprintf(&b, "%v refused %d times, still dialing", t.ep, t.refused)
		case t.cut:
			fmt.Fprintf(&b, "%v still dialing", t.ep)
		case t.refused > 1:
			fmt.Fprintf(&b, "%v refused %d times", t.ep, t.refused)
		case t.refused == 1:
			fmt.Fprintf(&b, "%v refused", t.ep)
		case t.timedOut > 0:
			fmt.Fprintf(&b, "%v did not answer in %v", t.ep, t.timedOut.Round(time.Millisecond))
		default:
			fmt.Fprintf(&b, "%v: %v", t.ep, t.err)
		}
	}
	if n == 0 {
		b.WriteString("no endpoint dialed")
	}
	if len(untried) > 0 {
		fmt.Fprintf(&b, "; not dialed: %v", untried)
	}
	if len(e.otherFamily) > 0 {
		fmt.Fprintf(&b, "; not dialed, of the other family than the punch port's: %v", e.otherFamily)
	}
	return b.String()
}

func (e *serverDialError) Unwrap() []error {
	var errs []error
	if e.ctxErr != nil {
		errs = append(errs, e.ctxErr)
	}
	for _, t := range e.tries {
		if t.err != nil {
			errs = append(errs, t.err)
		}
	}
	return errs
}

// discover asks the STUN server for the punch port's public endpoint; a
// failure is logged, not fatal (the rendezvous server observes the endpoint
// anyway).
func (c *client) discover(ctx context.Context) netip.AddrPort {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sc, err := c.cfg.nw.DialTCP(sctx, c.local, c.cfg.stun)
	if err == nil {
		var ap netip.AddrPort
		ap, err = punch.DiscoverConn(sctx, sc)
		abortConn(sc) // frees the 4-tuple at once
		if err == nil {
			c.log.Debug("STUN: public endpoint", "endpoint", ap)
			return ap
		}
	}
	c.log.Warn("STUN discovery failed; joining without it", "server", c.cfg.stun, "err", err)
	return netip.AddrPort{}
}

// handshake runs hello, challenge, join, joined. members is the number of
// members of the job joined so far, as the server counted them when it
// accepted this one.
func (c *client) handshake() (pingInterval time.Duration, members int, err error) {
	if err := c.write(hello{}); err != nil {
		return 0, 0, fmt.Errorf("sending hello: %w", err)
	}
	msg, err := c.read(false)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, &Error{Code: CodeMalformed}) ||
			errors.Is(err, &Error{Code: CodeTooLarge}) || errors.Is(err, &Error{Code: CodeVersion}) {
			// Something that accepts and says nothing, or nothing of ours.
			return 0, 0, fmt.Errorf("no challenge from %v (an overloaded server, or not a rendezvous server's port?): %w", c.server, err)
		}
		return 0, 0, fmt.Errorf("waiting for the challenge: %w", err)
	}
	ch, ok := msg.(challenge)
	if !ok {
		return 0, 0, unexpected(msg, "challenge")
	}
	j := join{
		Echo: ch.Nonce, ClientNonce: newNonce(), Job: c.job, World: c.world, Rank: c.cfg.rank,
		PunchTimeout: c.cfg.punchTimeout, Public: c.public,
		Private: []netip.AddrPort{addrPortOf(c.ctrl.LocalAddr())},
	}
	signJoin(c.key, &j)
	if err := c.write(j); err != nil {
		return 0, 0, fmt.Errorf("sending join: %w", err)
	}
	if msg, err = c.read(true); err != nil {
		return 0, 0, fmt.Errorf("waiting for the server to accept the join: %w", err)
	}
	jd, ok := msg.(joined)
	if !ok {
		return 0, 0, unexpected(msg, "joined")
	}
	if want := joinedMAC(c.key, j.ClientNonce, ch.Nonce, c.world, jd.Joined); !hmac.Equal(want[:], jd.MAC[:]) {
		return 0, 0, errors.New("the server failed to prove it holds the job's secret")
	}
	c.log.Debug("joined; waiting for the world", "world", c.world, "joined", jd.Joined)
	return ch.PingInterval, jd.Joined, nil
}

// read reads one frame from the server; an error frame becomes its *Error,
// and a frame that does not decode an error that says the server sent it
// (badFrame) when sayBad is set (the challenge, the first frame, leaves
// that to its caller: what sends it may not be a rendezvous server).
func (c *client) read(sayBad bool) (message, error) {
	msg, err := readMessage(c.br, MaxPayload)
	if err != nil {
		if bad := badFrame(err); bad != nil && sayBad {
			return nil, bad
		}
		return nil, err
	}
	if e, ok := msg.(errorMsg); ok {
		return nil, &Error{Code: e.Code, Rank: e.Rank, Msg: e.Msg}
	}
	return msg, nil
}

func (c *client) write(m message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return writeMessage(c.ctrl, m)
}

// unexpected is a frame out of order from the server: the server broke the
// protocol. It is not an *Error: those are the server's refusals, and a
// bad-request one (a rank taken, say) is the caller's to act on.
func unexpected(msg message, want string) error {
	return fmt.Errorf("protocol error: the server sent %v, want %s", msg.msgType(), want)
}

// abortConn closes c with a RST where it can, so its 4-tuple is free at once.
func abortConn(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}
