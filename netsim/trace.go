package netsim

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// EventKind says what happened in a trace Event.
type EventKind uint8

const (
	// EventSend: a host or router sent a packet.
	EventSend EventKind = iota + 1
	// EventDeliver: a packet reached a host.
	EventDeliver
	// EventDrop: a packet was dropped; Reason says why.
	EventDrop
	// EventTranslate: a NAT rewrote a packet (Src/Dst before, NewSrc/NewDst after).
	EventTranslate
	// EventMapping: a NAT created a mapping (Src internal, NewSrc public endpoint).
	EventMapping
	// EventExpire: a NAT mapping ended; Reason says why (timeout, reset).
	EventExpire
	// EventReply: a NAT answered a packet itself (RST or ICMP); Reason says why.
	EventReply
	// EventStream: a TCP connection sent a FIN or RST on its data path.
	EventStream
)

func (k EventKind) String() string {
	switch k {
	case EventSend:
		return "send"
	case EventDeliver:
		return "deliver"
	case EventDrop:
		return "drop"
	case EventTranslate:
		return "translate"
	case EventMapping:
		return "map"
	case EventExpire:
		return "unmap"
	case EventReply:
		return "reply"
	case EventStream:
		return "stream"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one entry of the trace: a packet sent, delivered, translated or
// dropped, or a NAT decision. Data on established TCP connections is not
// traced per write; their FIN and RST are.
type Event struct {
	Time    time.Time     // when it happened (virtual time under synctest)
	Elapsed time.Duration // since the Internet was created
	Kind    EventKind
	Node    string // the host or router where it happened
	Proto   string // "tcp", "udp" or "icmp"
	Flags   string // TCP flags ("SYN", "SYN+ACK", "RST+ACK") or ICMP error
	Src     netip.AddrPort
	Dst     netip.AddrPort
	NewSrc  netip.AddrPort // after translation (EventTranslate, EventMapping)
	NewDst  netip.AddrPort
	Len     int    // packet size in bytes
	Reason  string // why it was dropped, answered or unmapped
}

func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%10.6fs %-28s %-9s %s", e.Elapsed.Seconds(), e.Node, e.Kind, e.Proto)
	if e.Flags != "" {
		fmt.Fprintf(&b, " %s", e.Flags)
	}
	switch {
	case e.Kind == EventMapping || e.Kind == EventExpire:
		fmt.Fprintf(&b, " %v => %v", e.Src, e.NewSrc)
		if e.Dst.IsValid() {
			fmt.Fprintf(&b, " (first to %v)", e.Dst)
		}
	case e.NewSrc.IsValid() || e.NewDst.IsValid():
		fmt.Fprintf(&b, " %v > %v => %v > %v", e.Src, e.Dst, e.NewSrc, e.NewDst)
	default:
		fmt.Fprintf(&b, " %v > %v", e.Src, e.Dst)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	return b.String()
}

// trace emits an event about packet p at node. Caller holds in.mu.
func (in *Internet) trace(kind EventKind, node string, p *packet, reason string) {
	if in.tracer == nil {
		return
	}
	in.emit(Event{Kind: kind, Node: node, Proto: p.proto.String(), Flags: p.describe(),
		Src: p.src, Dst: p.dst, Len: p.size(), Reason: reason})
}

func (in *Internet) traceTranslate(node string, p *packet, newSrc, newDst netip.AddrPort) {
	if in.tracer == nil {
		return
	}
	in.emit(Event{Kind: EventTranslate, Node: node, Proto: p.proto.String(), Flags: p.describe(),
		Src: p.src, Dst: p.dst, NewSrc: newSrc, NewDst: newDst, Len: p.size()})
}

func (in *Internet) emit(e Event) {
	e.Time = in.now()
	e.Elapsed = e.Time.Sub(in.start)
	in.tracer(e)
}
