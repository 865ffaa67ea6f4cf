package rendezvous

import (
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"
)

// message is one protocol message; encodeFrame and decodeFrame convert it.
type message interface {
	msgType() msgType
	appendPayload(b []byte) []byte
}

type (
	// hello opens a control connection. Empty payload.
	hello struct{}

	// challenge gives the client a fresh nonce to sign, and the interval at
	// which the server will ping (the client treats three missed pings as a
	// dead server).
	challenge struct {
		Nonce        [nonceSize]byte
		PingInterval time.Duration // sent in milliseconds
	}

	// join asks to join a job. MAC covers every payload byte before it.
	join struct {
		Echo         [nonceSize]byte // the challenge nonce of this connection
		ClientNonce  [nonceSize]byte // the server proves the secret over it in joined
		Job          string
		World        int
		Rank         int            // -1: any rank
		PunchTimeout time.Duration  // sent in milliseconds; 0: the server's default
		Public       netip.AddrPort // STUN-discovered public endpoint, if any
		Private      []netip.AddrPort
		MAC          [macSize]byte
	}

	// joined accepts a join; MAC proves the server holds the secret (and
	// covers Joined).
	joined struct {
		World  int
		Joined int // members of the job joined so far, this one included (1..World)
		MAC    [macSize]byte
	}

	// ping measures the round trip and keeps the connection alive; it also
	// tells a waiting member how many members of its job have joined (the
	// world once the job has started), so that a worker whose wait ends
	// can say how far its job got.
	ping struct {
		Seq    uint32
		Joined int // 1..MaxWorld
	}
	pong struct{ Seq uint32 }

	// peers is the table of a complete job, indexed by rank; the same bytes
	// go to every member.
	peers struct {
		Members []peerEntry
	}

	// start tells a member its rank and when to punch: Delay after this
	// frame arrives, every member of the job starts at the same moment.
	start struct {
		Rank         int
		Delay        time.Duration // sent in microseconds
		PunchTimeout time.Duration // sent in milliseconds
		RelayTimeout time.Duration // sent in milliseconds
	}

	// report is the outcome of one pair's punch on one side.
	report struct {
		Peer    int
		Outcome outcome
	}

	// verdict is the server's decision for a pair, sent to both sides.
	verdict struct {
		Peer  int
		Tier  Tier
		Nonce [nonceSize]byte // relay only: single-use ticket for the relay connection
	}

	done struct{}

	// relayHello opens a relay connection for one pair.
	relayHello struct {
		Job   string
		Rank  int
		Peer  int
		Nonce [nonceSize]byte // from the relay verdict
		MAC   [macSize]byte
	}

	relayReady struct{}

	// errorMsg is the wire form of *Error.
	errorMsg struct {
		Code Code
		Rank int // -1: none
		Msg  string
	}
)

// peerEntry is one member in the peer table.
type peerEntry struct {
	Observed netip.AddrPort   // source of its control connection, as the server saw it
	Public   netip.AddrPort   // what it discovered with STUN, if anything
	Private  []netip.AddrPort // its local endpoints
}

// outcome is a client's result for one pair.
type outcome uint8

const (
	outcomeFailed  outcome = 0 // no verified link before the deadline
	outcomeLAN     outcome = 1 // verified link to one of the peer's private endpoints
	outcomePublic  outcome = 2 // verified link through the peer's public endpoint
	outcomeInvalid outcome = 3
)

func (hello) msgType() msgType      { return typeHello }
func (challenge) msgType() msgType  { return typeChallenge }
func (join) msgType() msgType       { return typeJoin }
func (joined) msgType() msgType     { return typeJoined }
func (ping) msgType() msgType       { return typePing }
func (pong) msgType() msgType       { return typePong }
func (peers) msgType() msgType      { return typePeers }
func (start) msgType() msgType      { return typeStart }
func (report) msgType() msgType     { return typeReport }
func (verdict) msgType() msgType    { return typeVerdict }
func (done) msgType() msgType       { return typeDone }
func (relayHello) msgType() msgType { return typeRelayHello }
func (relayReady) msgType() msgType { return typeRelayReady }
func (errorMsg) msgType() msgType   { return typeError }

func (hello) appendPayload(b []byte) []byte      { return b }
func (done) appendPayload(b []byte) []byte       { return b }
func (relayReady) appendPayload(b []byte) []byte { return b }

func (m challenge) appendPayload(b []byte) []byte {
	return enc(b).raw(m.Nonce[:]).u32(millis(m.PingInterval))
}

// signedPart returns the join payload without its MAC: the bytes the MAC covers.
func (m join) signedPart(b []byte) []byte {
	return enc(b).raw(m.Echo[:]).raw(m.ClientNonce[:]).str8(m.Job).u32(uint32(m.World)).rank(m.Rank).
		u32(millis(m.PunchTimeout)).optEndpoint(m.Public).endpoints(m.Private)
}

func (m join) appendPayload(b []byte) []byte { return append(m.signedPart(b), m.MAC[:]...) }

func (m joined) appendPayload(b []byte) []byte {
	return enc(b).u32(uint32(m.World)).u32(uint32(m.Joined)).raw(m.MAC[:])
}

func (m ping) appendPayload(b []byte) []byte { return enc(b).u32(m.Seq).u32(uint32(m.Joined)) }
func (m pong) appendPayload(b []byte) []byte { return enc(b).u32(m.Seq) }

func (m peers) appendPayload(b []byte) []byte {
	e := enc(b).u32(uint32(len(m.Members)))
	for _, p := range m.Members {
		e = e.endpoint(p.Observed).optEndpoint(p.Public).endpoints(p.Private)
	}
	return e
}

func (m start) appendPayload(b []byte) []byte {
	d := m.Delay.Microseconds()
	d = max(0, min(d, maxDelayMicro))
	return enc(b).rank(m.Rank).u32(uint32(d)).u32(millis(m.PunchTimeout)).u32(millis(m.RelayTimeout))
}

func (m report) appendPayload(b []byte) []byte { return enc(b).rank(m.Peer).u8(uint8(m.Outcome)) }

func (m verdict) appendPayload(b []byte) []byte {
	e := enc(b).rank(m.Peer).u8(uint8(m.Tier))
	if m.Tier == TierRelay {
		e = e.raw(m.Nonce[:])
	}
	return e
}

func (m relayHello) signedPart(b []byte) []byte {
	return enc(b).str8(m.Job).rank(m.Rank).rank(m.Peer).raw(m.Nonce[:])
}

func (m relayHello) appendPayload(b []byte) []byte { return append(m.signedPart(b), m.MAC[:]...) }

func (m errorMsg) appendPayload(b []byte) []byte {
	msg := m.Msg
	if len(msg) > maxTextLen {
		msg = truncateUTF8(msg, maxTextLen)
	}
	return enc(b).u16(uint16(m.Code)).rank(m.Rank).str16(msg)
}

// decodePayload decodes the payload of a message of type t.
func decodePayload(t msgType, p []byte) (message, error) {
	d := &dec{b: p, typ: t}
	var m message
	switch t {
	case typeHello:
		m = hello{}
	case typeDone:
		m = done{}
	case typeRelayReady:
		m = relayReady{}
	case typeChallenge:
		var c challenge
		d.array(c.Nonce[:])
		c.PingInterval = time.Duration(d.u32()) * time.Millisecond
		m = c
	case typeJoin:
		var j join
		d.array(j.Echo[:])
		d.array(j.ClientNonce[:])
		j.Job = d.job()
		j.World = int(d.u32())
		if d.err == nil && (j.World < 1 || j.World > MaxWorld) {
			d.fail("world size %d out of range 1..%d", j.World, MaxWorld)
		}
		j.Rank = d.rank("rank", true)
		j.PunchTimeout = time.Duration(d.u32()) * time.Millisecond
		j.Public = d.optEndpoint()
		j.Private = d.endpoints()
		d.array(j.MAC[:])
		m = j
	case typeJoined:
		var j joined
		j.World = int(d.u32())
		if d.err == nil && (j.World < 1 || j.World > MaxWorld) {
			d.fail("world size %d out of range 1..%d", j.World, MaxWorld)
		}
		j.Joined = int(d.u32())
		if d.err == nil && (j.Joined < 1 || j.Joined > j.World) {
			d.fail("%d members joined out of range 1..%d (the world)", j.Joined, j.World)
		}
		d.array(j.MAC[:])
		m = j
	case typePing:
		p := ping{Seq: d.u32(), Joined: int(d.u32())}
		if d.err == nil && (p.Joined < 1 || p.Joined > MaxWorld) {
			d.fail("%d members joined out of range 1..%d", p.Joined, MaxWorld)
		}
		m = p
	case typePong:
		m = pong{Seq: d.u32()}
	case typePeers:
		n := d.u32()
		if d.err == nil && (n < 1 || n > MaxWorld) {
			d.fail("world size %d out of range 1..%d", n, MaxWorld)
		}
		var ps peers
		for i := 0; i < int(n) && d.err == nil; i++ {
			var e peerEntry
			e.Observed = d.endpoint()
			e.Public = d.optEndpoint()
			e.Private = d.endpoints()
			ps.Members = append(ps.Members, e)
		}
		m = ps
	case typeStart:
		var s start
		s.Rank = d.rank("rank", false)
		s.Delay = time.Duration(d.u32()) * time.Microsecond
		s.PunchTimeout = time.Duration(d.u32()) * time.Millisecond
		s.RelayTimeout = time.Duration(d.u32()) * time.Millisecond
		m = s
	case typeReport:
		var r report
		r.Peer = d.rank("peer", false)
		r.Outcome = outcome(d.u8())
		if d.err == nil && r.Outcome >= outcomeInvalid {
			d.fail("outcome %d (want 0, 1 or 2)", r.Outcome)
		}
		m = r
	case typeVerdict:
		var v verdict
		v.Peer = d.rank("peer", false)
		v.Tier = Tier(d.u8())
		switch {
		case d.err != nil:
		case v.Tier == TierRelay:
			d.array(v.Nonce[:])
		case v.Tier != TierDirect && v.Tier != TierPunched:
			d.fail("tier %d (want 1, 2 or 3)", v.Tier)
		}
		m = v
	case typeRelayHello:
		var r relayHello
		r.Job = d.job()
		r.Rank = d.rank("rank", false)
		r.Peer = d.rank("peer", false)
		d.array(r.Nonce[:])
		d.array(r.MAC[:])
		if d.err == nil && r.Rank == r.Peer {
			d.fail("relay from rank %d to itself", r.Rank)
		}
		m = r
	case typeError:
		var e errorMsg
		e.Code = Code(d.u16())
		e.Rank = d.rank("rank", true)
		e.Msg = d.text()
		m = e
	default:
		return nil, malformed("unknown message type 0x%02x", uint8(t))
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return m, nil
}

// millis converts a duration to whole milliseconds for the wire, rounding
// up (0 means "the default" on the wire, so a positive duration under a
// millisecond must not become it) and saturating.
func millis(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return uint32(min(ms, 1<<32-1))
}

// CheckJob says what is wrong with a job ID, nil if Join and the server
// accept it: 1..128 bytes of UTF-8 without control characters. Commands
// check a job ID with their other arguments through it (fnmesh join: a bad
// --job is a usage error, not a failed join).
func CheckJob(job string) error {
	if len(job) == 0 || len(job) > maxJobLen {
		return fmt.Errorf("job ID of %d bytes (want 1..%d)", len(job), maxJobLen)
	}
	if !utf8.ValidString(job) {
		return fmt.Errorf("job ID is not UTF-8")
	}
	for i, r := range job {
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			return fmt.Errorf("job ID has an invalid or control character at byte %d", i)
		}
	}
	return nil
}

// checkEndpoint validates an endpoint a member declares or the server observed.
func checkEndpoint(ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return fmt.Errorf("endpoint %v has no address", ap)
	case a.Zone() != "":
		return fmt.Errorf("endpoint %v has a zone", ap)
	case a.IsMulticast():
		return fmt.Errorf("endpoint %v is multicast", ap)
	case ap.Port() == 0:
		return fmt.Errorf("endpoint %v has port 0", ap)
	}
	return nil
}

func truncateUTF8(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
