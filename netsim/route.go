package netsim

import "net/netip"

// Forwarding. A packet moves hop by hop: up a node's link into the realm
// above, through routers (which translate it), and down the destination's
// link. Each crossing takes the link's delay; NAT decisions are taken when
// the packet reaches the router, which is what makes the timing of a TCP
// simultaneous open matter as it does on real networks. Consecutive hops
// without delay are taken in one go. All of this runs under Internet.mu.

// cross sends p over link l of node a in direction dir and calls next when
// it arrives on the other side.
func (in *Internet) cross(p *packet, a *attach, dir int, next func()) {
	now := in.now()
	at, why := a.link.transit(now, p.size(), dir, !p.reliable)
	if why != "" {
		in.stats.Lost++
		in.trace(EventDrop, a.name, p, why)
		return
	}
	p.hops = append(p.hops, hop{a.link, dir})
	if !at.After(now) {
		next()
		return
	}
	in.at(at, next)
}

// inRealm routes p inside realm r toward its destination address.
func (in *Internet) inRealm(p *packet, r *realm) {
	switch t := r.nodes[p.dst.Addr()].(type) {
	case *Host:
		in.cross(p, &t.attach, down, func() { t.receive(p) })
	case *NAT:
		in.cross(p, &t.attach, down, func() { t.fromOutside(p) })
	default:
		if r.owner != nil {
			r.owner.fromInside(p)
			return
		}
		in.noRoute(p)
	}
}

// noRoute drops a packet to an address nobody has. As a last-hop router
// would, the internet answers a TCP packet with ICMP host unreachable, so a
// dial to a wrong address fails fast with EHOSTUNREACH.
func (in *Internet) noRoute(p *packet) {
	in.stats.NoRoute++
	in.trace(EventDrop, "internet", p, "no route to host")
	if p.proto != protoTCP || p.isRST() {
		return
	}
	icmp := &packet{proto: protoICMP, src: netip.AddrPortFrom(p.dst.Addr(), 0), dst: p.src,
		icmp: icmpHostUnreachable, orig: p.header()}
	in.stats.Packets++
	in.trace(EventSend, "internet", icmp, "")
	in.after(0, func() { in.inRealm(icmp, &in.root) })
}

// header copies the parts of p that an ICMP error quotes.
func (p *packet) header() *packet {
	return &packet{proto: p.proto, src: p.src, dst: p.dst, flags: p.flags, from: p.from, to: p.to}
}
