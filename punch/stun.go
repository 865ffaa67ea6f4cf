package punch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/pion/stun/v4"
)

// STUN (RFC 5389) Binding: a client asks a server which endpoint its
// request came from, i.e. its reflexive (public) address as a NAT maps it.
// This file holds both sides: the client (DiscoverTCP, DiscoverUDP,
// DiscoverConn, DiscoverPacket) and the server pieces the rendezvous server
// uses (STUNResponse, ServeSTUNPacket, ServeSTUNConn, ReadSTUNMessage,
// IsSTUN).

// MaxSTUNMessage bounds a STUN message read from a stream or a datagram.
// Binding messages are well under 600 bytes.
const MaxSTUNMessage = 2048

const stunHeaderLen = 20

// stunSoftware is the SOFTWARE attribute of fnmesh's responses.
var stunSoftware = stun.NewSoftware("fnmesh")

// UDP retransmission (RFC 5389 section 7.2.1 with a shorter first RTO):
// requests at 0, 250, 750, 1750, ... ms, at most stunRc of them, then a
// last wait of stunRm RTOs.
const (
	stunRTO = 250 * time.Millisecond
	stunRc  = 7
	stunRm  = 16
)

// ErrNotSTUN is returned for bytes that are not a STUN message.
var ErrNotSTUN = errors.New("not a STUN message")

// IsSTUN reports whether b starts like a STUN message: the two top bits of
// the type are zero and the magic cookie is in place. It needs the first 8
// bytes; a server that multiplexes STUN with another protocol on one port
// can sniff with it.
func IsSTUN(b []byte) bool {
	return len(b) >= 8 && b[0]&0xC0 == 0 && binary.BigEndian.Uint32(b[4:8]) == 0x2112A442
}

// ReadSTUNMessage reads one STUN message from a stream (RFC 5389 framing
// over TCP: the header's length field says how long the message is). It
// returns io.EOF only if the stream ended before the first byte.
func ReadSTUNMessage(r io.Reader) ([]byte, error) {
	b := make([]byte, stunHeaderLen, 128)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading STUN header: %w", err)
	}
	if !IsSTUN(b) {
		return nil, fmt.Errorf("%w (first bytes %x)", ErrNotSTUN, b[:8])
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 || stunHeaderLen+n > MaxSTUNMessage {
		return nil, fmt.Errorf("STUN message with a body of %d bytes (a multiple of 4 up to %d wanted)",
			n, MaxSTUNMessage-stunHeaderLen)
	}
	b = append(b, make([]byte, n)...)
	if _, err := io.ReadFull(r, b[stunHeaderLen:]); err != nil {
		return nil, fmt.Errorf("reading STUN body: %w", noEOF(err))
	}
	return b, nil
}

// STUNResponse answers one STUN message req received from from, as a STUN
// server does: a Binding request gets a success response with
// XOR-MAPPED-ADDRESS set to from, SOFTWARE and FINGERPRINT. A request of
// another method gets a 400 error response; one with comprehension-required
// attributes this server does not know gets 420 with UNKNOWN-ATTRIBUTES.
// Anything else (not STUN, an indication or response, a bad FINGERPRINT)
// returns an error, and the caller should drop it without answering.
func STUNResponse(req []byte, from netip.AddrPort) ([]byte, error) {
	if !IsSTUN(req) {
		return nil, ErrNotSTUN
	}
	m := new(stun.Message)
	if err := stun.Decode(req, m); err != nil {
		return nil, fmt.Errorf("decoding STUN message: %w", err)
	}
	if m.Type.Class != stun.ClassRequest {
		return nil, fmt.Errorf("STUN %v is not a request", m.Type)
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			return nil, fmt.Errorf("STUN request: %w", err)
		}
	}
	errorResponse := func(setters ...stun.Setter) ([]byte, error) {
		all := append([]stun.Setter{
			stun.NewType(m.Type.Method, stun.ClassErrorResponse),
			stun.NewTransactionIDSetter(m.TransactionID),
		}, setters...)
		all = append(all, stunSoftware, stun.Fingerprint)
		resp, err := stun.Build(all...)
		if err != nil {
			return nil, fmt.Errorf("building STUN error response: %w", err)
		}
		return resp.Raw, nil
	}
	if m.Type.Method != stun.MethodBinding {
		return errorResponse(stun.ErrorCodeAttribute{Code: stun.CodeBadRequest,
			Reason: []byte("only Binding is served")})
	}
	var unknown stun.UnknownAttributes
	for _, a := range m.Attributes {
		if a.Type.Required() && !a.Type.Known() {
			unknown = append(unknown, a.Type)
		}
	}
	if len(unknown) > 0 {
		return errorResponse(stun.CodeUnknownAttribute, unknown)
	}
	if !from.IsValid() {
		return nil, fmt.Errorf("STUN request from an invalid address %v", from)
	}
	resp, err := stun.Build(
		stun.BindingSuccess,
		stun.NewTransactionIDSetter(m.TransactionID),
		&stun.XORMappedAddress{IP: from.Addr().Unmap().AsSlice(), Port: int(from.Port())},
		stunSoftware,
		stun.Fingerprint,
	)
	if err != nil {
		return nil, fmt.Errorf("building STUN response: %w", err)
	}
	return resp.Raw, nil
}

// ServeSTUNPacket answers STUN Binding requests that arrive on pc until ctx
// ends (it then returns nil) or reading fails (it returns that error, e.g.
// net.ErrClosed if pc was closed). Datagrams that are not STUN requests are
// dropped. pc stays open, its read deadline cleared.
func ServeSTUNPacket(ctx context.Context, pc net.PacketConn) error {
	switch {
	case ctx == nil:
		return errors.New("STUN server: nil context")
	case pc == nil:
		return errors.New("STUN server: nil packet connection")
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = pc.SetReadDeadline(aLongTimeAgo)
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // the deadline in the past is set: clear it after
		}
		_ = pc.SetReadDeadline(time.Time{})
	}()
	buf := make([]byte, MaxSTUNMessage)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("STUN server on %v: %w", pc.LocalAddr(), err)
		}
		src, err := addrPort(from)
		if err != nil {
			continue
		}
		resp, err := STUNResponse(buf[:n], src)
		if err != nil {
			continue
		}
		_, _ = pc.WriteTo(resp, from) // a lost answer is retransmitted for by the client
	}
}

// ServeSTUNConn answers STUN Binding requests on a stream connection (STUN
// over TCP) until the client closes it (it then returns nil), ctx ends, or
// the client sends something that is not a STUN request (an error). It does
// not close c. A server that sniffed the first bytes of c with IsSTUN must
// hand over a net.Conn that still yields those bytes.
func ServeSTUNConn(ctx context.Context, c net.Conn) error {
	switch {
	case ctx == nil:
		return errors.New("STUN over TCP: nil context")
	case c == nil:
		return errors.New("STUN over TCP: nil connection")
	}
	from, err := addrPort(c.RemoteAddr())
	if err != nil {
		return fmt.Errorf("STUN over TCP: remote address: %w", err)
	}
	release := watchConn(ctx, c)
	defer release()
	for {
		req, err := ReadSTUNMessage(c)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return ctxErr(ctx, fmt.Errorf("STUN over TCP from %v: %w", from, err))
		}
		resp, err := STUNResponse(req, from)
		if err != nil {
			return fmt.Errorf("STUN over TCP from %v: %w", from, err)
		}
		if _, err := c.Write(resp); err != nil {
			return ctxErr(ctx, fmt.Errorf("STUN over TCP to %v: %w", from, err))
		}
	}
}

// newBindingRequest builds a Binding request with a fresh transaction ID.
func newBindingRequest() (*stun.Message, error) {
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("building STUN request: %w", err)
	}
	return m, nil
}

// parseBindingResponse checks that b answers req and returns the mapped
// address in it: its XOR-MAPPED-ADDRESS, or, from a server that sends none
// (RFC 3489), its MAPPED-ADDRESS. A malformed XOR-MAPPED-ADDRESS is an
// error, whatever else the response holds. ok is false for a message that is not the answer (another
// transaction, not STUN): the caller should keep waiting.
func parseBindingResponse(b []byte, req *stun.Message) (addr netip.AddrPort, ok bool, err error) {
	if !IsSTUN(b) {
		return addr, false, nil
	}
	m := new(stun.Message)
	if err := stun.Decode(b, m); err != nil || m.TransactionID != req.TransactionID {
		return addr, false, nil
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			return addr, false, nil
		}
	}
	switch m.Type {
	case stun.BindingSuccess:
	case stun.BindingError:
		var ec stun.ErrorCodeAttribute
		if err := ec.GetFrom(m); err != nil {
			return addr, true, errors.New("STUN server answered with an error")
		}
		return addr, true, fmt.Errorf("STUN server answered with error %v", ec)
	default:
		return addr, false, nil
	}
	// XOR-MAPPED-ADDRESS, when present, is the answer: MAPPED-ADDRESS is
	// taken only from a server that sends no XOR-MAPPED-ADDRESS (RFC 3489),
	// never in place of a malformed one, since a NAT ALG may have rewritten
	// it (the reason RFC 5389 obfuscates the address with XOR).
	ip, port, err := mappedAddress(m, stun.AttrXORMappedAddress)
	if errors.Is(err, stun.ErrAttributeNotFound) {
		ip, port, err = mappedAddress(m, stun.AttrMappedAddress)
		if errors.Is(err, stun.ErrAttributeNotFound) {
			return addr, true, errors.New("STUN response without a mapped address (no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS)")
		}
		if err != nil {
			return addr, true, fmt.Errorf("STUN response with no XOR-MAPPED-ADDRESS and a malformed MAPPED-ADDRESS: %w", err)
		}
	} else if err != nil {
		return addr, true, fmt.Errorf("STUN response with a malformed XOR-MAPPED-ADDRESS: %w", err)
	}
	a, okIP := netip.AddrFromSlice(ip)
	a = a.Unmap()
	// No packet comes from an unspecified, multicast or broadcast address:
	// such a mapped address is the server's garbage, and peers told to dial
	// it would fail (Punch refuses an unspecified endpoint outright). The
	// family may differ from the connection's: through NAT64 an IPv6 client
	// is seen from an IPv4 address.
	if !okIP || port <= 0 || port > 65535 || a.IsUnspecified() || a.IsMulticast() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		shown := ip.String()
		if okIP {
			shown = a.String()
		}
		return addr, true, fmt.Errorf("STUN response with an invalid mapped address %s",
			net.JoinHostPort(shown, strconv.Itoa(port)))
	}
	return netip.AddrPortFrom(a, uint16(port)), true, nil
}

// mappedAddress decodes the first attribute t (XOR-MAPPED-ADDRESS or
// MAPPED-ADDRESS) of m. Its value must be exactly a family and port (4
// bytes) and an address of that family: pion/stun takes a shorter address
// with its missing bytes as zeros and ignores bytes beyond it. An absent
// attribute is stun.ErrAttributeNotFound.
func mappedAddress(m *stun.Message, t stun.AttrType) (net.IP, int, error) {
	v, err := m.Get(t)
	if err != nil {
		return nil, 0, err
	}
	if len(v) < 4 {
		return nil, 0, fmt.Errorf("%d bytes, 8 (IPv4) or 20 (IPv6) wanted", len(v))
	}
	var ipLen int
	switch family := binary.BigEndian.Uint16(v[0:2]); family {
	case 1:
		ipLen = net.IPv4len
	case 2:
		ipLen = net.IPv6len
	default:
		return nil, 0, fmt.Errorf("address family %#04x, 0x0001 (IPv4) or 0x0002 (IPv6) wanted", family)
	}
	if len(v) != 4+ipLen {
		return nil, 0, fmt.Errorf("%d bytes, %d for its family wanted", len(v), 4+ipLen)
	}
	if t == stun.AttrXORMappedAddress {
		var a stun.XORMappedAddress
		if err := a.GetFrom(m); err != nil {
			return nil, 0, err
		}
		return a.IP, a.Port, nil
	}
	var a stun.MappedAddress
	if err := a.GetFrom(m); err != nil {
		return nil, 0, err
	}
	return a.IP, a.Port, nil
}

// DiscoverConn runs one STUN Binding transaction over an open stream
// connection c (STUN over TCP, RFC 5389 framing) and returns the reflexive
// endpoint the server saw. It honours ctx and leaves c open, its deadlines
// cleared.
func DiscoverConn(ctx context.Context, c net.Conn) (netip.AddrPort, error) {
	switch {
	case ctx == nil:
		return netip.AddrPort{}, errors.New("STUN over TCP: nil context")
	case c == nil:
		return netip.AddrPort{}, errors.New("STUN over TCP: nil connection")
	}
	req, err := newBindingRequest()
	if err != nil {
		return netip.AddrPort{}, err
	}
	release := watchConn(ctx, c)
	defer release()
	if _, err := c.Write(req.Raw); err != nil {
		return netip.AddrPort{}, ctxErr(ctx, fmt.Errorf("STUN over TCP to %v: %w", c.RemoteAddr(), err))
	}
	for range 4 { // skip a few stray messages, never loop forever
		b, err := ReadSTUNMessage(c)
		if err != nil {
			return netip.AddrPort{}, ctxErr(ctx, fmt.Errorf("STUN over TCP to %v: %w", c.RemoteAddr(), noEOF(err)))
		}
		addr, ok, err := parseBindingResponse(b, req)
		if ok {
			if err != nil {
				return addr, fmt.Errorf("STUN over TCP to %v: %w", c.RemoteAddr(), err)
			}
			return addr, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("STUN over TCP to %v: no answer to the Binding request", c.RemoteAddr())
}

// DiscoverTCP asks the STUN server at stunServer, over TCP from p's own
// local endpoint, for the port's reflexive (public) endpoint: the one peers
// behind other NATs should dial. The STUN connection is closed with a RST so
// that its 4-tuple is free at once (a rendezvous server that serves STUN on
// its control port is dialed from the same 4-tuple next). Closing p ends a
// DiscoverTCP in progress (ErrClosed).
func DiscoverTCP(ctx context.Context, p *Port, stunServer netip.AddrPort) (netip.AddrPort, error) {
	if err := p.opened(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("STUN: %w", err)
	}
	if ctx == nil {
		return netip.AddrPort{}, errors.New("STUN: nil context")
	}
	ctx, done, err := p.track(ctx) // Close ends the transaction too
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("STUN: port %v: %w", p.addr, err)
	}
	defer done()
	c, err := p.Dial(ctx, stunServer)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("STUN: %w", err)
	}
	defer abort(c)
	return DiscoverConn(ctx, c)
}

// DiscoverUDP asks the STUN server at stunServer, over UDP from a reusable
// socket on laddr, for the reflexive endpoint of laddr. laddr is usually the
// punch port's address: TCP and UDP port numbers are separate, so the UDP
// socket of the same number can be opened next to it.
//
// Requests are retransmitted as RFC 5389 (section 7.2.1) says, with a first
// RTO of 250 ms: at 0, 250, 750, 1750, 3750, 7750 and 15750 ms, 7 requests
// at most; with no answer 4 s (16 RTOs) after the last, the call fails
// (after 19.75 s). It returns at once when ctx ends.
//
// Concurrent calls are safe and independent, also from one laddr and to one
// server: each runs its own transaction and gets its own answer as soon as
// it arrives, not later for the others (calls on the same nw and laddr share
// one socket, and the answers are routed by transaction ID to the call that
// sent the request; see DiscoverPacket).
func DiscoverUDP(ctx context.Context, nw Network, laddr, stunServer netip.AddrPort) (netip.AddrPort, error) {
	switch {
	case ctx == nil:
		return netip.AddrPort{}, errors.New("STUN over UDP: nil context")
	case nw == nil:
		return netip.AddrPort{}, errors.New("STUN over UDP: nil network")
	}
	pc, done, err := openUDP(ctx, nw, laddr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("STUN over UDP: %w", err)
	}
	defer done()
	return DiscoverPacket(ctx, pc, stunServer)
}

// DiscoverPacket runs a STUN Binding transaction with stunServer over the
// open UDP socket pc, retransmitting as DiscoverUDP does, and returns the
// reflexive endpoint the server saw. Datagrams from elsewhere, and answers to
// other transactions, are ignored.
//
// Concurrent calls on one pc (or on sockets of one local endpoint) are safe and
// independent: while any call runs, one goroutine reads pc and routes each
// answer by its transaction ID to the call that sent the request. The
// caller must not read pc itself meanwhile (what it read would be lost to
// the calls, and what they read is lost to it: datagrams that answer no
// running call are dropped). When the last call on pc returns, nothing reads
// pc any more (but on a pc whose SetReadDeadline fails, which cannot be woken,
// until its next datagram: passed to a call it answers, else lost); pc stays
// open, its read deadline cleared.
func DiscoverPacket(ctx context.Context, pc net.PacketConn, stunServer netip.AddrPort) (netip.AddrPort, error) {
	fail := func(err error) (netip.AddrPort, error) {
		return netip.AddrPort{}, fmt.Errorf("STUN over UDP to %v: %w", stunServer, err)
	}
	switch {
	case ctx == nil:
		return fail(errors.New("nil context"))
	case pc == nil:
		return fail(errors.New("nil packet connection"))
	}
	req, err := newBindingRequest()
	if err != nil {
		return fail(err)
	}
	dst := net.UDPAddrFromAddrPort(stunServer)
	want := netip.AddrPortFrom(stunServer.Addr().Unmap(), stunServer.Port())

	r := acquireReader(pc)
	defer releaseReader(r)
	call, remove := addCall(r, req)
	defer remove()

	if ctx.Err() != nil {
		return fail(context.Cause(ctx))
	}
	rto := stunRTO
	for sent := 1; ; sent++ {
		if _, err := pc.WriteTo(req.Raw, dst); err != nil {
			return fail(ctxErr(ctx, err))
		}
		wait := rto
		if sent == stunRc {
			wait = stunRm * stunRTO
		}
		t := time.NewTimer(wait)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return fail(fmt.Errorf("%w: no answer after %d %s", context.Cause(ctx), sent, plural(sent, "request")))
			case <-r.dead:
				t.Stop()
				return fail(ctxErr(ctx, r.err))
			case <-t.C:
				break wait // time to retransmit
			case a := <-call.answers:
				if a.from != want {
					continue
				}
				addr, ok, err := parseBindingResponse(a.b, req)
				if !ok {
					continue
				}
				t.Stop()
				if err != nil {
					return fail(err)
				}
				return addr, nil
			}
		}
		if sent == stunRc {
			return fail(fmt.Errorf("no answer after %d requests", sent))
		}
		rto *= 2
	}
}
