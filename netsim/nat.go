package netsim

import (
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"
)

// NAT is a router attached to the internet or to another router's LAN. With
// translation (every preset but None) it rewrites the addresses of packets
// between its LAN and the network above according to its NATConfig; hosts
// and further routers sit behind it.
type NAT struct {
	attach
	cfg   NATConfig
	inner realm
	rng   *rand.Rand
	host  *Host // the host behind a one-to-one NAT

	maps     map[mapKey]*mapping
	byExt    map[extKey]*mapping
	nextPort uint16
	stats    NATStats
}

// NATStats are a router's counters.
type NATStats struct {
	Mappings         int    // mappings alive now
	MappingsCreated  uint64 // mappings created
	MappingsExpired  uint64 // mappings ended by their timeout
	MappingsReset    uint64 // mappings ended because a RST closed their last TCP session
	Outbound         uint64 // packets translated on the way out
	Inbound          uint64 // packets translated on the way in
	Hairpinned       uint64 // packets turned around to the LAN
	Forwarded        uint64 // packets routed without translation (plain router)
	DroppedNoMapping uint64 // inbound packets for no mapping
	DroppedFiltered  uint64 // inbound packets refused by the filtering behaviour
	DroppedHairpin   uint64 // packets to the router's own public address without hairpinning
	DroppedNoSession uint64 // outbound TCP segments other than SYN with no mapping
	DroppedExhausted uint64 // packets that found no free public port
	ResetsSent       uint64 // RSTs the router answered unsolicited SYNs with
	ICMPSent         uint64 // ICMP errors the router answered unsolicited SYNs with
}

// MappingInfo describes one live NAT mapping.
type MappingInfo struct {
	Proto    string         // "tcp" or "udp"
	Internal netip.AddrPort // the endpoint behind the NAT
	External netip.AddrPort // the public endpoint
	Remotes  []netip.AddrPort
	Expires  time.Time // when it ends unless traffic refreshes it
}

func (n *NAT) init(a attach, rng *rand.Rand) {
	n.attach = a
	n.rng = rng
	n.inner = realm{owner: n, nodes: map[netip.Addr]any{}}
	n.maps = map[mapKey]*mapping{}
	n.byExt = map[extKey]*mapping{}
	n.nextPort = n.cfg.PortMin + uint16(rng.IntN(int(n.cfg.PortMax-n.cfg.PortMin)+1))
}

// Addr returns the router's address in the network above it: its public
// address when attached to the internet. A nil NAT's accessors return
// zero values.
func (n *NAT) Addr() netip.Addr {
	if n == nil {
		return netip.Addr{}
	}
	return n.addr
}

// Name returns the router's name in traces.
func (n *NAT) Name() string {
	if n == nil {
		return ""
	}
	return n.name
}

// Config returns the router's configuration, defaults filled in.
func (n *NAT) Config() NATConfig {
	if n == nil {
		return NATConfig{}
	}
	return n.cfg
}

// AddHost attaches a host with LAN address addr behind the router.
func (n *NAT) AddHost(addr netip.Addr, opts ...NodeOption) (*Host, error) {
	if n == nil || n.in == nil {
		return nil, errInvalid
	}
	return n.in.addHost(n, addr, opts)
}

// AddNAT attaches a router behind this one, with address addr on this
// router's LAN: a home router behind a carrier-grade NAT, for instance.
func (n *NAT) AddNAT(addr netip.Addr, cfg NATConfig, opts ...NodeOption) (*NAT, error) {
	if n == nil || n.in == nil {
		return nil, errInvalid
	}
	return n.in.addNAT(n, addr, cfg, opts)
}

// Stats returns the router's counters.
func (n *NAT) Stats() NATStats {
	if n == nil || n.in == nil {
		return NATStats{}
	}
	n.in.mu.Lock()
	defer n.in.mu.Unlock()
	s := n.stats
	s.Mappings = 0
	now := n.in.now()
	for _, m := range n.maps {
		if n.live(m, now) {
			s.Mappings++
		}
	}
	return s
}

// Mappings returns the router's live mappings, sorted by protocol and
// public port.
func (n *NAT) Mappings() []MappingInfo {
	if n == nil || n.in == nil {
		return nil
	}
	n.in.mu.Lock()
	defer n.in.mu.Unlock()
	now := n.in.now()
	var out []MappingInfo
	for _, m := range n.maps {
		if !n.live(m, now) {
			continue
		}
		mi := MappingInfo{Proto: m.key.proto.String(), Internal: m.internal, External: m.external,
			Expires: time.Unix(0, m.deadline())}
		for r := range m.sessions {
			mi.Remotes = append(mi.Remotes, r)
		}
		sort.Slice(mi.Remotes, func(i, j int) bool { return mi.Remotes[i].Compare(mi.Remotes[j]) < 0 })
		out = append(out, mi)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Proto != out[j].Proto {
			return out[i].Proto < out[j].Proto
		}
		return out[i].External.Port() < out[j].External.Port()
	})
	return out
}

func (n *NAT) parentRealm() *realm { return n.attach.realm() }

// up sends p over the router's uplink into the network above.
func (n *NAT) up(p *packet) {
	n.in.cross(p, &n.attach, up, func() { n.in.inRealm(p, n.parentRealm()) })
}

// drop drops p with a reason. Caller holds in.mu.
func (n *NAT) drop(p *packet, reason string, counter *uint64) {
	*counter++
	n.in.trace(EventDrop, n.name, p, reason)
}

// fromInside handles a packet from the LAN leaving through the router.
func (n *NAT) fromInside(p *packet) {
	in := n.in
	switch {
	case !n.cfg.translates():
		if p.dst.Addr() == n.addr {
			n.unsolicited(p, "router has no service", &n.stats.DroppedNoMapping)
			return
		}
		n.stats.Forwarded++
		n.up(p)
		return
	case p.proto == protoICMP:
		n.drop(p, "ICMP from the LAN is not forwarded", &n.stats.DroppedNoSession)
		return
	case n.cfg.OneToOne:
		newSrc := netip.AddrPortFrom(n.addr, p.src.Port())
		in.traceTranslate(n.name, p, newSrc, p.dst)
		n.stats.Outbound++
		p.src = newSrc
		n.afterOutbound(p)
		return
	}
	now := in.now()
	m := n.outMapping(p, now)
	if m == nil {
		return
	}
	s := m.sessions[p.dst]
	nowN := now.UnixNano()
	if s != nil && !s.alive(nowN) {
		s.renew()
	}
	if s == nil && (p.proto == protoUDP || p.isSYN()) {
		s = m.newSession(p.dst, nowN)
	}
	stale := s != nil && s.staleRST(p, outward)
	if s != nil {
		s.last.Store(nowN)
		if p.proto == protoTCP {
			s.outbound(p.flags)
		}
		p.sessions = append(p.sessions, s)
	}
	in.traceTranslate(n.name, p, m.external, p.dst)
	n.stats.Outbound++
	p.src = m.external
	if s != nil && p.isRST() && !stale {
		n.killSession(s, "reset by "+p.dst.String())
	}
	n.scheduleCheck(m)
	n.afterOutbound(p)
}

// afterOutbound sends a translated packet up, or back in if it is addressed
// to the router's own public address (hairpinning).
func (n *NAT) afterOutbound(p *packet) {
	if p.dst.Addr() != n.addr {
		n.up(p)
		return
	}
	if !n.cfg.Hairpinning {
		n.drop(p, "hairpinning disabled", &n.stats.DroppedHairpin)
		return
	}
	n.stats.Hairpinned++
	n.inbound(p)
}

// fromOutside handles a packet arriving over the router's uplink.
func (n *NAT) fromOutside(p *packet) {
	if !n.cfg.translates() {
		if p.dst.Addr() == n.addr {
			n.unsolicited(p, "router has no service", &n.stats.DroppedNoMapping)
			return
		}
		n.stats.Forwarded++
		n.in.inRealm(p, &n.inner)
		return
	}
	n.inbound(p)
}

// inbound translates a packet addressed to the router's public address (from
// outside, or hairpinned) and forwards it into the LAN.
func (n *NAT) inbound(p *packet) {
	in := n.in
	if n.cfg.OneToOne {
		if n.host == nil {
			n.unsolicited(p, "no host behind one-to-one NAT", &n.stats.DroppedNoMapping)
			return
		}
		newDst := netip.AddrPortFrom(n.host.addr, p.dst.Port())
		if p.proto == protoICMP {
			o := *p.orig
			o.src = netip.AddrPortFrom(n.host.addr, o.src.Port())
			p.orig = &o
		}
		in.traceTranslate(n.name, p, p.src, newDst)
		n.stats.Inbound++
		p.dst = newDst
		in.inRealm(p, &n.inner)
		return
	}
	if p.proto == protoICMP {
		n.inboundICMP(p)
		return
	}
	now := in.now()
	m := n.byExt[extKey{p.proto, p.dst.Port()}]
	if m == nil || !n.live(m, now) {
		n.unsolicited(p, "no mapping", &n.stats.DroppedNoMapping)
		return
	}
	nowN := now.UnixNano()
	if !m.admits(p.src, nowN) {
		n.unsolicited(p, "filtered ("+n.cfg.Filtering.String()+" filtering)", &n.stats.DroppedFiltered)
		return
	}
	s := m.sessions[p.src]
	if s != nil && !s.alive(nowN) {
		s.renew()
	}
	if s == nil && (p.proto == protoUDP || p.isSYN()) {
		s = m.newSession(p.src, nowN)
	}
	stale := s != nil && s.staleRST(p, inward)
	if s != nil {
		s.last.Store(nowN)
		if p.proto == protoTCP {
			s.inbound(p.flags)
		}
		p.sessions = append(p.sessions, s)
	}
	in.traceTranslate(n.name, p, p.src, m.internal)
	n.stats.Inbound++
	p.dst = m.internal
	if s != nil && p.isRST() && !stale {
		n.killSession(s, "reset by "+p.src.String())
	}
	n.scheduleCheck(m)
	in.inRealm(p, &n.inner)
}

// inboundICMP forwards an ICMP error about a packet the router translated.
func (n *NAT) inboundICMP(p *packet) {
	o := p.orig
	var m *mapping
	if o != nil && o.src.Addr() == n.addr {
		m = n.byExt[extKey{o.proto, o.src.Port()}]
	}
	if m == nil || !n.live(m, n.in.now()) {
		n.drop(p, "ICMP error for no mapping", &n.stats.DroppedNoMapping)
		return
	}
	oc := *o
	oc.src = m.internal
	newDst := netip.AddrPortFrom(m.internal.Addr(), 0)
	n.in.traceTranslate(n.name, p, p.src, newDst)
	n.stats.Inbound++
	p.orig, p.dst = &oc, newDst
	n.in.inRealm(p, &n.inner)
}

// unsolicited handles an inbound packet the router does not admit: it is
// dropped, and a TCP SYN (or, with SYNReset, any stray segment) may be
// answered according to the SYN policy.
func (n *NAT) unsolicited(p *packet, reason string, counter *uint64) {
	n.drop(p, reason, counter)
	if p.proto != protoTCP || p.isRST() {
		return
	}
	policy := n.cfg.UnsolicitedSYN
	if !p.isSYN() && policy != SYNReset {
		return
	}
	switch policy {
	case SYNReset, SYNRejectICMP:
		if d := n.cfg.SYNReplyDelay; d > 0 && p.isSYN() {
			n.in.after(d, func() {
				if n.hasSession(p.dst.Port(), p.src) {
					n.in.trace(EventDrop, n.name, p, "held unsolicited SYN matched by an outbound SYN")
					return
				}
				n.reply(p, policy, reason)
			})
			return
		}
		n.reply(p, policy, reason)
	}
}

// reply answers p with a RST or an ICMP port unreachable from the router.
func (n *NAT) reply(p *packet, policy SYNPolicy, reason string) {
	var r *packet
	if policy == SYNReset {
		r = resetFor(p)
		n.stats.ResetsSent++
	} else {
		r = &packet{proto: protoICMP, src: netip.AddrPortFrom(n.addr, 0), dst: p.src,
			icmp: icmpPortUnreachable, orig: p.header()}
		n.stats.ICMPSent++
	}
	n.in.stats.Packets++
	n.in.trace(EventReply, n.name, r, "unsolicited "+p.describe()+": "+reason)
	n.in.after(0, func() { n.up(r) })
}
