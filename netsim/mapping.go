package netsim

import (
	"net/netip"
	"time"
)

// The mapping table of a NAT: mappings from internal endpoints to public
// ports, each with its sessions (one per remote endpoint), port allocation,
// and expiry. All of it runs under Internet.mu.

type mapKey struct {
	proto    proto
	internal netip.AddrPort
	remote   netip.AddrPort // zero (EIM), address only (ADM), or full (APDM)
}

type extKey struct {
	proto proto
	port  uint16
}

type mapping struct {
	nat      *NAT
	key      mapKey
	internal netip.AddrPort
	external netip.AddrPort
	sessions map[netip.AddrPort]*session
	dead     bool
	checkAt  time.Time // the earliest expiry check scheduled
}

// outMapping finds or creates the mapping for an outbound packet. Only a UDP
// datagram or a TCP SYN creates one. It returns nil (after tracing the
// drop) if there is none.
func (n *NAT) outMapping(p *packet, now time.Time) *mapping {
	key := mapKey{proto: p.proto, internal: p.src}
	switch n.cfg.Mapping {
	case AddressDependent:
		key.remote = netip.AddrPortFrom(p.dst.Addr(), 0)
	case AddressAndPortDependent:
		key.remote = p.dst
	}
	if m := n.maps[key]; m != nil && n.live(m, now) {
		return m
	}
	if p.proto != protoUDP && !p.isSYN() {
		n.drop(p, "no mapping for outbound "+p.describe(), &n.stats.DroppedNoSession)
		return nil
	}
	port, ok := n.allocate(p.proto, p.src.Port(), now)
	if !ok {
		n.drop(p, "no free public port", &n.stats.DroppedExhausted)
		return nil
	}
	m := &mapping{nat: n, key: key, internal: p.src, external: netip.AddrPortFrom(n.addr, port),
		sessions: map[netip.AddrPort]*session{}}
	n.maps[key] = m
	n.byExt[extKey{p.proto, port}] = m
	n.stats.MappingsCreated++
	if n.in.tracer != nil {
		n.in.emit(Event{Kind: EventMapping, Node: n.name, Proto: p.proto.String(), Src: p.src, Dst: p.dst,
			NewSrc: m.external, Reason: n.cfg.Mapping.String() + " mapping, " + n.cfg.PortAllocation.String() + " port"})
	}
	return m
}

// allocate picks a free public port for a new mapping.
func (n *NAT) allocate(pr proto, want uint16, now time.Time) (uint16, bool) {
	free := func(port uint16) bool {
		m := n.byExt[extKey{pr, port}]
		return port != 0 && (m == nil || !n.live(m, now))
	}
	lo, hi := int(n.cfg.PortMin), int(n.cfg.PortMax)
	size := hi - lo + 1
	switch n.cfg.PortAllocation {
	case PortPreserve:
		if free(want) {
			return want, true
		}
	case PortSequential:
		for i := 0; i < size; i++ {
			port := n.nextPort
			n.nextPort++
			if int(n.nextPort) > hi || n.nextPort == 0 {
				n.nextPort = uint16(lo)
			}
			if free(port) {
				return port, true
			}
		}
		return 0, false
	}
	for i := 0; i < 64; i++ {
		if port := uint16(lo + n.rng.IntN(size)); free(port) {
			return port, true
		}
	}
	start := n.rng.IntN(size)
	for i := 0; i < size; i++ {
		if port := uint16(lo + (start+i)%size); free(port) {
			return port, true
		}
	}
	return 0, false
}

// hasSession reports whether a live TCP session exists between public port
// port and remote.
func (n *NAT) hasSession(port uint16, remote netip.AddrPort) bool {
	now := n.in.now()
	m := n.byExt[extKey{protoTCP, port}]
	if m == nil || !n.live(m, now) {
		return false
	}
	s := m.sessions[remote]
	return s != nil && s.alive(now.UnixNano())
}

// timeout is how long a session in state st lives without traffic.
func (n *NAT) timeout(pr proto, st sessState) time.Duration {
	switch {
	case pr == protoUDP:
		return n.cfg.UDPTimeout
	case st == sessEstablished:
		return n.cfg.TCPEstablishedTimeout
	}
	return n.cfg.TCPTransitoryTimeout
}

// live reports whether m still has a live session, and removes it (and its
// dead sessions) if not.
func (n *NAT) live(m *mapping, now time.Time) bool {
	if m.dead {
		return false
	}
	nowN := now.UnixNano()
	for r, s := range m.sessions {
		if !s.alive(nowN) {
			s.dead.Store(true)
			delete(m.sessions, r)
		}
	}
	if len(m.sessions) == 0 {
		n.removeMapping(m, "timeout", &n.stats.MappingsExpired)
		return false
	}
	return true
}

func (n *NAT) killSession(s *session, why string) {
	s.dead.Store(true)
	m := s.m
	if m.sessions[s.remote] == s {
		delete(m.sessions, s.remote)
	}
	if len(m.sessions) == 0 && !m.dead {
		n.removeMapping(m, why, &n.stats.MappingsReset)
	}
}

func (n *NAT) removeMapping(m *mapping, why string, counter *uint64) {
	m.dead = true
	*counter++
	if n.maps[m.key] == m {
		delete(n.maps, m.key)
	}
	if k := (extKey{m.key.proto, m.external.Port()}); n.byExt[k] == m {
		delete(n.byExt, k)
	}
	if n.in.tracer != nil {
		n.in.emit(Event{Kind: EventExpire, Node: n.name, Proto: m.key.proto.String(), Src: m.internal,
			NewSrc: m.external, Reason: why})
	}
}

// scheduleCheck makes sure an expiry check is pending no later than m's
// current deadline, so that the trace and counters show the expiry when it
// happens. Caller holds in.mu.
func (n *NAT) scheduleCheck(m *mapping) {
	at := time.Unix(0, m.deadline()).Add(time.Nanosecond)
	if !m.checkAt.IsZero() && !at.Before(m.checkAt) {
		return
	}
	m.checkAt = at
	n.in.at(at, func() {
		if m.checkAt.Equal(at) {
			m.checkAt = time.Time{}
		}
		if n.live(m, n.in.now()) {
			n.scheduleCheck(m)
		}
	})
}
