package netsim

import (
	"fmt"
	"net/netip"
	"strings"
)

type proto uint8

const (
	protoICMP proto = 1
	protoTCP  proto = 6
	protoUDP  proto = 17
)

func (p proto) String() string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoICMP:
		return "icmp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

type tcpFlags uint8

const (
	flagSYN tcpFlags = 1 << iota
	flagACK
	flagRST
	flagFIN
)

func (f tcpFlags) String() string {
	var s []string
	for _, x := range []struct {
		f tcpFlags
		n string
	}{{flagSYN, "SYN"}, {flagFIN, "FIN"}, {flagRST, "RST"}, {flagACK, "ACK"}} {
		if f&x.f != 0 {
			s = append(s, x.n)
		}
	}
	return strings.Join(s, "+")
}

// icmpCode is the kind of ICMP destination-unreachable error.
type icmpCode uint8

const (
	icmpHostUnreachable icmpCode = 1
	icmpPortUnreachable icmpCode = 3
)

func (c icmpCode) String() string {
	if c == icmpPortUnreachable {
		return "port-unreachable"
	}
	return "host-unreachable"
}

// packet is one IP packet in flight: a TCP handshake or teardown segment, a
// UDP datagram, or an ICMP error. Data on established TCP connections does
// not travel as packets (see stream.go).
type packet struct {
	proto    proto
	src, dst netip.AddrPort

	// TCP: flags, the sending socket incarnation (its ISN, in effect) and the
	// incarnation this segment acknowledges (ACK) or targets (RST).
	flags    tcpFlags
	from, to *TCPConn
	// seqZero marks a RST that answers a segment without ACK (a bare
	// SYN): its sequence number is 0 (RFC 9293, 3.10.7.1), which only a
	// socket in SYN-SENT accepts (it checks the ACK alone). Every other
	// state, and a conntrack entry that has seen the sender's side,
	// checks the sequence number against a window it lies outside.
	seqZero bool
	// reliable marks an ACK that data (or a FIN) carries: TCP sends it again
	// with every retransmission of that data, so links do not lose it.
	reliable bool

	payload []byte // UDP

	// ICMP: the error and the header of the packet that caused it.
	icmp icmpCode
	orig *packet

	// The links crossed and the NAT sessions traversed so far; a TCP
	// connection takes its data path and NAT state from its handshake.
	hops     []hop
	sessions []*session
}

func (p *packet) size() int {
	switch p.proto {
	case protoTCP:
		return 40
	case protoUDP:
		return 28 + len(p.payload)
	}
	return 56
}

func (p *packet) isSYN() bool {
	return p.proto == protoTCP && p.flags&(flagSYN|flagACK|flagRST) == flagSYN
}
func (p *packet) isRST() bool { return p.proto == protoTCP && p.flags&flagRST != 0 }

func (p *packet) describe() string {
	switch p.proto {
	case protoTCP:
		return p.flags.String()
	case protoICMP:
		return p.icmp.String()
	}
	return ""
}
