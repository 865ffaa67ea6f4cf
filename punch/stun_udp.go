package punch

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// Concurrent STUN over UDP. Several DiscoverUDP or DiscoverPacket calls may
// run at once from one port or on one socket (say, one per STUN server, to
// tell an endpoint-independent mapping from a symmetric one). A datagram
// reaches only one reader, and Linux (as netsim) hands the datagrams for a
// port shared by several sockets to one of them by a hash of their source,
// so the answers of one server all reach the same socket, whichever call
// sent the request. Each call therefore reads nothing itself:
//
//   - one reader goroutine per socket (stunReader) reads while any call
//     waits on that socket, and routes every answer by its transaction ID
//     to the call that sent the request, whichever of the process's sockets
//     on the same local endpoint that call sent it from (stunUDP.calls,
//     mayReceiveFor);
//   - concurrent DiscoverUDP calls on the same network and local endpoint
//     share one socket (sharedUDP), so an answer never lands on a socket
//     that is closing because another call is done.
//
// The reader stops, and the socket's read deadline is cleared, when the last
// call on the socket returns.

// stunUDP is the process's table of UDP transactions and socket readers.
var stunUDP = struct {
	mu      sync.Mutex
	calls   map[[stun.TransactionIDSize]byte]*stunCall
	readers map[net.PacketConn]*stunReader
	sockets map[udpKey]*sharedUDP
}{
	calls:   make(map[[stun.TransactionIDSize]byte]*stunCall),
	readers: make(map[net.PacketConn]*stunReader),
	sockets: make(map[udpKey]*sharedUDP),
}

// stunAnswer is a datagram routed to the call whose transaction it names.
type stunAnswer struct {
	b    []byte
	from netip.AddrPort
}

// stunCall is one Binding transaction over UDP waiting for its answer.
type stunCall struct {
	r       *stunReader     // the reader of the socket it was sent from
	answers chan stunAnswer // full: further copies are dropped
}

// stunReader reads one socket for the calls waiting on it. Its fields are
// guarded by stunUDP.mu.
type stunReader struct {
	pc       net.PacketConn
	local    netip.AddrPort // pc's local endpoint, unmapped; invalid if unknown
	shared   bool           // in stunUDP.readers (pc can be a map key)
	users    int            // calls using the reader
	stopping bool           // the last call left: the reader exits at its next read error
	err      error          // why reading failed, once dead is closed
	dead     chan struct{}
	exited   chan struct{} // the goroutine returned
	gone     chan struct{} // stopped: off the table, pc's deadline cleared
}

// acquireReader returns the running reader of pc, starting one if there is
// none, and counts the caller as its user until releaseReader.
func acquireReader(pc net.PacketConn) *stunReader {
	// A socket whose value cannot be a map key (never one of the net
	// package's or netsim's) gets a reader of its own call's.
	shared := reflect.ValueOf(pc).Comparable()
	for {
		stunUDP.mu.Lock()
		var r *stunReader
		if shared {
			r = stunUDP.readers[pc]
		}
		if r != nil && r.stopping {
			stunUDP.mu.Unlock()
			<-r.gone // about to stop: start anew after it
			continue
		}
		if r == nil {
			r = &stunReader{pc: pc, shared: shared, dead: make(chan struct{}), exited: make(chan struct{}), gone: make(chan struct{})}
			if ap, err := addrPort(pc.LocalAddr()); err == nil && ap.Port() != 0 {
				r.local = ap
			}
			if shared {
				stunUDP.readers[pc] = r
			}
			_ = pc.SetReadDeadline(time.Time{})
			go r.run()
		}
		r.users++
		stunUDP.mu.Unlock()
		return r
	}
}

// releaseReader ends a call's use of r; the last user stops the reader and
// returns once nothing reads pc any more and its read deadline is clear.
func releaseReader(r *stunReader) {
	stunUDP.mu.Lock()
	r.users--
	if r.users > 0 {
		stunUDP.mu.Unlock()
		return
	}
	select {
	case <-r.dead: // the reader has exited and left the table
		stunUDP.mu.Unlock()
		return
	default:
	}
	// Under the lock, so that the reader, which clears deadlines it did
	// not set, sees stopping before it sees this one.
	r.stopping = true
	err := r.pc.SetReadDeadline(aLongTimeAgo)
	stunUDP.mu.Unlock()
	if err == nil {
		<-r.exited
		_ = r.pc.SetReadDeadline(time.Time{})
	} // else a socket without deadlines: the reader exits after its next read
	stunUDP.mu.Lock()
	r.leaveTable()
	close(r.gone)
	stunUDP.mu.Unlock()
}

// leaveTable takes r off stunUDP.readers, under stunUDP.mu. A reader of a
// socket that cannot be a map key was never in it, and looking it up would
// panic (hash of unhashable type).
func (r *stunReader) leaveTable() {
	if r.shared && stunUDP.readers[r.pc] == r {
		delete(stunUDP.readers, r.pc)
	}
}

// run reads pc and routes STUN messages to the calls they answer until the
// last call stops it or reading fails.
func (r *stunReader) run() {
	defer close(r.exited)
	buf := make([]byte, MaxSTUNMessage)
	for {
		n, from, err := r.pc.ReadFrom(buf)
		if err != nil {
			stunUDP.mu.Lock()
			var ne net.Error
			switch {
			case r.stopping:
			case errors.As(err, &ne) && ne.Timeout():
				// A deadline someone else set: the calls are bounded by
				// their contexts, not by it.
				_ = r.pc.SetReadDeadline(time.Time{})
				stunUDP.mu.Unlock()
				continue
			default:
				r.err = err
				close(r.dead)
				r.leaveTable()
			}
			stunUDP.mu.Unlock()
			return
		}
		src, err := addrPort(from)
		if err != nil || n < stunHeaderLen || !IsSTUN(buf[:n]) {
			src = netip.AddrPort{}
		}
		var id [stun.TransactionIDSize]byte
		stunUDP.mu.Lock()
		// A stopping reader still passes on what it read before it exits:
		// on a socket without deadlines it is the answer to a call that
		// started since, whose own reader waits behind this one's read.
		stopping := r.stopping
		var c *stunCall
		if src.IsValid() {
			copy(id[:], buf[8:stunHeaderLen])
			c = stunUDP.calls[id]
		}
		if c != nil && (c.r == r || (r.shared && c.r.pc == r.pc) || mayReceiveFor(r.local, c.r.local)) {
			select {
			case c.answers <- stunAnswer{b: append([]byte(nil), buf[:n]...), from: src}:
			default:
			}
		}
		stunUDP.mu.Unlock()
		if stopping {
			return
		}
	}
}

// mayReceiveFor reports whether a socket bound to local may receive the
// answers to requests sent from a socket bound to sender: on Linux (as in
// netsim) a datagram goes to a socket bound to its destination address if
// there is one, else to one bound to all addresses, and among the sockets
// bound to the same address and port (a SO_REUSEPORT group) to one by a
// hash of its source. So either both are bound to the same address and port,
// or the sender is bound to all addresses (its requests leave from whichever
// address the route picks) of local's family (:: includes IPv4, 0.0.0.0 no
// IPv6). A port number alone is not enough: sockets of the same port on
// other addresses, or on other netsim hosts, are not the sender's. Both
// endpoints are unmapped; an invalid one (local address unknown) matches
// nothing.
func mayReceiveFor(local, sender netip.AddrPort) bool {
	if !local.IsValid() || !sender.IsValid() || local.Port() != sender.Port() {
		return false
	}
	l, s := local.Addr(), sender.Addr()
	return l == s || s.IsUnspecified() && (s.Is6() || l.Is4())
}

// addCall registers the transaction of req, sent on r's socket, for its
// answers; the returned func takes it off.
func addCall(r *stunReader, req *stun.Message) (*stunCall, func()) {
	c := &stunCall{r: r, answers: make(chan stunAnswer, 4)}
	stunUDP.mu.Lock()
	stunUDP.calls[req.TransactionID] = c // 96 random bits: unique
	stunUDP.mu.Unlock()
	return c, func() {
		stunUDP.mu.Lock()
		delete(stunUDP.calls, req.TransactionID)
		stunUDP.mu.Unlock()
	}
}

// udpKey names a socket DiscoverUDP calls share.
type udpKey struct {
	nw    Network
	laddr netip.AddrPort
}

// sharedUDP is a socket of DiscoverUDP shared by the calls on one network
// and local endpoint. Fields are guarded by stunUDP.mu, except that pc and
// err are set once, before ready is closed.
type sharedUDP struct {
	pc    net.PacketConn
	err   error
	ready chan struct{}
	users int
}

// openUDP returns the socket for a DiscoverUDP call on laddr: the one
// concurrent calls on the same nw and laddr already use, or a new one. A
// socket on port 0 (a new ephemeral port each time) is never shared. The
// returned func ends the call's use; the last one closes the socket.
func openUDP(ctx context.Context, nw Network, laddr netip.AddrPort) (net.PacketConn, func(), error) {
	if laddr.Port() == 0 || !reflect.ValueOf(nw).Comparable() {
		pc, err := nw.ListenUDP(ctx, laddr)
		if err != nil {
			return nil, nil, err
		}
		return pc, func() { pc.Close() }, nil
	}
	k := udpKey{nw, laddr}
	for {
		stunUDP.mu.Lock()
		s := stunUDP.sockets[k]
		if s == nil {
			s = &sharedUDP{ready: make(chan struct{}), users: 1}
			stunUDP.sockets[k] = s
			stunUDP.mu.Unlock()
			s.pc, s.err = nw.ListenUDP(ctx, laddr)
			if s.err != nil {
				stunUDP.mu.Lock()
				delete(stunUDP.sockets, k)
				stunUDP.mu.Unlock()
				close(s.ready)
				return nil, nil, s.err
			}
			close(s.ready)
			return s.pc, func() { closeUDP(k, s) }, nil
		}
		s.users++
		stunUDP.mu.Unlock()
		select {
		case <-s.ready:
		case <-ctx.Done():
			closeUDP(k, s)
			return nil, nil, context.Cause(ctx)
		}
		if s.err != nil {
			// The opener's failure may be its own context's: try again,
			// as the opener this time if no one else is.
			closeUDP(k, s)
			continue
		}
		return s.pc, func() { closeUDP(k, s) }, nil
	}
}

// closeUDP ends one call's use of s and closes the socket after the last.
func closeUDP(k udpKey, s *sharedUDP) {
	stunUDP.mu.Lock()
	s.users--
	last := s.users == 0
	if last && stunUDP.sockets[k] == s {
		delete(stunUDP.sockets, k)
	}
	stunUDP.mu.Unlock()
	if last && s.pc != nil {
		s.pc.Close()
	}
}
