package netsim

import (
	"net/netip"
	"sync/atomic"
)

// sessState is a NAT session's view of a TCP connection (a much simplified
// conntrack): it decides which timeout applies.
type sessState int32

const (
	sessNew sessState = iota
	sessSynSent
	sessSynRcvd
	sessEstablished
	sessClosing
)

// session is the NAT state for one remote endpoint of a mapping (a
// conntrack entry, in Linux terms). Its liveness is read and refreshed by
// the TCP data path without the network lock, hence the atomics.
type session struct {
	m      *mapping
	remote netip.AddrPort
	state  atomic.Int32
	last   atomic.Int64 // unix nanoseconds of the last packet
	dead   atomic.Bool
	// sent[d] records that a TCP segment passed in direction d (outward,
	// inward) since the session began: conntrack then knows that side's
	// sequence numbers, and a sequence-zero RST from it does not end the
	// session (staleRST).
	sent [2]atomic.Bool
}

// direction of a segment through a NAT.
type direction int

const (
	outward direction = iota // from the LAN
	inward                   // to the LAN
)

// renew starts a session that had expired afresh.
func (s *session) renew() {
	s.state.Store(int32(sessNew))
	s.sent[outward].Store(false)
	s.sent[inward].Store(false)
}

// staleRST reports whether p, a segment in direction d, is a RST that
// conntrack finds outside the window of that side: a sequence-zero RST (the
// answer to a bare SYN) from a side whose sequence numbers it already knows,
// as after a crossing of SYNs. Linux still translates such a RST but keeps
// the session (measured on kernel 6.18, see docs/netsim.md).
func (s *session) staleRST(p *packet, d direction) bool {
	return p.isRST() && p.seqZero && s.sent[d].Load()
}

func (m *mapping) newSession(remote netip.AddrPort, now int64) *session {
	s := &session{m: m, remote: remote}
	s.last.Store(now)
	m.sessions[remote] = s
	return s
}

func (s *session) deadline() int64 {
	return s.last.Load() + int64(s.m.nat.timeout(s.m.key.proto, sessState(s.state.Load())))
}

func (s *session) alive(now int64) bool { return !s.dead.Load() && now <= s.deadline() }

// outbound and inbound advance the TCP session state for a segment leaving
// or entering the LAN.
func (s *session) outbound(f tcpFlags) { s.advance(f, sessSynSent); s.sent[outward].Store(true) }
func (s *session) inbound(f tcpFlags)  { s.advance(f, sessSynRcvd); s.sent[inward].Store(true) }

func (s *session) advance(f tcpFlags, onSYN sessState) {
	st := sessState(s.state.Load())
	switch {
	case f&flagRST != 0:
	case f&(flagSYN|flagACK) == flagSYN|flagACK:
		st = sessEstablished
	case f&flagSYN != 0 && (st == sessNew || st == sessClosing):
		st = onSYN
	}
	s.state.Store(int32(st))
}

// deadline is when m ends without further traffic: when its last session does.
func (m *mapping) deadline() int64 {
	var d int64
	for _, s := range m.sessions {
		if x := s.deadline(); x > d {
			d = x
		}
	}
	return d
}

// admits applies the filtering behaviour to an inbound packet from remote.
func (m *mapping) admits(remote netip.AddrPort, now int64) bool {
	switch m.nat.cfg.Filtering {
	case EndpointIndependent:
		return true
	case AddressDependent:
		for r, s := range m.sessions {
			if r.Addr() == remote.Addr() && s.alive(now) {
				return true
			}
		}
		return false
	}
	s := m.sessions[remote]
	return s != nil && s.alive(now)
}
